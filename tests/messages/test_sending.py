"""The sender: each outcome is recorded the moment it is known, claims stay within the
pool, and a gone sender's claims come back at once, counted as possible duplicates."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event, select

from tests.support import (
    SmtpSink,
    StoreKey,
    free_port,
    make_store,
    opened_app,
    order_placed,
    wait_until,
)
from ulak.clock import FrozenClock, SystemClock
from ulak.config import Settings
from ulak.db import Database
from ulak.jobs import job_context
from ulak.messages import sending
from ulak.messages.models import Message
from ulak.messages.sending import Sender, SenderProcess
from ulak.worker import Workers


class HeldTransport:
    """An SMTP server that answers 250 at once, except to the addresses in `held`, whose
    answer waits until `release` is set. It keeps every accepted delivery."""

    def __init__(self, held: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.held = held
        self.release = asyncio.Event()
        self.accepted: list[str] = []
        self.started: list[str] = []
        self._accepting = asyncio.Event()

    async def send(self, *, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        self.started.append(rcpt_to)
        if rcpt_to in self.held:
            await self.release.wait()
        self.accepted.append(rcpt_to)
        self._accepting.set()

    async def until_accepted(self, count: int) -> None:
        while len(self.accepted) < count:
            self._accepting.clear()
            await self._accepting.wait()

    async def close(self) -> None:
        return None


@pytest.fixture
async def second_app(settings: Settings, db: Database, clock: FrozenClock) -> AsyncIterator[Any]:
    """Another worker on the same database: the one that starts after a crash."""
    async with opened_app(settings, db, clock) as application:
        yield application


async def place_orders(client: httpx.AsyncClient, store: StoreKey, count: int) -> None:
    # Placed now on the real clock too: some tests here deliver on it, and a send meant
    # for a week ago would be skipped as too late.
    now = max(datetime.now(UTC), FrozenClock().now()).isoformat()
    events = [
        order_placed(
            str(1000 + n), customer_id=f"c-{n}", email=f"buyer{n}@example.com", occurred_at=now
        )
        for n in range(count)
    ]
    response = await client.post("/v1/events", json={"events": events}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def by_address(db: Database) -> dict[str, tuple[str, int, int]]:
    """Each message's (status, attempts, interrupted attempts), by recipient."""
    async with db.read() as session:
        rows = (await session.execute(select(Message))).scalars()
        return {m.to_address: (m.status, m.attempts, m.interrupted_attempts) for m in rows}


async def queue_messages(workers: Workers) -> None:
    await workers.once("events.apply")
    await workers.once("journeys.run_due")


def sender_of(workers: Workers, transport: HeldTransport) -> Sender:
    sender = workers.ctx.sender
    sender.email.transport = transport
    return sender


async def test_an_accepted_message_is_recorded_sent_while_others_are_still_in_flight(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock)
    await place_orders(client, store, 3)
    await queue_messages(workers)
    transport = HeldTransport(held={"buyer1@example.com"})
    sender = sender_of(workers, transport)

    await workers.once("messages.send_due")  # claims all three, starts delivering
    await transport.until_accepted(2)
    await sender.outcomes.wait()
    assert sorted(transport.accepted) == ["buyer0@example.com", "buyer2@example.com"]
    await workers.once("messages.send_due")  # folds what was recorded; buyer1 still waits

    assert await by_address(db) == {
        "buyer0@example.com": ("sent", 1, 0),
        "buyer1@example.com": ("sending", 1, 0),
        "buyer2@example.com": ("sent", 1, 0),
    }
    transport.release.set()
    await workers.drain()
    assert sender.in_flight == 0
    assert await by_address(db) == {f"buyer{n}@example.com": ("sent", 1, 0) for n in range(3)}
    assert sorted(transport.accepted) == [f"buyer{n}@example.com" for n in range(3)]


