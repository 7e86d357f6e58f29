"""What the worker does with a bounce or complaint (`message.bounced`,
`message.complained`), whichever way it came in: the SMTP server's answer, a DSN or an
abuse report through `ulak inbound` or POST /v1/inbound/email."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from ulak.consent.service import record_change
from ulak.customers.models import Customer
from ulak.customers.privacy import ERASED
from ulak.events.schemas import BouncedData, ComplainedData
from ulak.messages.service import delivered_since, mark_reported, reported_message
from ulak.suppressions.service import soft_bounced, suppress

# The consent change a complaint records (consent_changes.source).
COMPLAINT = "spam_complaint"
# Why a report about an erased customer's message did nothing (the event's error).
ERASED_MESSAGE = "not acted on: the message's customer was erased"


async def apply_report(
    session: AsyncSession,
    *,
    store_id: int,
    data: BouncedData | ComplainedData,
    customer: Customer | None,
    event_id: int,
    soft_bounce_limit: int,
    now: datetime,
) -> str | None:
    """Suppress the address as the report says and note it on the message; a complaint
    also revokes the customer's email consent. Returns why nothing was done, if so."""
    message = await reported_message(session, message_id=data.message_id, store_id=store_id)
    if message is None:
        # Another store's message, or none: a store never suppresses another's addresses.
        return f"not acted on: store {store_id} has no message {data.message_id}"
    if message.to_address == ERASED:
        # Its customer was erased since: a report names the address, which must not come
        # back (nor be suppressed under "[erased]").
        return ERASED_MESSAGE
    store, channel, address = store_id, message.channel, message.to_address
    if isinstance(data, ComplainedData):
        await suppress(
            session,
            store_id=store,
            channel=channel,
            address=address,
            reason="complaint",
            detail=f"feedback type {data.feedback_type}",
            message_id=message.id,
            now=now,
        )
        await mark_reported(
            session,
            message_id=message.id,
            status="complained",
            reason=f"reported as spam ({data.feedback_type})",
        )
        if customer is not None and message.customer_id is not None:
            await record_change(
                session,
                store_id=store_id,
                customer=customer,
                channel=message.channel,
                status="revoked",
                source=COMPLAINT,
                occurred_at=now,
                event_id=event_id,
                now=now,
            )
        return None
    detail = " ".join(part for part in (data.status, data.diagnostic) if part)
    if data.kind == "hard":
        await suppress(
            session,
            store_id=store,
            channel=channel,
            address=address,
            reason="hard_bounce",
            detail=detail,
            message_id=message.id,
            now=now,
        )
    elif data.kind == "soft":
        await soft_bounced(
            session,
            store_id=store,
            channel=channel,
            address=address,
            detail=detail,
            message_id=message.id,
            limit=soft_bounce_limit,
            now=now,
            delivered_since=partial(
                delivered_since, session, message=message.id, customer_id=message.customer_id
            ),
        )
    await mark_reported(
        session,
        message_id=message.id,
        status="bounced",
        reason=f"bounced ({data.kind}, {data.source}): {detail}",
    )
    return None
