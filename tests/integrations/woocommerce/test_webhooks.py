"""WooCommerce webhooks as WooCommerce delivers them (REST API v3 JSON, signed, the
activation ping), through the real pipeline to the emails, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support import StoreKey, dev_inbox, stored_keys, text_of
from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.events.models import Event
from ulak.integrations.service import set_integration
from ulak.integrations.woocommerce import translate
from ulak.orders.models import Order, OrderStatusChange, Shipment
from ulak.worker import Workers

SAMPLES = Path(__file__).parent
SECRET = "wc_sec_3Jd9!kQz"
CUSTOMER = {
    "id": "57",
    "email": "ayse@example.com",
    "phone": "0532 111 22 33",
    "first_name": "Ayşe",
    "last_name": "Yılmaz",
}
PLACED_DATA = {
    "order_id": "1042",
    "number": "1042",
    "items": [
        {
            "title": "Seramik kupa",
            "quantity": 2,
            # The line's subtotal with its tax (prices include tax) per unit: what the
            # customer saw, not WooCommerce's float `price` without tax.
            "price": "249.95",
            "product_id": "31",
            "sku": "KUPA-01",
            "image_url": "https://dukkan.example/wp-content/uploads/2026/10/kupa.jpg",
        },
        {
            "title": "Bakır çaydanlık - 1,5 L",
            "quantity": 1,
            "price": "750.00",
            "product_id": "35",
            "variant_id": "36",
            "sku": "CAYD-15",
            "image_url": "https://dukkan.example/wp-content/uploads/2026/10/caydanlik.jpg",
        },
    ],
    "subtotal": "1249.90",
    "discount": "124.99",
    "shipping": "49.90",
    "tax": "195.81",
    "total": "1174.81",
    "discount_codes": ["hosgeldin10"],
    "channel": "web",
    "currency": "TRY",
    "shipping_address": {
        "name": "Ayşe Yılmaz",
        "line1": "Moda Cad. No: 12 D: 3",
        "city": "Kadıköy",
        "state": "TR34",
        "postal_code": "34710",
        "country": "TR",
    },
    "payment_method": "Kredi / Banka Kartı",
}
TRACKING: dict[str, Any] = {
    "key": "_wc_shipment_tracking_items",
    "id": 8830,
    "value": [
        {
            "tracking_provider": "yurtici-kargo",
            "custom_tracking_provider": "",
            "custom_tracking_link": "",
            "tracking_number": "YK123456789",
            "date_shipped": "1795651200",
            "tracking_id": "8d1f6b0c2e4a9f7d3b5c1e0a2f4d6b8c",
        }
    ],
}


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return loaded


def completed(order: dict[str, Any], *tracking: dict[str, Any]) -> dict[str, Any]:
    """The order as WooCommerce sends it once the shop marks it completed."""
    done = copy.deepcopy(order)
    done.update(
        status="completed",
        date_completed_gmt="2026-11-23T09:30:00",
        date_modified_gmt="2026-11-23T09:30:02",
    )
    done["meta_data"] += list(tracking)
    return done


def signature(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def deliver(
    client: httpx.AsyncClient,
    store: StoreKey,
    topic: str,
    payload: Any,
    *,
    secret: str = SECRET,
    body: bytes | None = None,
) -> httpx.Response:
    """One delivery with the headers WooCommerce's `WC_Webhook::deliver` sends."""
    raw = body if body is not None else json.dumps(payload, ensure_ascii=False).encode()
    resource, _, event = topic.partition(".")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
        "X-WC-Webhook-Source": "https://dukkan.example/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": signature(raw, secret),
        "X-WC-Webhook-ID": "7",
        "X-WC-Webhook-Delivery-ID": "a3c9e1f07b5d2468ace13579bdf02468",
    }
    return await client.post(
        f"/v1/integrations/woocommerce/{store.id}", content=raw, headers=headers
    )


