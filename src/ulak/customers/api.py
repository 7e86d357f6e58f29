from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from ulak.customers.service import customer_view, find_customer
from ulak.events.models import Event
from ulak.messages.models import Message
from ulak.orders.service import orders_of
from ulak.web.deps import AppDatabase, CurrentStore

router = APIRouter(prefix="/v1", tags=["customers"])

TIMELINE_LIMIT = 200


class TimelineEntry(BaseModel):
    at: datetime
    kind: str  # event | message
    type: str
    summary: str
    detail: dict[str, Any]


class CustomerProfile(BaseModel):
    customer: dict[str, Any]
    orders: list[dict[str, Any]]
    timeline: list[TimelineEntry]


@router.get("/customers/{ref:path}", response_model=CustomerProfile, summary="A customer's profile")
async def get_customer(ref: str, store: CurrentStore, database: AppDatabase) -> CustomerProfile:
    """`ref` is the shop's customer id or an email address. The timeline lists the newest
    events and messages first."""
    async with database.read() as session:
        customer = await find_customer(session, store_id=store.id, ref=ref)
        orders = await orders_of(session, customer_id=customer.id)
        events = (
            await session.execute(
                select(Event)
                .where(Event.customer_id == customer.id)
                .order_by(Event.occurred_at.desc())
                .limit(TIMELINE_LIMIT)
            )
        ).scalars()
        messages = (
            await session.execute(
                select(Message)
                .where(Message.customer_id == customer.id)
                .order_by(Message.created_at.desc())
                .limit(TIMELINE_LIMIT)
            )
        ).scalars()
        timeline = [
            TimelineEntry(
                at=e.occurred_at,
                kind="event",
                type=e.type,
                summary=e.type,
                detail={"id": e.key, "status": e.status, "data": e.data, "error": e.error},
            )
            for e in events
        ] + [
            TimelineEntry(
                at=m.created_at,
                kind="message",
                type=f"message.{m.status}",
                summary=m.subject if m.channel == "email" else m.text,  # an SMS: its text
                detail={
                    "id": m.id,
                    "channel": m.channel,
                    "template": m.template,
                    "to": m.to_address,
                    "status": m.status,
                    "sent_at": m.sent_at,
                    "attempts": m.attempts,
                    # Attempts cut short by a crash: each may have reached the customer.
                    "interrupted_attempts": m.interrupted_attempts,
                    "error": m.last_error,
                    # Held back by the sending policy (quiet hours, a frequency cap): why,
                    # and until when it waits.
                    "held_reason": m.held_reason,
                    "held_until": m.held_until,
                },
            )
            for m in messages
        ]
        timeline.sort(key=lambda entry: entry.at, reverse=True)
        profile = customer_view(customer)
        profile["ulak_id"] = customer.id
        profile["created_at"] = customer.created_at
        return CustomerProfile(customer=profile, orders=orders, timeline=timeline[:TIMELINE_LIMIT])
