"""`ulak suppressions` as a shop's operator uses it, and `ulak inbound`'s limits."""

from __future__ import annotations

import json

import aiosmtplib
import pytest
from sqlalchemy import func, select

from tests.support import StoreKey, free_port, ulak_cli
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.events.inbox import Inbox, inbox_backlog
from ulak.events.models import Event
from ulak.suppressions.listener import ReportHandler, listener
from ulak.suppressions.reports import MAX_REPORT_BYTES


def test_add_list_and_remove(database_url: str, store: StoreKey) -> None:
    env = {"ULAK_DATABASE_URL": database_url}
    added = ulak_cli(
        "suppressions", "add", "--store", str(store.id), " Ayse@Example.com", "--note", "by phone",
        env=env,
    )  # fmt: skip
    assert (added.returncode, added.stdout) == (0, "ayse@example.com: suppressed (manual)\n")
    listed = ulak_cli("suppressions", "list", "--store", str(store.id), "--json", env=env)
    assert listed.returncode == 0
    (row,) = json.loads(listed.stdout)
    assert {k: row[k] for k in ("channel", "address", "reason", "detail", "message_id")} == {
        "channel": "email",
        "address": "ayse@example.com",
        "reason": "manual",
        "detail": "by phone",
        "message_id": None,
    }
    # Another store's list is its own.
    other = ulak_cli("suppressions", "list", "--store", str(store.id + 1), "--json", env=env)
    assert other.returncode == 2
    removed = ulak_cli(
        "suppressions", "remove", "--store", str(store.id), "ayse@example.com", env=env
    )
    assert (removed.returncode, removed.stdout) == (0, "ayse@example.com: no longer suppressed\n")
    again = ulak_cli(
        "suppressions", "remove", "--store", str(store.id), "ayse@example.com", env=env
    )
    assert again.returncode == 2
    assert "is not on store" in again.stderr
    empty = ulak_cli("suppressions", "list", "--store", str(store.id), "--json", env=env)
    assert json.loads(empty.stdout) == []


async def test_inbound_refuses_relaying_and_oversized_reports(
    db: Database, clock: FrozenClock
) -> None:
    inbox = Inbox(db, clock, lambda: None)
    port = free_port()
    server = listener(ReportHandler(db, inbox, "bounces.ulak.test"), host="127.0.0.1", port=port)
    server.start()
    try:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await smtp.sendmail("", ["user@gmail.com"], b"Subject: relay me\n\nx\n")
        assert refused.value.recipients[0].code == 550
        big = b"Subject: big\n\n" + b"x" * 76 + b"\n"
        with pytest.raises(aiosmtplib.SMTPResponseException) as too_big:
            await smtp.sendmail(
                "", ["bounce+1.0000000000000000@bounces.ulak.test"],
                big * (MAX_REPORT_BYTES // len(big) + 1),
            )  # fmt: skip
        assert too_big.value.code == 552
        # A report that names nothing of ulak's is taken (so it is not bounced back) and
        # dropped: no event.
        accepted = await smtp.sendmail(
            "", ["postmaster@bounces.ulak.test"], b"Subject: hello\n\nnot a report\n"
        )
        assert accepted[1].startswith("OK")
        await smtp.quit()
    finally:
        server.stop()
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 0
    if db.is_sqlite:
        assert await inbox_backlog(db, store_id=None) == 0
