"""Rendering and MIME run in a helper process; a helper that dies is replaced."""

from __future__ import annotations

import os
import re
import signal
from functools import partial

from tests.channels.test_email import MAIL
from ulak.channels.email import build_mime
from ulak.offload import Offload


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
