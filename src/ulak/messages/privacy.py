"""KVKK/GDPR: the messages ulak made for a customer, exported (with what they said: it is
the customer's data) and (on erasure) emptied, the pending ones cancelled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.customers.privacy import ERASED, Personal
from ulak.messages.models import Message


@dataclass(frozen=True)
class MessageExport:
    channel: str
    template: str
    legal_class: str
    to_address: str
    subject: str
    status: str
    created_at: datetime
    send_after: datetime
    sent_at: datetime | None
    last_error: str | None
    html: str
    text: str


async def _messages(
    session: AsyncSession, store_id: int, customer_id: int, enrollment_ids: list[int]
) -> list[Message]:
    mine = Message.customer_id == customer_id
    if enrollment_ids:  # the shop's alerts about the customer, sent from their enrollments
        mine = or_(mine, Message.enrollment_id.in_(enrollment_ids))
    rows = await session.execute(
        select(Message).where(Message.store_id == store_id, mine).order_by(Message.id)
    )
    return list(rows.scalars())


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[MessageExport]:
    return [
        MessageExport(
            m.channel,
            m.template,
            m.legal_class,
            m.to_address,
            m.subject,
            m.status,
            m.created_at,
            m.send_after,
            m.sent_at,
            m.last_error,
            m.html,
            m.text,
        )
        for m in await _messages(session, store_id, customer_id, [])
    ]


@dataclass(frozen=True)
class MessagesErased:
    emptied: int
    cancelled: int
    # The Message-ID headers of what was emptied: the dev inbox's copies go too.
    message_ids: list[str]
    # The outbox ids of what was emptied (the dev SMS inbox's copies go too), and the
    # addresses they went to (an address the profile no longer has is personal data too).
    ids: list[int]
    addresses: list[str]
    # The texts of the SMS emptied: their short links (`/s/<token>`) go too.
    sms_texts: list[str]


async def erase_customer(
    session: AsyncSession,
    *,
    store_id: int,
    customer_id: int,
    enrollment_ids: list[int],
    personal: Personal,
) -> MessagesErased:
    """Each message keeps its template, class, status and times (what was sent when, for
    counts) without the address, subject or body; one still queued is skipped, "erased"."""
    messages = await _messages(session, store_id, customer_id, enrollment_ids)
    cancelled = 0
    addresses = sorted({m.to_address for m in messages if m.to_address not in ("", ERASED)})
    sms_texts = [m.text for m in messages if m.channel == "sms" and m.text]
    for message in messages:
        message.to_address = ERASED
        message.subject = message.preheader = message.html = message.text = ""
        message.last_error = personal.redact(message.last_error)
        if message.status == "queued":
            message.status = "skipped"
            message.last_error = "erased"
            cancelled += 1
    await session.flush()
    return MessagesErased(
        len(messages),
        cancelled,
        [m.message_id_header for m in messages],
        [m.id for m in messages],
        addresses,
        sms_texts,
    )


async def erase_shop_alerts(
    session: AsyncSession, *, store_id: int, message_ids: list[int]
) -> list[str]:
    """The shop's alerts about a customer that another feature kept the ids of (surveys:
    an unhappy answer's alert quotes the customer): emptied as the customer's own messages
    are, a queued one skipped. Returns their Message-IDs (the dev inbox's copies)."""
    if not message_ids:
        return []
    rows = await session.execute(
        select(Message).where(Message.store_id == store_id, Message.id.in_(message_ids))
    )
    headers = []
    for message in rows.scalars():
        message.subject = message.preheader = message.html = message.text = ""
        if message.status == "queued":
            message.status = "skipped"
            message.last_error = "erased"
        headers.append(message.message_id_header)
    await session.flush()
    return headers
