"""The embeddable back-in-stock form (`/w/<store>/back-in-stock`) and its double opt-in, as
a shopper and a shop meet them: the form, the confirm email in the dev inbox, its link, the
subscription, the restock email; the limits, the bad links, CSRF and hostile text."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support import StoreKey, dev_inbox, make_store, text_of
from ulak.catalog import pages
from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.events.models import Event
from ulak.worker import Workers

CUP = "p-kupa"
EMAIL = "ayse@example.com"
CONFIRM_LINK = re.compile(r"http://ulak\.test/p/\d+/back_in_stock/[A-Za-z0-9_.\-]+")


def product(
    inventory: int, *, variant: str | None = None, title: str = "Seramik kupa", n: int = 0
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "product_id": CUP,
        "title": title,
        "url": "https://dukkan.example/kupa",
        "image_url": "https://cdn.dukkan.example/kupa.jpg",
        "price": "249.95",
        "currency": "TRY",
        "inventory": inventory,
    }
    if variant:
        data["variant_id"] = variant
    key = f"evt-{variant or 'p'}-{inventory}-{n}"
    return {"id": key, "type": "product.updated", "data": data}


async def send(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def subscriptions(client: httpx.AsyncClient, store: StoreKey) -> list[dict[str, Any]]:
    response = await client.get("/v1/back-in-stock", headers=store.auth)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


async def customers(db: Database) -> list[str | None]:
    async with db.read() as session:
        return list((await session.execute(select(Customer.email))).scalars())


class Form(HTMLParser):
    """A page's form controls: (tag, type, name, value) of each, and the options of selects."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[tuple[str, str, str, str]] = []
        self.options: list[tuple[str, str]] = []
        self.action: str | None = None
        self._option: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag in ("input", "select", "textarea"):
            self.controls.append((tag, a.get("type", ""), a.get("name", ""), a.get("value", "")))
        elif tag == "option":
            self._option = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self.options.append((self._option, data))
            self._option = None


def form_of(html: str) -> Form:
    parsed = Form()
    parsed.feed(html)
    return parsed


def heading(html: str) -> str:
    found = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
    assert found is not None, html
    return found.group(1).strip()


async def ask(
    client: httpx.AsyncClient, store: StoreKey, email: str = EMAIL, **fields: str
) -> httpx.Response:
    body = {"product_id": CUP, "variant_id": "", "lang": "", "email": email} | fields
    return await client.post(f"/w/{store.id}/back-in-stock", data=body)


async def confirm_link(db: Database, to: str = EMAIL) -> str:
    (mail,) = [m for m in await dev_inbox(db) if m["To"] == to]
    found = CONFIRM_LINK.search(text_of(mail))
    assert found is not None, text_of(mail)
    assert found.group(0) in text_of(mail, "html")
    return found.group(0)


def csrf_of(html: str) -> str:
    (value,) = [v for _, _, name, v in form_of(html).controls if name == "csrf"]
    return value


# The form.


async def test_the_form_asks_for_an_email_the_variant_and_says_what_it_is_for(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers
) -> None:
    await send(
        client,
        store,
        product(0),
        product(0, variant="v-mavi", title="Seramik kupa – Mavi"),
        product(2, variant="v-yesil", title="Seramik kupa – Yeşil"),
    )
    await workers.drain()

    page = await client.get(f"/w/{store.id}/back-in-stock", params={"product_id": CUP})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    # Any site may frame it; nothing on it runs a script.
    assert "x-frame-options" not in page.headers
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors *" in policy
    assert "script-src" not in policy
    assert "default-src 'none'" in policy
    assert '<html lang="tr">' in page.text
    assert heading(page.text) == "Stoğa girince haber ver"
    assert "<strong>Seramik kupa</strong>" in page.text
    assert "önce onay için bir e-posta" in page.text
    form = form_of(page.text)
    assert form.action == f"/w/{store.id}/back-in-stock"
    assert form.controls == [
        ("input", "hidden", "product_id", CUP),
        ("input", "hidden", "lang", "tr"),
        ("select", "", "variant_id", ""),
        ("input", "email", "email", ""),
    ]
    assert form.options == [
        ("", "Herhangi biri"),
        ("v-mavi", "Seramik kupa – Mavi"),
        ("v-yesil", "Seramik kupa – Yeşil"),
    ]
    # The page names the variant: no choice, and in English when asked.
    named = await client.get(
        f"/w/{store.id}/back-in-stock",
        params={"product_id": CUP, "variant_id": "v-mavi", "lang": "en"},
    )
    assert named.status_code == 200
    assert '<html lang="en">' in named.text
    assert heading(named.text) == "Tell me when it&#39;s back"
    assert form_of(named.text).controls == [
        ("input", "hidden", "product_id", CUP),
        ("input", "hidden", "lang", "en"),
        ("input", "hidden", "variant_id", "v-mavi"),
        ("input", "email", "email", ""),
    ]
    # No footer of help contacts inside the shop's page.
    assert "<footer>" not in page.text


