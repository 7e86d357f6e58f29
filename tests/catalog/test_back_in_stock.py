from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.support import StoreKey, dev_inbox, make_store, text_of
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.worker import Workers

CUP = "p-kupa"


def product(inventory: int, *, variant: str | None = None, n: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        "product_id": CUP,
        "title": "Seramik kupa",
        "url": "https://dukkan.example/kupa",
        "price": "249.95",
        "currency": "TRY",
        "inventory": inventory,
    }
    if variant:
        data["variant_id"] = variant
    return {"id": f"evt-stock-{inventory}-{n}", "type": "product.updated", "data": data}


def wanting(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "customer": {
            "id": f"c-{i}",
            "email": f"musteri{i}@example.com",
            "first_name": f"Müşteri{i}",
        },
        "product_id": CUP,
        **extra,
    }


async def send(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def ask(client: httpx.AsyncClient, store: StoreKey, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/back-in-stock", json=body, headers=store.auth)


async def subscriptions(client: httpx.AsyncClient, store: StoreKey) -> list[tuple[str, str]]:
    response = await client.get("/v1/back-in-stock", params={"product_id": CUP}, headers=store.auth)
    assert response.status_code == 200, response.text
    return [(str(s["customer_id"]), s["status"]) for s in response.json()]


async def told(db: Database) -> list[tuple[str, str]]:
    return [(str(m["To"]), str(m["Subject"])) for m in await dev_inbox(db)]


async def test_a_restock_tells_the_oldest_subscribers_up_to_inventory_times_the_factor(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    await send(client, store, product(0))
    await workers.drain()
    for i in range(1, 5):  # four customers wait for one cup; the factor is 3
        accepted = await ask(client, store, wanting(i))
        assert accepted.status_code == 202, accepted.text
        await workers.drain()
        clock.travel(timedelta(minutes=1))
    assert await subscriptions(client, store) == [(str(n), "waiting") for n in range(1, 5)]

    await send(client, store, product(1))
    await workers.drain()
    subject = "Seramik kupa yeniden stokta"
    # Delivered side by side, in any order: which ones is what counts.
    assert sorted(await told(db)) == [(f"musteri{i}@example.com", subject) for i in (1, 2, 3)]
    assert [s for _, s in await subscriptions(client, store)] == [
        "notified",
        "notified",
        "notified",
        "waiting",
    ]
    (first,) = [m for m in await dev_inbox(db) if m["To"] == "musteri1@example.com"]
    assert "Merhaba Müşteri1," in text_of(first)
    assert "249,95 ₺" in text_of(first)
    assert "https://dukkan.example/kupa" in text_of(first)

    # More stock without running out first is no restock; the same update again derives
    # nothing more.
    await send(client, store, product(5), product(1, n=1))
    await workers.drain()
    assert len(await dev_inbox(db)) == 3
    # Sold out, then back: the fourth customer's turn.
    await send(client, store, product(0, n=1), product(2, n=1))
    await workers.drain()
    assert (await told(db))[3:] == [("musteri4@example.com", subject)]


async def test_bad_requests_are_refused_with_the_reason(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database, clock: FrozenClock
) -> None:
    unknown = await ask(client, store, wanting(1) | {"product_id": "p-yok"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "product p-yok is not in the store's catalogue"
    await send(client, store, product(0))
    await workers.drain()
    no_variant = await ask(client, store, wanting(1, variant_id="mavi"))
    assert no_variant.status_code == 404
    nul = await client.get("/v1/back-in-stock", params={"customer": "\x00"}, headers=store.auth)
    assert nul.status_code == 422  # found by the fuzz test: PostgreSQL cannot hold a NUL
    nul_product = await ask(client, store, wanting(1) | {"product_id": "\x00"})
    assert nul_product.status_code == 422
    assert nul_product.json()["error"]["details"] == [
        {"path": "body.product_id", "message": "Value error, must not contain a NUL character"}
    ]
    nobody = await ask(client, store, {"customer": {}, "product_id": CUP})
    assert nobody.status_code == 422
    assert await subscriptions(client, store) == []
    other = await make_store(db, clock, name="Başka Dükkan")
    # Another store's product is not this store's: its key sees none of it.
    assert (await ask(client, other, wanting(1))).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_one_email_may_subscribe_only_so_often_a_day(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database, clock: FrozenClock
) -> None:
    events = [product(0)] + [
        {
            "id": f"evt-p{i}",
            "type": "product.updated",
            "data": {"product_id": f"p-{i}", "inventory": 0},
        }
        for i in range(11)
    ]
    await send(client, store, *events)
    await workers.drain()
    for i in range(10):
        body = wanting(1) | {"product_id": f"p-{i}"}
        assert (await ask(client, store, body)).status_code == 202
        await workers.drain()
    refused = await ask(client, store, wanting(1) | {"product_id": "p-10"})
    assert refused.status_code == 429
    assert "10 back-in-stock subscriptions a day" in refused.json()["error"]["message"]
    clock.travel(timedelta(days=1, minutes=1))
    assert (await ask(client, store, wanting(1) | {"product_id": "p-10"})).status_code == 202


async def test_a_withdrawn_or_expired_subscription_is_not_told(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database, clock: FrozenClock
) -> None:
    await send(client, store, product(0))
    await workers.drain()
    for i in (1, 2):
        assert (await ask(client, store, wanting(i))).status_code == 202
    await workers.drain()
    listed = await client.get("/v1/back-in-stock", params={"customer": "c-1"}, headers=store.auth)
    (mine,) = listed.json()
    withdrawn = await client.delete(f"/v1/back-in-stock/{mine['id']}", headers=store.auth)
    assert withdrawn.status_code == 202
    assert (await client.delete("/v1/back-in-stock/99999", headers=store.auth)).status_code == 404
    await workers.drain()
    clock.travel(timedelta(days=91))
    assert [status for _, status in await subscriptions(client, store)] == [
        "cancelled",
        "expired",
    ]
    await send(client, store, product(3))
    await workers.drain()
    assert await dev_inbox(db) == []
