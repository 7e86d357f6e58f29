"""The email channel: it owns the wire format (MIME, DKIM) and where mail goes, a real SMTP
server or the dev inbox when none is configured."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import partial
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.channels.email import DkimSigner, OutgoingEmail, SendError, build_mime
from ulak.channels.models import DevInboxMessage
from ulak.clock import Clock
from ulak.config import Settings
from ulak.db import Database
from ulak.offload import Offload

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery: None is success; a permanent error is not retried."""

    error: str | None = None
    permanent: bool = False
    # The SMTP reply code when the server refused the recipient or the message (RCPT,
    # DATA): a bounce, which the suppression list counts.
    bounce_code: int | None = None
    # An SMS gateway's id of the message (its delivery reports name it).
    provider_id: str | None = None
    # Not before this many seconds, when the gateway said (throttling).
    retry_after: float | None = None


@dataclass(frozen=True)
class Envelope:
    """An email ready for the wire: what `transmit` hands to the SMTP server."""

    message_id: str
    mail_from: str
    rcpt_to: str
    raw: bytes


class EmailChannel:
    def __init__(
        self, transport: EmailTransport, dkim: DkimSigner | None, offload: Offload
    ) -> None:
        self.transport = transport
        self.dkim = dkim
        self.offload = offload

    async def deliver(self, mail: OutgoingEmail) -> Outcome:
        prepared = await self.prepare(mail)
        if isinstance(prepared, Outcome):
            return prepared
        return await self.transmit(prepared)

    async def prepare(self, mail: OutgoingEmail) -> Envelope | Outcome:
        """Build the MIME message and its DKIM signature: pure CPU work, which a helper
        process does. An Outcome if that failed."""
        try:
            raw = await self.offload.run(partial(build_mime, mail, dkim=self.dkim))
        except Exception as error:  # an unexpected failure is retried like a temporary one
            log.exception("mail to message %s could not be built", mail.message_id)
            return Outcome(f"{type(error).__name__}: {error}")
        return Envelope(
            mail.message_id, mail.return_path or mail.from_address, mail.to_address, raw
        )

    async def transmit(self, envelope: Envelope) -> Outcome:
        try:
            await self.transport.send(
                mail_from=envelope.mail_from, rcpt_to=envelope.rcpt_to, raw=envelope.raw
            )
        except SendError as error:
            return Outcome(str(error), error.permanent, error.code if error.bounce else None)
        except Exception as error:  # an unexpected failure is retried like a temporary one
            log.exception("mail to message %s could not be sent", envelope.message_id)
            return Outcome(f"{type(error).__name__}: {error}")
        return Outcome()

    async def close(self) -> None:
        await self.transport.close()


def email_transport(settings: Settings, database: Database, clock: Clock) -> EmailTransport:
    if not settings.smtp_url:
        return DevInbox(database, clock)
    from ulak.channels.email import SmtpChannel, parse_smtp_url

    return SmtpChannel(
        parse_smtp_url(settings.smtp_url),
        pool_size=settings.smtp_pool_size,
        timeout=settings.smtp_timeout_seconds,
    )


def email_channel(
    settings: Settings, database: Database, clock: Clock, offload: Offload
) -> EmailChannel:
    return EmailChannel(
        email_transport(settings, database, clock), DkimSigner.from_settings(settings), offload
    )


@dataclass(frozen=True)
class CapturedMail:
    """An email the dev inbox kept, as its recipient would read it."""

    message_id: str
    to: str
    subject: str
    text: str
    received_at: datetime


async def captured_mail(session: AsyncSession) -> list[CapturedMail]:
    """What the dev inbox kept, oldest first, with each mail's plain-text part."""
    rows = (await session.execute(select(DevInboxMessage).order_by(DevInboxMessage.id))).scalars()
    captured = []
    for row in rows:
        parsed = message_from_bytes(row.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        part = parsed.get_body(preferencelist=("plain",))
        captured.append(
            CapturedMail(
                message_id=row.message_id,
                to=row.rcpt_to,
                subject=row.subject,
                # As a mail reader shows it: lines, not the wire's CRLF.
                text=str(part.get_content()).replace("\r\n", "\n") if part is not None else "",
                received_at=row.received_at,
            )
        )
    return captured
