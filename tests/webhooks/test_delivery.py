"""Delivery: retries with backoff on errors and timeouts, then failed; 410 Gone disables
the endpoint; redirects are not followed; the secret never reaches a log line."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.sms_fakes.base import Answer
from tests.support import StoreKey
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import add_receiver, deliveries
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.webhooks import jobs
from ulak.webhooks.models import WebhookDelivery, WebhookEndpoint
from ulak.webhooks.queue import enqueue
from ulak.webhooks.service import BACKOFF, LEASE, next_due
from ulak.worker import Workers

DATA = {"order_id": "1001", "kind": "nps", "score": 10, "comment": None, "customer": {}}


async def queue_event(db: Database, store: StoreKey, clock: FrozenClock, event_id: str) -> None:
    async with db.transaction() as session:
        queued = await enqueue(
            session,
            store_id=store.id,
            event_type="survey.answered",
            event_id=event_id,
            occurred_at=clock.now(),
            data=DATA,
            customer_id=None,
            now=clock.now(),
        )
    assert queued == 1


async def row(db: Database, event_id: str = "evt_1") -> WebhookDelivery:
    async with db.read() as session:
        found = await session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
        )
    assert found is not None
    return found


async def due(db: Database) -> datetime | None:
    async with db.read() as session:
        return await next_due(session)


async def test_errors_are_retried_with_backoff_then_the_delivery_fails(
    store: StoreKey, workers: Workers, db: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    await add_receiver(db, store, clock, receiver)
    await queue_event(db, store, clock, "evt_1")
    for _ in range(7):
        receiver.answer_next("hook", Answer(500, "down"))
    start = clock.now()
    waited = timedelta()
    for attempt, wait in enumerate([*BACKOFF, None], start=1):
        await workers.drain()
        assert len(receiver.received()) == attempt
        found = await row(db)
        assert (found.attempts, found.last_status_code) == (attempt, 500)
        if wait is None:
            assert (found.status, found.last_error) == (
                "failed",
                "gave up after 7 attempts: HTTP 500",
            )
            assert await due(db) is None
            break
        assert (found.status, found.last_error) == ("pending", "HTTP 500")
        assert found.next_attempt_at == start + waited + wait
        assert await due(db) == found.next_attempt_at
        # Nothing happens before it is due.
        clock.travel(wait - timedelta(seconds=1))
        await workers.drain()
        assert len(receiver.received()) == attempt
        clock.travel(timedelta(seconds=1))
        waited += wait
    # Every attempt carried the same id and body: a receiver deduplicates by the id.
    assert {webhook_id for webhook_id, _ in receiver.received()} == {"evt_1"}
    assert len({r.body for r in receiver.requests}) == 1


async def test_a_timeout_is_retried_and_the_next_attempt_delivers(
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs, "TIMEOUT_SECONDS", 0.2)
    await add_receiver(db, store, clock, receiver)
    await queue_event(db, store, clock, "evt_1")
    receiver.answer_next("hook", Answer(204, "", delay=1.0))
    await workers.drain()
    found = await row(db)
    assert (found.status, found.attempts, found.last_status_code, found.last_error) == (
        "pending",
        1,
        None,
        "no answer in time (ReadTimeout)",
    )
    assert found.next_attempt_at == clock.now() + BACKOFF[0]
    clock.travel(BACKOFF[0])
    await workers.drain()
    found = await row(db)
    assert (found.status, found.attempts, found.last_status_code, found.last_error) == (
        "delivered",
        2,
        204,
        None,
    )
    assert found.delivered_at == clock.now()
    assert len(receiver.received()) == 2


async def test_a_slowly_dripped_answer_is_cut_off_too(
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs, "DELIVERY_SECONDS", 0.2)
    await add_receiver(db, store, clock, receiver)
    await queue_event(db, store, clock, "evt_1")
    receiver.answer_next("hook", Answer(204, "", delay=1.0))
    await workers.drain()
    found = await row(db)
    assert (found.status, found.last_error) == ("pending", "no answer in time (TimeoutError)")


async def test_410_gone_disables_the_endpoint_and_fails_its_deliveries(
    store: StoreKey, workers: Workers, db: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    endpoint = await add_receiver(db, store, clock, receiver)
    await queue_event(db, store, clock, "evt_1")
    receiver.answer_next("hook", Answer(410, "gone"))
    await workers.drain()
    assert await deliveries(db) == [
        (store.id, endpoint.id, "survey.answered", "evt_1", "failed", 1)
    ]
    async with db.read() as session:
        shown = await session.get(WebhookEndpoint, endpoint.id)
    assert shown is not None
    assert (shown.enabled, shown.disabled_reason) == (
        False,
        "answered 410 Gone on 2026-11-23 09:00 UTC",
    )
    # A disabled endpoint gets nothing queued any more.
    async with db.transaction() as session:
        queued = await enqueue(
            session,
            store_id=store.id,
            event_type="survey.answered",
            event_id="evt_2",
            occurred_at=clock.now(),
            data=DATA,
            customer_id=None,
            now=clock.now(),
        )
    assert queued == 0
    await workers.drain()
    assert len(receiver.received()) == 1


async def test_a_redirect_is_not_followed(
    store: StoreKey, workers: Workers, db: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    await add_receiver(db, store, clock, receiver, path="/moved")
    await queue_event(db, store, clock, "evt_1")
    await workers.drain()
    found = await row(db)
    assert (found.status, found.last_status_code, found.last_error) == (
        "pending",
        307,
        "HTTP 307: redirects are not followed",
    )
    assert [r.path for r in receiver.requests] == ["/moved"]


async def test_a_worker_that_dies_mid_post_leaves_the_delivery_due_after_its_lease(
    store: StoreKey, workers: Workers, db: Database, clock: FrozenClock, receiver: Receiver
) -> None:
    from ulak.webhooks.service import claim_due

    await add_receiver(db, store, clock, receiver)
    await queue_event(db, store, clock, "evt_1")
    async with db.transaction() as session:
        (claimed,) = await claim_due(session, now=clock.now(), limit=10)
    assert "whsec_" not in repr(claimed)
    # ... and the worker is gone before it posted or recorded anything.
    assert await due(db) == clock.now() + LEASE
    clock.travel(LEASE)
    await workers.drain()
    found = await row(db)
    assert (found.status, found.attempts) == ("delivered", 2)
    assert len(receiver.received()) == 1


async def test_the_secret_never_reaches_a_log_line(
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await add_receiver(db, store, clock, receiver)
    await queue_event(db, store, clock, "evt_1")
    receiver.answer_next("hook", Answer(500, "down"))
    await workers.drain()
    clock.travel(BACKOFF[0])
    await workers.drain()
    secret = receiver.secret
    key = secret.removeprefix("whsec_")
    assert caplog.records
    logged: list[Any] = [r.getMessage() for r in caplog.records]
    assert not [line for line in logged if key in line]
    assert (await row(db)).status == "delivered"
