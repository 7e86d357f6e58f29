"""Order emails as the customer's mailbox gets them: their headers (who an answer goes to,
what a vacation responder should do), a parcel's own items, and the order's details
(country, payment method, unit prices, the order's page)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import httpx

from tests.support import StoreKey, dev_inbox, make_store, order_placed, text_of
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.errors import NotFound
from ulak.messages.service import (
    customer_of_unsubscribe_subject,
    reply_address,
    unsubscribe_mailto,
)
from ulak.stores.models import Store
from ulak.worker import Workers


async def post(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


def customer() -> dict[str, Any]:
    return {"id": "c-1042", "email": "ayse@example.com", "first_name": "Ayşe", "locale": "tr"}


def placed(**data: Any) -> dict[str, Any]:
    """An order of two lines, each a variant, as a shop that ships in parts sends it."""
    items = [
        {"product_id": "p-1", "variant_id": "v-1", "sku": "KUPA-01", "title": "Seramik kupa",
         "quantity": 2, "price": "249.95", "image_url": "https://cdn.dukkan.example/kupa.jpg"},
        {"product_id": "p-2", "variant_id": "v-2", "sku": "CAY-02", "title": "Bakır çaydanlık",
         "quantity": 1, "price": "750.00"},
    ]  # fmt: skip
    return order_placed("1001", items=items, **data)


def shipped(shipment_id: str, **data: Any) -> dict[str, Any]:
    return {
        "id": f"evt-shipped-{shipment_id}",
        "type": "order.shipped",
        "customer": customer(),
        "data": {
            "order_id": "1001",
            "shipment_id": shipment_id,
            "carrier": "Yurtiçi Kargo",
            "tracking_number": shipment_id,
            **data,
        },
    }


def shipment_updated(shipment_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": f"evt-shipment-{shipment_id}",
        "type": "shipment.updated",
        "customer": customer(),
        "data": {
            "shipment_id": shipment_id,
            "order_id": "1001",
            "status": "info_received",
            "items": items,
        },
    }


def plain(mail: EmailMessage) -> str:
    return text_of(mail).replace("\r\n", "\n")


def shipped_items(mail: EmailMessage) -> list[str]:
    text = plain(mail)
    listed = text.split("Gönderilen ürünler:\n")[1].split("\n\n")[0]
    return listed.splitlines()


async def test_informational_mail_is_auto_submitted_and_answers_reach_the_shop(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, contact_email="destek@dukkan.example")
    await post(client, store, placed())
    await workers.drain()

    (mail,) = await dev_inbox(db)
    assert mail["Subject"] == "Siparişiniz alındı – #1001"
    assert mail["From"] == "Ayşe'nin Dükkanı <merhaba@dukkan.example>"
    assert mail["Reply-To"] == "destek@dukkan.example"
    # RFC 3834: vacation responders do not answer an order confirmation...
    assert mail["Auto-Submitted"] == "auto-generated"
    # ...and it carries no unsubscribe: it is informational.
    assert mail["List-Unsubscribe"] is None
    assert mail["List-Unsubscribe-Post"] is None


def test_reply_to_is_the_stores_own_then_its_contact_address() -> None:
    store = Store(sender_email="merhaba@dukkan.example", reply_to=None, contact_email=None)
    assert reply_address(store) is None
    store.contact_email = "merhaba@dukkan.example"  # the sender itself: no header
    assert reply_address(store) is None
    store.contact_email = "destek@dukkan.example"
    assert reply_address(store) == "destek@dukkan.example"
    store.reply_to = "yanit@dukkan.example"
    assert reply_address(store) == "yanit@dukkan.example"


def test_an_unsubscribe_by_mail_names_its_customer_by_a_signed_token() -> None:
    store = Store(id=7, sender_email="merhaba@dukkan.example", link_secret="s" * 64)
    mailto = unsubscribe_mailto(store, 42)
    address, _, query = mailto.removeprefix("mailto:").partition("?subject=unsubscribe%20")
    assert address == "merhaba@dukkan.example"
    # What a mail client sends back: the subject, maybe behind a reply's prefix.
    assert customer_of_unsubscribe_subject(store, f"unsubscribe {query}") == 42
    assert customer_of_unsubscribe_subject(store, f"Re: Unsubscribe {query}") == 42
    other = Store(id=8, sender_email="x@y.example", link_secret="t" * 64)
    for subject, who in (
        (f"unsubscribe {query}", other),  # another store's secret
        (f"unsubscribe {query[:-2]}xx", store),  # forged
        (f"merhaba {query}", store),  # not a request
        ("unsubscribe", store),
    ):
        try:
            customer_of_unsubscribe_subject(who, subject)
        except NotFound:
            continue
        raise AssertionError(f"{subject!r} named a customer")


async def test_a_parcel_lists_only_its_own_items(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock)
    await post(client, store, placed())
    await workers.drain()
    # The shop ships the kettle first: its carrier's first scan names the line by SKU.
    await post(client, store, shipment_updated("YK1", [{"sku": "CAY-02"}]))
    await post(client, store, shipped("YK1"))
    await workers.drain()
    # Then the two mugs, named by variant, the order.shipped event itself carrying them.
    await post(
        client,
        store,
        shipped(
            "YK2",
            items=[
                {"variant_id": "v-1", "title": "Seramik kupa", "quantity": 2, "price": "249.95"}
            ],
        ),
    )
    await workers.drain()

    _, first, second = await dev_inbox(db)
    assert first["Subject"] == second["Subject"] == "Siparişiniz kargoya verildi – #1001"
    assert shipped_items(first) == ["- Bakır çaydanlık × 1"]
    assert "Seramik kupa" not in text_of(first, "html")
    assert shipped_items(second) == ["- Seramik kupa × 2"]
    assert "Bakır çaydanlık" not in text_of(second, "html")


async def test_a_parcel_without_items_lists_the_whole_order(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    await post(client, store, placed())
    await workers.drain()  # the confirmation first: the inbox's order is the sending order
    await post(client, store, shipped("YK1"))
    await workers.drain()

    _, mail = await dev_inbox(db)
    assert shipped_items(mail) == ["- Seramik kupa × 2", "- Bakır çaydanlık × 1"]


async def test_a_shipment_line_the_order_lacks_keeps_what_the_shop_sent(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    await post(client, store, placed())
    await workers.drain()  # the confirmation first: the inbox's order is the sending order
    gift = {"sku": "HEDIYE-PAKETI", "title": "Hediye paketi", "quantity": 1}
    await post(client, store, shipment_updated("YK1", [{"variant_id": "v-2"}, gift]))
    await post(client, store, shipped("YK1"))
    await workers.drain()

    _, mail = await dev_inbox(db)
    assert shipped_items(mail) == ["- Bakır çaydanlık × 1", "- Hediye paketi × 1"]


async def test_a_shipment_line_needs_a_name(
    client: httpx.AsyncClient, store: StoreKey, db: Database
) -> None:
    response = await client.post(
        "/v1/events", json=shipment_updated("YK1", [{"quantity": 2}]), headers=store.auth
    )
    assert response.status_code == 422
    (problem,) = response.json()["error"]["details"]
    assert problem == {
        "path": "data.items[0]",
        "message": "Value error, a shipment line needs one of variant_id, sku, product_id or title",
    }
    assert await dev_inbox(db) == []


async def test_the_confirmation_names_the_country_the_payment_and_the_orders_page(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    address = {"name": "Ayşe Yılmaz", "line1": "Moda Cad. 12", "city": "İstanbul"}
    order = placed(
        payment_method="credit_card",
        order_url="https://dukkan.example/hesabim/siparis/1001",
        shipping_address=address | {"country": "TR"},
    )
    await post(client, store, order)
    await workers.drain()

    (mail,) = await dev_inbox(db)
    text, html = plain(mail), text_of(mail, "html")
    assert "Ödeme yöntemi: Kredi kartı\n" in text
    assert "Teslimat adresi:\nAyşe Yılmaz\nModa Cad. 12\nİstanbul\nTürkiye\n" in text
    assert "- Seramik kupa × 2: 499,90 ₺ (birim fiyat 249,95 ₺)\n" in text
    assert "Siparişinizi görüntüleyin: https://dukkan.example/hesabim/siparis/1001\n" in text
    assert (
        '<a class="button" target="_blank" href="https://dukkan.example/hesabim/siparis/1001"'
        in html
    )
    assert ">Siparişinizi görüntüleyin</a>" in html


async def test_the_english_confirmation_names_them_in_english(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    order = placed(
        payment_method="cash_on_delivery",
        shipping_address={"name": "Ayşe Yılmaz", "city": "Berlin", "country": "DE"},
    )
    order["customer"]["locale"] = "en"
    await post(client, store, order)
    await workers.drain()

    (mail,) = await dev_inbox(db)
    text = plain(mail)
    assert "Payment method: Cash on delivery\n" in text
    assert "Shipping address:\nAyşe Yılmaz\nBerlin\nGermany\n" in text
    assert "View your order" not in text  # the shop sent no order page
