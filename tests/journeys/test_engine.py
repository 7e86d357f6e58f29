"""The durable engine, driven as the workers drive it, with the clock moved instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from tests.support import StoreKey, add_journey, make_store, order_placed
from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.events.inbox import event_rows, insert_events
from ulak.events.models import Event
from ulak.events.schemas import EventIn
from ulak.journeys.models import Enrollment, EnrollmentStep
from ulak.messages.models import Message
from ulak.operations import failures_report
from ulak.orders.models import Order
from ulak.worker import Workers


async def sent(db: Database) -> list[tuple[str, str]]:
    """(template, status) of every message, oldest first."""
    async with db.transaction() as session:
        rows = await session.execute(select(Message.template, Message.status).order_by(Message.id))
        return [(t, s) for t, s in rows.all()]


async def enrollments(db: Database) -> list[Enrollment]:
    async with db.transaction() as session:
        return list((await session.execute(select(Enrollment).order_by(Enrollment.id))).scalars())


async def post(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


def event(type_: str, order_id: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": type_,
        "customer": {"id": "c-1042", "email": "ayse@example.com"},
        "data": {"order_id": order_id, **data},
    }


WAIT_TWO_DAYS = """
key: thank-you
name: Thanks later
legal_class: informational
trigger: {event: order.placed}
reentry: once_per_order
exit_when:
  - event: order.cancelled
    match: "event.data.order_id == enrollment.order_id"
steps:
  - wait: 2d
  - send: email
    template: order_delivered
"""


async def test_a_durable_wait_fires_only_when_the_clock_reaches_it(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, WAIT_TWO_DAYS)
    await post(client, store, order_placed())
    await workers.drain()
    assert await sent(db) == []
    (enrollment,) = await enrollments(db)
    assert enrollment.status == "active"
    assert enrollment.next_run_at == clock.now() + timedelta(days=2)

    clock.travel(timedelta(days=2) - timedelta(seconds=1))
    await workers.drain()
    assert await sent(db) == []

    clock.travel(timedelta(seconds=1))
    await workers.drain()
    assert await sent(db) == [("order_delivered", "sent")]
    (enrollment,) = await enrollments(db)
    assert enrollment.status == "completed"


async def test_exit_when_ends_the_enrollment_before_its_message(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, WAIT_TWO_DAYS)
    await post(client, store, order_placed("1"), order_placed("2"))
    await workers.drain()
    # Cancelling another order must not end this one's enrollment.
    await post(client, store, event("order.cancelled", "1", "cancel-1"))
    await workers.drain()
    clock.travel(timedelta(days=3))
    await workers.drain()
    assert await sent(db) == [("order_delivered", "sent")]
    first, second = await enrollments(db)
    assert (first.order_id, first.status, first.exit_reason) == (
        "1",
        "exited",
        "exit_when: order.cancelled",
    )
    assert (second.order_id, second.status) == ("2", "completed")


WAIT_FOR_REVIEW = """
key: review
name: Review request
legal_class: informational
trigger: {event: order.delivered}
reentry: once_per_order
steps:
  - wait_for:
      event: order.rated
      match: "event.data.order_id == enrollment.order_id"
      timeout: 5d
    on_timeout:
      - send: email
        template: order_preparing
  - send: email
    template: order_shipped
