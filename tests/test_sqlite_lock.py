"""SQLite has one writer: requests waiting for the write lock make background work yield."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select, text

from tests.support import StoreKey, order_placed
from ulak.clock import FrozenClock
from ulak.db import LOCK_PATIENCE, Database
from ulak.events.models import Event
from ulak.events.service import apply_pending
from ulak.migrate import upgrade
from ulak.sqlite import LockWaiters


def test_lock_waiters_are_shared_through_the_file_beside_the_database(tmp_path: Path) -> None:
    path = str(tmp_path / "ulak.db")
    waiting, background = LockWaiters(path), LockWaiters(path)  # as two processes map it
    assert background.pressure() == 0
    waiting.requests = lambda: 8
    waiting.mark(True)
    time.sleep(0.01)
    # Eight requests waiting 10 ms weigh as much as one waiting 80 ms.
    assert 0.07 < background.pressure() < 0.5
    assert background.pressure() > LOCK_PATIENCE
    waiting.mark(False)
    assert background.pressure() == 0
    assert not background.waiting()


async def test_background_work_sees_a_request_waiting_for_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ulak.db'}"
    await asyncio.to_thread(upgrade, url)
    worker, api = Database(url), Database(url)  # two connections, like two processes
    released: list[bool] = []
    worker.lock_released = lambda: released.append(True)  # `ulak serve` hears it by pipe
    try:
        async with worker.transaction(background=True) as session:
            await session.execute(text("SELECT 1"))  # holds the write lock from here
            request = asyncio.create_task(_answer(api))
            deadline = time.monotonic() + 5
            # Shared memory another connection writes: nothing to await but time.
            while not worker.lock_wanted() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            assert worker.lock_wanted(), "the waiting request was not seen"
            assert not request.done()
        assert released == [True], "the waiter was not told the lock is free"
        assert await asyncio.wait_for(request, 5) == 1
        assert not worker.lock_wanted()
    finally:
        await worker.dispose()
        await api.dispose()


async def _answer(database: Database) -> int:
    async with database.transaction() as session:
        return int((await session.execute(text("SELECT 1"))).scalar_one())


async def test_a_batch_that_ends_early_leaves_the_rest_pending(
    client: httpx.AsyncClient, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    events = [
        order_placed(str(n), customer_id=f"c-{n}", email=f"m{n}@example.com") for n in range(5)
    ]
    response = await client.post("/v1/events", json={"events": events}, headers=store.auth)
    assert response.status_code == 202
    async with db.transaction() as session:
        done = await apply_pending(session, clock=clock, limit=10, stop_early=lambda: True)
    assert done == 1
    async with db.transaction() as session:
        pending = await session.execute(
            select(func.count()).select_from(Event).where(Event.status == "pending")
        )
        assert pending.scalar_one() == 4
