from __future__ import annotations

from datetime import date
from typing import Any

import httpx
from sqlalchemy import select, update

from tests.support import StoreKey, order_placed
from ulak.consent.models import ConsentChange
from ulak.consent.service import refusal
from ulak.customers.identity import normalize_email, normalize_phone
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.events.models import Event
from ulak.worker import Workers


def test_emails_are_normalised_without_breaking_turkish_letters() -> None:
    assert normalize_email("  Ayse.Yilmaz@Example.COM ") == "ayse.yilmaz@example.com"
    # str.lower() would turn İ into i + U+0307 and corrupt the address.
    assert normalize_email("İLKER@ÖRNEK.com.tr") == "İlker@örnek.com.tr"
    assert normalize_email("not an address") is None


def test_phones_become_e164_in_the_store_region() -> None:
    assert normalize_phone("0532 111 22 33", "TR") == "+905321112233"
    assert normalize_phone("+49 30 123456", "TR") == "+4930123456"
    assert normalize_phone("12", "TR") is None


async def post(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def live_customers(db: Database) -> list[Customer]:
    async with db.transaction() as session:
        query = select(Customer).where(Customer.merged_into_id.is_(None)).order_by(Customer.id)
        return list((await session.execute(query)).scalars())


async def test_a_guest_who_signs_up_is_one_customer(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    guest = order_placed("1")
    guest["customer"] = {"email": "AYSE@example.com", "phone": "0532 111 22 33"}
    signup = {
        "id": "signup-1",
        "type": "customer.created",
        "customer": {"id": "c-1042", "email": "ayse@example.com", "first_name": "Ayşe"},
    }
    await post(client, store, guest)
    await workers.drain()
    await post(client, store, signup)
    await workers.drain()
    (customer,) = await live_customers(db)
    assert (customer.external_id, customer.email, customer.phone, customer.first_name) == (
        "c-1042",
        "ayse@example.com",
        "+905321112233",
        "Ayşe",
    )
    profile = (await client.get("/v1/customers/c-1042", headers=store.auth)).json()
    assert [o["order_id"] for o in profile["orders"]] == ["1"]
    assert profile["orders"][0]["status_history"][0]["status"] == "placed"


async def test_two_profiles_named_by_one_event_are_merged(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    by_id = order_placed("1", customer_id="c-1", email="first@example.com")
    by_phone = order_placed("2")
    by_phone["customer"] = {"phone": "+905321112233"}
    both = {
        "id": "update-1",
        "type": "customer.updated",
        "customer": {"id": "c-1", "phone": "+90 532 111 22 33"},
    }
    await post(client, store, by_id, by_phone)
    await workers.drain()
    assert len(await live_customers(db)) == 2
    await post(client, store, both)
    await workers.drain()
    (customer,) = await live_customers(db)
    assert (customer.external_id, customer.email, customer.phone) == (
        "c-1",
        "first@example.com",
        "+905321112233",
    )
    profile = (await client.get("/v1/customers/first@example.com", headers=store.auth)).json()
    assert sorted(o["order_id"] for o in profile["orders"]) == ["1", "2"]


async def test_events_applied_in_the_batch_of_a_merge_move_to_the_survivor(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    by_id = order_placed("1", customer_id="c-1", email="first@example.com")
    by_phone = order_placed("2")
    by_phone["customer"] = {"phone": "+905321112233"}
    both = {
        "id": "update-1",
        "type": "customer.updated",
        "customer": {"id": "c-1", "phone": "+90 532 111 22 33"},
    }
    await post(client, store, by_id, by_phone, both)
    await workers.drain()
    (customer,) = await live_customers(db)
    async with db.transaction() as session:
        rows = await session.execute(select(Event.key, Event.status, Event.customer_id))
        events = sorted(tuple(row) for row in rows)
    assert events == [
        ("evt-order-1", "applied", customer.id),
        ("evt-order-2", "applied", customer.id),
        ("update-1", "applied", customer.id),
    ]


async def test_a_customer_of_another_store_is_not_found(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    from tests.support import make_store
    from ulak.clock import FrozenClock

    other = await make_store(db, FrozenClock(), name="Başka")
    await post(client, store, order_placed("1"))
    await workers.drain()
    response = await client.get("/v1/customers/c-1042", headers=other.auth)
    assert response.status_code == 404
    assert (await client.get("/v1/customers/c-1042", headers=store.auth)).status_code == 200


async def test_an_unsubscribe_survives_a_merge_and_old_links_reach_the_person(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    from ulak.messages.service import unsubscribe_url
    from ulak.stores.service import get_store

    guest = order_placed("1")
    guest["customer"] = {"email": "guest@example.com"}
    known = order_placed("2", customer_id="c-7", email="other@example.com")
    await post(client, store, guest, known)
    await workers.drain()
    rows = {c.email: c for c in await live_customers(db)}
    guest_row, known_row = rows["guest@example.com"], rows["other@example.com"]
    async with db.transaction() as session:
        store_row = await get_store(session, store.id)
        guest_link = unsubscribe_url("http://ulak.test", store_row, guest_row.id)
    # The guest unsubscribes, then turns out to be c-7 (who signs up with that email).
    assert (await client.post(guest_link.removeprefix("http://ulak.test"))).status_code == 200
    merge = {
        "id": "merge",
        "type": "customer.updated",
        "customer": {"id": "c-7", "email": "guest@example.com"},
    }
    await post(client, store, merge)
    await workers.drain()
    (person,) = await live_customers(db)
    assert person.id == known_row.id
    assert (
        refusal(person, "email", merchant_opt_out=False)
        == "consent to commercial email revoked (unsubscribe_link)"
    )

    # A link from before the merge still names the absorbed profile; it reaches the person.
    async with db.transaction() as session:
        await session.execute(update(Customer).values(consent={}))
    assert (await client.post(guest_link.removeprefix("http://ulak.test"))).status_code == 200
    await workers.drain()  # the page's event is applied by the worker
    (person,) = await live_customers(db)
    assert (
        refusal(person, "email", merchant_opt_out=False)
        == "consent to commercial email revoked (unsubscribe_link)"
    )
    async with db.read() as session:
        history = (
            await session.execute(select(ConsentChange).order_by(ConsentChange.id))
        ).scalars()
        assert [(c.customer_id, c.status, c.source) for c in history] == [
            (person.id, "revoked", "unsubscribe_link"),
            (person.id, "revoked", "unsubscribe_link"),
        ]


async def test_a_customer_id_or_email_with_a_slash_can_be_looked_up(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers
) -> None:
    await post(client, store, order_placed("1", customer_id="shop/42", email="a/b@example.com"))
    await workers.drain()
    for ref in ("shop%2F42", "a%2Fb%40example.com", "shop/42"):
        response = await client.get(f"/v1/customers/{ref}", headers=store.auth)
        assert response.status_code == 200, ref
        assert response.json()["customer"]["email"] == "a/b@example.com", ref
    missing = await client.get("/v1/customers/shop%2F43", headers=store.auth)
    assert missing.status_code == 404


async def test_a_birthday_given_in_an_event_is_kept_and_shown(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, db: Database
) -> None:
    """It passed validation and then failed every event on SQLite ("SQLite Date type only
    accepts Python date objects"), and stayed a string on PostgreSQL."""
    first = order_placed("1")
    first["customer"]["birthday"] = "1990-02-28"
    await post(client, store, first)
    await workers.drain()
    later = order_placed("2")
    later["customer"]["birthday"] = "1990-03-01"  # corrected by the shop
    await post(client, store, later)
    await workers.drain()
    async with db.read() as session:
        statuses = (await session.scalars(select(Event.status))).all()
    assert statuses == ["applied", "applied"]
    (person,) = await live_customers(db)
    assert person.birthday == date(1990, 3, 1)
    response = await client.get("/v1/customers/c-1042", headers=store.auth)
    assert response.json()["customer"]["birthday"] == "1990-03-01"
