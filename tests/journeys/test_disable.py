"""A journey switched off sends nothing more: not from an enrollment that was due, not from
a step the runner had already taken when it was switched off, and not when it was
switched off by applying its file with `enabled: false`."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from tests.journeys.test_engine import enrollments, post, sent
from tests.support import add_journey, make_store, order_placed
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.journeys.jobs import run_due_enrollments
from ulak.journeys.models import Journey
from ulak.messages.models import Message
from ulak.offload import Offload
from ulak.operations import set_journey_enabled
from ulak.worker import Workers

THANKS = """
key: thanks
name: Thanks
legal_class: informational
enabled: {enabled}
trigger: {{event: order.placed}}
reentry: once_per_order
steps:
  - wait: 1h
  - send: email
    template: order_confirmation
"""


async def unsent(db: Database) -> list[tuple[str, str, str | None]]:
    async with db.read() as session:
        rows = await session.execute(
            select(Message.template, Message.status, Message.last_error).order_by(Message.id)
        )
        return [(t, s, e) for t, s, e in rows.all()]


async def test_a_journey_applied_with_enabled_false_advances_none_of_its_enrollments(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, THANKS.format(enabled="true"))
    await post(client, store, order_placed("1"))
    await workers.drain()
    # Switched off by its file: applying it exits nothing by itself.
    await add_journey(db, clock, store, THANKS.format(enabled="false"))
    clock.travel(timedelta(hours=2))
    await workers.drain()
    assert await sent(db) == []
    (enrollment,) = await enrollments(db)
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "the journey was disabled")


async def test_a_step_taken_when_the_journey_is_switched_off_does_not_send(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, THANKS.format(enabled="true"))
    await post(client, store, order_placed("1"))
    await workers.drain()
    clock.travel(timedelta(hours=2))

    async def switch_off() -> int:
        async with db.transaction() as session:
            return await set_journey_enabled(
                session, store_id=store.id, key="thanks", enabled=False, clock=clock
            )

    # The step runner has taken the enrollment and queued its email when the journey is
    # switched off: the switch-off waits for the batch, then skips what it queued.
    async with db.transaction() as session:
        ran = await run_due_enrollments(
            session, clock=clock, limit=10, max_attempts=5, base_url="", offload=Offload(0)
        )
        assert ran == 1
        switching = asyncio.create_task(switch_off())
        await asyncio.sleep(0.3)
        assert not switching.done()
    assert await switching == 0  # the enrollment had completed: nothing live to stop
    await workers.drain()
    assert await unsent(db) == [("order_confirmation", "skipped", "the journey was disabled")]
    (enrollment,) = await enrollments(db)
    assert enrollment.status == "completed"


async def test_a_message_queued_as_its_journey_was_switched_off_is_not_sent(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, THANKS.format(enabled="true"))
    await post(client, store, order_placed("1"))
    await workers.drain()
    clock.travel(timedelta(hours=2))
    await workers.once("journeys.run_due")
    assert await unsent(db) == [("order_confirmation", "queued", None)]
    # Switched off after the step queued its email but before the sender took it, without
    # the switch-off's own skipping (a file applied with `enabled: false`).
    async with db.transaction() as session:
        await session.execute(update(Journey).where(Journey.key == "thanks").values(enabled=False))
    await workers.drain()
    assert await unsent(db) == [("order_confirmation", "skipped", "the journey was disabled")]