async def test_a_product_of_one_kind_has_no_choice(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers
) -> None:
    await send(client, store, product(0))
    await workers.drain()
    page = await client.get(f"/w/{store.id}/back-in-stock", params={"product_id": CUP})
    assert form_of(page.text).controls == [
        ("input", "hidden", "product_id", CUP),
        ("input", "hidden", "lang", "tr"),
        ("input", "hidden", "variant_id", ""),
        ("input", "email", "email", ""),
    ]


async def test_an_unknown_product_store_or_variant_gets_a_friendly_page(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers
) -> None:
    await send(client, store, product(0, variant="v-mavi"))
    await workers.drain()
    for params in ({"product_id": "p-yok"}, {"product_id": CUP, "variant_id": "v-yok"}, {}):
        page = await client.get(f"/w/{store.id}/back-in-stock", params=params)
        assert page.status_code == 404
        assert heading(page.text) == "Ürün bulunamadı"
        assert "Bu ürün için şu anda stok bildirimi alınamıyor." in page.text
        assert "<form" not in page.text
    english = await client.get(
        f"/w/{store.id}/back-in-stock", params={"product_id": "p-yok", "lang": "en"}
    )
    assert heading(english.text) == "Product not found"
    for store_id in (store.id + 1, 0, 2**64):
        nowhere = await client.get(
            f"/w/{store_id}/back-in-stock",
            params={"product_id": CUP},
            headers={"Accept-Language": "en"},
        )
        assert nowhere.status_code == 404
        assert heading(nowhere.text) == "Product not found"
        assert "Back-in-stock alerts are not available for this product." in nowhere.text
    script = await client.get(f"/w/{store.id + 1}/back-in-stock.js")
    assert script.status_code == 404


