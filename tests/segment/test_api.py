"""The Segment-compatible API over HTTP: auth, answers, limits, replays, identity."""

from __future__ import annotations

import base64
import gzip
import json
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from tests.support import StoreKey, dev_inbox, stored_keys
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.events.models import Event
from ulak.orders.models import Cart, Order
from ulak.segment.mapping import MAX_BATCH_BYTES
from ulak.worker import Workers


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def order_completed(message_id: str = "m-1", order_id: str = "1001") -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "timestamp": "2026-11-23T10:04:00.000Z",
        "userId": "c-1042",
        "event": "Order Completed",
        "context": {"traits": {"email": "ayse@example.com"}},
        "properties": {
            "order_id": order_id,
            "total": 39.98,
            "currency": "TRY",
            "products": [{"product_id": "p-1", "name": "Çay", "price": 19.99, "quantity": 2}],
        },
    }


async def live_customers(db: Database) -> list[Customer]:
    async with db.read() as session:
        query = select(Customer).where(Customer.merged_into_id.is_(None)).order_by(Customer.id)
        return list((await session.execute(query)).scalars())


async def applied(db: Database) -> list[tuple[str, str, str | None]]:
    """(key, type, error) of every event, in the order applied."""
    async with db.read() as session:
        rows = await session.execute(select(Event.key, Event.type, Event.error).order_by(Event.id))
        return [(k, t, e) for k, t, e in rows]


