"""The order tracking page as a shopper reads it: `GET /p/{store}/tracking/{token}` for an
order in every state, in Turkish and English, and what it refuses (forged, expired,
other-store and other-customer links) and escapes (the shop's and the carrier's text)."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.support import StoreKey, dev_inbox, make_store, order_placed, text_of
from ulak.clock import FrozenClock
from ulak.customers.service import find_customer
from ulak.db import Database
from ulak.stores.service import get_store
from ulak.web.links import LIFETIMES, page_url
from ulak.worker import Workers

# The clock starts at 2026-11-23 09:00 UTC (12:00 in Istanbul, the store's zone).
PLACED = "2026-11-20T07:30:00Z"


async def send(
    client: httpx.AsyncClient, workers: Workers, store: StoreKey, *events: dict[str, Any]
) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []
    await workers.drain()


def event(type_: str, data: dict[str, Any], at: str, customer: str = "c-1042") -> dict[str, Any]:
    return {
        "id": f"evt-{type_}-{at}-{data.get('status', '')}",
        "type": type_,
        "customer": {"id": customer},
        "occurred_at": at,
        "data": data,
    }


async def tracking_url(
    db: Database, clock: FrozenClock, store: StoreKey, order_id: str = "1001", ref: str = "c-1042"
) -> str:
    async with db.read() as session:
        found = await get_store(session, store.id)
        customer = await find_customer(session, store_id=store.id, ref=ref)
        return page_url(
            "http://ulak.test", found, "tracking", {"c": customer.id, "o": order_id}, at=clock.now()
        )


def texts(page: str, css_class: str) -> list[str]:
    """The visible text of each `<li>` (or item) inside the element with this class."""
    match = re.search(rf'<(ol|div) class="{css_class}"[^>]*>(.*?)</\1>', page, re.S)
    assert match is not None, css_class
    parts = re.split(r"<li[^>]*>", match.group(2))[1:]
    return [plain(part) for part in parts]


def plain(fragment: str) -> str:
    text = re.sub(r"<[^>]+>", " ", fragment)
    return " ".join(html.unescape(text).split())


def visible(page: str) -> str:
    body = page.split("<body>", 1)[1]
    body = re.sub(r"<style>.*?</style>", " ", body, flags=re.S)
    return plain(body)


def english(event: dict[str, Any]) -> dict[str, Any]:
    event["customer"]["locale"] = "en"
    return event


SHIPPED = {
    "order_id": "1001",
    "shipment_id": "shp-1",
    "carrier": "Yurtiçi Kargo",
    "tracking_number": "YK 123/45",
    "estimated_delivery": "2026-11-24",
}


def carrier(status: str, at: str, shipment: str = "shp-1", **data: Any) -> dict[str, Any]:
    return event("shipment.updated", {"shipment_id": shipment, "status": status, **data}, at)


async def open_page(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, store: StoreKey
) -> str:
    page = await client.get(await tracking_url(db, clock, store))
    assert page.status_code == 200, page.text
    return page.text


async def test_a_placed_order_shows_its_items_and_that_it_is_not_shipped_yet(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await send(client, workers, store, order_placed("1001", occurred_at=PLACED))
    page = await open_page(client, db, clock, store)

    assert "<title>Sipariş #1001 · Ayşe&#39;nin Dükkanı</title>" in page
    assert visible(page) == (
        "Ayşe'nin Dükkanı Sipariş #1001 · Sipariş tarihi: 20 Kasım 2026 Siparişinizi aldık"
        " Alındı (şu anki adım) Hazırlanıyor Kargoda Teslim edildi"
        " Kargo Siparişiniz henüz kargoya verilmedi."
        " Sipariş geçmişi Sipariş alındı 20 Kasım 2026 10:30"
        " Ürünler Seramik kupa 2 adet 499,90 ₺ Bakır çaydanlık 1 adet 750,00 ₺"
        " Toplam: 1.249,90 ₺"
    )
    assert '<li class="current" aria-current="step">Alındı' in page


async def test_a_shipped_order_shows_each_carrier_status_with_its_time_and_place(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await send(
        client,
        workers,
        store,
        english(order_placed("1001", occurred_at=PLACED)),
        event("order.paid", {"order_id": "1001"}, "2026-11-20T07:31:00Z"),
        event("order.preparing", {"order_id": "1001"}, "2026-11-20T12:00:00Z"),
        event("order.shipped", SHIPPED, "2026-11-21T08:00:00Z"),
        carrier("info_received", "2026-11-21T08:05:00Z", location="Kadıköy Şube"),
        carrier(
            "in_transit",
            "2026-11-21T20:40:00Z",
            location="İstanbul Anadolu Aktarma",
            order_id="1001",
        ),
    )
    page = await open_page(client, db, clock, store)

    assert texts(page, "steps") == [
        "Placed (done)",
        "Preparing (done)",
        "Shipped (current step)",
        "Delivered",
    ]
    assert "<h1>Your order is on its way</h1>" in page
    # Newest first, in Istanbul's time, each carrier status with where it happened.
    assert texts(page, "timeline") == [
        "In transit Nov 21, 2026, 11:40 PM · İstanbul Anadolu Aktarma",
        "The carrier has the parcel's details Nov 21, 2026, 11:05 AM · Kadıköy Şube",
        "Handed to the carrier Nov 21, 2026, 11:00 AM",
        "Order being prepared Nov 20, 2026, 3:00 PM",
        "Payment received Nov 20, 2026, 10:31 AM",
        "Order placed Nov 20, 2026, 10:30 AM",
    ]
    # The carrier sent no link: Yurtiçi's own page, the number encoded into it.
    assert (
        '<a href="https://www.yurticikargo.com/tr/online-servisler/gonderi-sorgula?code=YK%20123%2F45"'
        ' target="_blank" rel="noopener noreferrer">Track on the carrier&#39;s site'
    ) in page
    shipping = visible(page).split("Shipping ", 1)[1].split(" Order history")[0]
    assert shipping == (
        "Estimated delivery: November 24, 2026 Carrier Yurtiçi Kargo Tracking number YK 123/45"
        " Track on the carrier's site (opens in a new window)"
    )
    assert "needs your attention" not in page
    items = visible(page).split(" Items ", 1)[1]
    assert items == "Seramik kupa Qty: 2 ₺499.90 Bakır çaydanlık Qty: 1 ₺750.00 Total: ₺1,249.90"


async def test_an_update_repeating_the_carriers_last_word_shows_once(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await send(
        client,
        workers,
        store,
        english(order_placed("1001", occurred_at=PLACED)),
        event("order.shipped", SHIPPED, "2026-11-21T08:00:00Z"),
        carrier("in_transit", "2026-11-21T20:40:00Z", location="Ankara Aktarma"),
        # The same status and place, a later estimate only: one line on the timeline.
        carrier(
            "in_transit",
            "2026-11-22T06:00:00Z",
            location="Ankara Aktarma",
            estimated_delivery="9999-12-31T23:00:00-12:00",
        ),
    )
    page = await open_page(client, db, clock, store)
    assert texts(page, "timeline") == [
        "In transit Nov 21, 2026, 11:40 PM · Ankara Aktarma",
        "Handed to the carrier Nov 21, 2026, 11:00 AM",
        "Order placed Nov 20, 2026, 10:30 AM",
    ]
    # An estimate at the calendar's edge is shown as its own date, not a 500.
    assert "Estimated delivery: December 31, 9999" in visible(page)


async def test_a_delivered_order_shows_where_the_carrier_delivered_it(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await send(
        client,
        workers,
        store,
        order_placed("1001", occurred_at=PLACED),
        event("order.shipped", SHIPPED, "2026-11-21T08:00:00Z"),
        carrier("delivered", "2026-11-22T11:15:00Z", location="Moda, Kadıköy", order_id="1001"),
    )
    await workers.drain()  # the derived order.delivered
    page = await open_page(client, db, clock, store)

    assert "<h1>Siparişiniz teslim edildi</h1>" in page
    assert texts(page, "steps") == [
        "Alındı (tamamlandı)",
        "Hazırlanıyor (tamamlandı)",
        "Kargoda (tamamlandı)",
        "Teslim edildi (şu anki adım)",
    ]
    # The carrier's delivery, with its place, stands for the order's own.
    assert texts(page, "timeline") == [
        "Teslim edildi 22 Kasım 2026 14:15 · Moda, Kadıköy",
        "Kargoya verildi 21 Kasım 2026 11:00",
        "Sipariş alındı 20 Kasım 2026 10:30",
    ]
    assert "Tahmini teslim" not in page


@pytest.mark.parametrize(
    ("status", "label", "what_to_do"),
    [
        (
            "out_for_delivery",
            "Out for delivery",
            "Your parcel will be brought to your address today. Make sure someone is there"
            " to receive it.",
        ),
        (
            "attempt_failed",
            "Delivery attempt failed",
            "The courier could not deliver your parcel. The carrier usually tries again the"
            " next working day; you can choose a new delivery day on the carrier's site or"
            " collect the parcel from their branch.",
        ),
        (
            "available_for_pickup",
            "Ready for pickup",
            "Your parcel is waiting for you at the carrier's branch. Take an ID to collect"
            " it; it is held for a limited time and then sent back to us.",
        ),
        (
            "exception",
            "Delivery problem",
            "Something unexpected happened to your parcel. Check the carrier's site, or"
            " contact us below and we will help.",
        ),
        (
            "returned_to_sender",
            "Being returned to the sender",
            "Your parcel is on its way back to us. Contact us to have it sent again or to"
            " get a refund.",
        ),
    ],
)
async def test_a_delivery_problem_says_what_happened_and_what_to_do(
    client: httpx.AsyncClient,
    workers: Workers,
    db: Database,
    store: StoreKey,
    clock: FrozenClock,
    status: str,
    label: str,
    what_to_do: str,
) -> None:
    await send(
        client,
        workers,
        store,
        english(order_placed("1001", occurred_at=PLACED)),
        event("order.shipped", SHIPPED, "2026-11-21T08:00:00Z"),
        carrier(status, "2026-11-22T09:00:00Z", location="Kadıköy Şube", message="Adres kapalı"),
    )
    page = await open_page(client, db, clock, store)

    problem = re.search(r'<div class="card problem" role="status">(.*?)</div>', page, re.S)
    assert problem is not None
    assert plain(problem.group(1)) == (
        f"Your delivery needs your attention: {label} {what_to_do} The carrier says: Adres kapalı"
    )
    assert texts(page, "timeline")[0] == (
        f"{label} Nov 22, 2026, 12:00 PM · Kadıköy Şube Adres kapalı"
    )


@pytest.mark.parametrize(
    ("status", "headline", "note", "entry"),
    [
        (
            "cancelled",
            "Siparişiniz iptal edildi",
            "Bu sipariş iptal edildi; gönderilmeyecek.",
            "Sipariş iptal edildi",
        ),
        (
            "refunded",
            "Siparişinizin ücreti iade edildi",
            "Bu siparişin ücreti iade edildi.",
            "Ücret iade edildi",
        ),
    ],
)
async def test_a_cancelled_or_refunded_order_says_so_without_progress(
    client: httpx.AsyncClient,
    workers: Workers,
    db: Database,
    store: StoreKey,
    clock: FrozenClock,
    status: str,
    headline: str,
    note: str,
    entry: str,
) -> None:
    await send(
        client,
        workers,
        store,
        order_placed("1001", occurred_at=PLACED),
        event(f"order.{status}", {"order_id": "1001"}, "2026-11-20T09:00:00Z"),
    )
    page = await open_page(client, db, clock, store)

    assert f"<h1>{headline}</h1>\n  <p>{note}</p>" in page
    assert 'class="steps"' not in page
    assert texts(page, "timeline") == [
        f"{entry} 20 Kasım 2026 12:00",
        "Sipariş alındı 20 Kasım 2026 10:30",
    ]


async def test_an_order_sent_in_two_parcels_names_each(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    second = {**SHIPPED, "shipment_id": "shp-2", "carrier": "HEPSİJET", "tracking_number": "HJ9"}
    await send(
        client,
        workers,
        store,
        english(order_placed("1001", occurred_at=PLACED)),
        event("order.shipped", SHIPPED, "2026-11-21T08:00:00Z"),
        event("order.shipped", second, "2026-11-21T09:00:00Z"),
        carrier("delivered", "2026-11-22T10:00:00Z", location="Moda"),
        carrier("in_transit", "2026-11-22T11:00:00Z", shipment="shp-2", location="Ankara"),
    )
    page = await open_page(client, db, clock, store)

    assert texts(page, "timeline")[:2] == [
        "In transit · Parcel 2 Nov 22, 2026, 2:00 PM · Ankara",
        "Delivered · Parcel 1 Nov 22, 2026, 1:00 PM · Moda",
    ]
    assert "<h3>Parcel 1: Delivered</h3>" in page
    assert "<h3>Parcel 2: In transit</h3>" in page
    assert 'href="https://www.hepsijet.com/gonderi-takibi/HJ9"' in page


# What the page refuses, and what it escapes.


async def test_forged_expired_and_other_store_links_get_a_friendly_page(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await send(client, workers, store, order_placed("1001", occurred_at=PLACED))
    url = await tracking_url(db, clock, store)
    other = await make_store(db, clock, name="Başka Dükkan", library=False)
    base, token = url.rsplit("/", 1)
    forged = f"{base}/{token[:-4]}{'AAAA' if not token.endswith('AAAA') else 'BBBB'}"
    elsewhere = url.replace(f"/p/{store.id}/", f"/p/{other.id}/")
    for bad in (forged, elsewhere, f"{base}/nothing", url.replace("/tracking/", "/review/")):
        page = await client.get(bad)
        assert page.status_code == 404, bad
        assert "Seramik kupa" not in page.text
    assert "Bu bağlantı geçerli değil" in (await client.get(forged)).text
    assert "Başka Dükkan" in (await client.get(elsewhere)).text

    clock.travel(LIFETIMES["tracking"] + timedelta(seconds=1))
    expired = await client.get(url)
    assert expired.status_code == 410
    assert "Bu bağlantının süresi doldu" in expired.text
    assert "Seramik kupa" not in expired.text


async def test_a_link_to_an_order_that_is_not_the_customers_is_not_found(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await send(
        client,
        workers,
        store,
        order_placed("1001", occurred_at=PLACED),
        order_placed("2002", customer_id="c-2", email="mehmet@example.com", occurred_at=PLACED),
    )
    # A genuine link of customer c-1042 naming Mehmet's order, and one naming no order.
    for order_id in ("2002", "9999"):
        page = await client.get(await tracking_url(db, clock, store, order_id=order_id))
        assert page.status_code == 404
        assert "Bu bağlantı geçerli değil" in page.text
        assert "Seramik kupa" not in page.text
    assert (
        await client.get(await tracking_url(db, clock, store, "2002", "c-2"))
    ).status_code == 200


async def test_an_erased_customers_order_is_not_found(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await send(client, workers, store, order_placed("1001", occurred_at=PLACED))
    url = await tracking_url(db, clock, store)
    erased = await client.delete("/v1/customers/c-1042", headers=store.auth)
    assert erased.status_code in (200, 202), erased.text
    await workers.drain()

    page = await client.get(url)
    assert page.status_code == 404
    assert "Seramik kupa" not in page.text


XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_the_shops_and_carriers_text_is_escaped(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    placed = order_placed("1001", occurred_at=PLACED, number=f"#1{XSS}")
    placed["data"]["items"][0]["title"] = f"Kupa {XSS}"
    await send(
        client,
        workers,
        store,
        placed,
        event(
            "order.shipped",
            {**SHIPPED, "carrier": f"Kargo {XSS}", "tracking_number": f"T{XSS}"},
            "2026-11-21T08:00:00Z",
        ),
        carrier("exception", "2026-11-22T09:00:00Z", location=f"Yer {XSS}", message=f"Not {XSS}"),
    )
    page = await open_page(client, db, clock, store)

    assert "<script>" not in page
    assert "<img src=x" not in page
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    for text in (
        f"Kupa {escaped}",
        f"Kargo {escaped}",
        f"T{escaped}",
        f"Yer {escaped}",
        f"Not {escaped}",
        f"#1{escaped}",
    ):
        assert text in page, text


# The emails that lead there.


async def test_the_order_emails_link_to_this_orders_page(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    shipped = {k: v for k, v in SHIPPED.items() if k != "estimated_delivery"}
    await send(
        client,
        workers,
        store,
        order_placed("1001"),
        event("order.shipped", shipped, clock.now().isoformat()),
    )
    await workers.drain()
    mails = {str(m["Subject"]): m for m in await dev_inbox(db)}
    assert sorted(mails) == [
        "Siparişiniz alındı – #1001",
        "Siparişiniz kargoya verildi – #1001",
    ]
    for subject, label in (
        ("Siparişiniz alındı – #1001", "Siparişinizi takip edin"),
        ("Siparişiniz kargoya verildi – #1001", "Sipariş durumunu görün"),
    ):
        found = re.search(
            rf"{label}: (http://ulak\.test/p/{store.id}/tracking/\S+)", text_of(mails[subject])
        )
        assert found is not None, subject
        assert f'href="{found.group(1)}"' in text_of(mails[subject], "html")
        page = await client.get(found.group(1))
        assert page.status_code == 200
        assert "Sipariş #1001" in page.text
    # The carrier sent no tracking link: the email builds Yurtiçi's, as the page does.
    carrier_link = (
        "https://www.yurticikargo.com/tr/online-servisler/gonderi-sorgula?code=YK%20123%2F45"
    )
    assert f"Kargonuzu takip edin: {carrier_link}" in text_of(
        mails["Siparişiniz kargoya verildi – #1001"]
    )


async def test_a_link_from_before_a_merge_still_opens_the_order(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    guest = order_placed("1001", occurred_at=PLACED)
    guest["customer"] = {"email": "guest@example.com", "locale": "en"}
    await send(client, workers, store, guest, order_placed("2002", customer_id="c-7"))
    # The confirmation's link names the guest profile.
    url = await tracking_url(db, clock, store, "1001", "guest@example.com")
    # The guest turns out to be c-7: the profiles merge, the order moves to c-7.
    merge = {
        "id": "merge",
        "type": "customer.updated",
        "customer": {"id": "c-7", "email": "guest@example.com"},
    }
    await send(client, workers, store, merge)

    page = await client.get(url)
    assert page.status_code == 200
    assert "Sipariş #1001" in page.text


@pytest.mark.parametrize(
    ("status", "headline", "steps"),
    [
        ("paid", "Siparişinizi aldık", ["Alındı (şu anki adım)", "Hazırlanıyor"]),
        (
            "preparing",
            "Siparişiniz hazırlanıyor",
            ["Alındı (tamamlandı)", "Hazırlanıyor (şu anki adım)"],
        ),
    ],
)
async def test_a_paid_or_preparing_order_says_where_it_is(
    client: httpx.AsyncClient,
    workers: Workers,
    db: Database,
    store: StoreKey,
    clock: FrozenClock,
    status: str,
    headline: str,
    steps: list[str],
) -> None:
    await send(
        client,
        workers,
        store,
        order_placed("1001", occurred_at=PLACED),
        event(f"order.{status}", {"order_id": "1001"}, "2026-11-20T09:00:00Z"),
    )
    page = await open_page(client, db, clock, store)

    assert f"<h1>{headline}</h1>" in page
    assert texts(page, "steps") == [*steps, "Kargoda", "Teslim edildi"]
    label = {"paid": "Ödeme alındı", "preparing": "Sipariş hazırlanıyor"}[status]
    assert texts(page, "timeline") == [
        f"{label} 20 Kasım 2026 12:00",
        "Sipariş alındı 20 Kasım 2026 10:30",
    ]
    assert "Siparişiniz henüz kargoya verilmedi." in page


async def test_an_order_delivered_without_carrier_details_says_delivered(
    client: httpx.AsyncClient, workers: Workers, db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await send(
        client,
        workers,
        store,
        order_placed("1001", occurred_at=PLACED),
        event("order.delivered", {"order_id": "1001"}, "2026-11-21T13:00:00Z"),
    )
    page = await open_page(client, db, clock, store)

    shipping = visible(page).split(" Kargo ", 1)[1].split(" Sipariş geçmişi")[0]
    assert shipping == "Teslim edildi"
    assert texts(page, "timeline") == [
        "Teslim edildi 21 Kasım 2026 16:00",
        "Sipariş alındı 20 Kasım 2026 10:30",
    ]
