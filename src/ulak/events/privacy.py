"""KVKK/GDPR: the events about a customer, exported and (on erasure) kept without what
identifies them; and the store's retention of applied events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.customers.privacy import Personal
from ulak.events.models import Event

# What an erased customer's events keep of their data: ids and amounts, which say what
# happened (and let an order's revenue be traced) without saying to whom.
KEPT_DATA = frozenset(
    {
        "order_id",
        "cart_id",
        "shipment_id",
        "product_id",
        "variant_id",
        "subscription_id",
        "number",
        "status",
        "channel",
        "currency",
        "subtotal",
        "discount",
        "shipping",
        "tax",
        "total",
        "amount",
        "carrier",
        "problem",
        "recipient_type",
    }
)


@dataclass(frozen=True)
class EventExport:
    key: str
    type: str
    occurred_at: datetime
    received_at: datetime
    source: str
    status: str
    customer: dict[str, Any]
    data: dict[str, Any]


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[EventExport]:
    rows = (
        await session.execute(
            select(Event)
            .where(Event.store_id == store_id, Event.customer_id == customer_id)
            .order_by(Event.occurred_at, Event.id)
        )
    ).scalars()
    return [
        EventExport(
            e.key, e.type, e.occurred_at, e.received_at, e.source, e.status, e.customer, e.data
        )
        for e in rows
    ]


def _kept(data: dict[str, Any], personal: Personal) -> dict[str, Any]:
    return {
        k: personal.redact_json(v)
        for k, v in data.items()
        if k in KEPT_DATA and isinstance(v, str | int | float | bool)
    }


def _names(event: Event, personal: Personal) -> bool:
    """Whether a not yet applied event names this customer by one of their identifiers."""
    who = event.customer or {}
    email = str(who.get("email") or "").strip().lower()
    digits = "".join(c for c in str(who.get("phone") or "") if c.isdigit())
    return bool(
        (personal.email and email == personal.email.lower())
        or (who.get("id") and who.get("id") in personal.external_ids)
        or (personal.phone and len(digits) >= 10 and personal.phone.endswith(digits[-10:]))
    )


async def erase_customer(
    session: AsyncSession, *, store_id: int, customer_ids: list[int], personal: Personal
) -> int:
    """The events about the customer keep their type, times, status and the ids and
    amounts of their data; who it was and everything else goes. Events still waiting
    that name them (not yet applied, so not yet theirs) are set aside as failed, emptied
    the same way: applied after the erasure, they would bring the person back."""
    events = list(
        (
            await session.execute(
                select(Event).where(Event.store_id == store_id, Event.customer_id.in_(customer_ids))
            )
        ).scalars()
    )
    waiting = (
        await session.execute(
            select(Event).where(
                Event.store_id == store_id,
                Event.customer_id.is_(None),
                Event.status.in_(("pending", "failed")),
            )
        )
    ).scalars()
    stopped = [e for e in waiting if _names(e, personal)]
    for event in events + stopped:
        event.customer = {}
        event.data = _kept(event.data or {}, personal)
        event.error = personal.redact(event.error)
    for event in stopped:
        if event.status == "pending":
            event.status = "failed"
            event.error = "customer erased before it was applied"
    await session.flush()
    return len(events) + len(stopped)


async def old_events(
    session: AsyncSession, *, store_id: int, before: datetime, after: int, limit: int
) -> list[tuple[int, int | None]]:
    """(id, customer) of up to `limit` of a store's applied events received before
    `before`, past id `after`, oldest first; never a pending or failed one (failed events
    wait for someone to look at them)."""
    rows = await session.execute(
        select(Event.id, Event.customer_id)
        .where(
            Event.store_id == store_id,
            Event.id > after,
            Event.status == "applied",
            Event.received_at < before,
        )
        .order_by(Event.id)
        .limit(limit)
    )
    return [(id_, customer) for id_, customer in rows.all()]


async def delete_events(session: AsyncSession, *, ids: list[int]) -> int:
    if ids:
        await session.execute(delete(Event).where(Event.id.in_(ids)))
    return len(ids)
