"""A store's outbound webhook endpoints, the queue of their deliveries, and what goes in
it: `enqueue` for the event applier's changes (a Python payload), `enqueuing` for a
statement that selects them (the sender's `message.sent`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.db import is_postgres, table_of
from ulak.errors import Conflict, Invalid, NotFound
from ulak.stores.service import get_store
from ulak.webhooks import net
from ulak.webhooks.models import IS_PENDING_DELIVERY, WebhookDelivery, WebhookEndpoint
from ulak.webhooks.queue import EVENT_TYPES
from ulak.webhooks.signing import new_secret

# After each failed attempt, the wait before the next; after the last, `failed`.
BACKOFF = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
# A claimed delivery is due again after this long: a worker that died mid-POST has its
# rows sent again then (at least once). Longer than a POST may take (`jobs.py`: 15 s).
LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class EndpointShown:
    """What may be shown of an endpoint: never its secret."""

    id: int
    store_id: int
    url: str
    event_types: tuple[str, ...]
    enabled: bool
    development: bool
    disabled_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class DeliveryShown:
    id: int
    endpoint_id: int
    event_type: str
    event_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _types(stored: str) -> tuple[str, ...]:
    return tuple(t for t in stored.split(",") if t)


def _shown(row: WebhookEndpoint) -> EndpointShown:
    return EndpointShown(
        row.id,
        row.store_id,
        row.url,
        _types(row.event_types),
        row.enabled,
        row.development,
        row.disabled_reason,
        row.created_at,
    )


def event_types(given: list[str]) -> tuple[str, ...]:
    """The subscribed types, checked; `*` or none: all of them."""
    wanted = [t.strip() for t in given if t.strip()]
    if not wanted or wanted == ["*"]:
        return EVENT_TYPES
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown:
        raise Invalid(
            f"unknown webhook event type(s) {', '.join(unknown)}: one of {', '.join(EVENT_TYPES)}"
        )
    return tuple(t for t in EVENT_TYPES if t in wanted)


async def add_endpoint(
    session: AsyncSession,
    *,
    store_id: int,
    url: str,
    events: list[str],
    development: bool,
    clock: Clock,
) -> tuple[EndpointShown, str]:
    """A new endpoint and its secret, which nothing shows again. The URL is checked here
    (and at every delivery): see `net.check`."""
    await get_store(session, store_id)
    types = event_types(events)
    target = await net.check(url, development=development)
    row = WebhookEndpoint(
        store_id=store_id,
        url=str(target.url),
        secret=new_secret(),
        event_types="," + ",".join(types) + ",",
        enabled=True,
        development=development,
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return _shown(row), row.secret


async def endpoints_of(session: AsyncSession, *, store_id: int) -> list[EndpointShown]:
    await get_store(session, store_id)
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.store_id == store_id)
        .order_by(WebhookEndpoint.id)
    )
    return [_shown(row) for row in rows]


async def _endpoint(session: AsyncSession, *, store_id: int, endpoint_id: int) -> WebhookEndpoint:
    row = await session.get(WebhookEndpoint, endpoint_id)
    if row is None or row.store_id != store_id:
        raise NotFound(f"store {store_id} has no webhook endpoint {endpoint_id}")
    return row


async def remove_endpoint(session: AsyncSession, *, store_id: int, endpoint_id: int) -> None:
    """Delete an endpoint and its deliveries, sent or not."""
    row = await _endpoint(session, store_id=store_id, endpoint_id=endpoint_id)
    await session.delete(row)
    await session.flush()


async def deliveries_of(
    session: AsyncSession, *, store_id: int, status: str | None = None, limit: int = 50
) -> list[DeliveryShown]:
    """A store's latest deliveries, newest first (`ix_webhook_deliveries_store`)."""
    await get_store(session, store_id)
    query = select(WebhookDelivery).where(WebhookDelivery.store_id == store_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    rows = await session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit))
    return [
        DeliveryShown(
            r.id,
            r.endpoint_id,
            r.event_type,
            r.event_id,
            r.status,
            r.attempts,
            r.next_attempt_at,
            r.last_status_code,
            r.last_error,
            r.created_at,
            r.delivered_at,
        )
        for r in rows
    ]


