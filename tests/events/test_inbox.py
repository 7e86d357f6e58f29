"""SQLite: one writing process per file. The API appends to its inbox file, the worker copies
it into `events` exactly once, and reads never wait for a writer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from tests.support import StoreKey, order_placed, stored_keys
from ulak.app import create_app
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.db import Database, inbox_path
from ulak.events import inbox as inbox_module
from ulak.events.inbox import take_from_inbox
from ulak.events.models import Event, InboxCursor
from ulak.sqlite import DatabaseLocked
from ulak.worker import Workers

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def data_version(path: str) -> int:
    """Changes whenever another connection commits to the file."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA data_version").fetchone()[0])


class MainWatch:
    """Tells whether anyone but this watcher committed to a file since it started."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path)
        self.start = self.version()

    def version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def written(self) -> bool:
        return self.version() != self.start


async def events_in_main(db: Database) -> list[tuple[str, str]]:
    async with db.read() as session:
        rows = await session.execute(select(Event.key, Event.status).order_by(Event.id))
        return [(k, s) for k, s in rows]


async def test_the_api_writes_only_its_inbox_file(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    main = MainWatch(db.path)
    response = await client.post("/v1/events", json=order_placed(), headers=store.auth)
    assert response.status_code == 202
    assert (await client.get("/healthz")).status_code == 200
    assert not main.written(), "the API process committed to the main database"
    assert await asyncio.to_thread(os.path.exists, inbox_path(db.path))
    assert await events_in_main(db) == []
    assert await stored_keys(db) == [(store.id, "evt-order-1001")]

    await workers.drain()
    assert main.written()
    assert await events_in_main(db) == [("evt-order-1001", "applied")]
    assert await stored_keys(db) == [(store.id, "evt-order-1001")]


async def test_requests_are_answered_while_the_worker_holds_the_write_lock(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    await client.post("/v1/events", json=order_placed("1"), headers=store.auth)
    await workers.drain()
    holder = sqlite3.connect(db.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as the worker does for a whole batch
    holder.execute("UPDATE stores SET name = name")
    try:
        started = time.monotonic()
        assert (await client.get("/healthz")).status_code == 200
        profile = await client.get("/v1/customers/c-1042", headers=store.auth)
        assert profile.status_code == 200
        accepted = await client.post("/v1/events", json=order_placed("2"), headers=store.auth)
        assert accepted.status_code == 202
        # Nothing waited for the lock (a writer would wait up to 30 s).
        assert time.monotonic() - started < 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await workers.drain()
    assert await events_in_main(db) == [("evt-order-1", "applied"), ("evt-order-2", "applied")]


async def test_a_copy_rolled_back_is_copied_again_and_a_committed_one_never(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    batch = {"events": [order_placed(str(n)) for n in range(3)]}
    assert (await client.post("/v1/events", json=batch, headers=store.auth)).status_code == 202

    class Crash(Exception):
        pass

    # A crash between the copy and the commit (the worker dies while applying).
    async def copy_then_crash() -> None:
        async with db.transaction() as session:
            assert await take_from_inbox(session, db, limit=10) == 3
            raise Crash

    with pytest.raises(Crash):
        await copy_then_crash()
    assert await events_in_main(db) == []

    async with db.transaction() as session:
        assert await take_from_inbox(session, db, limit=2) == 2
    async with db.transaction() as session:
        assert await take_from_inbox(session, db, limit=10) == 1
    async with db.transaction() as session:
        assert await take_from_inbox(session, db, limit=10) == 0
    assert [k for k, _ in await events_in_main(db)] == [f"evt-order-{n}" for n in range(3)]


async def test_an_id_stays_idempotent_after_the_inbox_is_pruned(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    workers: Workers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inbox_module, "PRUNE_SECONDS", 0.0)
    first = await client.post("/v1/events", json=order_placed("1"), headers=store.auth)
    assert first.json()["accepted"][0]["duplicate"] is False
    await workers.drain()
    # The next write prunes what the worker copied...
    await client.post("/v1/events", json=order_placed("2"), headers=store.auth)
    assert await inbox_rows(db) == ["evt-order-2"]
    # ...and the same id again is still known, from `events`.
    again = await client.post("/v1/events", json=order_placed("1"), headers=store.auth)
    assert again.json()["accepted"][0]["duplicate"] is True
    await workers.drain()
    assert [k for k, _ in await events_in_main(db)] == ["evt-order-1", "evt-order-2"]


async def inbox_rows(db: Database) -> list[str]:
    async with db.inbox_reader.connect() as connection:
        rows = await connection.execute(select(inbox_module.inbox.c.key))
        return [key for (key,) in rows]


async def test_a_new_inbox_file_is_copied_from_its_start(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    workers: Workers,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    await client.post("/v1/events", json=order_placed("1"), headers=store.auth)
    await workers.drain()
    async with db.read() as session:
        old = await session.get(InboxCursor, 1)
        assert old is not None
        assert old.seq == 1
    # The server stops, the inbox file is deleted by hand, the server starts again.
    await db.dispose()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(inbox_path(db.path) + suffix)
    again = create_app(settings, database=db, clock=clock, run_workers=False)
    transport = httpx.ASGITransport(app=again)
    async with httpx.AsyncClient(transport=transport, base_url="http://ulak.test") as restarted:
        response = await restarted.post("/v1/events", json=order_placed("2"), headers=store.auth)
        assert response.json()["accepted"][0]["duplicate"] is False
    await again.state.workers.drain()
    assert [k for k, _ in await events_in_main(db)] == ["evt-order-1", "evt-order-2"]


async def test_a_second_writer_waits_for_the_lock_then_fails_clearly(db: Database) -> None:
    holder = sqlite3.connect(db.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    impatient = Database(f"sqlite:///{db.path}", lock_timeout=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError) as raised:
            async with impatient.transaction() as session:
                await session.execute(text("SELECT 1"))
        assert isinstance(raised.value.orig, DatabaseLocked)
        assert "held the database's write lock for 0.2 s" in str(raised.value.orig)
        assert 0.2 <= time.monotonic() - started < 2
        # A reader is not a writer: it does not wait at all.
        async with impatient.read() as session:
            count = await session.execute(select(func.count()).select_from(Event))
            assert count.scalar_one() == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await impatient.dispose()
