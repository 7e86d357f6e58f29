"""Choosing where email goes: a real SMTP server, or the dev inbox when none is configured."""

from __future__ import annotations

from email import message_from_bytes, policy
from typing import Protocol

from ulak.clock import Clock
from ulak.config import Settings
from ulak.db import Database
from ulak.messages.models import DevInboxMessage


class EmailTransport(Protocol):
    async def send(self, *, mail_from: str, rcpt_to: str, raw: bytes) -> None: ...

    async def close(self) -> None: ...


class DevInbox:
    """Keeps mail in the database, where the dev inbox page shows it."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.database = database
        self.clock = clock

    async def send(self, *, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        parsed = message_from_bytes(raw, policy=policy.default)
        async with self.database.transaction() as session:
            session.add(
                DevInboxMessage(
                    message_id=str(parsed.get("Message-ID", "")),
                    mail_from=mail_from,
                    rcpt_to=rcpt_to,
                    subject=str(parsed.get("Subject", "")),
                    raw=raw,
                    received_at=self.clock.now(),
                )
            )

    async def close(self) -> None:
        return None


def email_transport(settings: Settings, database: Database, clock: Clock) -> EmailTransport:
    if not settings.smtp_url:
        return DevInbox(database, clock)
    from ulak.channels.email import SmtpChannel, parse_smtp_url

    return SmtpChannel(
        parse_smtp_url(settings.smtp_url),
        pool_size=settings.smtp_pool_size,
        timeout=settings.smtp_timeout_seconds,
    )