async def retry_delivery(
    session: AsyncSession, *, store_id: int, delivery_id: int, now: datetime
) -> None:
    """A failed delivery due again now, with a fresh schedule of attempts."""
    row = await session.get(WebhookDelivery, delivery_id)
    if row is None or row.store_id != store_id:
        raise NotFound(f"store {store_id} has no webhook delivery {delivery_id}")
    if row.status != "failed":
        raise Conflict(f"webhook delivery {delivery_id} is {row.status}, not failed")
    endpoint = await _endpoint(session, store_id=store_id, endpoint_id=row.endpoint_id)
    if not endpoint.enabled:
        raise Conflict(
            f"webhook endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}); "
            "add the URL again once it takes webhooks"
        )
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = now
    await session.flush()


# Delivery. --------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for one attempt, with what its POST needs."""

    id: int
    attempt: int
    store_id: int
    endpoint_id: int
    url: str
    development: bool
    event_type: str
    event_id: str
    occurred_at: datetime
    payload: dict[str, Any]
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Attempted:
    """One attempt's outcome: `error` None is a 2xx."""

    delivery_id: int
    attempt: int
    at: datetime
    status_code: int | None = None
    error: str | None = None


async def next_due(session: AsyncSession) -> datetime | None:
    """When the earliest pending delivery is due (`ix_webhook_deliveries_due`)."""
    table = table_of(WebhookDelivery)
    due: datetime | None = await session.scalar(
        select(func.min(table.c.next_attempt_at)).where(IS_PENDING_DELIVERY)
    )
    return due


async def claim_due(session: AsyncSession, *, now: datetime, limit: int) -> list[Claimed]:
    """Take up to `limit` due deliveries for one attempt each: their attempt is counted
    and they are due again after `LEASE`, so the POSTs run after this transaction commits
    and a worker that dies before recording them leaves them to be sent again (locked,
    skipping those another worker holds, on PostgreSQL). A disabled endpoint's rows fail."""
    query = (
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(IS_PENDING_DELIVERY, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
    claimed = []
    for delivery, endpoint in (await session.execute(query)).all():
        if not endpoint.enabled:
            delivery.status = "failed"
            delivery.last_error = f"the endpoint is disabled: {endpoint.disabled_reason}"
            continue
        delivery.attempts += 1
        delivery.next_attempt_at = now + LEASE
        claimed.append(
            Claimed(
                id=delivery.id,
                attempt=delivery.attempts,
                store_id=delivery.store_id,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                development=endpoint.development,
                event_type=delivery.event_type,
                event_id=delivery.event_id,
                occurred_at=delivery.occurred_at,
                payload=delivery.payload,
                secret=endpoint.secret,
            )
        )
    await session.flush()
    return claimed


GONE = 410


async def record_attempts(session: AsyncSession, attempts: list[Attempted]) -> None:
    """Apply outcomes: a 2xx delivers; 410 Gone fails it and disables its endpoint (whose
    pending rows then fail too); anything else waits `BACKOFF` and then fails. An outcome
    counts only for its own attempt of a pending row: recorded twice it changes nothing."""
    if not attempts:
        return
    rows = {
        d.id: d
        for d in await session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.id.in_([a.delivery_id for a in attempts]))
        )
    }
    gone: dict[int, str] = {}
    for outcome in attempts:
        row = rows.get(outcome.delivery_id)
        if row is None or row.status != "pending" or row.attempts != outcome.attempt:
            continue
        row.last_status_code = outcome.status_code
        row.last_error = outcome.error
        if outcome.error is None:
            row.status = "delivered"
            row.delivered_at = outcome.at
        elif outcome.status_code == GONE:
            row.status = "failed"
            gone[row.endpoint_id] = f"answered 410 Gone on {outcome.at:%Y-%m-%d %H:%M} UTC"
        elif row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            row.last_error = f"gave up after {row.attempts} attempts: {outcome.error}"
        else:
            row.next_attempt_at = outcome.at + BACKOFF[row.attempts - 1]
    await session.flush()
    for endpoint_id, reason in gone.items():
        endpoints, deliveries = table_of(WebhookEndpoint), table_of(WebhookDelivery)
        await session.execute(
            update(endpoints)
            .where(endpoints.c.id == endpoint_id)
            .values(enabled=False, disabled_reason=reason)
        )
        await session.execute(
            update(deliveries)
            .where(deliveries.c.endpoint_id == endpoint_id, IS_PENDING_DELIVERY)
            .values(status="failed", last_error=f"the endpoint is disabled: {reason}")
        )


async def move_customer(session: AsyncSession, *, from_customer: int, to_customer: int) -> None:
    """A merge: the absorbed profile's deliveries are the survivor's (her export shows
    them, her erasure deletes them)."""
    table = table_of(WebhookDelivery)
    await session.execute(
        update(table).where(table.c.customer_id == from_customer).values(customer_id=to_customer)
    )
