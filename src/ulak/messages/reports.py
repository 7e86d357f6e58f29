"""SMS delivery reports on the outbox: a message a gateway took (`sent`, with its
`provider_id`) becomes `delivered`, or `failed` with the provider's reason.

Reports reach here two ways: a gateway's callback (`sms/api.py`), which the API process
turns into a `message.delivered` / `message.failed` event that the worker applies like any
other; and the worker's poll of the gateways that are polled (`sms/jobs.py`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.messages.models import Message

# A gateway is first asked about an SMS this long after it took it (operators report
# within seconds to minutes); an SMS without a report this long after is no longer asked
# about (operators keep trying for about two days).
REPORT_AFTER = timedelta(minutes=1)
REPORT_UNTIL = timedelta(days=3)
# Spelt out so the planner matches ix_messages_awaiting_report (see journeys.models.IS_LIVE).
_AWAITING = (text("messages.status = 'sent' AND messages.provider_id IS NOT NULL"),)


@dataclass(frozen=True)
class Awaiting:
    store_id: int
    message_id: int
    provider_id: str


async def awaiting_reports(
    session: AsyncSession, *, now: datetime, limit: int, besides: Collection[int] = ()
) -> list[Awaiting]:
    """SMS taken by a gateway between REPORT_UNTIL and REPORT_AFTER ago, with no report
    yet, oldest first (ix_messages_awaiting_report), of stores other than `besides` (those
    whose gateway may not be asked yet: their old SMS would fill `limit` and keep the other
    stores' from being asked)."""
    rows = await session.execute(
        select(Message.store_id, Message.id, Message.provider_id)
        .where(
            *_AWAITING,
            Message.sent_at > now - REPORT_UNTIL,
            Message.sent_at <= now - REPORT_AFTER,
            *([Message.store_id.not_in(besides)] if besides else []),
        )
        .order_by(Message.sent_at)
        .limit(limit)
    )
    return [Awaiting(store, message, str(provider)) for store, message, provider in rows.all()]


async def next_report_due(session: AsyncSession) -> datetime | None:
    """When the oldest SMS awaiting a report is first asked about; None when none is."""
    oldest: datetime | None = await session.scalar(
        select(func.min(Message.sent_at)).where(*_AWAITING)
    )
    return oldest + REPORT_AFTER if oldest is not None else None


async def customer_of_report(
    session: AsyncSession, *, store_id: int, provider_id: str
) -> int | None:
    """The customer of the SMS a report is about (ix_messages_provider_id); None: no such
    SMS of this store."""
    return await session.scalar(
        select(Message.customer_id)
        .where(Message.store_id == store_id, Message.provider_id == provider_id)
        .limit(1)
    )


async def record_report(
    session: AsyncSession,
    *,
    store_id: int,
    provider_id: str,
    delivered: bool,
    reason: str | None,
) -> bool:
    """Apply a final report to its SMS: once, from `sent` only (a report that comes again,
    or late, changes nothing). Returns whether it changed a message."""
    result = await session.execute(
        update(Message)
        .where(
            Message.store_id == store_id,
            Message.provider_id == provider_id,
            Message.status == "sent",
        )
        .values(
            status="delivered" if delivered else "failed",
            last_error=None if delivered else (reason or "not delivered"),
        )
    )
    return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True)
class SmsEntry:
    id: int
    created_at: datetime
    to: str
    template: str
    status: str
    text: str
    reason: str | None
    provider_id: str | None


async def recent_sms(session: AsyncSession, *, store_id: int, limit: int) -> list[SmsEntry]:
    """A store's latest SMS, newest first."""
    rows = await session.execute(
        select(Message)
        .where(Message.store_id == store_id, Message.channel == "sms")
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return [
        SmsEntry(
            m.id,
            m.created_at,
            m.to_address,
            m.template,
            m.status,
            m.text,
            m.last_error,
            m.provider_id,
        )
        for m in rows.scalars()
    ]
