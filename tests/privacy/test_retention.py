"""A store keeps applied events `keep_events_days` (`events.forget_old`): older applied ones
are deleted, a page per transaction; pending and failed ones, those a live enrollment
still reads, and other stores' under their own setting stay."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from tests.privacy.scenario import post
from tests.support import StoreKey, make_store, order_placed
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.events import jobs as event_jobs
from ulak.events.inbox import event_rows, insert_events
from ulak.events.models import Event
from ulak.events.schemas import EventIn
from ulak.worker import Workers


def product(key: str) -> dict[str, str | dict[str, str]]:
    return {"id": key, "type": "product.updated", "data": {"product_id": "p-1"}}


async def kept(db: Database) -> list[tuple[int, str, str]]:
    async with db.read() as session:
        rows = await session.execute(
            select(Event.store_id, Event.key, Event.status).order_by(Event.store_id, Event.key)
        )
        return [(s, k, st) for s, k, st in rows.all()]


@pytest.mark.parametrize("page", [1000, 1])
async def test_old_applied_events_go_and_nothing_else(
    client: httpx.AsyncClient,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    page: int,
) -> None:
    monkeypatch.setattr(event_jobs, "FORGET_PAGE", page)
    store = await make_store(db, clock, keep_events_days=7)
    other: StoreKey = await make_store(db, clock, name="Başka Dükkan")  # 365 days
    started = clock.now()
    await post(
        client,
        store,
        {"id": "a-signup", "type": "customer.created", "customer": {"id": "c-1"}},
        product("a-stock"),
        order_placed("1001", customer_id="c-1", event_id="a-order"),
    )
    await post(
        client, other, {"id": "b-signup", "type": "customer.created", "customer": {"id": "c-1"}}
    )
    await workers.drain()
    clock.travel(timedelta(days=7, hours=12))
    await post(client, store, product("a-recent"))
    await workers.drain()
    clock.travel(timedelta(hours=12))
    # Received on the first day but not applied: one waiting, one that failed.
    async with db.transaction() as session:
        waiting = [
            EventIn(id=k, type="product.updated", data={"product_id": "p-1"})
            for k in ("a-pending", "a-failed")
        ]
        await insert_events(session, event_rows(store.id, waiting, source="api", now=started))
        await session.execute(update(Event).where(Event.key == "a-failed").values(status="failed"))
    derived = [k for _, k, _ in await kept(db) if k.startswith("derived:")]
    assert derived == []

    assert await workers.once("events.forget_old") == 2
    assert await kept(db) == [
        (store.id, "a-failed", "failed"),
        # The thank-you waits (for the delivery, 30 days) on the journey this order started.
        (store.id, "a-order", "applied"),
        (store.id, "a-pending", "pending"),
        (store.id, "a-recent", "applied"),
        (other.id, "b-signup", "applied"),
    ]
    # Once per tick: the same hour runs it no more.
    assert await workers.once("events.forget_old") == 0
