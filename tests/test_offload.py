"""Rendering and MIME run in a helper process; a helper that dies is replaced."""

from __future__ import annotations

import os
import re
import signal
from functools import partial

import pytest

from tests.channels.test_email import MAIL
from tests.messages.test_rendering import BRAND, OVERRIDE, SPINS, full_context
from ulak.channels.email import build_mime
from ulak.messages.rendering import TemplateError, render_email
from ulak.offload import HELPER_MEMORY_BYTES, Offload


def same_mail(raw: bytes) -> bytes:
    """The message with its random MIME boundary taken out."""
    boundary = re.search(rb'boundary="([^"]+)"', raw)
    assert boundary is not None
    return raw.replace(boundary.group(1), b"BOUNDARY")


async def test_a_helper_process_builds_the_same_mime_and_is_replaced_when_it_dies() -> None:
    offload = Offload(1)
    try:
        inline = same_mail(build_mime(MAIL))
        assert same_mail(await offload.run(partial(build_mime, MAIL))) == inline
        helper = await offload.run(os.getpid)
        assert helper != os.getpid()
        os.kill(helper, signal.SIGKILL)
        assert same_mail(await offload.run(partial(build_mime, MAIL))) == inline
        assert await offload.run(os.getpid) not in (helper, os.getpid())
    finally:
        offload.close()


async def test_without_helpers_the_work_runs_inline() -> None:
    assert await Offload(0).run(os.getpid) == os.getpid()


async def test_a_helper_bounds_its_memory_and_time_and_goes_on() -> None:
    """A store's template that grows or spins in a helper fails alone; the same helper
    renders the next email."""
    offload = Offload(1)
    try:
        helper = await offload.run(os.getpid)
        with pytest.raises(MemoryError):
            await offload.run(partial(bytearray, 2 * HELPER_MEMORY_BYTES))
        spins = OVERRIDE.replace("<p>Toplam", SPINS + "<p>Toplam")
        with pytest.raises(TemplateError, match=r"took more than 2 s of CPU"):
            await offload.run(
                partial(
                    render_email,
                    "order_confirmation",
                    locale="tr",
                    brand=BRAND,
                    context=full_context(),
                    overrides={"order_confirmation": spins},
                )
            )
        mail = await offload.run(
            partial(
                render_email, "order_confirmation", locale="tr", brand=BRAND, context=full_context()
            )
        )
        assert mail.subject == "Siparişiniz alındı – #1001"
        assert await offload.run(os.getpid) == helper
    finally:
        offload.close()