"""


async def test_wait_for_resumes_when_the_matching_event_arrives(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, WAIT_FOR_REVIEW)
    await post(client, store, order_placed("1"), event("order.delivered", "1", "d-1"))
    await workers.drain()
    (enrollment,) = await enrollments(db)
    assert (enrollment.status, enrollment.waiting_for) == ("waiting", "order.rated")

    clock.travel(timedelta(days=1))
    # A rating of another order does not match (a shop's own event type).
    await post(client, store, event("order.rated", "other", "r-0", rating=5))
    await workers.drain()
    assert await sent(db) == []

    await post(client, store, event("order.rated", "1", "r-1", rating=5))
    await workers.drain()
    assert await sent(db) == [("order_shipped", "sent")]
    (enrollment,) = await enrollments(db)
    assert enrollment.status == "completed"
    clock.travel(timedelta(days=10))
    await workers.drain()
    assert await sent(db) == [("order_shipped", "sent")]


async def test_wait_for_takes_the_timeout_branch_when_nothing_arrives(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, WAIT_FOR_REVIEW)
    await post(client, store, order_placed("1"), event("order.delivered", "1", "d-1"))
    await workers.drain()
    clock.travel(timedelta(days=5) - timedelta(seconds=1))
    await workers.drain()
    assert await sent(db) == []
    clock.travel(timedelta(seconds=1))
    await workers.drain()
    assert await sent(db) == [("order_preparing", "sent"), ("order_shipped", "sent")]
    async with db.transaction() as session:
        kinds = (
            await session.execute(
                select(EnrollmentStep.kind, EnrollmentStep.note).order_by(EnrollmentStep.id)
            )
        ).all()
    assert [k for k, _ in kinds] == ["enter", "wait_for", "wait_for", "send", "send", "complete"]
    assert kinds[2][1] == "timed out"


async def test_once_per_order_enrolls_each_order_once(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers
) -> None:
    await post(client, store, order_placed("1"))
    await post(client, store, order_placed("1", event_id="resent-by-shop"))
    await post(client, store, order_placed("2"))
    await workers.drain()
    assert await sent(db) == [("order_confirmation", "sent"), ("order_confirmation", "sent")]


async def test_running_enrollments_keep_their_version(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, WAIT_TWO_DAYS)
    await post(client, store, order_placed("1"))
    await workers.drain()
    await add_journey(db, clock, store, WAIT_TWO_DAYS.replace("order_delivered", "order_shipped"))
    await post(client, store, order_placed("2"))
    await workers.drain()
    clock.travel(timedelta(days=2))
    await workers.drain()
    assert await sent(db) == [("order_delivered", "sent"), ("order_shipped", "sent")]


async def test_wait_until_a_local_time_of_day(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    source = WAIT_TWO_DAYS.replace("wait: 2d", 'wait: {until: "09:30"}')
    await add_journey(db, clock, store, source)
    clock.set(datetime(2026, 11, 23, 20, 0, tzinfo=UTC))  # 23:00 in Istanbul
    await post(client, store, order_placed())
    await workers.drain()
    (enrollment,) = await enrollments(db)
    assert enrollment.next_run_at == datetime(2026, 11, 24, 6, 30, tzinfo=UTC)


async def test_a_failing_step_is_retried_with_backoff_then_gives_up_visibly(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(
        db,
        clock,
        store,
        WAIT_TWO_DAYS.replace("order_delivered", "no_such_template").replace("  - wait: 2d\n", ""),
    )
    await post(client, store, order_placed())
    await workers.drain()
    (enrollment,) = await enrollments(db)
    assert enrollment.status == "active"
    assert enrollment.attempts == 1
    assert "no_such_template" in (enrollment.failure_reason or "")
    assert enrollment.next_run_at == clock.now() + timedelta(seconds=30)
    for _ in range(10):
        clock.travel(timedelta(hours=1))
        await workers.drain()
    (enrollment,) = await enrollments(db)
    assert enrollment.status == "failed"
    assert enrollment.failure_reason is not None
    assert enrollment.failure_reason.startswith("gave up: step 0")
    assert await sent(db) == []
    async with db.transaction() as session:
        report = await failures_report(session, store_id=store.id, limit=5)
    assert report["counts"]["enrollments"] == {"failed": 1}
    assert [(f["kind"], f["id"]) for f in report["failures"]] == [("enrollments", enrollment.id)]
    assert "no_such_template" in report["failures"][0]["reason"]


async def test_each_customers_events_apply_in_time_order(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers
) -> None:
    shipped = event("order.shipped", "1", "s-1", carrier="Yurtiçi Kargo", tracking_number="YK1")
    shipped["occurred_at"] = "2026-11-24T09:00:00+03:00"
    placed = order_placed("1", occurred_at="2026-11-23T09:00:00+03:00")
    await post(client, store, shipped, placed)
    await workers.drain()
    async with db.transaction() as session:
        order = (await session.execute(select(Order))).scalar_one()
    assert order.status == "shipped"
    # The order emails (the thank-you journey's first email, commercial, is skipped: no
    # consent).
    assert await sent(db) == [
        ("order_confirmation", "sent"),
        ("thank_you", "skipped"),
        ("order_shipped", "sent"),
    ]


async def test_a_carriers_delivered_status_sends_the_delivered_email_once(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers
) -> None:
    shipped = event(
        "order.shipped",
        "1",
        "s-1",
        shipment_id="SH-1",
        carrier="Aras Kargo",
        tracking_number="AR1",
        tracking_url="https://kargo.example/AR1",
    )
    await post(client, store, order_placed("1"), shipped)
    await workers.drain()
    for n, status in enumerate(["out_for_delivery", "delivered", "delivered"]):
        update = {
            "id": f"track-{n}",
            "type": "shipment.updated",
            "customer": {"id": "c-1042"},
            "data": {"shipment_id": "SH-1", "status": status, "location": "Kadıköy"},
        }
        await post(client, store, update)
        await workers.drain()
    # The shop also reports the delivery itself: still one delivered email.
    await post(client, store, event("order.delivered", "1", "shop-delivered"))
    await workers.drain()
    assert await sent(db) == [
        ("order_confirmation", "sent"),
        ("order_shipped", "sent"),
        ("delivery_problem", "sent"),  # out for delivery: someone should be in
        ("order_delivered", "sent"),
    ]
    async with db.transaction() as session:
        order = (await session.execute(select(Order))).scalar_one()
    assert order.status == "delivered"


async def test_an_event_that_fails_after_creating_its_customer_fails_alone(
    client: httpx.AsyncClient, db: Database, store: StoreKey, clock: FrozenClock, workers: Workers
) -> None:
    # Its data no longer validates (ingest checks it; a stored row may predate a rule):
    # applying it creates its customer, then fails. The rollback frees the customer's id,
    # which SQLite hands to the next new customer.
    bad = order_placed("1", customer_id="c-1", email="bir@example.com")
    del bad["data"]["total"]
    async with db.transaction() as session:
        rows = event_rows(store.id, [EventIn.model_validate(bad)], source="api", now=clock.now())
        await insert_events(session, rows)
    clock.travel(timedelta(seconds=1))
    await post(client, store, order_placed("2", customer_id="c-2", email="iki@example.com"))
    await workers.drain()
    async with db.transaction() as session:
        events = (await session.execute(select(Event).order_by(Event.id))).scalars().all()
        customers = (await session.execute(select(Customer.external_id))).scalars().all()
    assert [(e.key, e.status) for e in events] == [
        ("evt-order-1", "failed"),
        ("evt-order-2", "applied"),
    ]
    assert "total" in (events[0].error or "")
    assert customers == ["c-2"]
    assert events[1].customer_id is not None
    assert await sent(db) == [("order_confirmation", "sent")]