async def test_a_sender_claims_no_more_than_its_pool_can_send_at_once(
    database_url: str, db: Database, clock: FrozenClock
) -> None:
    settings = Settings(database_url=database_url, public_url="http://ulak.test", smtp_pool_size=2)
    async with opened_app(settings, db, clock) as app:
        workers: Workers = app.state.workers
        store = await make_store(db, clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ulak.test"
        ) as client:
            await place_orders(client, store, 5)
        await queue_messages(workers)
        transport = HeldTransport(held={f"buyer{n}@example.com" for n in range(5)})
        sender = sender_of(workers, transport)
        await workers.once("messages.send_due")
        statuses = sorted(status for status, _, _ in (await by_address(db)).values())
        assert statuses == ["queued", "queued", "queued", "sending", "sending"]
        assert sender.in_flight == 2

        transport.release.set()
        await workers.drain()
        assert sorted(transport.accepted) == [f"buyer{n}@example.com" for n in range(5)]
        assert {s for s, _, _ in (await by_address(db)).values()} == {"sent"}


async def test_after_a_crash_only_the_deliveries_in_flight_go_again_and_at_once(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    second_app: Any,
) -> None:
    """The first sender stops with buyer1's delivery in flight (its outcome never
    recorded); buyer0 and buyer2 were accepted and recorded. The next sender, without any
    lease running out (the clock stands still), sends buyer1 again, with the same
    Message-ID, counts the interrupted attempt, and sends nobody else twice."""
    store = await make_store(db, clock)
    await place_orders(client, store, 3)
    await queue_messages(workers)
    first = HeldTransport(held={"buyer1@example.com"})
    crashed = sender_of(workers, first)
    await workers.once("messages.send_due")
    await first.until_accepted(2)
    await crashed.outcomes.wait()
    await crashed.close(grace=0)  # what kill -9 leaves: buyer1 claimed, outcome unknown

    then: Workers = second_app.state.workers
    second = HeldTransport()
    sender_of(then, second)
    await then.drain()

    assert second.accepted == ["buyer1@example.com"]
    assert await by_address(db) == {
        "buyer0@example.com": ("sent", 1, 0),
        "buyer1@example.com": ("sent", 2, 1),
        "buyer2@example.com": ("sent", 1, 0),
    }
    response = await client.get("/v1/customers/c-1", headers=store.auth)
    (message,) = [e for e in response.json()["timeline"] if e["kind"] == "message"]
    assert (message["type"], message["detail"]["interrupted_attempts"]) == ("message.sent", 1)


async def test_a_claim_in_flight_is_never_taken_however_long_it_takes(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    second_app: Any,
    settings: Settings,
) -> None:
    """A delivery still in flight when its lease runs out stays with its sender: neither
    that sender (SQLite has one) nor another worker's (PostgreSQL) sends it again. Before,
    the lease running out was enough, and a slow delivery reached the customer twice."""
    store = await make_store(db, clock)
    await place_orders(client, store, 1)
    await queue_messages(workers)
    first = HeldTransport(held={"buyer0@example.com"})
    busy = sender_of(workers, first)
    await workers.once("messages.send_due")
    clock.travel(timedelta(seconds=settings.lease_seconds + 1))

    assert await workers.once("messages.send_due") == 0
    # Nor after this sender goes on under a new id (its lock connection or its sender
    # process replaced) while the delivery is still in flight under the old one.
    busy.deliveries.claimer += 1
    assert await workers.once("messages.send_due") == 0
    if not db.is_sqlite:
        other: Workers = second_app.state.workers
        second = HeldTransport()
        sender_of(other, second)
        assert await other.once("messages.send_due") == 0
        assert second.started == []

    first.release.set()
    await workers.drain()
    assert busy.in_flight == 0
    assert first.accepted == ["buyer0@example.com"]
    assert await by_address(db) == {"buyer0@example.com": ("sent", 1, 0)}


