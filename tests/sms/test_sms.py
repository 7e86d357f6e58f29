"""SMS end to end: a journey's `send: sms` step, consent and phone, the dev SMS inbox,
short links."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy import select

from tests.support import (
    StoreKey,
    add_journey,
    consent_updated,
    create_store_with_cli,
    make_store,
    opened_app,
    order_placed,
    ulak_cli,
)
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.consent.service import consent_state
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.messages.models import Message
from ulak.messages.service import set_template_override
from ulak.sms.models import DevSms, ShortLink
from ulak.sms.service import captured_sms
from ulak.worker import Workers

PHONE = "+905321234567"


def journey(legal_class: str) -> str:
    return f"""
key: sms-{legal_class}
name: SMS {legal_class}
legal_class: {legal_class}
trigger: {{event: order.placed}}
reentry: once_per_order
steps:
  - send: sms
    template: birthday_sms
"""


def with_phone(event: dict[str, Any], phone: str | None = PHONE) -> dict[str, Any]:
    if phone is not None:
        event["customer"]["phone"] = phone
    return event


async def post(client: httpx.AsyncClient, store: Any, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def sms_messages(db: Database) -> list[tuple[str, str, str, str | None]]:
    async with db.read() as session:
        rows = await session.execute(
            select(Message).where(Message.channel == "sms").order_by(Message.id)
        )
        return [(m.to_address, m.text, m.status, m.last_error) for m in rows.scalars()]


async def test_an_informational_sms_step_reaches_the_dev_sms_inbox(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False, website_url="https://dukkan.example/")
    await add_journey(db, clock, store, journey("informational"))
    await post(client, store, with_phone(order_placed("1")))
    await workers.drain()
    async with db.read() as session:
        (link,) = (await session.execute(select(ShortLink))).scalars()
        captured = await captured_sms(session)
    assert link.target == "https://dukkan.example/"
    assert link.store_id == store.id
    text = f"Ayşe'nin Dükkanı: Doğum gününüz kutlu olsun Ayşe! http://ulak.test/s/{link.token}"
    assert await sms_messages(db) == [(PHONE, text, "sent", None)]
    assert [(c.store_id, c.to, c.sender, c.text, c.encoding, c.segments) for c in captured] == [
        (store.id, PHONE, "ULAK", text, "gsm7-turkish", 1)
    ]


async def test_commercial_sms_needs_sms_consent_and_a_phone(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, journey("commercial"))
    text = "Ayşe'nin Dükkanı: Doğum gününüz kutlu olsun Ayşe!"
    # Consent to email says nothing of SMS.
    await post(client, store, consent_updated("granted"), with_phone(order_placed("1")))
    await workers.drain()
    await post(
        client, store, consent_updated("granted", channel="sms"), with_phone(order_placed("2"))
    )
    await workers.drain()
    await post(
        client,
        store,
        with_phone(order_placed("3", customer_id="c-2", email="zeynep@example.com"), None),
    )
    await workers.drain()
    async with db.read() as session:
        (link,) = (await session.execute(select(ShortLink))).scalars()
    # A commercial SMS ends with a free way to refuse more: ulak's unsubscribe page, for SMS.
    assert link.target.startswith(f"http://ulak.test/u/{store.id}/")
    assert link.target.endswith("?c=sms")
    sent = f"{text}\nSMS iptali: http://ulak.test/s/{link.token}"
    assert await sms_messages(db) == [
        (PHONE, "", "skipped", "no consent to commercial sms on record"),
        (PHONE, sent, "sent", None),
        ("", "", "skipped", "the customer has no phone number"),
    ]
    async with db.read() as session:
        assert [r.text for r in (await session.execute(select(DevSms))).scalars()] == [sent]

    # The customer opens it and refuses: SMS consent is revoked, email consent stays.
    page = await client.get(link.target.removeprefix("http://ulak.test"))
    assert page.status_code == 200
    assert "SMS aboneliğinden çık" in page.text  # not the email one
    done = await client.post(link.target.removeprefix("http://ulak.test"))
    assert done.status_code == 200
    assert "size artık kampanya SMS&#39;i göndermeyecek." in done.text
    await workers.drain()
    await post(client, store, with_phone(order_placed("4")))
    await workers.drain()
    assert (await sms_messages(db))[-1] == (
        PHONE,
        "",
        "skipped",
        "consent to commercial sms revoked (unsubscribe_link)",
    )
    async with db.read() as session:
        ayse = (
            await session.execute(select(Customer).where(Customer.external_id == "c-1042"))
        ).scalar_one()
    assert consent_state(ayse, "email") is not None
    assert consent_state(ayse, "email").status == "granted"  # type: ignore[union-attr]


async def test_a_short_link_redirects_and_a_forged_one_is_a_page(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False, website_url="https://dukkan.example/a?b=1")
    await add_journey(db, clock, store, journey("informational"))
    await post(client, store, with_phone(order_placed("1")))
    await workers.drain()
    async with db.read() as session:
        (link,) = (await session.execute(select(ShortLink))).scalars()
    response = await client.get(f"/s/{link.token}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://dukkan.example/a?b=1"
    altered = link.token[:-1] + ("A" if link.token[-1] != "A" else "B")
    for token in (altered, "x", "a" * 300, "%00"):
        response = await client.get(f"/s/{token}", headers={"Accept-Language": "tr"})
        assert response.status_code == 404
        assert "text/html" in response.headers["content-type"]
        assert "Bu bağlantı geçerli değil" in response.text


async def test_the_dev_sms_page_shows_each_sms(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, journey("informational"))
    await post(client, store, with_phone(order_placed("1")))
    await workers.drain()
    page = await client.get("/dev/sms")
    assert page.status_code == 200
    assert "<td>+905321234567</td>" in page.text
    assert "Ayşe&#39;nin Dükkanı: Doğum gününüz kutlu olsun Ayşe!</td>" in page.text
    assert "<td>1 (gsm7-turkish)</td>" in page.text


def test_ulak_messages_sms_shows_segments_and_cost(database_url: str) -> None:
    env = {"ULAK_DATABASE_URL": database_url}
    created = create_store_with_cli(env)
    store_id, key = created["id"], created["api_key"]
    priced = ulak_cli(
        "stores", "sms", "set", "--store", str(store_id), "--price-per-segment", "0.25", env=env
    )
    assert priced.returncode == 0, priced.stderr
    long_name = "Ayşe" + "e" * 150  # the greeting takes 2 segments

    async def send() -> None:
        database = Database(database_url)
        clock = FrozenClock()
        settings = Settings(database_url=database_url, smtp_url="", public_url="http://ulak.test")
        try:
            async with (
                opened_app(settings, database, clock) as app,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://ulak.test"
                ) as client,
            ):
                await add_journey(database, clock, StoreKey(store_id, ""), journey("informational"))
                event = with_phone(order_placed("1"))
                event["customer"]["first_name"] = long_name
                await post(client, StoreKey(store_id, key), event)
                await app.state.workers.drain()
        finally:
            await database.dispose()

    asyncio.run(send())
    shown = ulak_cli("messages", "sms", "--store", str(store_id), "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    (row,) = json.loads(shown.stdout)
    text = f"Ayşe'nin Dükkanı: Doğum gününüz kutlu olsun {long_name}!"
    assert {k: v for k, v in row.items() if k not in ("id", "created_at")} == {
        "to": PHONE,
        "template": "birthday_sms",
        "status": "sent",
        "segments": 2,
        "encoding": "gsm7-turkish",
        "cost": "0.5",
        "currency": "TRY",
        "reason": None,
        "text": text,
    }


async def test_an_erasure_empties_the_customers_dev_sms_and_their_short_links(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    async with db.transaction() as session:
        # A link whose target carries the customer's data, as a shop's template may make.
        await set_template_override(
            session,
            store_id=store.id,
            name="birthday_sms",
            locale="tr",
            source="Siparişiniz: https://dukkan.example/takip?e={{ customer.email }}",
            clock=clock,
        )
    await add_journey(db, clock, store, journey("informational"))
    await post(client, store, with_phone(order_placed("1")))
    await workers.drain()
    async with db.read() as session:
        assert len(await captured_sms(session)) == 1
        (target,) = (await session.execute(select(ShortLink.target))).scalars()
        assert target == "https://dukkan.example/takip?e=ayse@example.com"
    response = await client.delete("/v1/customers/c-1042", headers=store.auth)
    assert response.status_code == 202, response.text
    await workers.drain()
    async with db.read() as session:
        assert await captured_sms(session) == []
        assert list((await session.execute(select(ShortLink))).scalars()) == []


async def test_the_customer_timeline_shows_the_sms_and_its_status(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, journey("informational"))
    await post(client, store, with_phone(order_placed("1")))
    await workers.drain()
    response = await client.get("/v1/customers/c-1042", headers=store.auth)
    assert response.status_code == 200, response.text
    (entry,) = [e for e in response.json()["timeline"] if e["kind"] == "message"]
    assert (entry["type"], entry["summary"]) == (
        "message.sent",
        "Ayşe'nin Dükkanı: Doğum gününüz kutlu olsun Ayşe!",
    )
    assert (entry["detail"]["channel"], entry["detail"]["to"]) == ("sms", PHONE)
