"""`GET /v1/webhooks` and `/v1/webhooks/deliveries`: the store's own, never a secret."""

from __future__ import annotations

import httpx

from tests.support import StoreKey, make_store
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import add_receiver
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.webhooks.queue import enqueue
from ulak.worker import Workers


async def test_a_store_reads_its_endpoints_and_deliveries(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    endpoint = await add_receiver(db, store, clock, receiver, events=["coupon.redeemed"])
    other = await make_store(db, clock, name="Öteki Dükkan")
    async with db.transaction() as session:
        await enqueue(
            session,
            store_id=store.id,
            event_type="coupon.redeemed",
            event_id="evt_1",
            occurred_at=clock.now(),
            data={},
            customer_id=None,
            now=clock.now(),
        )
    await workers.drain()
    listed = await client.get("/v1/webhooks", headers=store.auth)
    assert listed.status_code == 200
    assert listed.json() == [
        {
            "id": endpoint.id,
            "url": f"{receiver.url}/hook",
            "events": ["coupon.redeemed"],
            "enabled": True,
            "development": True,
            "disabled_reason": None,
            "created_at": "2026-11-23T09:00:00Z",
        }
    ]
    assert receiver.secret.removeprefix("whsec_") not in listed.text
    shown = await client.get("/v1/webhooks/deliveries?status=delivered", headers=store.auth)
    assert shown.json() == [
        {
            "id": 1,
            "endpoint_id": endpoint.id,
            "event_type": "coupon.redeemed",
            "event_id": "evt_1",
            "status": "delivered",
            "attempts": 1,
            "next_attempt_at": "2026-11-23T09:02:00Z",
            "last_status_code": 204,
            "last_error": None,
            "created_at": "2026-11-23T09:00:00Z",
            "delivered_at": "2026-11-23T09:00:00Z",
        }
    ]
    pending = await client.get("/v1/webhooks/deliveries?status=pending", headers=store.auth)
    assert pending.json() == []
    assert (await client.get("/v1/webhooks", headers=other.auth)).json() == []
    assert (await client.get("/v1/webhooks/deliveries", headers=other.auth)).json() == []
    assert (await client.get("/v1/webhooks")).status_code == 401
    bad = await client.get("/v1/webhooks/deliveries?status=lost", headers=store.auth)
    assert bad.status_code == 422
