"""Rendering and MIME run in a helper process; a helper that dies is replaced."""

from __future__ import annotations

import os
import re
import signal
from functools import partial

from ulak.channels.email import OutgoingEmail, build_mime
from ulak.clock import FrozenClock
from ulak.offload import Offload

MAIL = OutgoingEmail(
    message_id="<m1.1@dukkan.example>",
    from_name="Ayşe'nin Dükkanı",
    from_address="merhaba@dukkan.example",
    reply_to=None,
    to_address="ayse@example.com",
    subject="Siparişiniz alındı – #1001",
    html="<p>Teşekkürler</p>",
    text="Teşekkürler",
    date=FrozenClock().now(),
    list_unsubscribe_url=None,
)


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