async def test_a_track_call_with_the_write_key_places_the_order(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    response = await client.post("/v1/track", json=order_completed(), headers=basic(store.key))
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert await stored_keys(db) == [(store.id, "segment:m-1")]
    await workers.drain()
    assert await applied(db) == [("segment:m-1", "order.placed", None)]
    (customer,) = await live_customers(db)
    assert (customer.external_id, customer.email) == ("c-1042", "ayse@example.com")
    async with db.read() as session:
        (order,) = (await session.execute(select(Order))).scalars()
    assert (order.order_id, order.total, order.currency, order.customer_id) == (
        "1001",
        Decimal("39.98"),
        "TRY",
        customer.id,
    )


async def test_float_arithmetic_in_the_amounts_still_places_the_order(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    # What a shop's JavaScript sends after `price * 100` and `a + b`: more than 4 places.
    message = order_completed()
    message["properties"]["total"] = 1.15 * 100
    message["properties"]["tax"] = 0.1 + 0.2
    message["properties"]["products"][0]["price"] = 0.07 * 100
    assert json.dumps(message["properties"]) == json.dumps(
        {
            "order_id": "1001",
            "total": 114.99999999999999,
            "currency": "TRY",
            "products": [
                {"product_id": "p-1", "name": "Çay", "price": 7.000000000000001, "quantity": 2}
            ],
            "tax": 0.30000000000000004,
        }
    )
    response = await client.post("/v1/track", json=message, headers=basic(store.key))
    assert (response.status_code, response.json()) == (200, {"success": True})
    await workers.drain()
    assert await applied(db) == [("segment:m-1", "order.placed", None)]
    async with db.read() as session:
        (order,) = (await session.execute(select(Order))).scalars()
        (event,) = (await session.execute(select(Event))).scalars()
    assert (order.order_id, order.total, order.tax) == ("1001", Decimal("115"), Decimal("0.3"))
    assert event.data["items"][0]["price"] == "7.0000"
    assert (event.data["total"], event.data["tax"]) == ("115.0000", "0.3000")


async def test_the_key_as_bearer_or_in_the_body_is_accepted_too(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    bearer = await client.post("/v1/track", json=order_completed("m-1"), headers=store.auth)
    in_body = await client.post("/v1/track", json={**order_completed("m-2"), "writeKey": store.key})
    assert (bearer.status_code, in_body.status_code) == (200, 200)
    assert await stored_keys(db) == [(store.id, "segment:m-1"), (store.id, "segment:m-2")]


async def test_wrong_or_missing_auth_is_401_and_stores_nothing(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    batch = {"batch": [order_completed()]}
    wrong = await client.post("/v1/batch", json=batch, headers=basic("ulak_sk_nope"))
    missing = await client.post("/v1/batch", json=batch)
    garbage = await client.post("/v1/batch", json=batch, headers={"Authorization": "Basic %%%"})
    body_key = await client.post("/v1/batch", json={**batch, "writeKey": "ulak_sk_nope"})
    for response in (wrong, missing, garbage, body_key):
        assert response.status_code == 401
        assert response.json()["success"] is False
        assert response.json()["code"] == "unauthorized"
    assert wrong.json()["message"] == "invalid API key"
    assert missing.json()["message"].startswith("send the store's API key as the write key")
    assert await stored_keys(db) == []


async def test_a_replayed_batch_stores_each_message_once(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    batch = {"batch": [order_completed("m-1")], "sentAt": "2026-11-23T10:04:01Z"}
    first = await client.post("/v1/batch", json=batch, headers=basic(store.key))
    # An SDK's retry: the same messages, a new sentAt.
    again = await client.post(
        "/v1/batch", json={**batch, "sentAt": "2026-11-23T10:05:00Z"}, headers=basic(store.key)
    )
    assert first.json() == again.json() == {"success": True}
    changed = order_completed("m-1", order_id="1002")
    conflict = await client.post("/v1/batch", json={"batch": [changed]}, headers=basic(store.key))
    assert conflict.status_code == 200
    assert conflict.json() == {
        "success": True,
        "skipped": [
            {
                "index": 0,
                "message_id": "m-1",
                "reason": "a message with this messageId was already accepted with a different"
                " body; send a new messageId for a new message",
            }
        ],
    }
    single = await client.post("/v1/track", json=changed, headers=basic(store.key))
    assert single.status_code == 409
    await workers.drain()
    assert await applied(db) == [("segment:m-1", "order.placed", None)]
    async with db.read() as session:
        assert [o.order_id for o in (await session.execute(select(Order))).scalars()] == ["1001"]


async def test_bad_messages_in_a_batch_are_skipped_with_the_reason(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    no_total = order_completed("m-3")
    del no_total["properties"]["total"]
    batch = {
        "batch": [
            order_completed("m-1"),
            "not a message",
            {"type": "track", "messageId": "m-2", "event": "Signed Up"},
            no_total,
            {"type": "track", "messageId": "m-4", "userId": "u", "event": 5},
            {"type": "identify", "messageId": "m-5", "userId": "u", "traits": {"email": "x"}},
            {"type": "page", "messageId": "m-6", "anonymousId": "a-1", "name": "Home"},
        ]
    }
    response = await client.post("/v1/batch", json=batch, headers=basic(store.key))
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "skipped": [
            {"index": 1, "message_id": None, "reason": "a message must be an object"},
            {
                "index": 2,
                "message_id": "m-2",
                "reason": "a message needs a userId or an anonymousId",
            },
            {
                "index": 3,
                "message_id": "m-3",
                "reason": "mapped to order.placed: data.total: Field required",
            },
            {"index": 4, "message_id": "m-4", "reason": "event must be a string"},
            {
                "index": 5,
                "message_id": "m-5",
                "reason": "mapped to customer.updated: customer.email: value is not a valid"
                " email address: An email address must have an @-sign.",
            },
        ],
    }
    assert await stored_keys(db) == [(store.id, "segment:m-1"), (store.id, "segment:m-6")]


async def test_a_single_call_that_cannot_become_an_event_is_400(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    response = await client.post(
        "/v1/track", json={"userId": "u", "event": "X", "properties": "?"}, headers=basic(store.key)
    )
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "code": "invalid",
        "message": "properties must be an object",
    }
    assert await stored_keys(db) == []


async def test_bodies_that_are_no_json_or_too_large_are_400(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    headers = {**basic(store.key), "Content-Type": "application/json"}
    broken = await client.post("/v1/batch", content=b'{"batch": [', headers=headers)
    assert broken.status_code == 400
    assert broken.json()["code"] == "bad_request"
    assert broken.json()["message"].startswith("the body is not valid JSON")
    not_a_batch = await client.post("/v1/batch", json={"batch": {}}, headers=basic(store.key))
    assert not_a_batch.status_code == 400
    assert not_a_batch.json()["message"] == (
        "a batch is an object with a list of messages under 'batch'"
    )
    big = {"batch": [order_completed(f"m-{i}") for i in range(2000)]}
    too_large = await client.post("/v1/batch", json=big, headers=basic(store.key))
    assert too_large.status_code == 400
    assert too_large.json()["message"] == f"the body is larger than {MAX_BATCH_BYTES} bytes"
    assert await stored_keys(db) == []


async def test_a_message_over_32_kb_is_skipped_and_its_batch_kept(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    huge = order_completed("m-2")
    huge["properties"]["note"] = "x" * 33_000
    batch = {"batch": [order_completed("m-1"), huge]}
    response = await client.post("/v1/batch", json=batch, headers=basic(store.key))
    assert response.json() == {
        "success": True,
        "skipped": [
            {"index": 1, "message_id": "m-2", "reason": "the message is larger than 32768 bytes"}
        ],
    }
    assert await stored_keys(db) == [(store.id, "segment:m-1")]


async def test_gzip_bodies_are_read_and_a_gzip_bomb_is_413(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    headers = {**basic(store.key), "Content-Encoding": "gzip"}
    body = gzip.compress(json.dumps({"batch": [order_completed()]}).encode())
    ok = await client.post("/v1/batch", content=body, headers=headers)
    assert (ok.status_code, ok.json()) == (200, {"success": True})
    # 100 MB of spaces inside valid JSON, 100 KB on the wire.
    bomb = gzip.compress(b'{"batch": [' + b" " * 100_000_000 + b"]}")
    assert len(bomb) < 200_000
    refused = await client.post("/v1/batch", content=bomb, headers=headers)
    assert refused.status_code == 413
    assert refused.json()["message"] == (
        f"the body is larger than {MAX_BATCH_BYTES} bytes once decompressed"
    )
    not_gzip = await client.post("/v1/batch", content=b"{}", headers=headers)
    assert not_gzip.status_code == 400
    assert not_gzip.json()["message"].startswith("the body is not valid gzip")
    assert await stored_keys(db) == [(store.id, "segment:m-1")]


async def test_an_anonymous_visitor_who_signs_in_becomes_the_user(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    def added(message_id: str, product: str, price: float) -> dict[str, Any]:
        return {
            "type": "track",
            "messageId": message_id,
            "anonymousId": "a-7",
            "event": "Product Added",
            "properties": {"product_id": product, "name": product, "price": price},
        }

    removed = {**added("m-3", "p-1", 10.5), "event": "Product Removed"}
    batch = {"batch": [added("m-1", "p-1", 10.5), added("m-2", "p-2", 4), removed]}
    assert (await client.post("/v1/batch", json=batch, headers=basic(store.key))).json() == {
        "success": True
    }
    await workers.drain()
    (anonymous,) = await live_customers(db)
    assert (anonymous.external_id, anonymous.email) == ("anonymous:a-7", None)
    # The user already known by email from an earlier order.
    earlier = await client.post("/v1/track", json=order_completed("m-0"), headers=basic(store.key))
    assert earlier.status_code == 200
    await workers.drain()
    identify = {
        "type": "identify",
        "messageId": "m-4",
        "userId": "c-1042",
        "anonymousId": "a-7",
        "traits": {"email": "ayse@example.com", "firstName": "Ayşe"},
    }
    assert (await client.post("/v1/identify", json=identify, headers=basic(store.key))).json() == {
        "success": True
    }
    await workers.drain()
    (customer,) = await live_customers(db)
    assert (customer.external_id, customer.email, customer.first_name) == (
        "c-1042",
        "ayse@example.com",
        "Ayşe",
    )
    async with db.read() as session:
        carts = list((await session.execute(select(Cart).order_by(Cart.id))).scalars())
    assert [(c.cart_id, c.customer_id, c.total) for c in carts] == [
        ("segment-cart:a-7", customer.id, Decimal("4"))
    ]
    assert [(i["product_id"], i["quantity"], i["price"]) for i in carts[0].items] == [
        ("p-2", 1, "4")
    ]
    assert [e for e in await applied(db) if e[2] is not None] == []


async def test_alias_merges_the_previous_profile(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    first = {"type": "identify", "userId": "old-1", "traits": {"phone": "+905321112233"}}
    alias = {"type": "alias", "userId": "new-1", "previousId": "old-1", "messageId": "m-2"}
    for message in (first, alias):
        response = await client.post("/v1/batch", json={"batch": [message]}, headers=store.auth)
        assert response.json() == {"success": True}
        await workers.drain()
    (customer,) = await live_customers(db)
    assert (customer.external_id, customer.phone) == ("new-1", "+905321112233")


async def test_shops_cannot_take_the_segment_key_namespace(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    event = {"id": "segment:m-1", "type": "signed_up", "customer": {"id": "c-1"}}
    response = await client.post("/v1/events", json=event, headers=store.auth)
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {
            "path": "id",
            "message": "ids starting with 'ulak:', 'derived:', 'segment:', 'shopify:',"
            " 'woocommerce:' are reserved for ulak's own",
        }
    ]
    assert await stored_keys(db) == []


async def test_browsers_may_post_from_the_shops_pages(
    client: httpx.AsyncClient, store: StoreKey
) -> None:
    preflight = await client.options(
        "/v1/t",
        headers={"Origin": "https://dukkan.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    # analytics.js: text/plain, the write key in the body, the type's first letter as path.
    response = await client.post(
        "/v1/p",
        content=json.dumps({"anonymousId": "a-1", "name": "Home", "writeKey": store.key}),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


async def test_an_order_completed_sends_the_order_confirmation_once(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    batch = {"batch": [order_completed("m-1")]}
    for _ in range(2):  # the SDK retried: one order, one email
        response = await client.post("/v1/batch", json=batch, headers=basic(store.key))
        assert response.json() == {"success": True}
        await workers.drain()
    mails = await dev_inbox(db)
    assert [(m["To"], m["Subject"]) for m in mails] == [
        ("ayse@example.com", "Siparişiniz alındı – #1001")
    ]


async def test_the_batch_context_names_every_message_under_its_own(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    own = {**order_completed("m-1"), "context": {"traits": {"email": "own@example.com"}}}
    bare = {**order_completed("m-2", order_id="1002"), "context": None}
    broken = {**order_completed("m-3", order_id="1003"), "context": "?"}
    batch = {
        "batch": [own, bare, broken],
        "context": {"traits": {"email": "batch@example.com", "firstName": "Deniz"}},
    }
    response = await client.post("/v1/batch", json=batch, headers=basic(store.key))
    assert response.json() == {
        "success": True,
        "skipped": [{"index": 2, "message_id": "m-3", "reason": "context must be an object"}],
    }
    await workers.drain()
    async with db.read() as session:
        rows = await session.execute(select(Event.key, Event.customer).order_by(Event.key))
        customers = {key: customer for key, customer in rows}
    assert customers == {
        # A key of the message's own context replaces the batch's whole (a shallow merge).
        "segment:m-1": {"id": "c-1042", "email": "own@example.com"},
        "segment:m-2": {"id": "c-1042", "email": "batch@example.com", "first_name": "Deniz"},
    }


async def test_a_batch_is_bounded_by_bytes_not_by_count(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    # Segment counts bytes only: 3,000 small messages fit in 500 KB (/v1/events takes 1,000).
    pages = [{"type": "page", "anonymousId": f"a-{i}", "messageId": f"m-{i}"} for i in range(3000)]
    response = await client.post("/v1/batch", json={"batch": pages}, headers=basic(store.key))
    assert response.json() == {"success": True}
    assert await stored_keys(db) == sorted((store.id, f"segment:m-{i}") for i in range(3000))


async def test_a_nul_character_anywhere_skips_its_message(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    # PostgreSQL holds no NUL in text or jsonb; found by tests/test_fuzz.py as a 500.
    nul_key = {"type": "page", "anonymousId": "a-1", "messageId": "m-2", "properties": {"\x00": 1}}
    literal = {"type": "page", "anonymousId": "a-1", "messageId": "m-3", "name": "\\u0000"}
    batch = {"batch": [order_completed("m-1"), nul_key, literal]}
    response = await client.post("/v1/batch", json=batch, headers=basic(store.key))
    assert response.json() == {
        "success": True,
        "skipped": [
            {
                "index": 1,
                "message_id": "m-2",
                "reason": "the message holds a NUL character (\\u0000), which no field may",
            }
        ],
    }
    await workers.drain()
    assert await applied(db) == [
        ("segment:m-1", "order.placed", None),
        ("segment:m-3", "page.viewed", None),
    ]


async def test_the_same_product_added_twice_is_one_line_of_two(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    def added(message_id: str, quantity: int) -> dict[str, Any]:
        return {
            "type": "track",
            "messageId": message_id,
            "userId": "c-1",
            "event": "Product Added",
            "properties": {
                "cart_id": "k-1",
                "product_id": "p-1",
                "name": "Çay",
                "price": 12.5,
                "quantity": quantity,
            },
        }

    removed = {**added("m-3", 1), "event": "Product Removed"}
    batch = {"batch": [added("m-1", 1), added("m-2", 2), removed]}
    assert (await client.post("/v1/batch", json=batch, headers=basic(store.key))).json() == {
        "success": True
    }
    await workers.drain()
    async with db.read() as session:
        (cart,) = (await session.execute(select(Cart))).scalars()
    assert (cart.cart_id, cart.total, cart.status) == ("k-1", Decimal("25"), "open")
    assert cart.items == [
        {
            "product_id": "p-1",
            "variant_id": None,
            "sku": None,
            "title": "Çay",
            "quantity": 2,
            "price": "12.5",
            "url": None,
            "image_url": None,
        }
    ]


async def test_previous_ids_merge_through_v1_events_too(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    guest = {
        "id": "e-1",
        "type": "signed_up",
        "customer": {"id": "guest-9", "phone": "+905321112233"},
    }
    member = {
        "id": "e-2",
        "type": "customer.updated",
        "customer": {"id": "c-9", "email": "can@example.com", "previous_ids": ["guest-9"]},
    }
    for event in (guest, member):
        response = await client.post("/v1/events", json=event, headers=store.auth)
        assert response.status_code == 202
        await workers.drain()
    (customer,) = await live_customers(db)
    assert (customer.external_id, customer.email, customer.phone) == (
        "c-9",
        "can@example.com",
        "+905321112233",
    )