async def test_the_script_builds_the_iframe_from_attributes_only(
    client: httpx.AsyncClient, store: StoreKey
) -> None:
    script = await client.get(f"/w/{store.id}/back-in-stock.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    # The store's language, ASCII-escaped (whatever charset the shop's page has).
    title = '"Sto\\u011fa girince haber ver"'
    assert f'frame.title = el.getAttribute("data-title") || {title};' in script.text
    # DOM calls only: no markup is ever made of the page's text.
    for sink in ("innerHTML", "outerHTML", "document.write", "eval(", "insertAdjacentHTML"):
        assert sink not in script.text


# Double opt-in.


async def test_the_form_subscribes_only_once_the_email_is_confirmed_and_the_restock_tells(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database, clock: FrozenClock
) -> None:
    await send(
        client,
        store,
        product(0, variant="v-mavi", title="Seramik kupa – Mavi"),
        product(0, variant="v-yesil", title="Seramik kupa – Yeşil"),
    )
    await workers.drain()

    asked = await ask(client, store, email="  Ayse@Example.com ", variant_id="v-mavi")
    assert asked.status_code == 200
    assert heading(asked.text) == "E-postanızı kontrol edin"
    assert "ayse@example.com adresine bir onay bağlantısı gönderiyoruz." in asked.text
    # Nothing is written by the page: the address becomes a customer when the worker
    # applies the request, to send it the confirm email.
    assert await customers(db) == []
    await workers.drain()
    assert await customers(db) == [EMAIL]
    (mail,) = await dev_inbox(db)
    assert mail["To"] == EMAIL
    assert mail["Subject"] == "Stok bildirimini onaylayın: Seramik kupa – Mavi"
    # Informational: no unsubscribe headers.
    assert "List-Unsubscribe" not in mail
    assert "Bildirimi onayla" in text_of(mail, "html")
    assert await subscriptions(client, store) == []

    link = await confirm_link(db)
    assert link.startswith(f"http://ulak.test/p/{store.id}/back_in_stock/")
    path = link.removeprefix("http://ulak.test")
    # Opening it (a mail scanner does) subscribes nobody.
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert heading(page.text) == "Stok bildirimini onaylayın"
    assert (
        "Seramik kupa – Mavi yeniden stoğa girdiğinde ayse@example.com adresine e-posta "
        "gönderelim mi?"
    ) in page.text
    assert form_of(page.text).controls == [("input", "hidden", "csrf", csrf_of(page.text))]
    await workers.drain()
    assert await subscriptions(client, store) == []

    confirmed = await client.post(path, data={"csrf": csrf_of(page.text)})
    assert confirmed.status_code == 200
    assert heading(confirmed.text) == "Listeye eklendiniz"
    # A second click is the same request.
    again = await client.post(path, data={"csrf": csrf_of(page.text)})
    assert again.status_code == 200
    await workers.drain()
    (subscription,) = await subscriptions(client, store)
    assert (subscription["product_id"], subscription["variant_id"], subscription["status"]) == (
        CUP,
        "v-mavi",
        "waiting",
    )

    # The other colour comes back: nothing; the blue one: the back-in-stock email.
    clock.travel(timedelta(days=2))
    await send(client, store, product(3, variant="v-yesil", title="Seramik kupa – Yeşil"))
    await workers.drain()
    assert len(await dev_inbox(db)) == 1
    await send(client, store, product(3, variant="v-mavi", title="Seramik kupa – Mavi"))
    await workers.drain()
    _confirm, back = await dev_inbox(db)
    assert (back["To"], back["Subject"]) == (EMAIL, "Seramik kupa – Mavi yeniden stokta")
    assert [s["status"] for s in await subscriptions(client, store)] == ["notified"]


async def test_one_confirm_email_per_address_and_product_a_day(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database, clock: FrozenClock
) -> None:
    await send(
        client,
        store,
        product(0),
        {"id": "evt-onluk", "type": "product.updated", "data": {"product_id": "p-onluk"}},
    )
    await workers.drain()
    for _ in range(3):
        answer = await ask(client, store)
        # The same page each time: it tells no one what was asked before.
        assert answer.status_code == 200
        assert heading(answer.text) == "E-postanızı kontrol edin"
    await workers.drain()
    assert [m["To"] for m in await dev_inbox(db)] == [EMAIL]
    # Another product is another request.
    assert (await ask(client, store, product_id="p-onluk")).status_code == 200
    await workers.drain()
    assert len(await dev_inbox(db)) == 2
    # The next day (the store's day: Istanbul), the cup again.
    clock.travel(timedelta(days=1))
    assert (await ask(client, store)).status_code == 200
    await workers.drain()
    assert len(await dev_inbox(db)) == 3
    # Never confirmed: no subscription.
    assert await subscriptions(client, store) == []


# Limits.


def client_from(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://ulak.test")


async def test_one_client_address_may_ask_five_times_in_ten_minutes(
    app: Any, client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database
) -> None:
    await send(client, store, product(0))
    await workers.drain()
    async with client_from(app, "203.0.113.7") as one, client_from(app, "203.0.113.8") as other:
        for i in range(5):
            assert (await ask(one, store, email=f"m{i}@example.com")).status_code == 200
        over = await ask(one, store, email="m5@example.com")
        assert over.status_code == 429
        assert over.headers["retry-after"] == "600"
        assert heading(over.text) == "Çok fazla istek"
        english = await ask(one, store, email="m5@example.com", lang="en")
        assert (english.status_code, heading(english.text)) == (429, "Too many requests")
        # Another address is not held back.
        assert (await ask(other, store, email="m6@example.com")).status_code == 200
    await workers.drain()
    assert len(await dev_inbox(db)) == 6


async def test_a_store_takes_only_so_many_requests_an_hour(
    app: Any,
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pages, "PER_STORE", (3, 3600.0))
    other = await make_store(db, clock, name="Başka Dükkan")
    await send(client, store, product(0))
    await send(client, other, product(0))
    await workers.drain()
    for i in range(3):
        async with client_from(app, f"198.51.100.{i}") as each:
            assert (await ask(each, store, email=f"m{i}@example.com")).status_code == 200
    async with client_from(app, "198.51.100.9") as late:
        assert (await ask(late, store, email="m9@example.com")).status_code == 429
        # Another store's form is not.
        assert (await ask(late, other, email="m9@example.com")).status_code == 200


async def test_one_address_is_held_to_the_stores_daily_limit(
    app: Any, client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, back_in_stock_daily_limit=2)
    await send(
        client,
        store,
        *[
            {"id": f"evt-{i}", "type": "product.updated", "data": {"product_id": f"p-{i}"}}
            for i in range(4)
        ],
    )
    await workers.drain()
    for i in range(2):
        async with client_from(app, f"192.0.2.{i}") as each:
            answer = await ask(each, store, email="kurban@example.com", product_id=f"p-{i}")
            assert answer.status_code == 200
    # From yet another address, for yet another product: the address is held.
    async with client_from(app, "192.0.2.9") as each:
        answer = await ask(each, store, email="Kurban@example.com", product_id="p-2")
        assert (answer.status_code, heading(answer.text)) == (429, "Çok fazla istek")
    await workers.drain()
    assert len(await dev_inbox(db)) == 2


# Bad input, hostile text.


async def test_a_bad_email_gets_the_form_again_with_the_error(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database
) -> None:
    await send(client, store, product(0))
    await workers.drain()
    for typed in ("ayse", "", '"><script>alert(1)</script>@x'):
        answer = await ask(client, store, email=typed)
        assert answer.status_code == 422
        assert heading(answer.text) == "Stoğa girince haber ver"
        assert "Geçerli bir e-posta adresi yazın (ör. ad@ornek.com)." in answer.text
        assert 'aria-invalid="true"' in answer.text
        assert "<script>" not in answer.text
    escaped = await ask(client, store, email='"><script>alert(1)</script>@x')
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@x"' in escaped.text
    # The shopper's choice of variant is kept.
    await send(client, store, product(0, variant="v-mavi"), product(0, variant="v-yesil"))
    await workers.drain()
    chose = await ask(client, store, email="ayse@", variant_id="v-yesil")
    assert chose.status_code == 422
    # (Titled as the product, each variant is told apart by its id.)
    assert '<option value="v-yesil" selected>v-yesil</option>' in chose.text
    assert '<option value="v-mavi">v-mavi</option>' in chose.text
    await workers.drain()
    assert await dev_inbox(db) == []
    assert await customers(db) == []


async def test_text_from_the_query_and_the_catalogue_is_never_markup(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database
) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    await send(client, store, product(0, title=f"Kupa {hostile}"))
    await workers.drain()
    page = await client.get(
        f"/w/{store.id}/back-in-stock",
        params={"product_id": CUP, "lang": f'"><script>alert(1)</script>{hostile}'},
    )
    assert page.status_code == 200
    assert hostile not in page.text
    assert "<script>" not in page.text
    assert "Kupa &lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.text
    unknown = await client.get(
        f"/w/{store.id}/back-in-stock", params={"product_id": f"<script>{hostile}"}
    )
    assert unknown.status_code == 404
    assert hostile not in unknown.text
    assert "<script>" not in unknown.text

    assert (await ask(client, store)).status_code == 200
    await workers.drain()
    (mail,) = await dev_inbox(db)
    assert hostile not in text_of(mail, "html")
    # (The CSS inliner writes quotes in text as they are: harmless outside a tag.)
    assert 'Kupa &lt;img src=x onerror="alert(1)"&gt;' in text_of(mail, "html")
    confirm = await client.get((await confirm_link(db)).removeprefix("http://ulak.test"))
    assert hostile not in confirm.text
    assert "Kupa &lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in confirm.text


# The confirm link.


async def test_forged_expired_and_other_store_links_confirm_nothing(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database, clock: FrozenClock
) -> None:
    other = await make_store(db, clock, name="Başka Dükkan")
    await send(client, store, product(0))
    await workers.drain()
    assert (await ask(client, store)).status_code == 200
    await workers.drain()
    path = (await confirm_link(db)).removeprefix("http://ulak.test")
    token = path.rsplit("/", 1)[1]
    csrf = csrf_of((await client.get(path)).text)

    forged = f"/p/{store.id}/back_in_stock/{token[:-2]}{'AA' if token[-2:] != 'AA' else 'BB'}"
    elsewhere = f"/p/{other.id}/back_in_stock/{token}"
    other_kind = f"/p/{store.id}/preferences/{token}"
    for bad in (
        forged,
        elsewhere,
        f"/p/{store.id}/back_in_stock/x",
        f"/p/999/back_in_stock/{token}",
    ):
        for answer in (await client.get(bad), await client.post(bad, data={"csrf": csrf})):
            assert answer.status_code == 404, bad
            assert "Bu bağlantı geçerli değil." in answer.text or "not valid" in answer.text
    assert (await client.get(other_kind)).status_code == 404

    clock.travel(timedelta(days=7, seconds=1))
    expired = await client.post(path, data={"csrf": csrf})
    assert expired.status_code == 410
    assert "Bu bağlantının süresi doldu." in expired.text
    await workers.drain()
    assert await subscriptions(client, store) == []


async def test_confirming_needs_the_pages_csrf_field_from_this_site(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database
) -> None:
    await send(client, store, product(0))
    await workers.drain()
    assert (await ask(client, store)).status_code == 200
    await workers.drain()
    path = (await confirm_link(db)).removeprefix("http://ulak.test")
    csrf = csrf_of((await client.get(path)).text)
    refused = [
        await client.post(path),
        await client.post(path, data={"csrf": "0" * 64}),
        await client.post(path, data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}),
        await client.post(path, data={"csrf": csrf}, headers={"Origin": "https://evil.example"}),
    ]
    for answer in refused:
        assert answer.status_code == 403
        assert heading(answer.text) == "Bir sorun oluştu"
        assert "e-postadaki bağlantıyı yeniden açın" in answer.text
    await workers.drain()
    assert await subscriptions(client, store) == []
    ok = await client.post(path, data={"csrf": csrf}, headers={"Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200
    await workers.drain()
    assert [s["status"] for s in await subscriptions(client, store)] == ["waiting"]


async def test_an_erasure_leaves_no_address_or_link_in_the_requests_events(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database
) -> None:
    await send(client, store, product(0))
    await workers.drain()
    assert (await ask(client, store)).status_code == 200
    await workers.drain()
    path = (await confirm_link(db)).removeprefix("http://ulak.test")
    csrf = csrf_of((await client.get(path)).text)
    assert (await client.post(path, data={"csrf": csrf})).status_code == 200
    await workers.drain()
    async with db.read() as session:
        rows = await session.execute(
            select(Event.key, Event.type, Event.customer, Event.data)
            .where(Event.type.like("back_in_stock.%"))
            .order_by(Event.id)
        )
        before = rows.all()
    # The keys are HMACs: they say nothing of the address.
    assert [(re.sub(r"[0-9a-f]{40}$", "H", key), kind) for key, kind, _, _ in before] == [
        ("ulak:back_in_stock.confirm:H", "back_in_stock.confirm_requested"),
        ("ulak:back_in_stock.confirmed:H", "back_in_stock.requested"),
    ]
    assert before[0][2] == {"email": EMAIL}
    assert set(before[0][3]) == {"product_id", "title", "url", "image_url", "confirm_url"}

    erased = await client.delete(f"/v1/customers/{EMAIL}", headers=store.auth)
    assert erased.status_code == 202, erased.text
    await workers.drain()
    async with db.read() as session:
        rows = await session.execute(
            select(Event.customer, Event.data)
            .where(Event.type.like("back_in_stock.%"))
            .order_by(Event.id)
        )
        assert [tuple(row) for row in rows.all()] == [
            ({}, {"product_id": CUP}),
            ({}, {"product_id": CUP}),
        ]


async def test_odd_input_gets_a_page_never_a_server_error(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database
) -> None:
    await send(client, store, product(0))
    await workers.drain()
    nul = "a\x00b"
    answers = [
        await ask(client, store, email=f"ayse{nul}@example.com"),
        await ask(client, store, product_id=nul),
        await ask(client, store, variant_id=nul),
        await ask(client, store, lang=nul),
        await client.post(f"/w/{store.id}/back-in-stock", json={"email": EMAIL}),
        await client.post(f"/w/{2**64}/back-in-stock", data={"email": EMAIL}),
        await client.get(f"/w/{store.id}/back-in-stock", params={"product_id": nul}),
        await client.get(f"/w/{2**64}/back-in-stock.js"),
        await client.get(f"/p/{2**64}/back_in_stock/x"),
        await client.get(f"/p/{store.id}/back_in_stock/{'A' * 5000}"),
    ]
    # (A JSON body names no product: the form reads form fields.)
    assert [a.status_code for a in answers] == [422, 404, 404, 200, 404, 404, 404, 404, 404, 404]
    await workers.drain()
    # Only the one with an odd `lang` was a request (in the store's language).
    assert [m["Subject"] for m in await dev_inbox(db)] == [
        "Stok bildirimini onaylayın: Seramik kupa"
    ]


def test_every_text_is_in_both_languages() -> None:
    assert set(pages.TEXTS) == {"tr", "en"}
    assert set(pages.TEXTS["tr"]) == set(pages.TEXTS["en"])
