"""A customer's realistic history with a shop, for the KVKK/GDPR tests: sign-up, consent
with proof, a cart, an order with an address, its shipment, a back-in-stock request, and
the emails all that sends (rendered into the dev inbox)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx

from tests.support import StoreKey
from ulak.clock import FrozenClock
from ulak.webhooks.service import add_endpoint
from ulak.worker import Workers

EMAIL = "gulizar.senyurt@posta.example"
# As the shop's checkout wrote it; ulak keeps the lower-cased address.
EMAIL_AS_TYPED = "Gulizar.Senyurt@Posta.example"
PHONE = "0532 765 43 21"
FIRST, LAST = "Gülizar", "Şenyurt"
STREET = "Bağdat Caddesi No 412 Daire 7"
IP = "203.0.113.77"
SHOP_ID = "musteri-77"
# Port 9 (discard): closed here, so each delivery fails at once and stays queued.
WEBHOOK_URL = "http://127.0.0.1:9/hook"


def customer(**extra: Any) -> dict[str, Any]:
    return {
        "id": SHOP_ID,
        "email": EMAIL,
        "phone": PHONE,
        "first_name": FIRST,
        "last_name": LAST,
        "locale": "tr",
        "birthday": "1990-04-12",
        "attributes": {"favourite_colour": "lacivert", "note": f"{FIRST} kapıda öder"},
        **extra,
    }


def needles() -> list[str]:
    """Every form of what identifies the customer that the files must not hold after the
    erasure: as given, lower-cased, each phone form, and JSON's \\u escapes of each."""
    plain = {
        EMAIL,
        EMAIL_AS_TYPED,
        PHONE,
        "+905327654321",
        "905327654321",
        "05327654321",
        "5327654321",
        FIRST,
        LAST,
        STREET,
        IP,
        SHOP_ID,
    }
    plain |= {s.lower() for s in plain}
    escaped = {json.dumps(s)[1:-1] for s in plain}
    return sorted(plain | escaped)


async def post(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def history(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    """The history; it ends with the thank-you email queued (its journey's step ran, the
    sender has not claimed it yet): a pending commercial email. The store has a webhook
    endpoint that does not answer (nothing listens on its port), so the `message.sent`
    payloads naming the customer wait in `webhook_deliveries`."""
    async with workers.ctx.database.transaction() as session:
        await add_endpoint(
            session,
            store_id=store.id,
            url=WEBHOOK_URL,
            events=["*"],
            development=True,
            clock=clock,
        )
    await post(
        client,
        store,
        {"id": "evt-signup", "type": "customer.created", "customer": customer()},
        {
            "id": "evt-consent",
            "type": "consent.updated",
            "customer": {"id": SHOP_ID},
            "data": {
                "channel": "email",
                "status": "granted",
                "source": "signup_form",
                "proof": {
                    "ip": IP,
                    "form": "Kampanyalardan haberdar olmak istiyorum",
                    "email": EMAIL,
                },
            },
        },
        {
            "id": "evt-stock",
            "type": "product.updated",
            "data": {"product_id": "p-kupa", "title": "Seramik kupa", "inventory": 0},
        },
    )
    await workers.drain()
    asked = await client.post(
        "/v1/back-in-stock",
        json={"customer": {"id": SHOP_ID, "email": EMAIL}, "product_id": "p-kupa", "id": "bis-1"},
        headers=store.auth,
    )
    assert asked.status_code == 202, asked.text
    clock.travel(timedelta(minutes=5))
    await post(
        client,
        store,
        {
            "id": "evt-cart",
            "type": "cart.updated",
            "customer": {"id": SHOP_ID},
            "data": {
                "cart_id": "cart-77",
                "items": [{"product_id": "p-1", "title": "Seramik kupa", "price": "249.95"}],
                "total": "249.95",
                "recovery_url": f"https://dukkan.example/sepet/cart-77?e={EMAIL}",
            },
        },
    )
    await workers.drain()
    clock.travel(timedelta(minutes=5))
    await post(
        client,
        store,
        {
            "id": "evt-order",
            "type": "order.placed",
            "customer": {"id": SHOP_ID, "email": EMAIL_AS_TYPED, "first_name": FIRST},
            "data": {
                "order_id": "1077",
                "number": "#1077",
                "cart_id": "cart-77",
                "items": [
                    {
                        "product_id": "p-1",
                        "title": "Seramik kupa",
                        "quantity": 2,
                        "price": "249.95",
                    },
                    {
                        "product_id": "p-2",
                        "title": "Bakır çaydanlık",
                        "quantity": 1,
                        "price": "750.00",
                    },
                ],
                "subtotal": "1249.90",
                "total": "1249.90",
                "currency": "TRY",
                "payment_method": "credit_card",
                "shipping_address": {
                    "name": f"{FIRST} {LAST}",
                    "line1": STREET,
                    "city": "İstanbul",
                    "country": "TR",
                    "phone": PHONE,
                },
                "gift_note": f"Sevgili {FIRST}, iyi ki doğdun",
            },
        },
    )
    await workers.drain()
    clock.travel(timedelta(minutes=30))
    await post(
        client,
        store,
        {
            "id": "evt-shipped",
            "type": "order.shipped",
            "customer": {"id": SHOP_ID},
            "data": {
                "order_id": "1077",
                "shipment_id": "shp-77",
                "carrier": "Yurtiçi Kargo",
                "tracking_number": "YK123456789",
                "tracking_url": "https://kargo.example/YK123456789",
            },
        },
        {
            "id": "evt-shipment",
            "type": "shipment.updated",
            "customer": {"id": SHOP_ID},
            "data": {
                "shipment_id": "shp-77",
                "order_id": "1077",
                "status": "in_transit",
                "location": f"{STREET}, Kadıköy",
                "message": f"Alıcı {FIRST} {LAST} adresinde yoktu",
            },
        },
    )
    await workers.drain()
    # The thank-you comes 3 hours after the order: its step runs, the sender not yet.
    clock.travel(timedelta(hours=3))
    await workers.once("timers.fire_due")
    await workers.once("events.apply")
    await workers.once("journeys.run_due")
