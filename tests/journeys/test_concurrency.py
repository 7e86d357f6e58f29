"""Failures mid-batch, and several workers racing on the same rows (PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.journeys.test_engine import (
    WAIT_FOR_REVIEW,
    enrollments,
    event,
    post,
    sent,
)
from tests.support import add_journey, make_store, order_placed
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.events.models import Event
from ulak.events.service import apply_lanes
from ulak.journeys.jobs import run_due_enrollments
from ulak.messages.models import Message
from ulak.messages.service import Claimed, Delivered, claim_due, record_outcomes
from ulak.offload import Offload
from ulak.worker import Workers

SEND_THEN_FAIL = """
key: two-sends
name: Two sends
legal_class: informational
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - send: email
    template: order_confirmation
  - send: email
    template: no_such_template
"""


async def test_a_step_failing_after_a_flushed_send_is_recorded_and_retried(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, SEND_THEN_FAIL)
    await post(client, store, order_placed("1"), order_placed("2"))
    await workers.drain()
    # Neither enrollment's failure stops the other, and the rolled-back first send is not
    # left behind: it is written again, once, when the step is retried.
    first, second = await enrollments(db)
    assert (first.status, first.attempts, second.status, second.attempts) == (
        "active",
        1,
        "active",
        1,
    )
    assert await sent(db) == []
    for _ in range(10):
        clock.travel(timedelta(hours=1))
        await workers.drain()
    first, second = await enrollments(db)
    assert (first.status, second.status) == ("failed", "failed")
    assert await sent(db) == []


async def test_a_stale_senders_outcome_does_not_overwrite_a_later_claim(
    client: httpx.AsyncClient, db: Database, store: object, clock: FrozenClock, workers: Workers
) -> None:
    from tests.support import StoreKey

    assert isinstance(store, StoreKey)
    await post(client, store, order_placed("1"))
    await workers.once("events.apply")
    await workers.once("journeys.run_due")
    async with db.transaction() as session:
        (first,) = await claim(session, clock, claimer=1)
    clock.travel(timedelta(seconds=61))  # the first sender is slow; its lease runs out
    async with db.transaction() as session:
        (second,) = await claim(session, clock, claimer=2)
        await record_outcomes(session, [delivered(second, clock)], max_attempts=3)
    async with db.transaction() as session:
        await record_outcomes(session, [delivered(first, clock, "timed out")], max_attempts=3)
    async with db.transaction() as session:
        message = (await session.execute(select(Message))).scalar_one()
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, None)


async def test_a_message_whose_sender_keeps_dying_gives_up(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock)
    await post(client, store, order_placed("1"))
    await workers.once("events.apply")
    await workers.once("journeys.run_due")
    for _ in range(3):  # claimed, and the sender dies each time
        async with db.transaction() as session:
            await claim(session, clock, claimer=1)
        clock.travel(timedelta(seconds=61))
    async with db.transaction() as session:
        again = await claim(session, clock, claimer=1)
        message = (await session.execute(select(Message))).scalar_one()
    assert again == []
    assert message.status == "failed"
    assert message.last_error == "gave up after 3 attempt(s): the sender stopped during delivery"
    assert message.interrupted_attempts == 3


async def claim(session: AsyncSession, clock: FrozenClock, *, claimer: int) -> list[Claimed]:
    """Claim as a sender that takes back every claim whose lease ran out (as it does a
    claim it lost, or one from before claims were signed)."""
    return await claim_due(
        session, now=clock.now(), limit=10, lease=timedelta(seconds=60), base_url="",
        max_attempts=3, claimer=claimer, taken_back=Message.lease_until <= clock.now(),
    )  # fmt: skip


def delivered(message: Claimed, clock: FrozenClock, error: str | None = None) -> Delivered:
    return Delivered(message.id, message.attempts, error, False, clock.now())


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a race between two database connections: PostgreSQL only")


@pytest.mark.usefixtures("postgres_only")
async def test_an_event_racing_a_finished_enrollment_does_not_revive_it(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, WAIT_FOR_REVIEW)
    await post(client, store, order_placed("1"), event("order.delivered", "1", "d-1"))
    await workers.drain()
    clock.travel(timedelta(days=5))
    await post(client, store, event("order.rated", "1", "r-1", rating=5))
    # The step runner times the wait out and completes the enrollment while the event
    # worker applies the review that arrived just too late.
    async with db.transaction() as session:
        await run_due_enrollments(
            session, clock=clock, limit=10, max_attempts=5, base_url="", offload=Offload(0)
        )
        racing = asyncio.create_task(workers.once("events.apply"))
        await asyncio.sleep(0.5)
    await racing
    (enrollment,) = await enrollments(db)
    assert enrollment.status == "completed"
    assert enrollment.next_run_at is None
    clock.travel(timedelta(days=1))
    await workers.drain()
    assert await sent(db) == [("order_preparing", "sent"), ("order_shipped", "sent")]


@pytest.mark.usefixtures("postgres_only")
async def test_a_new_customers_events_in_two_lanes_are_not_lost(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    placed = order_placed("1", customer_id="c-9")
    checkout = {
        "id": "cart-1",
        "type": "checkout.started",
        "customer": {"email": "ayse@example.com"},
        "data": {"cart_id": "k1", "items": []},
    }
    await post(client, store, placed, checkout)
    async with db.transaction() as session:
        lanes = (await session.execute(select(Event.lane).order_by(Event.id))).scalars().all()
    assert lanes[0] != lanes[1]
    # Two workers create the same customer at once, one per lane.
    async with db.transaction() as first:
        await apply_lanes(first, lanes=[lanes[0]], clock=clock, limit=10)
        other = asyncio.create_task(_apply(db, lanes[1], clock))
        await asyncio.sleep(0.5)
    await other
    await workers.drain()
    async with db.transaction() as session:
        rows = (await session.execute(select(Event.key, Event.status).order_by(Event.id))).all()
    assert [tuple(r) for r in rows] == [("evt-order-1", "applied"), ("cart-1", "applied")]


async def _apply(db: Database, lane: int, clock: FrozenClock) -> None:
    async with db.transaction() as session:
        await apply_lanes(session, lanes=[lane], clock=clock, limit=10)
