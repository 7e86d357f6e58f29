"""Shopify's webhooks, posted as Shopify posts them (its documented payloads, under
tests/integrations/shopify/), become ulak's events: verified, deduplicated, reordered
safely, and never a 500."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support import StoreKey, dev_inbox, stored_keys
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.events.models import Event
from ulak.integrations.service import set_integration
from ulak.worker import Workers

SAMPLES = Path(__file__).parent / "shopify"
SECRET = "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"
ORDER = "5901234567890"
CUSTOMER = "7012345678901"
FULFILLMENT = "4812345678901"
CHECKOUT = "c1f7e2a4b5d6e7f8091a2b3c4d5e6f70"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return loaded


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def connect(db: Database, clock: FrozenClock, store: StoreKey) -> None:
    async with db.transaction() as session:
        await set_integration(
            session, store_id=store.id, platform="shopify", secret=SECRET, clock=clock
        )


async def post(
    client: httpx.AsyncClient,
    store: StoreKey | int | str,
    topic: str,
    payload: Any,
    *,
    webhook_id: str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    secret: str = SECRET,
    body: bytes | None = None,
) -> httpx.Response:
    raw = body if body is not None else json.dumps(payload).encode()
    where = store.id if isinstance(store, StoreKey) else store
    return await client.post(
        f"/v1/integrations/shopify/{where}",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(raw, secret),
            "X-Shopify-Shop-Domain": "aysenin-dukkani.myshopify.com",
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-API-Version": "2025-01",
            "X-Shopify-Triggered-At": "2026-11-23T09:00:00.123456789Z",
            "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        },
    )


async def events(db: Database) -> list[tuple[str, str, dict[str, Any]]]:
    async with db.read() as session:
        rows = await session.execute(select(Event.key, Event.type, Event.data).order_by(Event.id))
        return [(key, type_, data) for key, type_, data in rows]


def summary(response: httpx.Response) -> list[tuple[str, bool, bool]]:
    return [(e["type"], e["duplicate"], e["known"]) for e in response.json()["events"]]


ORDER_PLACED_DATA = {
    "order_id": ORDER,
    "number": "#1001",
    "items": [
        {
            "product_id": "8012345678901",
            "variant_id": "45012345678901",
            "sku": "KUPA-LAC",
            "title": "Seramik kupa - Lacivert",
            "quantity": 2,
            "price": "249.95",
        },
        {
            "product_id": "8012345678902",
            "variant_id": "45012345678902",
            "sku": "CAY-BKR",
            "title": "Bakır çaydanlık",
            "quantity": 1,
            "price": "750.00",
        },
    ],
    # Before discounts (Shopify's total_line_items_price; its subtotal_price, 1124.91, is
    # after them): the confirmation prints Subtotal, -Discount, Shipping, Total.
    "subtotal": "1249.90",
    "discount": "124.99",
    "shipping": "49.90",
    "tax": "187.47",
    "total": "1174.81",
    "currency": "TRY",
    "discount_codes": ["HOSGELDIN10"],
    "channel": "web",
    "source_name": "web",
    "cart_id": "c1f7e2a4b5d6e7f8091a2b3c4d5e6f70",
    "shipping_address": sample("order")["shipping_address"],
    "payment_method": "credit_card",
    "order_url": sample("order")["order_status_url"],
}


async def test_orders_create_becomes_the_order_its_payment_and_the_consent(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    await connect(db, clock, store)
    response = await post(client, store, "orders/create", sample("order"))
    assert response.status_code == 200, response.text
    assert summary(response) == [
        ("consent.updated", False, False),
        ("order.placed", False, False),
        ("order.paid", False, False),
    ]
    assert response.json()["skipped"] == []
    keys = [e["key"] for e in response.json()["events"]]
    assert keys[0].startswith(f"shopify:consent:{CUSTOMER}:email:")
    assert keys[1].startswith(f"shopify:order:{ORDER}:placed:")
    assert keys[2] == f"shopify:order:{ORDER}:paid"
    assert await stored_keys(db) == sorted((store.id, key) for key in keys)

    await workers.drain()
    stored = await events(db)
    assert [(k, t) for k, t, _ in stored] == list(
        zip(keys, ["consent.updated", "order.placed", "order.paid"], strict=True)
    )
    assert stored[0][2] == {
        "channel": "email",
        "status": "granted",
        "source": "shopify",
        "proof": {
            "platform": "shopify",
            "opt_in_level": "single_opt_in",
            "consent_updated_at": "2026-11-23T12:00:00+03:00",
        },
    }
    assert stored[1][2] == ORDER_PLACED_DATA
    # Prices include tax (taxes_included): subtotal - discount + shipping is the total.
    placed = stored[1][2]
    assert Decimal(placed["subtotal"]) - Decimal(placed["discount"]) + Decimal(
        placed["shipping"]
    ) == Decimal(placed["total"])
    assert stored[2][2] == {"order_id": ORDER, "amount": "1174.81"}

    profile = (await client.get(f"/v1/customers/{CUSTOMER}", headers=store.auth)).json()
    assert profile["customer"]["email"] == "ayse@example.com"
    assert profile["customer"]["phone"] == "+905321112233"
    assert profile["customer"]["locale"] == "tr"
    assert profile["customer"]["consent"]["email"] == "granted"
    (order,) = profile["orders"]
    assert (order["number"], order["status"]) == ("#1001", "paid")
    assert Decimal(order["total"]) == Decimal("1174.81")

    (mail,) = await dev_inbox(db)
    assert mail["To"] == "ayse@example.com"
    assert mail["Subject"] == "Siparişiniz alındı – #1001"


async def test_a_wrong_signature_or_no_integration_is_401_and_stores_nothing(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock
) -> None:
    payload = sample("order")
    # No Shopify integration yet: the same answer as a forged signature.
    not_connected = await post(client, store, "orders/create", payload)
    await connect(db, clock, store)
    forged = await post(client, store, "orders/create", payload, secret="shpss_guessed")
    body = json.dumps(payload).encode()
    unsigned = await client.post(
        f"/v1/integrations/shopify/{store.id}",
        content=body,
        headers={"X-Shopify-Topic": "orders/create", "Content-Type": "application/json"},
    )
    other_store = await post(client, store.id + 1, "orders/create", payload)
    not_a_store = await post(client, "admin", "orders/create", payload)
    # Digits str.isdigit() takes but int() refuses ("²", Arabic-Indic "١"): were a 500.
    unicode_digits = [
        await post(client, where, "orders/create", payload) for where in ("%C2%B2", "%D9%A1")
    ]
    for response in (not_connected, forged, unsigned, other_store, not_a_store, *unicode_digits):
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "the webhook's signature does not match"
    # The body changed after Shopify signed it.
    tampered = await client.post(
        f"/v1/integrations/shopify/{store.id}",
        content=body.replace(b"1174.81", b"0.01"),
        headers={
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": sign(body),
            "Content-Type": "application/json",
        },
    )
    assert tampered.status_code == 401
    assert SECRET not in tampered.text
    assert await stored_keys(db) == []


async def test_a_replayed_webhook_is_one_event(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    await connect(db, clock, store)
    first = await post(client, store, "orders/create", sample("order"), webhook_id="wh-1")
    again = await post(client, store, "orders/create", sample("order"), webhook_id="wh-1")
    assert first.status_code == again.status_code == 200
    assert summary(again) == [
        ("consent.updated", True, False),
        ("order.placed", True, False),
        ("order.paid", True, False),
    ]
    assert [e["key"] for e in again.json()["events"]] == [e["key"] for e in first.json()["events"]]
    assert len(await stored_keys(db)) == 3
    await workers.drain()
    assert len(await dev_inbox(db)) == 1


def fulfilled(order: dict[str, Any]) -> dict[str, Any]:
    """The order as orders/updated restates it once shipped: its fulfillment, carrier
    status in transit, updated later than created."""
    later = copy.deepcopy(order)
    fulfillment = sample("fulfillment")
    fulfillment["created_at"] = "2026-11-23T12:20:00+03:00"
    fulfillment["updated_at"] = "2026-11-23T12:25:00+03:00"
    fulfillment["shipment_status"] = "in_transit"
    later["fulfillments"] = [fulfillment]
    later["fulfillment_status"] = "fulfilled"
    later["updated_at"] = "2026-11-23T12:25:00+03:00"
    return later


async def test_orders_updated_before_orders_create_is_one_order_in_its_latest_state(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    await connect(db, clock, store)
    clock.set(clock.now().replace(minute=30))
    updated = await post(
        client, store, "orders/updated", fulfilled(sample("order")), webhook_id="wh-2"
    )
    created = await post(client, store, "orders/create", sample("order"), webhook_id="wh-1")
    assert summary(updated) == [
        ("consent.updated", False, False),
        ("order.placed", False, False),
        ("order.paid", False, False),
        ("order.shipped", False, False),
        ("shipment.updated", False, False),
    ]
    # The order restated as it was: nothing new.
    assert summary(created) == [
        ("consent.updated", True, False),
        ("order.placed", True, False),
        ("order.paid", True, False),
    ]
    assert len(await stored_keys(db)) == 5
    await workers.drain()

    profile = (await client.get(f"/v1/customers/{CUSTOMER}", headers=store.auth)).json()
    (order,) = profile["orders"]
    assert (order["number"], order["status"]) == ("#1001", "shipped")
    mails = await dev_inbox(db)
    assert sorted(m["Subject"] for m in mails) == [
        "Siparişiniz alındı – #1001",
        "Siparişiniz kargoya verildi – #1001",
    ]


async def test_a_later_change_to_the_order_updates_it_without_a_second_confirmation(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    await connect(db, clock, store)
    await post(client, store, "orders/create", sample("order"), webhook_id="wh-1")
    edited = sample("order")
    edited["line_items"] = edited["line_items"][1:]
    edited["total_price_set"]["presentment_money"]["amount"] = "799.90"
    edited["cancelled_at"] = "2026-11-23T12:00:00+03:00"
    edited["cancel_reason"] = "customer"
    response = await post(client, store, "orders/updated", edited, webhook_id="wh-2")
    assert summary(response) == [
        ("consent.updated", True, False),
        ("order.placed", False, False),
        # Paid once: the first report stands (the new total is on the order).
        ("order.paid", False, True),
        ("order.cancelled", False, False),
    ]
    await workers.drain()
    profile = (await client.get(f"/v1/customers/{CUSTOMER}", headers=store.auth)).json()
    (order,) = profile["orders"]
    assert order["status"] == "cancelled"
    assert Decimal(order["total"]) == Decimal("799.90")
    assert [i["title"] for i in order["items"]] == ["Bakır çaydanlık"]
    assert [m["Subject"] for m in await dev_inbox(db)] == ["Siparişiniz alındı – #1001"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda o: o.update(total_price=1174.81), "total_price"),
        (lambda o: o.pop("id"), "id"),
        (lambda o: o.update(id={"gid": "x"}), "id"),
        (lambda o: o.update(line_items="many"), "line_items"),
        (lambda o: o["line_items"][0].update(price=None), "line_items[0].price"),
        (lambda o: o.update(created_at="yesterday"), "created_at"),
    ],
)
async def test_a_field_of_the_wrong_type_is_a_422_naming_it(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    clock: FrozenClock,
    change: Any,
    path: str,
) -> None:
    await connect(db, clock, store)
    payload = sample("order")
    change(payload)
    response = await post(client, store, "orders/create", payload)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"].startswith("not a Shopify payload: ")
    assert [d["path"] for d in error["details"]] == [path]
    assert await stored_keys(db) == []


async def test_a_large_order_is_taken_and_a_body_past_5_mb_refused(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock
) -> None:
    await connect(db, clock, store)
    large = sample("order")
    line = large["line_items"][0]
    large["line_items"] = [{**line, "id": i, "variant_id": 45012345670000 + i} for i in range(900)]
    body = json.dumps(large).encode()
    assert 1024 * 1024 < len(body) < 5 * 1024 * 1024
    taken = await post(client, store, "orders/create", large, body=body)
    assert taken.status_code == 200
    assert [e["type"] for e in taken.json()["events"]] == [
        "consent.updated",
        "order.placed",
        "order.paid",
    ]
    huge = await post(client, store, "orders/create", None, body=b" " * (5 * 1024 * 1024 + 1))
    assert huge.status_code == 413
    assert len(await stored_keys(db)) == 3


async def test_a_body_that_is_not_a_shopify_webhook_is_a_400(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock
) -> None:
    await connect(db, clock, store)
    broken = await post(client, store, "orders/create", None, body=b'{"id": 1,')
    a_list = await post(client, store, "orders/create", [sample("order")])
    no_topic = await client.post(
        f"/v1/integrations/shopify/{store.id}",
        content=b"{}",
        headers={"X-Shopify-Hmac-Sha256": sign(b"{}"), "Content-Type": "application/json"},
    )
    assert [r.status_code for r in (broken, a_list, no_topic)] == [400, 400, 400]
    assert [r.json()["error"]["message"] for r in (broken, a_list, no_topic)] == [
        "the body is not valid JSON",
        "the body is not a JSON object",
        "the X-Shopify-Topic header is missing",
    ]
    assert await stored_keys(db) == []


async def test_what_shopify_sends_but_ulak_cannot_use_is_a_200_with_the_reason(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock
) -> None:
    """Shopify would retry the same payload 19 times, then delete the subscription."""
    await connect(db, clock, store)
    pos = sample("order")
    pos.update(customer=None, email=None, contact_email=None, phone=None, source_name="pos")
    nobody = await post(client, store, "orders/create", pos)
    checkout = sample("checkout")
    checkout.update(customer=None, email=None)
    anonymous = await post(client, store, "checkouts/create", checkout)
    uninstalled = await post(client, store, "app/uninstalled", {"id": 1})
    early = sample("fulfillment")
    early["email"] = None
    unknown_order = await post(client, store, "fulfillments/create", early)
    refund = await post(client, store, "refunds/create", sample("refund"))
    bad_email = sample("customer")
    bad_email["email"] = "ayse@@example"
    mistyped = await post(client, store, "customers/update", bad_email)
    for response in (nobody, anonymous, uninstalled, unknown_order, refund, mistyped):
        assert response.status_code == 200
    assert [
        r.json()["skipped"] for r in (nobody, anonymous, uninstalled, unknown_order, refund)
    ] == [
        [
            f"order {ORDER} names no customer (no customer, email or phone): ulak keeps"
            " orders of a customer"
        ],
        [f"checkout {CHECKOUT} names nobody yet (no customer, email or phone)"],
        ["topic 'app/uninstalled' is not one ulak handles"],
        [f"fulfillment {FULFILLMENT}: its order is not known yet"],
        ["refund 9312345678901: its order is not known yet"],
    ]
    # An address ulak cannot send to is left out; the customer, named by id, is kept.
    assert mistyped.json()["skipped"] == []
    assert summary(mistyped) == [
        ("customer.updated", False, False),
        ("consent.updated", False, False),
        ("consent.updated", False, False),
    ]
    assert len(await stored_keys(db)) == 3


async def test_checkouts_carry_the_abandoned_checkout_url_and_products_each_variant(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    await connect(db, clock, store)
    started = await post(client, store, "checkouts/create", sample("checkout"))
    changed = sample("checkout")
    changed["line_items"][0]["quantity"] = 3
    updated = await post(client, store, "checkouts/update", changed, webhook_id="wh-2")
    done = sample("checkout")
    done["completed_at"] = "2026-11-23T12:05:00+03:00"
    completed = await post(client, store, "checkouts/update", done, webhook_id="wh-3")
    product = await post(client, store, "products/update", sample("product"), webhook_id="wh-4")
    assert summary(started) == [("checkout.started", False, False)]
    assert summary(updated) == [("cart.updated", False, False)]
    assert summary(completed) == []
    assert completed.json()["skipped"] == [
        "checkout c1f7e2a4b5d6e7f8091a2b3c4d5e6f70 is completed: its order follows"
    ]
    assert summary(product) == [("product.updated", False, False)] * 2
    await workers.drain()
    stored = await events(db)
    assert [t for _, t, _ in stored] == [
        "checkout.started",
        "cart.updated",
        "product.updated",
        "product.updated",
    ]
    assert stored[0][2] == {
        "cart_id": "c1f7e2a4b5d6e7f8091a2b3c4d5e6f70",
        "items": [
            {
                "product_id": "8012345678901",
                "variant_id": "45012345678901",
                "sku": "KUPA-LAC",
                "title": "Seramik kupa - Lacivert",
                "quantity": 2,
                "price": "249.95",
            }
        ],
        "total": "549.80",
        "currency": "TRY",
        "recovery_url": sample("checkout")["abandoned_checkout_url"],
    }
    assert [d for _, _, d in stored[2:]] == [
        {
            "product_id": "8012345678901",
            "variant_id": "45012345678901",
            "sku": "KUPA-LAC",
            "title": "Seramik kupa - Lacivert",
            "url": "https://aysenin-dukkani.myshopify.com/products/seramik-kupa"
            "?variant=45012345678901",
            "image_url": "https://cdn.shopify.com/s/files/1/0586/1234/5678/files/"
            "kupa-lacivert.jpg?v=1727773200",
            "price": "249.95",
            "inventory": 12,
            "tags": ["kupa", "seramik", "hediye"],
        },
        {
            "product_id": "8012345678901",
            "variant_id": "45012345678903",
            "sku": "KUPA-KRM",
            "title": "Seramik kupa - Kırmızı",
            "url": "https://aysenin-dukkani.myshopify.com/products/seramik-kupa"
            "?variant=45012345678903",
            "image_url": "https://cdn.shopify.com/s/files/1/0586/1234/5678/files/"
            "kupa.jpg?v=1727773200",
            "price": "249.95",
            "inventory": 0,
            "tags": ["kupa", "seramik", "hediye"],
        },
    ]


async def test_customers_map_their_marketing_consent_per_channel(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    await connect(db, clock, store)
    created = await post(client, store, "customers/create", sample("customer"))
    unsubscribed = sample("customer")
    unsubscribed["email_marketing_consent"] = {
        "state": "unsubscribed",
        "opt_in_level": "confirmed_opt_in",
        "consent_updated_at": "2026-12-01T09:00:00+03:00",
    }
    updated = await post(client, store, "customers/update", unsubscribed, webhook_id="wh-2")
    legacy = sample("customer")
    legacy.pop("email_marketing_consent")
    legacy.pop("sms_marketing_consent")
    legacy.update(accepts_marketing=True, accepts_marketing_updated_at="2026-12-01T10:00:00+03:00")
    old_api = await post(client, store, "customers/update", legacy, webhook_id="wh-3")
    assert summary(created) == [
        ("customer.created", False, False),
        ("consent.updated", False, False),
        ("consent.updated", False, False),
    ]
    # The SMS consent restated: a duplicate; the email one changed.
    assert summary(updated) == [
        ("customer.updated", False, False),
        ("consent.updated", False, False),
        ("consent.updated", True, False),
    ]
    assert summary(old_api) == [
        ("customer.updated", True, False),
        ("consent.updated", False, False),
    ]
    await workers.drain()
    consents = [
        (d["channel"], d["status"]) for _, t, d in await events(db) if t == "consent.updated"
    ]
    assert consents == [
        ("email", "granted"),
        ("sms", "granted"),
        ("email", "revoked"),
        ("email", "granted"),
    ]
    profile = (await client.get(f"/v1/customers/{CUSTOMER}", headers=store.auth)).json()
    assert profile["customer"]["consent"]["email"] == "granted"
    assert profile["customer"]["consent"]["sms"] == "granted"


async def test_a_refund_of_a_known_order_is_refunded_with_the_amount_of_its_transactions(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    await connect(db, clock, store)
    await post(client, store, "orders/create", sample("order"))
    await workers.drain()
    refund = await post(client, store, "refunds/create", sample("refund"), webhook_id="wh-2")
    assert summary(refund) == [("order.refunded", False, False)]
    # orders/updated, which Shopify sends with the refund, restates it: already known.
    with_refund = sample("order")
    with_refund["refunds"] = [sample("refund")]
    with_refund["financial_status"] = "partially_refunded"
    restated = await post(client, store, "orders/updated", with_refund, webhook_id="wh-3")
    assert summary(restated) == [
        ("consent.updated", True, False),
        ("order.placed", True, False),
        ("order.paid", True, False),
        ("order.refunded", False, True),
    ]
    await workers.drain()
    stored = await events(db)
    assert stored[-1] == (
        "shopify:refund:9312345678901",
        "order.refunded",
        {"order_id": ORDER, "amount": "224.96", "reason": "Kupa kırık geldi"},
    )
    profile = (await client.get(f"/v1/customers/{CUSTOMER}", headers=store.auth)).json()
    assert profile["orders"][0]["status"] == "refunded"


async def test_a_shops_own_event_cannot_take_a_shopify_key(
    client: httpx.AsyncClient, store: StoreKey
) -> None:
    event = {
        "id": f"shopify:order:{ORDER}:paid",
        "type": "order.paid",
        "customer": {"id": CUSTOMER},
        "data": {"order_id": ORDER},
    }
    response = await client.post("/v1/events", json=event, headers=store.auth)
    assert response.status_code == 422
    assert "reserved" in response.json()["error"]["message"]


async def test_text_past_ulaks_limits_is_cut_rather_than_losing_the_order(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    await connect(db, clock, store)
    long = sample("order")
    long["line_items"][1]["title"] = "Ç" * 600
    long["customer"]["first_name"] = "A" * 300
    response = await post(client, store, "orders/create", long)
    assert response.json()["skipped"] == []
    assert [e["type"] for e in response.json()["events"]] == [
        "consent.updated",
        "order.placed",
        "order.paid",
    ]
    await workers.drain()
    placed = next(d for _, t, d in await events(db) if t == "order.placed")
    assert placed["items"][1]["title"] == "Ç" * 500
    profile = (await client.get(f"/v1/customers/{CUSTOMER}", headers=store.auth)).json()
    assert profile["customer"]["first_name"] == "A" * 200


async def test_fulfillment_updates_follow_the_carrier_to_delivery(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    await connect(db, clock, store)
    await post(client, store, "orders/create", sample("order"), webhook_id="wh-1")
    await workers.drain()
    shipped = await post(client, store, "fulfillments/create", sample("fulfillment"))
    assert summary(shipped) == [("order.shipped", False, False)]
    statuses = []
    for n, status in enumerate(["label_printed", "attempted_delivery", "delivered", "delivered"]):
        update = sample("fulfillment")
        update["shipment_status"] = status
        response = await post(client, store, "fulfillments/update", update, webhook_id=f"u{n}")
        statuses.append(summary(response))
    # The fulfillment restated: shipped already; each carrier status once.
    assert statuses == [
        [("order.shipped", True, False), ("shipment.updated", False, False)],
        [("order.shipped", True, False), ("shipment.updated", False, False)],
        [("order.shipped", True, False), ("shipment.updated", False, False)],
        [("order.shipped", True, False), ("shipment.updated", True, False)],
    ]
    await workers.drain()
    updates = [(k, d["status"]) for k, t, d in await events(db) if t == "shipment.updated"]
    assert updates == [
        (f"shopify:fulfillment:{FULFILLMENT}:info_received", "info_received"),
        (f"shopify:fulfillment:{FULFILLMENT}:attempt_failed", "attempt_failed"),
        (f"shopify:fulfillment:{FULFILLMENT}:delivered", "delivered"),
    ]
    shipped_event = next(d for _, t, d in await events(db) if t == "order.shipped")
    assert shipped_event == {
        "order_id": ORDER,
        "shipment_id": FULFILLMENT,
        "carrier": "Yurtiçi Kargo",
        "tracking_number": "YK1234567890",
        "tracking_url": sample("fulfillment")["tracking_url"],
        "items": ORDER_PLACED_DATA["items"],
    }
    profile = (await client.get(f"/v1/customers/{CUSTOMER}", headers=store.auth)).json()
    assert profile["orders"][0]["status"] == "delivered"
    assert [m["Subject"] for m in await dev_inbox(db)] == [
        "Siparişiniz alındı – #1001",
        "Siparişiniz kargoya verildi – #1001",
        "Siparişiniz teslim edilemedi – #1001",
        "Siparişiniz teslim edildi – #1001",
    ]


async def test_amounts_without_presentment_money_are_the_shops_money(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    # Older API versions and some apps' orders carry only shop_money in a money set.
    await connect(db, clock, store)
    order = sample("order")
    for name in (
        "total_shipping_price_set",
        "total_line_items_price_set",
        "total_discounts_set",
        "total_tax_set",
        "total_price_set",
    ):
        del order[name]["presentment_money"]
    for line in order["line_items"]:
        del line["price_set"]["presentment_money"]
    # The plain amounts differ from the sets' shop money, to show which one was read.
    order["total_line_items_price"] = "1.00"
    response = await post(client, store, "orders/create", order)
    assert response.status_code == 200, response.text
    await workers.drain()
    stored = await events(db)
    assert [t for _, t, _ in stored] == ["consent.updated", "order.placed", "order.paid"]
    assert stored[1][2] == ORDER_PLACED_DATA
