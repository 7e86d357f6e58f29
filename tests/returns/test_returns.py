"""Returns as a shopper and a shop meet them: the returns page opened from the delivered
email, the request it sends, the worker's second check, the shop's updates and the emails
each step sends."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support import StoreKey, dev_inbox, make_store, text_of
from ulak.clock import FrozenClock
from ulak.customers.service import find_customer
from ulak.db import Database
from ulak.events.models import Event
from ulak.returns.service import set_policy
from ulak.stores.service import get_store
from ulak.web.links import LIFETIMES, page_url
from ulak.worker import Workers

SHIRT, CUP = "p-tisort", "p-kupa"
# 22:30 UTC on 30 November is already 1 December in Istanbul: the window counts from
# the customer's day of delivery, and its 14th day ends at midnight there.
DELIVERED = datetime(2026, 11, 30, 22, 30, tzinfo=UTC)
LAST_MINUTE = datetime(2026, 12, 15, 20, 59, tzinfo=UTC)  # 15 Dec 23:59 in Istanbul
TOO_LATE = datetime(2026, 12, 15, 21, 0, tzinfo=UTC)  # 16 Dec 00:00 in Istanbul


async def send(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


def variant(variant_id: str, title: str, inventory: int) -> dict[str, Any]:
    return {
        "id": f"evt-product-{variant_id}",
        "type": "product.updated",
        "data": {
            "product_id": SHIRT,
            "variant_id": variant_id,
            "title": title,
            "price": "300.00",
            "currency": "TRY",
            "inventory": inventory,
        },
    }


def customer(ref: str = "c-1042", **extra: Any) -> dict[str, Any]:
    return {
        "id": ref,
        "email": f"{ref}@example.com",
        "first_name": "Ayşe",
        "locale": "tr",
        "timezone": "Europe/Istanbul",
        **extra,
    }


async def delivered_order(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    clock: FrozenClock,
    *,
    order_id: str = "1001",
    who: str = "c-1042",
    deliver: bool = True,
    title: str = "Basic tişört M",
) -> None:
    """A T-shirt (2 × size M, 300 TRY) and a cup (1 × 150 TRY), delivered at DELIVERED."""
    clock.set(DELIVERED - timedelta(days=3))
    await send(
        client,
        store,
        variant("v-s", "Basic tişört S", 5),
        variant("v-m", "Basic tişört M", 5),
        variant("v-l", "Basic tişört L", 0),
        {
            "id": f"evt-order-{order_id}",
            "type": "order.placed",
            "customer": customer(who),
            "data": {
                "order_id": order_id,
                "number": f"#{order_id}",
                "items": [
                    {
                        "product_id": SHIRT,
                        "variant_id": "v-m",
                        "title": title,
                        "quantity": 2,
                        "price": "300.00",
                    },
                    {"product_id": CUP, "title": "Seramik kupa", "quantity": 1, "price": "150.00"},
                ],
                "total": "750.00",
                "currency": "TRY",
            },
        },
    )
    await workers.drain()
    if deliver:
        clock.set(DELIVERED)
        await send(
            client,
            store,
            {
                "id": f"evt-delivered-{order_id}",
                "type": "order.delivered",
                "customer": {"id": who},
                "data": {"order_id": order_id},
            },
        )
        await workers.drain()


async def mails(db: Database) -> list[EmailMessage]:
    return await dev_inbox(db)


async def subjects(db: Database, since: int = 0) -> list[str]:
    return [str(m["Subject"]) for m in (await mails(db))[since:]]


async def returns_link(db: Database) -> str:
    """The "return an item" link of the delivered email the dev inbox caught."""
    delivered = [m for m in await mails(db) if str(m["Subject"]).endswith("teslim edildi – #1001")]
    assert len(delivered) == 1
    found = re.findall(r"http://ulak\.test/p/\d+/return/[\w.-]+", text_of(delivered[0]))
    assert len(found) == 1
    return str(found[0])


async def link_for(db: Database, store: StoreKey, clock: FrozenClock, **subject: Any) -> str:
    async with db.read() as session:
        found = await get_store(session, store.id)
    return page_url("http://ulak.test", found, "return", subject, at=clock.now())


async def customer_id(db: Database, store: StoreKey, ref: str = "c-1042") -> int:
    async with db.read() as session:
        return (await find_customer(session, store_id=store.id, ref=ref)).id


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


async def ask(client: httpx.AsyncClient, url: str, **form: str) -> httpx.Response:
    page = await client.get(url)
    assert page.status_code == 200, page.text
    return await client.post(url, data={"csrf": csrf_of(page.text), **form})


def options(page: str, name: str) -> list[str]:
    select_ = re.search(rf'<select id="{name}" name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select_ is not None, name
    return [html.unescape(o) for o in re.findall(r"<option [^>]*>([^<]*)</option>", select_[1])]


def text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def returns_of(client: httpx.AsyncClient, store: StoreKey, **params: str) -> list[Any]:
    response = await client.get("/v1/returns", params=params, headers=store.auth)
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()
    return found


async def event_errors(db: Database, type_: str) -> list[str | None]:
    async with db.read() as session:
        rows = await session.execute(
            select(Event.error).where(Event.type == type_).order_by(Event.id)
        )
        return list(rows.scalars())


# The page and the request.


async def test_the_shopper_returns_an_item_from_the_delivered_email(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)
    clock.set(DELIVERED + timedelta(days=2))

    page = await client.get(url)
    assert page.status_code == 200
    shown = text(page.text)
    assert "İade ve değişim" in shown
    assert "Sipariş #1001" in shown
    assert "15 Aralık 2026 tarihine kadar" in shown
    assert "Basic tişört M 2 adet alındı · Birim fiyat: 300,00 ₺" in shown
    assert "Seramik kupa 1 adet alındı · Birim fiyat: 150,00 ₺" in shown
    assert options(page.text, "qty_0") == ["0", "1", "2"]
    assert options(page.text, "qty_1") == ["0", "1"]
    # Another size of the same T-shirt; L is out of stock and cannot be picked.
    assert options(page.text, "exchange_0") == [
        "Seçiniz",
        "Basic tişört S",
        "Basic tişört L (stokta yok)",
    ]
    assert re.search(r'<option value="v-l" disabled>', page.text)
    assert options(page.text, "reason") == [
        "Seçiniz",
        "Beden / ölçü uymadı",
        "Ürün hasarlı geldi",
        "Ürün açıklamadaki gibi değil",
        "Yanlış ürün gönderildi",
        "Vazgeçtim",
        "Diğer",
    ]
    # Refund and exchange by default; no store credit unless the store offers it.
    assert re.findall(r'name="resolution" value="(\w+)"', page.text) == ["refund", "exchange"]
    assert "Başka bir beden ya da renk mi istersiniz? " in shown

    before = len(await mails(db))
    done = await ask(client, url, qty_0="1", qty_1="0", reason="wrong_size", resolution="refund")
    assert done.status_code == 200, done.text
    reference = re.search(r"R-[0-9A-Z]{4}-[0-9A-Z]{4}", done.text)
    assert reference is not None
    assert f"Talep numaranız {reference[0]}." in text(done.text)
    assert "1 × Basic tişört M" in text(done.text)
    assert "İade ettiğiniz ürünlerin tutarı: 300,00 ₺" in text(done.text)
    await workers.drain()

    (only,) = await returns_of(client, store)
    assert only["reference"] == reference[0]
    assert (only["order_id"], only["status"], only["resolution"], only["reason"]) == (
        "1001",
        "requested",
        "refund",
        "wrong_size",
    )
    assert only["items"] == [
        {
            "line": 0,
            "product_id": SHIRT,
            "variant_id": "v-m",
            "sku": None,
            "title": "Basic tişört M",
            "quantity": 1,
            "price": "300.00",
            "exchange_variant_id": None,
            "exchange_title": None,
        }
    ]
    assert (only["amount"], only["currency"], only["credit_amount"]) == ("300.00", "TRY", None)
    one = await client.get(f"/v1/returns/{reference[0]}", headers=store.auth)
    assert one.json() == only

    (received,) = (await mails(db))[before:]
    assert received["Subject"] == f"Sipariş #1001: iade talebiniz alındı – {reference[0]}"
    assert received["To"] == "c-1042@example.com"
    body = text_of(received)
    assert "- Basic tişört M × 1" in body
    assert "İade nedeni: Beden / ölçü uymadı" in body
    assert "Talebiniz: Para iadesi" in body
    assert "Ürünlerin tutarı: 300,00 ₺" in body

    # What is left: one T-shirt and the cup; the earlier request is listed.
    again = await client.get(url)
    assert options(again.text, "qty_0") == ["0", "1"]
    assert options(again.text, "qty_1") == ["0", "1"]
    assert f"<strong>{reference[0]}</strong>: Alındı" in again.text


async def test_more_than_is_left_is_refused_on_the_page_and_again_by_the_worker(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)
    clock.set(DELIVERED + timedelta(days=1))

    too_many = await ask(client, url, qty_0="3", reason="damaged", resolution="refund")
    assert too_many.status_code == 400
    assert "Seçtiğiniz adet, iade edilebilecek adetten fazla." in text(too_many.text)
    # Digits that are not ASCII ("²" is a digit to Python's `isdigit`, "٣" an Arabic 3):
    # the same friendly 400, not a server error.
    for odd in ("²", "٣", "1²"):
        refused = await ask(client, url, qty_0=odd, reason="damaged", resolution="refund")
        assert refused.status_code == 400, odd
        assert "Seçtiğiniz adet, iade edilebilecek adetten fazla." in text(refused.text)
    nothing = await ask(client, url, qty_0="0", qty_1="0", reason="damaged", resolution="refund")
    assert nothing.status_code == 400
    assert "en az bir ürün" in text(nothing.text)
    no_reason = await ask(client, url, qty_0="1", resolution="refund")
    assert no_reason.status_code == 400
    assert "Lütfen bir iade nedeni seçin." in text(no_reason.text)

    # Two requests for both T-shirts, sent before the worker applied the first: the page
    # allowed each, the worker takes the first and refuses the second with the reason.
    first = await ask(client, url, qty_0="2", reason="damaged", resolution="refund")
    second = await ask(client, url, qty_0="1", reason="damaged", resolution="refund")
    assert (first.status_code, second.status_code) == (200, 200)
    before = len(await mails(db))
    await workers.drain()
    (taken,) = await returns_of(client, store)
    assert [i["quantity"] for i in taken["items"]] == [2]
    assert await event_errors(db, "return.requested") == [
        None,
        "return refused: line 0: 1 asked, 0 left to return",
    ]
    assert await subjects(db, before) == [
        f"Sipariş #1001: iade talebiniz alındı – {taken['reference']}"
    ]
    page = await client.get(url)
    assert "qty_0" not in page.text
    assert options(page.text, "qty_1") == ["0", "1"]
    assert "Bu ürünün tamamı için zaten talep var." in text(page.text)


async def test_the_window_ends_with_the_14th_day_in_the_customers_zone(
    client: httpx.AsyncClient, db: Database, workers: Workers, clock: FrozenClock
) -> None:
    store = await make_store(
        db, clock, contact_email="yardim@dukkan.example", contact_phone="+90 212 555 01 02"
    )
    async with db.transaction() as session:
        await set_policy(
            session, store_id=store.id, now=clock.now(), policy={"*": "Etiketi sökülmemiş ürünler."}
        )
    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)

    clock.set(LAST_MINUTE)
    open_ = await client.get(url)
    assert "15 Aralık 2026 tarihine kadar" in text(open_.text)
    assert "Etiketi sökülmemiş ürünler." in text(open_.text)
    # Sent in its last minute, applied after midnight: on time, as the customer asked.
    done = await ask(client, url, qty_1="1", reason="changed_mind", resolution="refund")
    assert done.status_code == 200
    clock.set(TOO_LATE)
    await workers.drain()
    assert [r["status"] for r in await returns_of(client, store)] == ["requested"]

    closed = await client.get(url)
    assert closed.status_code == 200
    shown = text(closed.text)
    assert "İade talebi alınamıyor" in shown
    assert (
        "Bu siparişin iade süresi 15 Aralık 2026 tarihinde sona erdi (teslimattan sonra 14 gün)."
        in shown
    )
    assert "Sorunuz mu var? Bize ulaşın: yardim@dukkan.example · +90 212 555 01 02" in shown
    assert "Etiketi sökülmemiş ürünler." in shown
    assert "qty_0" not in closed.text
    late = await client.post(
        url, data={"csrf": csrf_of(open_.text), "qty_0": "1", "reason": "damaged"}
    )
    assert "İade talebi alınamıyor" in text(late.text)
    await workers.drain()
    assert len(await returns_of(client, store)) == 1

    # A request the shop's portal sends too late is refused by the worker.
    await send(
        client,
        store,
        {
            "type": "return.requested",
            "customer": {"id": "c-1042"},
            "data": {
                "order_id": "1001",
                "items": [{"line": 0, "quantity": 1}],
                "reason": "damaged",
            },
        },
    )
    await workers.drain()
    assert (await event_errors(db, "return.requested"))[-1] == "return refused: window closed"


async def test_an_order_not_delivered_yet_is_refused_politely(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await delivered_order(client, store, workers, clock, deliver=False)
    url = await link_for(db, store, clock, c=await customer_id(db, store), o="1001")
    page = await client.get(url)
    assert page.status_code == 200
    assert (
        "Siparişiniz henüz teslim edilmedi. Teslim edildikten sonra 14 gün içinde iade talebinde"
        " bulunabilirsiniz." in text(page.text)
    )
    assert "<form" not in page.text


async def test_an_exchange_takes_another_variant_in_stock(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)

    unpicked = await ask(client, url, qty_0="1", reason="wrong_size", resolution="exchange")
    assert unpicked.status_code == 400
    assert "stokta olan bir seçenek" in text(unpicked.text)
    sold_out = await ask(
        client, url, qty_0="1", exchange_0="v-l", reason="wrong_size", resolution="exchange"
    )
    assert sold_out.status_code == 400
    # The cup has no other variant: it cannot be exchanged.
    cup = await ask(client, url, qty_1="1", reason="wrong_size", resolution="exchange")
    assert cup.status_code == 400

    done = await ask(
        client, url, qty_0="2", exchange_0="v-s", reason="wrong_size", resolution="exchange"
    )
    assert done.status_code == 200
    assert "2 × Basic tişört M → Basic tişört S" in text(done.text)
    await workers.drain()
    (exchange,) = await returns_of(client, store)
    assert exchange["resolution"] == "exchange"
    assert [
        (i["variant_id"], i["exchange_variant_id"], i["exchange_title"]) for i in exchange["items"]
    ] == [("v-m", "v-s", "Basic tişört S")]


async def test_store_credit_shows_the_stores_bonus(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    async with db.transaction() as session:
        await set_policy(
            session,
            store_id=store.id,
            now=clock.now(),
            offer_exchange=False,
            offer_store_credit=True,
            credit_bonus_percent=10,
        )
    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)
    page = await client.get(url)
    assert re.findall(r'name="resolution" value="(\w+)"', page.text) == ["refund", "store_credit"]
    assert "İade tutarının üzerine %10 ek kredi." in text(page.text)
    assert "exchange_0" not in page.text
    refused = await ask(client, url, qty_0="1", reason="other", resolution="exchange")
    assert refused.status_code == 400

    before = len(await mails(db))
    done = await ask(client, url, qty_0="1", qty_1="1", reason="other", resolution="store_credit")
    assert "Mağaza krediniz: 495,00 ₺" in text(done.text)
    await workers.drain()
    (credit,) = await returns_of(client, store)
    assert (credit["amount"], credit["credit_bonus_percent"], credit["credit_amount"]) == (
        "450.00",
        10,
        "495.00",
    )
    (mail,) = (await mails(db))[before:]
    assert "Mağaza kredisi (%10 ek krediyle): 495,00 ₺" in text_of(mail)


# Links and forms that must not work.


async def test_forged_expired_other_store_and_other_customer_links_show_nothing(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await delivered_order(client, store, workers, clock)
    await delivered_order(client, store, workers, clock, order_id="2002", who="c-2002")
    url = await returns_link(db)
    base, token = url.rsplit("/", 1)

    forged = await client.get(f"{base}/{token[:-2]}{'AA' if not token.endswith('AA') else 'BB'}")
    assert forged.status_code == 404
    assert "Bu bağlantı geçerli değil" in forged.text
    assert "Basic tişört" not in forged.text

    other = await make_store(db, clock, name="Başka Dükkan", library=False)
    elsewhere = await client.get(url.replace(f"/p/{store.id}/", f"/p/{other.id}/"))
    assert elsewhere.status_code == 404
    tracking = await client.get(url.replace("/return/", "/tracking/"))
    assert tracking.status_code == 404

    # A link naming a customer and an order that is not hers.
    mine = await customer_id(db, store)
    not_hers = await client.get(await link_for(db, store, clock, c=mine, o="2002"))
    assert not_hers.status_code == 404
    assert "Basic tişört" not in not_hers.text
    posted = await client.post(await link_for(db, store, clock, c=mine, o="2002"), data={})
    assert posted.status_code == 404

    clock.set(DELIVERED + LIFETIMES["return"] + timedelta(days=1))
    expired = await client.get(url)
    assert expired.status_code == 410
    assert "Bu bağlantının süresi doldu" in expired.text
    await workers.drain()
    assert await returns_of(client, store) == []


async def test_a_post_without_the_forms_csrf_or_from_another_site_is_refused(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)
    page = await client.get(url)
    form = {"qty_0": "1", "reason": "damaged", "resolution": "refund"}

    missing = await client.post(url, data=form)
    wrong = await client.post(url, data={**form, "csrf": "0" * 64})
    cross_site = await client.post(
        url, data={**form, "csrf": csrf_of(page.text)}, headers={"sec-fetch-site": "cross-site"}
    )
    foreign = await client.post(
        url, data={**form, "csrf": csrf_of(page.text)}, headers={"origin": "https://evil.example"}
    )
    for refused in (missing, wrong, cross_site, foreign):
        assert refused.status_code == 403
        assert "başka bir siteden gönderildi" in refused.text
    await workers.drain()
    assert await returns_of(client, store) == []
    assert await event_errors(db, "return.requested") == []


async def test_what_customers_and_shops_write_is_escaped_on_the_page_and_in_the_email(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    script = '<script>alert("x")</script>'
    async with db.transaction() as session:
        await set_policy(
            session, store_id=store.id, now=clock.now(), policy={"tr": f"Koşullar {script}"}
        )
    await delivered_order(client, store, workers, clock, title=f"Tişört {script}")
    url = await returns_link(db)
    page = await client.get(url)
    assert script not in page.text
    assert "Koşullar &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert "Tişört &lt;script&gt;" in page.text

    before = len(await mails(db))
    done = await ask(
        client, url, qty_0="1", reason="other", resolution="refund", comment=f"Yırtık {script}"
    )
    assert script not in done.text
    await workers.drain()
    (mail,) = (await mails(db))[before:]
    part = mail.get_body(preferencelist=("html",))
    assert part is not None
    body = str(part.get_content())
    assert script not in body
    assert "Yırtık &lt;script&gt;" in body
    (asked,) = await returns_of(client, store)
    assert asked["comment"] == f"Yırtık {script}"
    # The page lists the earlier request by its reference only.
    assert script not in (await client.get(url)).text


# The shop moves a return on.


def update(reference: str, status: str, **data: Any) -> dict[str, Any]:
    return {
        "type": "return.updated",
        "customer": {"id": "c-1042"},
        "data": {"reference": reference, "status": status, **data},
    }


async def requested(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> str:
    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)
    done = await ask(client, url, qty_0="2", reason="damaged", resolution="refund")
    await workers.drain()
    found = re.search(r"R-[0-9A-Z]{4}-[0-9A-Z]{4}", done.text)
    assert found is not None
    return found[0]


async def test_approved_received_refunded_each_send_their_email(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    reference = await requested(client, db, store, workers, clock)
    before = len(await mails(db))
    label = "https://kargo.example/etiket/A1B2.pdf"
    await send(
        client,
        store,
        update(
            reference,
            "approved",
            instructions="Ürünleri kutusuyla Yurtiçi Kargo'ya bırakın.",
            label=label,
        ),
    )
    await workers.drain()
    await send(client, store, update(reference, "received"))
    await workers.drain()
    await send(client, store, update(reference, "refunded", amount="600.00"))
    await workers.drain()

    approved, received, refunded = (await mails(db))[before:]
    assert approved["Subject"] == f"Sipariş #1001: iade talebiniz onaylandı – {reference}"
    assert "Ürünleri kutusuyla Yurtiçi Kargo'ya bırakın." in text_of(approved)
    assert f"İade kodu / etiket: {label}" in text_of(approved)
    assert f'href="{label}"' in str(approved.get_body(preferencelist=("html",)).get_content())  # type: ignore[union-attr]
    assert received["Subject"] == f"Sipariş #1001: iade ettiğiniz ürünler bize ulaştı – {reference}"
    assert refunded["Subject"] == f"Sipariş #1001: iade ödemeniz yapıldı – {reference}"
    assert "600,00 ₺ tutarı ödeme yönteminize iade ettik" in text_of(refunded)

    (done,) = await returns_of(client, store, status="refunded")
    assert (done["status"], done["refunded_amount"], done["label_url"]) == (
        "refunded",
        "600.00",
        label,
    )
    assert [h["status"] for h in done["history"]] == [
        "requested",
        "approved",
        "received",
        "refunded",
    ]
    assert await returns_of(client, store, status="requested") == []


async def test_a_rejection_says_why_and_where_to_get_help_and_nothing_follows_it(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    reference = await requested(client, db, store, workers, clock)
    before = len(await mails(db))
    await send(client, store, update(reference, "rejected", reason="Ürün kullanılmış."))
    await workers.drain()
    (rejected,) = (await mails(db))[before:]
    assert rejected["Subject"] == f"Sipariş #1001: iade talebiniz hakkında – {reference}"
    body = text_of(rejected)
    assert "Nedeni: Ürün kullanılmış." in body
    assert "merhaba@dukkan.example" in body or "bu e-postayı yanıtlamanız yeterli" in body

    # A refund of a rejected return, a step back, the same step twice, an unknown return
    # and another customer's: each refused with the reason, none emails.
    await send(
        client,
        store,
        update(reference, "refunded"),
        update(reference, "approved"),
        update(reference, "rejected", reason="Yine"),
        update("R-AAAA-BBBB", "approved"),
        {**update(reference, "approved"), "customer": {"id": "c-9999"}},
    )
    await workers.drain()
    assert await event_errors(db, "return.updated") == [
        None,
        "update refused: a rejected return cannot become refunded",
        "update refused: a rejected return cannot become approved",
        "update refused: return " + reference + " is rejected already",
        "update refused: no return R-AAAA-BBBB",
        f"update refused: return {reference} is another customer's",
    ]
    assert len(await mails(db)) == before + 1
    (only,) = await returns_of(client, store)
    assert (only["status"], only["rejection_reason"]) == ("rejected", "Ürün kullanılmış.")


async def test_steps_out_of_order_are_refused(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    reference = await requested(client, db, store, workers, clock)
    await send(client, store, update(reference, "received"), update(reference, "refunded"))
    await workers.drain()
    assert await event_errors(db, "return.updated") == [
        "update refused: a requested return cannot become received",
        "update refused: a requested return cannot become refunded",
    ]
    # A rejection without a reason is not even accepted.
    response = await client.post(
        "/v1/events", json={"events": [update(reference, "rejected")]}, headers=store.auth
    )
    assert response.status_code == 422
    assert "a rejected return needs a reason the customer can read" in response.text
    unknown = await client.get("/v1/returns/R-ZZZZ-ZZZZ", headers=store.auth)
    assert unknown.status_code == 404


@pytest.mark.parametrize("status", ["bogus"])
async def test_the_list_refuses_an_unknown_status(
    client: httpx.AsyncClient, store: StoreKey, status: str
) -> None:
    response = await client.get("/v1/returns", params={"status": status}, headers=store.auth)
    assert response.status_code == 422


async def test_the_page_speaks_the_customers_language(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await delivered_order(client, store, workers, clock, who="c-en", deliver=False)
    await send(
        client,
        store,
        {"type": "customer.updated", "customer": {"id": "c-en", "locale": "en"}},
    )
    await workers.drain()
    who = await customer_id(db, store, "c-en")
    url = await link_for(db, store, clock, c=who, o="1001")
    waiting = await client.get(url)
    assert waiting.text.startswith('<!doctype html>\n<html lang="en">')
    assert (
        "Your order has not been delivered yet. Once it is, you can ask for a return within 14"
        " days." in text(waiting.text)
    )

    clock.set(DELIVERED)
    await send(
        client,
        store,
        {"type": "order.delivered", "customer": {"id": "c-en"}, "data": {"order_id": "1001"}},
    )
    await workers.drain()
    page = await client.get(url)
    shown = text(page.text)
    assert "Returns and exchanges" in shown
    assert "You can ask for a return until December 15, 2026 (inclusive)." in shown
    assert options(page.text, "reason")[1:3] == ["Wrong size", "Arrived damaged"]
    done = await ask(client, url, qty_1="1", reason="damaged", resolution="refund")
    assert "Value of the items: ₺150.00" in text(done.text)


async def test_a_form_sent_again_with_other_choices_keeps_the_first(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)
    page = await client.get(url)
    form = {"csrf": csrf_of(page.text), "reason": "damaged", "resolution": "refund"}
    reference = re.search(r'name="reference" value="(R-[0-9A-Z]{4}-[0-9A-Z]{4})"', page.text)
    assert reference is not None
    await client.post(url, data={**form, "reference": reference[1], "qty_1": "1"})
    # Back in the browser, other choices, before the worker took the first.
    changed = await client.post(url, data={**form, "reference": reference[1], "qty_0": "1"})
    assert changed.status_code == 200
    assert f"{reference[1]} numaralı talebinizi daha önce gönderdiniz" in text(changed.text)
    await workers.drain()
    (only,) = await returns_of(client, store)
    assert [(i["line"], i["quantity"]) for i in only["items"]] == [(1, 1)]


async def test_the_same_form_sent_twice_is_one_request(
    client: httpx.AsyncClient, db: Database, store: StoreKey, workers: Workers, clock: FrozenClock
) -> None:
    await delivered_order(client, store, workers, clock)
    url = await returns_link(db)
    page = await client.get(url)
    reference = re.search(r'name="reference" value="(R-[0-9A-Z]{4}-[0-9A-Z]{4})"', page.text)
    assert reference is not None
    form = {"csrf": csrf_of(page.text), "qty_1": "1", "reason": "damaged", "resolution": "refund"}
    # A double tap: the same event twice, stored once.
    first = await client.post(url, data={**form, "reference": reference[1]})
    again = await client.post(url, data={**form, "reference": reference[1]})
    assert f"Talep numaranız {reference[1]}." in text(first.text)
    assert text(again.text) == text(first.text)
    await workers.drain()
    # Sent again once the worker took it: the page says so.
    late = await client.post(url, data={**form, "reference": reference[1]})
    assert f"{reference[1]} numaralı talebinizi daha önce gönderdiniz" in text(late.text)
    await workers.drain()
    (only,) = await returns_of(client, store)
    assert only["reference"] == reference[1]
    assert [(i["line"], i["quantity"]) for i in only["items"]] == [(1, 1)]
    assert len([s for s in await subjects(db) if "iade talebiniz alındı" in s]) == 1