async def test_a_sender_asks_who_is_gone_at_most_once_a_second(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    second_app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL: a sender that asked a moment ago takes the claims of a sender gone
    since then at its next check, a second later, not on every claim."""
    if db.is_sqlite:
        pytest.skip("SQLite has one sender, the database's one writer")
    store = await make_store(db, clock)
    await place_orders(client, store, 1)
    await queue_messages(workers)
    first = HeldTransport(held={"buyer0@example.com"})
    crashed = sender_of(workers, first)
    await workers.once("messages.send_due")
    other: Workers = second_app.state.workers
    second = HeldTransport()
    sender_of(other, second)
    now = 1000.0
    monkeypatch.setattr(sending, "monotonic", lambda: now)
    assert await other.once("messages.send_due") == 0  # asks: the first sender lives

    await crashed.close(grace=0)
    now += 0.5
    assert await other.once("messages.send_due") == 0
    now += 0.5
    await other.drain()
    assert second.accepted == ["buyer0@example.com"]
    assert await by_address(db) == {"buyer0@example.com": ("sent", 2, 1)}


class SlowFirstSink(SmtpSink):
    """An SMTP server that, the first time it gets mail for `slow`, takes its time and
    then refuses: its client is meant to die meanwhile."""

    slow: str = ""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.slow in envelope.rcpt_tos:
            self.slow = ""
            await asyncio.sleep(2)
            return "451 4.3.0 the client is gone"
        return await super().handle_DATA(server, session, envelope)


async def test_a_sender_process_that_dies_is_replaced_and_its_claims_come_back_at_once(
    database_url: str, client: httpx.AsyncClient, db: Database, clock: FrozenClock
) -> None:
    sink = SlowFirstSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    settings = Settings(database_url=database_url, public_url="http://ulak.test", smtp_url=sink.url)
    ctx = job_context(settings, db, SystemClock(), helper_processes=1)
    workers = Workers(ctx)  # with SMTP and a helper: it delivers in a sender process
    store = await make_store(db, clock)
    try:
        await place_orders(client, store, 3)
        await queue_messages(workers)
        sink.slow = "buyer1@example.com"
        sender = ctx.sender
        process = sender.deliveries
        assert isinstance(process, SenderProcess)
        await workers.once("messages.send_due")  # hands all three to the sender process
        first_claimer = process.claimer
        # Two delivered and recorded (the sender process answered for them), the third
        # held by the server.
        await asyncio.to_thread(
            wait_until,
            lambda: len(sink.received) >= 2 and not sink.slow and sender.in_flight == 1,
            10,
            "two emails recorded, and the third held by the server",
        )
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)  # buyer1's delivery is in flight

        await workers.drain()

        assert process.claimer != first_claimer
        assert sorted(r.rcpt_tos[0] for r in sink.received) == [
            f"buyer{n}@example.com" for n in range(3)
        ]
        assert await by_address(db) == {
            "buyer0@example.com": ("sent", 1, 0),
            "buyer1@example.com": ("sent", 2, 1),
            "buyer2@example.com": ("sent", 1, 0),
        }
    finally:
        await ctx.sender.close(grace=10)
        ctx.offload.close()
        controller.stop()


async def test_a_claim_reads_messages_through_its_partial_indexes(
    db: Database, workers: Workers
) -> None:
    """The outbox keeps every message ever sent; a claim must only visit the due and the
    sending ones. (Written as one OR with the orphan condition, SQLite scanned the whole
    table on every claim, which cost a third of the capacity.)"""
    if not db.is_sqlite:
        pytest.skip("the plan of SQLite's planner, which has no statistics to go by")
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM messages" in statement and statement.lstrip().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", keep)
    try:
        async with db.transaction() as session:
            await workers.ctx.sender.send_due(session, limit=10)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", keep)
    assert len(statements) == 2  # the stale claims, then the due messages
    with sqlite3.connect(db.path) as plain:
        for statement, parameters in statements:
            plan = plain.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            steps = [row[3] for row in plan if "messages" in row[3]]
            assert steps, plan
            assert all("USING INDEX ix_messages_" in step for step in steps), steps
