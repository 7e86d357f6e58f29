"""What goes into the webhook queue, in the transaction of the change it reports:
`enqueue` for the event applier's changes (a payload built in Python), `enqueuing` for a
statement that selects them (the sender's `message.sent`). Imports nothing of other
features, so any feature may call it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, literal_column, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from ulak.db import Note, insert_ignoring_conflicts, notes, table_of
from ulak.webhooks.models import WebhookDelivery, WebhookEndpoint

# The events a store may subscribe to: ulak's own, each reporting a change ulak made.
EVENT_TYPES = ("message.sent", "review.submitted", "survey.answered", "coupon.redeemed")


# Each store's enabled endpoints and their types, read once per transaction: a batch of
# events asks once per store that has an event to report, not once per event.
_SUBSCRIBERS: Note[dict[int, list[tuple[int, str]]]] = Note("webhooks.subscribers", dict)


def customer_ref(external_id: str | None, email: str | None, phone: str | None) -> dict[str, Any]:
    """How every payload names its customer: the shop's id, email and phone."""
    return {"id": external_id, "email": email, "phone": phone}


async def enqueue(
    session: AsyncSession,
    *,
    store_id: int,
    event_type: str,
    event_id: str,
    occurred_at: datetime,
    data: dict[str, Any],
    customer_id: int | None,
    now: datetime,
) -> int:
    """Queue an event for each of the store's endpoints subscribed to its type, in the
    caller's transaction (the change it reports). Returns how many were queued; an
    event id an endpoint has already is not queued again."""
    memo = notes(session)(_SUBSCRIBERS)
    if store_id not in memo:
        rows = await session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
                WebhookEndpoint.store_id == store_id, WebhookEndpoint.enabled.is_(true())
            )
        )
        memo[store_id] = [(id_, types) for id_, types in rows]
    wanted = [id_ for id_, types in memo[store_id] if f",{event_type}," in types]
    if not wanted:
        return 0
    await session.execute(
        insert_ignoring_conflicts(session, WebhookDelivery),
        [
            {
                "store_id": store_id,
                "endpoint_id": endpoint,
                "customer_id": customer_id,
                "event_type": event_type,
                "event_id": event_id,
                "occurred_at": occurred_at,
                "payload": data,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for endpoint in wanted
        ],
    )
    return len(wanted)


def enqueuing(about: Select[Any], *, event_type: str, postgres: bool) -> Insert:
    """One statement that queues an event of `event_type` for every row `about` selects
    (labelled `store_id`, `customer_id`, `event_id`, `occurred_at`, `payload`) to each
    subscribed enabled endpoint of its store: its cost does not grow with the rows, and a
    store without endpoints gets nothing from it. The event is due at `occurred_at`."""
    a = about.subquery("about")
    e = table_of(WebhookEndpoint)
    table = table_of(WebhookDelivery)
    # Literals, not parameters: the sender runs this compiled, with only its own.
    quoted = f"'{event_type}'"
    assert event_type in EVENT_TYPES
    rows = select(
        e.c.id,
        a.c.store_id,
        a.c.customer_id,
        literal_column(quoted),
        a.c.event_id,
        a.c.occurred_at,
        a.c.payload,
        literal_column("'pending'"),
        literal_column("0"),
        a.c.occurred_at,
        a.c.occurred_at,
    ).select_from(
        a.join(
            e,
            and_(
                e.c.store_id == a.c.store_id,
                e.c.enabled.is_(true()),
                # ",message.sent," within the endpoint's ",a,b," (SQLAlchemy doubles the
                # '%' for the sender's compiled SQL, whose parameters are %(name)s).
                e.c.event_types.like(literal_column(f"'%,{event_type},%'")),
            ),
        )
    )
    columns = [
        "endpoint_id",
        "store_id",
        "customer_id",
        "event_type",
        "event_id",
        "occurred_at",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    ]
    insert = pg_insert(table) if postgres else sqlite_insert(table)
    return insert.from_select(columns, rows).on_conflict_do_nothing()
