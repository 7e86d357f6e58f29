"""The preference page: the customer's channels × topics as the store is set up, saving
through events, re-subscribing, KVKK/GDPR requests that reach the shop, and every way a
link or a form can be wrong."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support import StoreKey, dev_inbox, make_store, text_of, ulak_cli
from ulak.clock import FrozenClock
from ulak.consent.models import ConsentChange
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.messages.models import Message
from ulak.preferences.models import PrivacyRequest, TopicPreference
from ulak.sms.service import set_sms
from ulak.stores.service import get_store
from ulak.web.links import LIFETIMES, page_url
from ulak.worker import Workers

EMAIL = "ayse@example.com"
GUEST = "aysegul@example.com"
PHONE = "+905321234567"
CHECKBOX = re.compile(r"<input type=\"checkbox\"([^>]*)>")
OPTIONAL = ["newsletters", "offers", "reviews", "surveys", "back_in_stock"]


async def post(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def with_customer(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database, **fields: Any
) -> int:
    profile = {"id": "c-1042", "email": EMAIL, "first_name": "Ayşe", "locale": "tr"} | fields
    await post(
        client,
        store,
        {"id": "evt-c", "type": "customer.created", "customer": profile},
        {
            "id": "evt-consent",
            "type": "consent.updated",
            "customer": profile,
            "data": {"channel": "email", "status": "granted", "source": "checkout"},
        },
    )
    await workers.drain()
    async with db.read() as session:
        found = await session.scalar(
            select(Customer.id).where(
                Customer.store_id == store.id, Customer.external_id == "c-1042"
            )
        )
    assert found is not None
    return found


async def link(db: Database, store: StoreKey, clock: FrozenClock, customer_id: int) -> str:
    async with db.read() as session:
        found = await get_store(session, store.id)
    url = page_url("http://ulak.test", found, "preferences", {"c": customer_id}, at=clock.now())
    return url.removeprefix("http://ulak.test")


async def with_sms(db: Database, store: StoreKey, clock: FrozenClock) -> None:
    async with db.transaction() as session:
        await set_sms(
            session,
            store_id=store.id,
            clock=clock,
            provider="netgsm",
            credentials={"usercode": "u", "password": "p"},
            sender="DUKKAN",
        )


def boxes(html: str) -> list[tuple[str, bool, bool]]:
    """Each checkbox: (id, checked, disabled), in page order."""
    out = []
    for attrs in CHECKBOX.findall(html):
        found = re.search(r'id="([^"]+)"', attrs)
        assert found is not None
        out.append((found.group(1), " checked" in attrs, " disabled" in attrs))
    return out


def expected(
    channel: str, consent: bool, off: tuple[str, ...] = ()
) -> list[tuple[str, bool, bool]]:
    return [
        (f"channel-{channel}", consent, False),
        (f"topic-{channel}-order_updates", True, True),
        *[(f"topic-{channel}-{t}", t not in off, False) for t in OPTIONAL],
    ]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None
    return found.group(1)


async def test_the_page_shows_each_channel_the_store_and_customer_have_with_its_topics(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    customer_id = await with_customer(client, store, workers, db, phone=PHONE)
    url = await link(db, store, clock, customer_id)
    page = await client.get(url)
    assert page.status_code == 200, page.text
    # No SMS set up in the store: email only, in the customer's language.
    assert boxes(page.text) == expected("email", consent=True)
    assert '<html lang="tr">' in page.text
    assert "Kampanyalar ve indirimler" in page.text
    assert "/u/" in page.text  # the one-click unsubscribe stays reachable
    await with_sms(db, store, clock)
    page = await client.get(url)
    assert boxes(page.text) == expected("email", True) + expected("sms", False)
    # A customer without a phone gets no SMS choices even where the store sends SMS.
    other = await make_store(db, clock, name="Başka Dükkan", library=False)
    await with_sms(db, other, clock)
    second = await with_customer(client, other, workers, db)
    page = await client.get(await link(db, other, clock, second))
    assert boxes(page.text) == expected("email", True)


async def test_saving_turns_off_a_topic_and_a_channel_and_resubscribes_after_an_unsubscribe(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    customer_id = await with_customer(client, store, workers, db, phone=PHONE)
    await with_sms(db, store, clock)
    url = await link(db, store, clock, customer_id)
    page = await client.get(url)
    form = {
        "csrf": csrf_of(page.text),
        "action": "save",
        # Email consent unchecked (turned off); offers off on email; SMS consent given.
        **{f"topic:email:{t}": "on" for t in OPTIONAL if t != "offers"},
        "channel:sms": "on",
        **{f"topic:sms:{t}": "on" for t in OPTIONAL},
    }
    saved = await client.post(url, data=form)
    assert saved.status_code == 200, saved.text
    assert "Tercihleriniz kaydedildi" in saved.text
    assert boxes(saved.text) == expected("email", False, ("offers",)) + expected("sms", True)
    await workers.drain()
    async with db.read() as session:
        changes = (await session.scalars(select(ConsentChange).order_by(ConsentChange.id))).all()
        topics = (await session.scalars(select(TopicPreference))).all()
    assert [(c.channel, c.status, c.source) for c in changes] == [
        ("email", "granted", "checkout"),
        ("email", "revoked", "preferences_page"),
        ("sms", "granted", "preferences_page"),
    ]
    assert [(t.customer_id, t.channel, t.topic, t.subscribed, t.source) for t in topics] == [
        (customer_id, "email", "offers", False, "preferences_page")
    ]
    # Read back from the database: the page shows what was applied.
    assert boxes((await client.get(url)).text) == expected("email", False, ("offers",)) + (
        expected("sms", True)
    )
    # Saving the same again sends nothing.
    again = dict(form)
    await client.post(url, data=again)
    await workers.drain()
    async with db.read() as session:
        assert len((await session.scalars(select(ConsentChange))).all()) == 3

    # The one-click unsubscribe, then a re-subscribe on the page: a grant.
    unsubscribe = re.search(r'href="http://[^"]+(/u/[^"]+)"', page.text)
    assert unsubscribe is not None
    assert (await client.post(unsubscribe.group(1))).status_code == 200
    await workers.drain()
    resubscribe = form | {"channel:email": "on", "topic:email:offers": "on"}
    await client.post(url, data=resubscribe)
    await workers.drain()
    async with db.read() as session:
        person = await session.get(Customer, customer_id)
        assert person is not None
        assert (person.consent["email"]["status"], person.consent["email"]["source"]) == (
            "granted",
            "preferences_page",
        )
        topic = await session.get(TopicPreference, (customer_id, "email", "offers"))
        assert topic is not None
        assert topic.subscribed is True


async def test_a_post_without_the_right_csrf_or_from_another_site_changes_nothing(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    customer_id = await with_customer(client, store, workers, db)
    url = await link(db, store, clock, customer_id)
    good = csrf_of((await client.get(url)).text)
    for data, headers in (
        ({"action": "save"}, {}),
        ({"action": "save", "csrf": "0" * 64}, {}),
        ({"action": "erase", "csrf": good}, {"Sec-Fetch-Site": "cross-site"}),
        ({"action": "save", "csrf": good}, {"Origin": "https://evil.example"}),
    ):
        refused = await client.post(url, data=data, headers=headers)
        assert refused.status_code == 403, data
        assert "Bu form gönderilemedi" in refused.text
    await workers.drain()
    async with db.read() as session:
        assert len((await session.scalars(select(ConsentChange))).all()) == 1
        assert (await session.scalars(select(PrivacyRequest))).all() == []


async def test_forged_expired_and_other_store_links_get_a_friendly_page(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    customer_id = await with_customer(client, store, workers, db)
    url = await link(db, store, clock, customer_id)
    other = await make_store(db, clock, name="Başka Dükkan", library=False)
    base, token = url.rsplit("/", 1)
    forged = f"{base}/{token[:-3]}AAA"
    other_store = url.replace(f"/p/{store.id}/", f"/p/{other.id}/")
    other_kind = url.replace("/preferences/", "/tracking/")
    for bad in (forged, other_store, f"{base}/nope", "/p/999999/preferences/x"):
        for method in ("GET", "POST"):
            response = await client.request(method, bad, data={"csrf": "x"})
            assert response.status_code == 404, (method, bad)
            assert "<html" in response.text
    assert (await client.get(other_kind)).status_code in (404, 405)
    # A link to a customer the store does not have (signed by the store: e.g. erased).
    assert (await client.get(await link(db, store, clock, customer_id + 1000))).status_code == 404
    clock.travel(LIFETIMES["preferences"] + timedelta(seconds=1))
    expired = await client.get(url)
    assert expired.status_code == 410
    assert "süresi doldu" in expired.text


async def test_a_data_request_from_the_page_reaches_the_shop_and_is_listed(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    database_url: str,
) -> None:
    store = await make_store(db, clock, contact_email="destek@dukkan.example")
    customer_id = await with_customer(client, store, workers, db, last_name="Yılmaz")
    url = await link(db, store, clock, customer_id)
    csrf = csrf_of((await client.get(url)).text)
    done = await client.post(url, data={"csrf": csrf, "action": "erase"})
    assert done.status_code == 200
    assert "Başvurunuz mağazaya iletildi" in done.text
    await workers.drain()
    (alert,) = [m for m in await dev_inbox(db) if m["To"] == "destek@dukkan.example"]
    assert alert["Subject"] == "ulak: bir müşteri verilerinin silinmesini istiyor (Ayşe Yılmaz)"
    body = text_of(alert).replace("\r\n", "\n")
    assert body.split("\n\n--")[0] == (
        f"Bir müşteri {clock.now().strftime('%Y-%m-%d %H:%M')} UTC tarihinde tercih "
        "sayfanızdan hakkındaki verilerin silinmesini istedi. KVKK ve GDPR yanıt için 30 gün "
        "tanır.\n\n"
        "Müşteri: Ayşe Yılmaz\nE-posta: ayse@example.com\nMüşteri numaranız: c-1042\n"
        "Başvurunun bu müşteriye ait olduğunu doğrulayın (adresinden bir yanıt), ardından "
        f"yanıtlayın:\n  ulak customers erase --store {store.id} c-1042\n"
        f"Tüm başvurular: ulak preferences requests --store {store.id}"
    )
    # Nothing erased: the shop confirms first.
    async with db.read() as session:
        person = await session.get(Customer, customer_id)
        assert person is not None
        assert person.erased_at is None
        assert person.email == EMAIL
    listed = await client.get("/v1/privacy/requests", headers=store.auth)
    assert listed.status_code == 200
    assert [(r["customer"], r["kind"], r["source"]) for r in listed.json()] == [
        ("c-1042", "erase", "preferences_page")
    ]
    assert (await client.get("/v1/privacy/requests")).status_code == 401
    other = await make_store(db, clock, name="Başka Dükkan", library=False)
    assert (await client.get("/v1/privacy/requests", headers=other.auth)).json() == []
    # The export names the request too.
    exported = await client.get("/v1/customers/c-1042/export", headers=store.auth)
    assert [(r["kind"], r["source"]) for r in exported.json()["privacy_requests"]] == [
        ("erase", "preferences_page")
    ]
    if database_url.startswith("sqlite"):
        result = await asyncio.to_thread(
            ulak_cli,
            "preferences", "requests", "--store", str(store.id), "--json",
            env={"ULAK_DATABASE_URL": database_url},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert [(r["customer"], r["kind"]) for r in json.loads(result.stdout)] == [
            ("c-1042", "erase")
        ]
    # A few requests an hour from one link, then a polite refusal.
    for _ in range(2):
        assert (await client.post(url, data={"csrf": csrf, "action": "export"})).status_code == 200
    limited = await client.post(url, data={"csrf": csrf, "action": "export"})
    assert limited.status_code == 429


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_store_name_is_escaped_on_the_page(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, name="<script>alert(1)</script> Dükkan")
    customer_id = await with_customer(client, store, workers, db)
    page = await client.get(await link(db, store, clock, customer_id))
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Dükkan" in page.text


async def test_an_erasure_deletes_the_topic_choices_and_keeps_the_request(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, contact_email="destek@dukkan.example")
    customer_id = await with_customer(client, store, workers, db, last_name="Yılmaz")
    # A guest profile of the same person asks too, from its own link, before a merge.
    guest = {"email": GUEST, "first_name": "Ayşegül", "last_name": "Demirtaş", "phone": PHONE}
    await post(client, store, {"id": "evt-g", "type": "customer.created", "customer": guest})
    await workers.drain()
    async with db.read() as session:
        guest_id = await session.scalar(select(Customer.id).where(Customer.email == GUEST))
    assert guest_id is not None
    url = await link(db, store, clock, customer_id)
    csrf = csrf_of((await client.get(url)).text)
    await client.post(url, data={"csrf": csrf, "action": "save", "channel:email": "on"})
    await client.post(url, data={"csrf": csrf, "action": "erase"})
    guest_url = await link(db, store, clock, guest_id)
    guest_csrf = csrf_of((await client.get(guest_url)).text)
    await client.post(guest_url, data={"csrf": guest_csrf, "action": "export"})
    await workers.drain()
    merge = {"type": "customer.updated", "customer": {"id": "c-1042", "phone": PHONE}}
    await post(client, store, merge)
    await workers.drain()
    # The shop's two alerts name the person, in the outbox and the dev inbox.
    personal = [EMAIL, GUEST, "Ayşe", "Yılmaz", "Ayşegül", "Demirtaş", PHONE]
    alerts = [m for m in await dev_inbox(db) if m["To"] == "destek@dukkan.example"]
    assert len(alerts) == 2
    assert {EMAIL, GUEST, PHONE} <= {p for p in personal for m in alerts if p in text_of(m)}
    erased = await client.delete("/v1/customers/c-1042", headers=store.auth)
    assert erased.status_code == 202
    await workers.drain()
    async with db.read() as session:
        assert (await session.scalars(select(TopicPreference))).all() == []
        requests = (await session.scalars(select(PrivacyRequest))).all()
        assert sorted((r.customer_id, r.kind) for r in requests) == [
            (customer_id, "erase"),
            (customer_id, "export"),
        ]
        # No message ulak keeps names them any more, the shop's alerts included (KVKK).
        messages = (await session.scalars(select(Message))).all()
        assert messages
        for message in messages:
            kept = " ".join(str(getattr(message, c.key)) for c in Message.__table__.columns)
            assert not [p for p in personal if p in kept], message.template
        assert {m.template for m in messages if m.customer_id is None} == {"shop_alert_privacy"}
    for mail in await dev_inbox(db):
        kept = f"{mail['Subject']} {mail['To']} {text_of(mail)} {text_of(mail, 'html')}"
        assert not [p for p in personal if p in kept], mail["Subject"]
    # The page of an erased customer names nobody.
    assert (await client.get(url)).status_code == 404
    listed = await client.get("/v1/privacy/requests", headers=store.auth)
    assert [(r["customer"], r["kind"]) for r in listed.json()] == [
        (None, "export"),
        (None, "erase"),
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_customer_name_with_markup_is_escaped_in_the_shops_alert(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, contact_email="destek@dukkan.example")
    name = '<img src=x onerror="alert(1)">'
    customer_id = await with_customer(client, store, workers, db, first_name=name)
    url = await link(db, store, clock, customer_id)
    csrf = csrf_of((await client.get(url)).text)
    await client.post(url, data={"csrf": csrf, "action": "export"})
    await workers.drain()
    (alert,) = [m for m in await dev_inbox(db) if m["To"] == "destek@dukkan.example"]
    html = text_of(alert, "html")
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=" in html
    assert alert["Subject"].startswith("ulak: bir müşteri verilerinin bir kopyasını istiyor")