@pytest.fixture
async def shop(db: Database, clock: FrozenClock, store: StoreKey) -> StoreKey:
    async with db.transaction() as session:
        await set_integration(
            session, store_id=store.id, platform="woocommerce", secret=SECRET, clock=clock
        )
    return store


async def events(db: Database) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(key, type, occurred_at, customer, data) of every event applied, in order."""
    async with db.read() as session:
        rows = (await session.execute(select(Event).order_by(Event.id))).scalars().all()
        return [
            (e.key, e.type, e.occurred_at.isoformat(), e.customer, e.data)
            for e in rows
            if not e.key.startswith("derived:")
        ]


async def order_state(db: Database) -> list[tuple[str, str, list[str]]]:
    """(order id, status, its status history in order) of every order, by order id."""
    async with db.read() as session:
        orders = (await session.execute(select(Order).order_by(Order.order_id))).scalars().all()
        out = []
        for order in orders:
            history = await session.scalars(
                select(OrderStatusChange.status)
                .where(OrderStatusChange.order_id == order.id)
                .order_by(OrderStatusChange.occurred_at, OrderStatusChange.id)
            )
            out.append((order.order_id, order.status, list(history)))
        return out


def outcomes(response: httpx.Response) -> list[tuple[str, str, str]]:
    assert response.status_code == 200, response.text
    return [(e["type"], e["key"], e["outcome"]) for e in response.json()["events"]]


async def test_an_order_as_woocommerce_sends_it_is_placed_and_paid(
    client: httpx.AsyncClient, db: Database, workers: Workers, shop: StoreKey
) -> None:
    response = await deliver(client, shop, "order.created", sample("order"))
    placed = "woocommerce:order:1042:placed:56874a33d24ee130"
    assert outcomes(response) == [
        ("order.placed", placed, "stored"),
        ("order.paid", "woocommerce:order:1042:paid", "stored"),
    ]
    assert response.json()["notes"] == []
    await workers.drain()

    assert await events(db) == [
        # Placed when paid (a minute after checkout created it).
        (placed, "order.placed", "2026-11-23T08:56:10+00:00", CUSTOMER, PLACED_DATA),
        (
            "woocommerce:order:1042:paid",
            "order.paid",
            "2026-11-23T08:56:10+00:00",
            CUSTOMER,
            {"order_id": "1042", "amount": "1174.81"},
        ),
    ]
    async with db.read() as session:
        (customer,) = (await session.execute(select(Customer))).scalars().all()
        source = await session.scalar(select(Event.source).limit(1))
    assert (customer.external_id, customer.email, customer.phone) == (
        "57",
        "ayse@example.com",
        "+905321112233",
    )
    assert source == "woocommerce"
    assert await order_state(db) == [("1042", "paid", ["placed", "paid"])]


async def test_customers_and_products_as_woocommerce_sends_them(
    client: httpx.AsyncClient, db: Database, workers: Workers, shop: StoreKey
) -> None:
    customer = sample("customer")
    assert outcomes(await deliver(client, shop, "customer.created", customer)) == [
        ("customer.created", "woocommerce:customer:57:created", "stored")
    ]
    # WooCommerce saves the customer (and sends this) on each visit: the same profile is
    # the same event.
    visited = copy.deepcopy(customer)
    visited["meta_data"][0]["value"] = "1795690000"
    visited["date_modified_gmt"] = "2026-11-23T10:00:00"
    first = outcomes(await deliver(client, shop, "customer.updated", customer))
    again = outcomes(await deliver(client, shop, "customer.updated", visited))
    updated = "woocommerce:customer:57:updated:c0ccdd32511e5f80"
    assert first == [("customer.updated", updated, "stored")]
    assert again == [("customer.updated", updated, "duplicate")]
    product = outcomes(await deliver(client, shop, "product.updated", sample("product")))
    assert product == [("product.updated", "woocommerce:product:31:adbc8c4d5f2c6c5f", "stored")]
    await workers.drain()

    profile = {k: v for k, v in CUSTOMER.items()}
    assert [(k, t, c, d) for k, t, _, c, d in await events(db)] == [
        ("woocommerce:customer:57:created", "customer.created", profile, {}),
        (updated, "customer.updated", profile, {}),
        (
            "woocommerce:product:31:adbc8c4d5f2c6c5f",
            "product.updated",
            {},
            {
                "product_id": "31",
                "title": "Seramik kupa",
                "url": "https://dukkan.example/urun/seramik-kupa/",
                "image_url": "https://dukkan.example/wp-content/uploads/2026/10/kupa.jpg",
                "price": "249.95",
                "inventory": 14,
                "tags": ["seramik", "hediye"],
            },
        ),
    ]


async def test_a_wrong_signature_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, db: Database, store: StoreKey, shop: StoreKey
) -> None:
    order = sample("order")
    wrong = await deliver(client, shop, "order.created", order, secret="another secret")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"
    assert SECRET not in wrong.text
    body = json.dumps(order).encode()
    # Signed, then changed on the way.
    tampered = await client.post(
        f"/v1/integrations/woocommerce/{shop.id}",
        content=body.replace(b"1174.81", b"1.00"),
        headers={"X-WC-Webhook-Topic": "order.created", "X-WC-Webhook-Signature": signature(body)},
    )
    unsigned = await client.post(
        f"/v1/integrations/woocommerce/{shop.id}",
        content=body,
        headers={"X-WC-Webhook-Topic": "order.created"},
    )
    # A store with no WooCommerce connection has no secret to sign with.
    other = await client.post(
        f"/v1/integrations/woocommerce/{shop.id + 1}",
        content=body,
        headers={"X-WC-Webhook-Topic": "order.created", "X-WC-Webhook-Signature": signature(body)},
    )
    assert [r.status_code for r in (tampered, unsigned, other)] == [401, 401, 401]
    assert await stored_keys(db) == []


async def test_the_activation_ping_is_answered_200_and_stores_nothing(
    client: httpx.AsyncClient, db: Database, store: StoreKey
) -> None:
    # Sent unsigned when a webhook is saved, before (or without) a secret set in ulak;
    # WooCommerce keeps the webhook only on a 200.
    response = await client.post(
        f"/v1/integrations/woocommerce/{store.id}",
        content=b"webhook_id=7",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
        },
    )
    assert response.status_code == 200
    assert response.json() == {"ping": "ok"}
    # Anything else unsigned is no ping.
    other = await client.post(
        f"/v1/integrations/woocommerce/{store.id}",
        content=b"webhook_id=7&status=completed",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert other.status_code == 401
    assert await stored_keys(db) == []


async def test_a_replayed_delivery_is_one_event_and_a_status_seen_before_is_not_sent_again(
    client: httpx.AsyncClient, db: Database, workers: Workers, shop: StoreKey
) -> None:
    order = sample("order")
    await deliver(client, shop, "order.created", order)
    replay = await deliver(client, shop, "order.created", order)
    # WooCommerce sends order.updated on every save: a note added, the same status.
    noted = copy.deepcopy(order)
    noted["date_modified_gmt"] = "2026-11-23T09:02:00"
    noted["meta_data"].append({"id": 8840, "key": "_edit_lock", "value": "1795683720:1"})
    saved = await deliver(client, shop, "order.updated", noted)
    placed = "woocommerce:order:1042:placed:56874a33d24ee130"
    for response in (replay, saved):
        assert outcomes(response) == [
            ("order.placed", placed, "duplicate"),
            ("order.paid", "woocommerce:order:1042:paid", "duplicate"),
        ]
    shipped = completed(order, TRACKING)
    await deliver(client, shop, "order.updated", shipped)
    resaved = copy.deepcopy(shipped)
    resaved["date_modified_gmt"] = "2026-11-23T11:00:00"
    shipment_key = "woocommerce:order:1042:shipped:8d1f6b0c2e4a9f7d3b5c1e0a2f4d6b8c"
    assert outcomes(await deliver(client, shop, "order.updated", resaved)) == [
        ("order.placed", placed, "duplicate"),
        ("order.paid", "woocommerce:order:1042:paid", "duplicate"),
        ("order.shipped", shipment_key, "duplicate"),
    ]
    await workers.drain()

    assert [(k, t) for k, t, *_ in await events(db)] == [
        (placed, "order.placed"),
        ("woocommerce:order:1042:paid", "order.paid"),
        (shipment_key, "order.shipped"),
    ]
    assert await order_state(db) == [("1042", "shipped", ["placed", "paid", "shipped"])]
    # One confirmation, one shipped email (sent in the same run, in either order).
    assert sorted(m["Subject"] for m in await dev_inbox(db)) == [
        "Siparişiniz alındı – #1042",
        "Siparişiniz kargoya verildi – #1042",
    ]


async def test_webhooks_out_of_order_end_as_the_newest_says(
    client: httpx.AsyncClient, db: Database, workers: Workers, shop: StoreKey
) -> None:
    order = sample("order")
    # The completed order's webhook arrives first, then the processing one it followed.
    late = await deliver(client, shop, "order.updated", completed(order, TRACKING))
    early = await deliver(client, shop, "order.created", order)
    placed = "woocommerce:order:1042:placed:56874a33d24ee130"
    shipment_key = "woocommerce:order:1042:shipped:8d1f6b0c2e4a9f7d3b5c1e0a2f4d6b8c"
    assert outcomes(late) == [
        ("order.placed", placed, "stored"),
        ("order.paid", "woocommerce:order:1042:paid", "stored"),
        ("order.shipped", shipment_key, "stored"),
    ]
    assert outcomes(early) == [
        ("order.placed", placed, "duplicate"),
        ("order.paid", "woocommerce:order:1042:paid", "duplicate"),
    ]
    # Cancelled, then a late processing webhook: the order stays cancelled.
    other = copy.deepcopy(order)
    other.update(id=1043, number="1043", date_paid_gmt=None, status="on-hold")
    cancelled = copy.deepcopy(other)
    cancelled.update(status="cancelled", date_modified_gmt="2026-11-23T09:40:00")
    await deliver(client, shop, "order.updated", cancelled)
    await deliver(client, shop, "order.created", other)
    await workers.drain()

    assert await order_state(db) == [
        ("1042", "shipped", ["placed", "paid", "shipped"]),
        ("1043", "cancelled", ["placed", "cancelled"]),
    ]


async def test_each_tracked_parcel_is_a_shipment_with_its_link(
    client: httpx.AsyncClient, db: Database, workers: Workers, shop: StoreKey
) -> None:
    second = {
        "tracking_provider": "",
        "custom_tracking_provider": "Aras Kargo",
        "custom_tracking_link": "https://kargotakip.araskargo.com.tr/mainpage.aspx?code=AR778",
        "tracking_number": "AR778",
        "date_shipped": "1795651200",
        "tracking_id": "f00d",
    }
    tracking = {**TRACKING, "value": [*TRACKING["value"], second]}
    shipped = completed(sample("order"), tracking)
    shipped["status"] = "partial-shipped"
    response = await deliver(client, shop, "order.updated", shipped)
    assert [t for t, _, _ in outcomes(response)] == [
        "order.placed",
        "order.shipped",
        "order.shipped",
    ]
    await workers.drain()

    async with db.read() as session:
        shipments = (await session.execute(select(Shipment).order_by(Shipment.id))).scalars()
        assert [
            (s.shipment_id, s.carrier, s.tracking_number, s.tracking_url) for s in shipments
        ] == [
            ("1042-8d1f6b0c2e4a9f7d3b5c1e0a2f4d6b8c", "yurtici-kargo", "YK123456789", None),
            (
                "1042-f00d",
                "Aras Kargo",
                "AR778",
                "https://kargotakip.araskargo.com.tr/mainpage.aspx?code=AR778",
            ),
        ]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (lambda o: o.update(total=1174.81), 422, "total: Value error, an amount must be"),
        (lambda o: o.pop("id"), 422, "id: Field required"),
        (lambda o: o.update(line_items={"a": 1}), 422, "line_items: Input should be a valid list"),
        (lambda o: o.update(date_created_gmt="yesterday"), 422, "date_created_gmt: Input"),
        (
            lambda o: o["line_items"][0].update(quantity="two"),
            422,
            "line_items[0].quantity: Input should be a valid integer",
        ),
        (
            lambda o: (o.update(customer_id=0), o["billing"].update(email="", phone="")),
            422,
            "order 1042 names no customer",
        ),
        (lambda o: o.update(total="-5.00"), 422, "data.total"),
    ],
)
async def test_fields_missing_or_of_the_wrong_type_are_a_clear_422(
    client: httpx.AsyncClient,
    db: Database,
    shop: StoreKey,
    change: Any,
    status: int,
    message: str,
) -> None:
    order = sample("order")
    change(order)
    response = await deliver(client, shop, "order.created", order)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert await stored_keys(db) == []


async def test_bodies_that_are_no_woocommerce_resource(
    client: httpx.AsyncClient, db: Database, shop: StoreKey
) -> None:
    not_json = await deliver(client, shop, "order.created", None, body=b"{not json")
    legacy = await deliver(client, shop, "order.created", {"order": sample("order")})
    a_list = await deliver(client, shop, "order.created", [1, 2])
    no_topic = await client.post(
        f"/v1/integrations/woocommerce/{shop.id}",
        content=b"{}",
        headers={"X-WC-Webhook-Signature": signature(b"{}")},
    )
    assert [
        (r.status_code, r.json()["error"]["message"]) for r in (not_json, legacy, a_list, no_topic)
    ] == [
        (400, "the body is not valid JSON"),
        (
            422,
            "this is the legacy REST API's format: set the webhook's API version to "
            "'WP REST API Integration v3'",
        ),
        (422, "a order.created webhook's body must be a JSON object"),
        (422, "the X-WC-Webhook-Topic header is missing"),
    ]
    assert await stored_keys(db) == []


async def test_what_ulak_does_not_read_is_answered_200_with_the_reason(
    client: httpx.AsyncClient, db: Database, shop: StoreKey
) -> None:
    pending = sample("order")
    pending.update(status="pending", date_paid_gmt=None)
    answers = [
        await deliver(client, shop, "order.created", pending),
        await deliver(client, shop, "coupon.created", {"id": 5120, "code": "hosgeldin10"}),
        await deliver(client, shop, "order.deleted", {"id": 1042}),
    ]
    assert [(r.status_code, r.json()["events"], r.json()["notes"]) for r in answers] == [
        (200, [], ["the order awaits payment: not placed yet"]),
        (200, [], ["the topic 'coupon.created' is not one ulak reads"]),
        (200, [], ["order.deleted is not read: ulak keeps what it was told"]),
    ]
    assert await stored_keys(db) == []


async def test_a_status_event_whose_details_changed_keeps_the_first_and_answers_200(
    client: httpx.AsyncClient, db: Database, workers: Workers, shop: StoreKey
) -> None:
    cancelled = sample("order")
    cancelled.update(status="cancelled", date_paid_gmt=None)
    await deliver(client, shop, "order.updated", cancelled)
    # Saved again later while cancelled: the cancellation's time moved with the save.
    cancelled["date_modified_gmt"] = "2026-11-23T12:00:00"
    again = await deliver(client, shop, "order.updated", cancelled)
    assert outcomes(again) == [
        ("order.cancelled", "woocommerce:order:1042:cancelled", "kept_earlier")
    ]
    await workers.drain()
    assert [(k, t, at) for k, t, at, _, _ in await events(db)] == [
        ("woocommerce:order:1042:cancelled", "order.cancelled", "2026-11-23T08:56:12+00:00")
    ]


async def test_a_shop_event_cannot_take_a_woocommerce_id(
    client: httpx.AsyncClient, db: Database, store: StoreKey
) -> None:
    event = {
        "id": "woocommerce:order:1042:paid",
        "type": "order.paid",
        "customer": {"id": "57"},
        "data": {"order_id": "1042"},
    }
    response = await client.post("/v1/events", json=event, headers=store.auth)
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {
            "path": "id",
            "message": "ids starting with 'ulak:', 'derived:', 'segment:', 'shopify:',"
            " 'woocommerce:' are reserved for ulak's own",
        }
    ]


async def test_an_order_created_then_shipped_with_tracking_sends_both_emails(
    client: httpx.AsyncClient, db: Database, workers: Workers, shop: StoreKey
) -> None:
    order = sample("order")
    assert (await deliver(client, shop, "order.created", order)).status_code == 200
    await workers.drain()
    assert (
        await deliver(client, shop, "order.updated", completed(order, TRACKING))
    ).status_code == 200
    await workers.drain()

    inbox = await dev_inbox(db)
    assert [(m["To"], m["Subject"]) for m in inbox] == [
        ("ayse@example.com", "Siparişiniz alındı – #1042"),
        ("ayse@example.com", "Siparişiniz kargoya verildi – #1042"),
    ]
    confirmation, shipped = (text_of(m, "html") for m in inbox)
    assert "Seramik kupa" in confirmation
    assert "Bakır çaydanlık - 1,5 L" in confirmation
    assert "1.174,81 ₺" in confirmation
    assert "YK123456789" in shipped
    assert (
        "https://www.yurticikargo.com/tr/online-servisler/gonderi-sorgula?code=YK123456789"
        in shipped
    )


async def test_a_nul_character_is_a_422_not_a_database_error(
    client: httpx.AsyncClient, db: Database, shop: StoreKey
) -> None:
    # PostgreSQL's text and JSON hold no NUL: refused before the database is reached.
    product = sample("product")
    product["name"] = "Seramik\u0000kupa"
    response = await deliver(client, shop, "product.updated", product)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        "the body holds a NUL character (\\u0000), which no WooCommerce field has"
    )
    assert await stored_keys(db) == []


async def test_an_order_paid_days_after_checkout_is_confirmed_when_paid(
    client: httpx.AsyncClient, db: Database, workers: Workers, shop: StoreKey
) -> None:
    # Left pending at checkout two days ago, paid now through WooCommerce's payment link:
    # the confirmation is for now, not skipped as two days late.
    order = sample("order")
    order.update(date_created_gmt="2026-11-21T08:55:00", date_paid_gmt="2026-11-23T08:58:00")
    assert (await deliver(client, shop, "order.updated", order)).status_code == 200
    await workers.drain()

    assert [(m["To"], m["Subject"]) for m in await dev_inbox(db)] == [
        ("ayse@example.com", "Siparişiniz alındı – #1042")
    ]


@pytest.mark.parametrize(
    ("status", "types"),
    [
        ("pending", []),
        ("failed", []),
        ("checkout-draft", []),
        ("on-hold", ["order.placed"]),
        ("processing", ["order.placed", "order.paid"]),
        ("wc-processing", ["order.placed", "order.paid"]),
        ("completed", ["order.placed", "order.paid", "order.shipped"]),
        ("hazirlaniyor", ["order.placed", "order.preparing"]),
        ("kargoya-verildi", ["order.placed", "order.shipped"]),
        ("delivered", ["order.placed", "order.shipped", "order.delivered"]),
        ("cancelled", ["order.cancelled"]),
        ("refunded", ["order.refunded"]),
        ("awaiting-pickup", ["order.placed"]),
    ],
)
def test_each_status_maps_to_its_events(status: str, types: list[str]) -> None:
    order = sample("order")
    order["status"] = status
    translation = translate("order.updated", order)
    assert [e.type for e in translation.events] == types
    notes = {
        "pending": ["the order awaits payment: not placed yet"],
        "failed": ["the payment failed: not placed"],
        "checkout-draft": ["a checkout in progress: not placed yet"],
        "awaiting-pickup": [
            "status 'awaiting-pickup' is not one ulak maps: the order is placed only"
        ],
    }
    assert translation.notes == notes.get(status, [])


def test_a_refund_is_the_refunds_sum_and_a_line_without_a_name_is_named_by_its_sku() -> None:
    order = sample("order")
    order["status"] = "refunded"
    order["refunds"] = [
        {"id": 1101, "reason": "", "total": "-1000.00"},
        {"id": 1102, "total": "-174.81"},
    ]
    (refund,) = translate("order.updated", order).events
    assert refund.data == {"order_id": "1042", "amount": "1174.81"}
    order = sample("order")
    order["line_items"][0]["name"] = ""
    placed = translate("order.created", order).events[0]
    assert [i["title"] for i in placed.data["items"]] == ["KUPA-01", "Bakır çaydanlık - 1,5 L"]


async def test_an_address_woocommerce_took_but_ulak_refuses_is_left_out_not_a_422(
    client: httpx.AsyncClient, db: Database, workers: Workers, shop: StoreKey
) -> None:
    # An order created in the admin is not validated: WooCommerce keeps `a..b@example.com`.
    order = sample("order")
    order["billing"]["email"] = "a..b@example.com"
    response = await deliver(client, shop, "order.created", order)
    assert [(t, o) for t, _, o in outcomes(response)] == [
        ("order.placed", "stored"),
        ("order.paid", "stored"),
    ]
    assert response.json()["notes"] == [REFUSED_EMAIL.format(about="order 1042")]
    # Nothing else names the customer (a guest without a phone): a 200 saying so, since a
    # 422 pushes WooCommerce toward disabling the webhook.
    guest = sample("order")
    guest["id"] = 1043
    guest["customer_id"] = 0
    guest["billing"]["email"] = "a..b@example.com"
    guest["billing"]["phone"] = guest["shipping"]["phone"] = ""
    unnamed = await deliver(client, shop, "order.created", guest)
    assert outcomes(unnamed) == []
    assert unnamed.json()["notes"] == [
        REFUSED_EMAIL.format(about="order 1043"),
        "order 1043 names no other customer ulak accepts: nothing stored",
    ]
    customer = sample("customer")
    customer["email"] = customer["billing"]["email"] = "a..b@example.com"
    created = await deliver(client, shop, "customer.created", customer)
    assert outcomes(created) == [("customer.created", "woocommerce:customer:57:created", "stored")]
    assert created.json()["notes"] == [REFUSED_EMAIL.format(about="customer 57")]
    await workers.drain()

    without_email = {k: v for k, v in CUSTOMER.items() if k != "email"}
    assert [(t, c, d) for _, t, _, c, d in await events(db)] == [
        ("order.placed", without_email, PLACED_DATA),
        ("order.paid", without_email, {"order_id": "1042", "amount": "1174.81"}),
        ("customer.created", without_email, {}),
    ]
    async with db.read() as session:
        (stored,) = (await session.execute(select(Customer))).scalars().all()
    assert (stored.external_id, stored.email, stored.phone) == ("57", None, "+905321112233")
    assert await order_state(db) == [("1042", "paid", ["placed", "paid"])]


REFUSED_EMAIL = (
    "{about}: the email is refused (value is not a valid email address: An email address "
    "cannot have two periods in a row.): left out"
)
