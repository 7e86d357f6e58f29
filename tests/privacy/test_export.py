"""KVKK/GDPR access: `GET /v1/customers/{ref}/export` and `ulak customers export` give
everything ulak holds on the customer, and nothing of another store's."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.privacy.scenario import (
    EMAIL,
    FIRST,
    IP,
    LAST,
    PHONE,
    SHOP_ID,
    STREET,
    customer,
    history,
    post,
)
from tests.support import StoreKey, make_store, ulak_cli
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.worker import Workers

SIGNED_UP = "2026-11-23T09:00:00+00:00"
CARTED = "2026-11-23T09:05:00+00:00"
ORDERED = "2026-11-23T09:10:00+00:00"
SHIPPED = "2026-11-23T09:40:00+00:00"
THANKED = "2026-11-23T12:40:00+00:00"


async def test_the_export_holds_everything_ulak_keeps_on_the_customer(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await history(client, store, workers, clock)
    response = await client.get(f"/v1/customers/{SHOP_ID}/export", headers=store.auth)
    assert response.status_code == 200, response.text
    data = response.json()
    assert sorted(data) == [
        "back_in_stock",
        "carts",
        "consent_history",
        "coupons",
        "enrollments",
        "events",
        "iys_registrations",
        "messages",
        "orders",
        "privacy_requests",
        "profile",
        "returns",
        "reviews",
        "suppressions",
        "survey_answers",
        "timers",
        "topic_preferences",
        "webhook_deliveries",
    ]
    profile = data["profile"]
    assert profile == {
        "id": profile["id"],
        "external_id": SHOP_ID,
        "email": EMAIL,
        "phone": "+905327654321",
        "first_name": FIRST,
        "last_name": LAST,
        "locale": "tr",
        "timezone": None,
        "birthday": "1990-04-12",
        "attributes": {"favourite_colour": "lacivert", "note": f"{FIRST} kapıda öder"},
        "tags": [],
        "consent": {
            "email": {
                "status": "granted",
                "source": "signup_form",
                "at": SIGNED_UP,
                "since": SIGNED_UP,
                "recipient_type": "individual",
            }
        },
        "created_at": SIGNED_UP,
        "updated_at": SHIPPED,
        "merged_profiles": [],
    }
    assert data["consent_history"] == [
        {
            "channel": "email",
            "recipient_type": "individual",
            "status": "granted",
            "source": "signup_form",
            "proof": {"ip": IP, "form": "Kampanyalardan haberdar olmak istiyorum", "email": EMAIL},
            "occurred_at": SIGNED_UP,
            "recorded_at": SIGNED_UP,
        }
    ]
    assert data["iys_registrations"] == []  # the store has no İYS account
    (order,) = data["orders"]
    assert order == {
        "order_id": "1077",
        "number": "#1077",
        "status": "shipped",
        "channel": "web",
        "total": order["total"],
        "currency": "TRY",
        "discount_codes": [],
        "shipping_address": {
            "name": f"{FIRST} {LAST}",
            "line1": STREET,
            "city": "İstanbul",
            "country": "TR",
            "phone": PHONE,
        },
        "payment_method": "credit_card",
        "data": {"gift_note": f"Sevgili {FIRST}, iyi ki doğdun"},
        "placed_at": ORDERED,
        "items": [
            {
                "product_id": "p-1",
                "variant_id": None,
                "sku": None,
                "title": "Seramik kupa",
                "quantity": 2,
                "price": order["items"][0]["price"],
            },
            {
                "product_id": "p-2",
                "variant_id": None,
                "sku": None,
                "title": "Bakır çaydanlık",
                "quantity": 1,
                "price": order["items"][1]["price"],
            },
        ],
        "status_history": [
            {"status": "placed", "occurred_at": ORDERED, "note": None},
            {"status": "shipped", "occurred_at": SHIPPED, "note": None},
        ],
        "shipments": [
            {
                "shipment_id": "shp-77",
                "carrier": "Yurtiçi Kargo",
                "tracking_number": "YK123456789",
                "tracking_url": "https://kargo.example/YK123456789",
                "status": "in_transit",
                "location": f"{STREET}, Kadıköy",
                "message": f"Alıcı {FIRST} {LAST} adresinde yoktu",
                "estimated_delivery": None,
                "updated_at": SHIPPED,
                "checkpoints": [
                    {
                        "status": "in_transit",
                        "location": f"{STREET}, Kadıköy",
                        "message": f"Alıcı {FIRST} {LAST} adresinde yoktu",
                        "occurred_at": SHIPPED,
                    }
                ],
            }
        ],
    }
    # Money as the database keeps it (NUMERIC(18, 4) on PostgreSQL): the same amounts.
    amounts = [order["total"], order["items"][0]["price"], order["items"][1]["price"]]
    assert [Decimal(a) for a in amounts] == [Decimal("1249.90"), Decimal("249.95"), Decimal(750)]
    (cart,) = data["carts"]
    assert (cart["cart_id"], cart["status"], cart["recovery_url"]) == (
        "cart-77",
        "ordered",
        f"https://dukkan.example/sepet/cart-77?e={EMAIL}",
    )
    assert [(e["key"], e["type"], e["status"]) for e in data["events"]] == [
        ("evt-signup", "customer.created", "applied"),
        ("evt-consent", "consent.updated", "applied"),
        ("bis-1", "back_in_stock.requested", "applied"),
        ("evt-cart", "cart.updated", "applied"),
        ("evt-order", "order.placed", "applied"),
        ("evt-shipped", "order.shipped", "applied"),
        ("evt-shipment", "shipment.updated", "applied"),
    ]
    assert data["events"][0]["customer"] == customer()
    assert [(e["journey"], e["status"]) for e in data["enrollments"]] == [
        ("welcome", "completed"),
        ("order-confirmation", "completed"),
        ("thank-you", "waiting"),
        ("order-shipped", "completed"),
    ]
    assert all(e["steps"] for e in data["enrollments"])
    assert [
        (m["template"], m["status"], m["to_address"], m["subject"]) for m in data["messages"]
    ] == [
        ("welcome", "sent", EMAIL, "Ayşe'nin Dükkanı ailesine hoş geldiniz: %10 indirim sizin"),
        ("order_confirmation", "sent", EMAIL, "Siparişiniz alındı – #1077"),
        ("order_shipped", "sent", EMAIL, "Siparişiniz kargoya verildi – #1077"),
        ("thank_you", "queued", EMAIL, f"Teşekkür ederiz, {FIRST}"),
    ]
    # What each said is theirs too.
    assert f"{FIRST} {LAST}\n{STREET}" in data["messages"][1]["text"]
    (coupon,) = data["coupons"]
    assert (coupon["status"], coupon["journey"], coupon["code"][:10]) == (
        "issued",
        "welcome",
        "HOSGELDIN-",
    )
    assert coupon["code"] in data["messages"][0]["text"]
    assert data["back_in_stock"] == [
        {
            "product_id": "p-kupa",
            "variant_id": None,
            "status": "waiting",
            "requested_by": EMAIL,
            "created_at": CARTED,
            "expires_at": "2027-02-21T09:05:00+00:00",
            "notified_at": None,
        }
    ]
    assert [(t["kind"], t["due_at"]) for t in data["timers"]] == [
        ("customer.lapsed", "2027-02-21T09:10:00+00:00"),
        ("customer.birthday", "2027-04-11T21:00:00+00:00"),
    ]
    assert data["suppressions"] == []
    assert (data["topic_preferences"], data["privacy_requests"]) == ([], [])
    # The store's webhook endpoint was told of each sent message (it never answered).
    assert [
        (d["event_type"], d["status"], d["payload"]["template"], d["payload"]["customer"])
        for d in data["webhook_deliveries"]
    ] == [
        (
            "message.sent",
            "pending",
            template,
            {"id": SHOP_ID, "email": EMAIL, "phone": "+905327654321"},
        )
        for template in ("welcome", "order_confirmation", "order_shipped")
    ]
    # By email too, as the profile API names a customer.
    by_email = await client.get(f"/v1/customers/{EMAIL}/export", headers=store.auth)
    assert by_email.json() == data


async def test_another_stores_key_finds_no_such_customer(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database, clock: FrozenClock
) -> None:
    await post(
        client, store, {"id": "evt-signup", "type": "customer.created", "customer": customer()}
    )
    await workers.drain()
    other = await make_store(db, clock, name="Başka Dükkan")
    for method in ("GET", "DELETE"):
        path = f"/v1/customers/{SHOP_ID}" + ("/export" if method == "GET" else "")
        refused = await client.request(method, path, headers=other.auth)
        assert refused.status_code == 404, (method, refused.text)
        assert refused.json()["error"]["message"] == f"no customer {SHOP_ID!r} in this store"
    assert (await client.get(f"/v1/customers/{SHOP_ID}/export")).status_code == 401
    await workers.drain()
    mine = await client.get(f"/v1/customers/{SHOP_ID}/export", headers=store.auth)
    assert mine.json()["profile"]["email"] == EMAIL


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_cli_exports_to_a_file_only_its_owner_reads(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    database_url: str,
    tmp_path: Path,
) -> None:
    await post(
        client, store, {"id": "evt-signup", "type": "customer.created", "customer": customer()}
    )
    await workers.drain()
    env = {"ULAK_DATABASE_URL": database_url}
    out = tmp_path / "export.json"
    args = ("customers", "export", "--store", str(store.id), EMAIL, "--out", str(out))
    result = await asyncio.to_thread(ulak_cli, *args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"written to {out}\n"
    assert out.stat().st_mode & 0o777 == 0o600
    written = json.loads(out.read_text(encoding="utf-8"))
    assert (written["profile"]["first_name"], written["events"][0]["key"]) == (FIRST, "evt-signup")
    unknown = ("customers", "export", "--store", str(store.id), "yok@example.com")
    missing = await asyncio.to_thread(ulak_cli, *unknown, env=env)
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == "error: no customer 'yok@example.com' in this store\n"
