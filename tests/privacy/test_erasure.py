"""KVKK/GDPR erasure: `DELETE /v1/customers/{ref}` (through the worker) and `ulak customers
erase` leave no personal data anywhere ulak stores it, keep the consent proof as digests
and the orders as anonymous rows, cancel what was still to be sent, and touch no one
else."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from tests.privacy.scenario import (
    EMAIL,
    FIRST,
    IP,
    SHOP_ID,
    STREET,
    customer,
    history,
    needles,
    post,
)
from tests.support import StoreKey, dev_inbox, make_store, ulak_cli
from ulak.catalog.models import BackInStockSubscription
from ulak.channels.models import DevInboxMessage
from ulak.clock import FrozenClock
from ulak.consent.models import ConsentChange, IysPush, IysRecipient
from ulak.customers.models import Customer
from ulak.customers.service import customer_page
from ulak.db import Database
from ulak.events.models import Event
from ulak.journeys.models import Enrollment
from ulak.messages.models import Message
from ulak.orders.models import Cart, Order, OrderItem, Shipment, ShipmentCheckpoint
from ulak.suppressions.models import Suppression
from ulak.suppressions.service import suppress
from ulak.timers.models import Timer
from ulak.worker import Workers


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def erase(client: httpx.AsyncClient, store: StoreKey, workers: Workers, app: Any) -> None:
    response = await client.delete(f"/v1/customers/{SHOP_ID}", headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["event"].startswith("ulak:")
    await workers.drain()
    await app.state.inbox.scrubbed()


def sqlite_files(db: Database) -> dict[str, bytes]:
    """Every file of the database: the main one, the inbox and outcomes files, each with
    its -wal and -shm."""
    folder = Path(db.path).parent
    return {p.name: p.read_bytes() for p in sorted(folder.glob("ulak*")) if p.is_file()}


def found_in_files(files: dict[str, bytes]) -> dict[str, list[str]]:
    return {
        name: [n for n in needles() if n.encode() in content]
        for name, content in files.items()
        if any(n.encode() in content for n in needles())
    }


async def found_in_postgres(db: Database) -> list[tuple[str, str, str]]:
    """(table, column, needle) for every text, JSON and bytea column of every table that
    holds one of the needles."""
    hits = []
    async with db.read() as session:
        columns = (
            await session.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND data_type IN"
                    " ('text', 'character varying', 'json', 'jsonb', 'bytea')"
                    " ORDER BY table_name, column_name"
                )
            )
        ).all()
        assert len(columns) > 50  # every table's, not an empty schema
        for table, column, kind in columns:
            value = (
                f"convert_from(\"{column}\", 'UTF8')" if kind == "bytea" else f'"{column}"::text'
            )
            for needle in needles():
                count = await session.scalar(
                    text(
                        f'SELECT count(*) FROM "{table}"'  # noqa: S608
                        f" WHERE strpos(lower({value}), lower(:needle)) > 0"
                    ),
                    {"needle": needle},
                )
                if count:
                    hits.append((table, column, needle))
    return hits


async def rows(db: Database, query: Any) -> list[Any]:
    async with db.read() as session:
        return list((await session.execute(query)).all())


async def test_erasure_empties_every_table_of_the_customer_and_keeps_proof_and_figures(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    app: Any,
) -> None:
    await history(client, store, workers, clock)
    (ulak_id,) = await rows(db, select(Customer.id).where(Customer.external_id == SHOP_ID))
    ulak_id = ulak_id[0]
    assert len(await dev_inbox(db)) == 3
    clock.travel(timedelta(minutes=1))
    await erase(client, store, workers, app)

    (erased,) = await rows(db, select(Customer).where(Customer.store_id == store.id))
    c = erased[0]
    assert (c.id, c.external_id, c.email, c.phone, c.first_name, c.last_name) == (
        ulak_id,
        None,
        None,
        None,
        None,
        None,
    )
    assert (c.birthday, c.timezone, c.attributes, c.tags, c.erased_at) == (
        None,
        None,
        {},
        [],
        clock.now(),
    )
    # The state that decided sends stays (status, source, time): nothing personal in it.
    assert c.consent["email"]["status"] == "granted"
    # The proof of consent stays, as digests a dispute can match.
    (change,) = await rows(db, select(ConsentChange))
    change = change[0]
    canonical = json.dumps(
        {"ip": IP, "form": "Kampanyalardan haberdar olmak istiyorum", "email": EMAIL},
        sort_keys=True,
        ensure_ascii=False,
    )
    assert (change.customer_id, change.channel, change.status, change.source) == (
        ulak_id,
        "email",
        "granted",
        "signup_form",
    )
    assert change.proof == {
        "erased": True,
        "recipient_sha256": sha256(EMAIL),
        "proof_sha256": sha256(canonical),
    }
    # The order stays, anonymous: revenue holds.
    (order,) = await rows(db, select(Order))
    order = order[0]
    assert (order.customer_id, order.order_id, order.total, order.status) == (
        ulak_id,
        "1077",
        Decimal("1249.90"),
        "shipped",
    )
    assert (order.shipping_address, order.data, order.payment_method) == (None, {}, "credit_card")
    assert [
        (i.title, i.quantity)
        for (i,) in await rows(db, select(OrderItem).order_by(OrderItem.position))
    ] == [("Seramik kupa", 2), ("Bakır çaydanlık", 1)]
    (shipment,) = await rows(db, select(Shipment))
    shipment = shipment[0]
    assert (shipment.status, shipment.carrier, shipment.location, shipment.message) == (
        "in_transit",
        "Yurtiçi Kargo",
        None,
        None,
    )
    assert (shipment.tracking_number, shipment.tracking_url) == (None, None)
    # Its carrier history keeps each status and when, not where or what the carrier said.
    assert [
        (c.status, c.location, c.message) for (c,) in await rows(db, select(ShipmentCheckpoint))
    ] == [("in_transit", None, None)]
    assert await rows(db, select(Cart)) == []
    assert await rows(db, select(BackInStockSubscription)) == []
    assert await rows(db, select(Timer).where(Timer.customer_id == ulak_id)) == []
    assert await rows(db, select(DevInboxMessage)) == []
    # The messages keep what was sent when; the pending commercial one never goes.
    messages = [m for (m,) in await rows(db, select(Message).order_by(Message.id))]
    assert [(m.template, m.status, m.last_error) for m in messages] == [
        ("welcome", "sent", None),
        ("order_confirmation", "sent", None),
        ("order_shipped", "sent", None),
        ("thank_you", "skipped", "erased"),
    ]
    assert {(m.to_address, m.subject, m.preheader, m.html, m.text) for m in messages} == {
        ("[erased]", "", "", "", "")
    }
    assert [
        (e.status, e.exit_reason)
        for (e,) in await rows(db, select(Enrollment).order_by(Enrollment.id))
    ] == [
        ("completed", None),
        ("completed", None),
        ("exited", "customer erased"),
        ("completed", None),
    ]
    # The events say what happened, not to whom.
    events = [e for (e,) in await rows(db, select(Event).order_by(Event.id))]
    mine = [
        (e.key, e.type, e.status, e.customer, e.data) for e in events if e.customer_id == ulak_id
    ]
    assert mine[:7] == [
        ("evt-signup", "customer.created", "applied", {}, {}),
        (
            "evt-consent",
            "consent.updated",
            "applied",
            {},
            {"channel": "email", "status": "granted"},
        ),
        ("bis-1", "back_in_stock.requested", "applied", {}, {"product_id": "p-kupa"}),
        ("evt-cart", "cart.updated", "applied", {}, {"cart_id": "cart-77", "total": "249.95"}),
        (
            "evt-order",
            "order.placed",
            "applied",
            {},
            {
                "order_id": "1077",
                "number": "#1077",
                "cart_id": "cart-77",
                "subtotal": "1249.90",
                "total": "1249.90",
                "currency": "TRY",
            },
        ),
        (
            "evt-shipped",
            "order.shipped",
            "applied",
            {},
            {"order_id": "1077", "shipment_id": "shp-77", "carrier": "Yurtiçi Kargo"},
        ),
        (
            "evt-shipment",
            "shipment.updated",
            "applied",
            {},
            {"shipment_id": "shp-77", "order_id": "1077", "status": "in_transit"},
        ),
    ]
    assert [(k, t, s) for k, t, s, _, _ in mine[7:]] == [
        (mine[7][0], "customer.erasure_requested", "applied")
    ]
    # Nothing more goes out, and nothing is left to run for them.
    await workers.drain()
    assert await dev_inbox(db) == []
    # Their identifiers no longer lead to them: the same email makes a new customer.
    assert (
        await client.get(f"/v1/customers/{SHOP_ID}/export", headers=store.auth)
    ).status_code == 404
    await post(
        client, store, {"id": "evt-again", "type": "customer.created", "customer": {"email": EMAIL}}
    )
    await workers.drain()
    again = (await client.get(f"/v1/customers/{EMAIL}/export", headers=store.auth)).json()
    assert again["profile"]["id"] != ulak_id
    assert [e["key"] for e in again["events"]] == ["evt-again"]
    assert again["orders"] == again["consent_history"] == again["messages"] == []
    # Erasing again is a 404: there is no such customer any more.
    assert (await client.delete(f"/v1/customers/{SHOP_ID}", headers=store.auth)).status_code == 404


async def test_no_personal_byte_is_left_in_any_file_or_table(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    app: Any,
) -> None:
    await history(client, store, workers, clock)
    async with db.transaction() as session:  # the suppression list holds addresses too
        await suppress(
            session,
            store_id=store.id,
            channel="email",
            address=EMAIL,
            reason="manual",
            detail="asked by phone",
            message_id=None,
            now=clock.now(),
        )
    if db.is_sqlite:
        # As SQLite does by itself on a running server: the history moves into the files
        # (pages that deletes and updates free must be zeroed there) ...
        assert await db.checkpoint()
        assert await db.checkpoint("inbox")
    # ... and the thank-you goes: the WAL holds them again.
    await workers.drain()
    # The scan finds them before: it is no test that cannot fail.
    if db.is_sqlite:
        before = found_in_files(sqlite_files(db))
        assert {"ulak.db", "ulak.db-wal", "ulak-inbox.db"} <= set(before)
        assert {FIRST, EMAIL, "+905327654321", STREET} <= set(before["ulak.db"])
        assert FIRST in before["ulak.db-wal"]
    else:
        before_pg = {(t, n) for t, _, n in await found_in_postgres(db)}
        assert {
            ("customers", FIRST),
            ("events", EMAIL),
            ("orders", FIRST),
            ("dev_inbox", EMAIL),
        } <= before_pg
    await erase(client, store, workers, app)
    assert await rows(db, select(Suppression)) == []
    if db.is_sqlite:
        files = sqlite_files(db)
        assert {"ulak.db", "ulak-inbox.db", "ulak-outcomes.db"} <= set(files)
        assert found_in_files(files) == {}
        # The WALs were emptied, not merely left behind.
        assert {len(files[n]) for n in files if n.endswith("-wal")} == {0}
    else:
        # Rows only: PostgreSQL leaves the old row versions in the table's pages until
        # VACUUM reuses them (see README, KVKK).
        assert await found_in_postgres(db) == []


async def test_erasure_leaves_other_customers_and_stores_as_they_were(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    app: Any,
) -> None:
    # The same person at another shop, and another customer of this one.
    twin = await make_store(db, clock, name="Başka Dükkan")
    await post(
        client, twin, {"id": "evt-signup", "type": "customer.created", "customer": customer()}
    )
    neighbour = {"id": "c-2", "email": "komsu@posta.example", "first_name": "Komşu"}
    await post(
        client,
        store,
        {"id": "evt-signup", "type": "customer.created", "customer": customer()},
        {"id": "evt-neighbour", "type": "customer.created", "customer": neighbour},
    )
    await workers.drain()
    before_twin = (await client.get(f"/v1/customers/{SHOP_ID}/export", headers=twin.auth)).json()
    before_neighbour = (await client.get("/v1/customers/c-2/export", headers=store.auth)).json()
    await erase(client, store, workers, app)
    assert (
        await client.get(f"/v1/customers/{SHOP_ID}/export", headers=twin.auth)
    ).json() == before_twin
    assert (
        await client.get("/v1/customers/c-2/export", headers=store.auth)
    ).json() == before_neighbour
    assert before_twin["profile"]["email"] == EMAIL
    # Passes over a store's customers (a special day, a journey's dates) skip the erased.
    async with db.read() as session:
        page = await customer_page(session, store_id=store.id, after=0, limit=100)
    assert [id_ for id_, _, _ in page] == [before_neighbour["profile"]["id"]]


async def test_an_event_about_them_not_yet_applied_is_set_aside_emptied(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    app: Any,
) -> None:
    await post(
        client, store, {"id": "evt-signup", "type": "customer.created", "customer": customer()}
    )
    await workers.drain()
    later = (clock.now() + timedelta(hours=1)).isoformat()
    cart = {
        "id": "evt-later",
        "type": "cart.updated",
        "occurred_at": later,  # applied after the erasure, which happens now
        "customer": {"email": EMAIL, "first_name": FIRST},
        "data": {"cart_id": "cart-9", "items": [], "note": f"{FIRST} için"},
    }
    await post(client, store, cart)
    await erase(client, store, workers, app)
    (event,) = await rows(db, select(Event).where(Event.key == "evt-later"))
    event = event[0]
    assert (event.status, event.error, event.customer, event.data, event.customer_id) == (
        "failed",
        "customer erased before it was applied",
        {},
        {"cart_id": "cart-9"},
        None,
    )
    assert await rows(db, select(Cart)) == []
    assert [(c.email, c.erased_at is not None) for (c,) in await rows(db, select(Customer))] == [
        (None, True)
    ]


async def test_ulaks_copy_of_iys_keeps_digests_and_what_the_law_still_needs_sent(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    app: Any,
) -> None:
    await post(
        client, store, {"id": "evt-signup", "type": "customer.created", "customer": customer()}
    )
    await workers.drain()
    (ulak_id,) = [i for (i,) in await rows(db, select(Customer.id))]
    phone = "+905327654321"
    now = clock.now()
    push = {"store_id": store.id, "customer_id": ulak_id, "recipient_type": "BIREYSEL"}
    async with db.transaction() as session:
        session.add_all(
            [
                IysPush(
                    **push,
                    type="EPOSTA",
                    recipient=EMAIL,
                    status="ONAY",
                    source="HS_WEB",
                    consent_date=now,
                    state="sent",
                    created_at=now,
                ),
                IysPush(
                    **push,
                    type="MESAJ",
                    recipient=phone,
                    status="RET",
                    source="HS_WEB",
                    consent_date=now,
                    state="pending",
                    created_at=now,
                ),
                IysRecipient(
                    store_id=store.id,
                    type="EPOSTA",
                    recipient_type="BIREYSEL",
                    recipient=EMAIL,
                    status="ONAY",
                    updated_at=now,
                ),
                IysRecipient(
                    store_id=store.id,
                    type="EPOSTA",
                    recipient_type="BIREYSEL",
                    recipient="komsu@posta.example",
                    status="ONAY",
                    updated_at=now,
                ),
            ]
        )
    exported = (await client.get(f"/v1/customers/{SHOP_ID}/export", headers=store.auth)).json()
    assert [(r["type"], r["recipient"], r["state"]) for r in exported["iys_registrations"]] == [
        ("EPOSTA", EMAIL, "sent"),
        ("MESAJ", phone, "pending"),
    ]
    await erase(client, store, workers, app)
    pushes = [
        (p.type, p.recipient, p.state)
        for (p,) in await rows(db, select(IysPush).order_by(IysPush.id))
    ]
    assert pushes == [
        ("EPOSTA", "sha256:" + sha256(EMAIL), "sent"),
        # Still to be registered at İYS, as the law asks: it keeps the number until then.
        ("MESAJ", phone, "pending"),
    ]
    assert [r.recipient for (r,) in await rows(db, select(IysRecipient))] == ["komsu@posta.example"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_cli_erases_at_once(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
    database_url: str,
) -> None:
    await history(client, store, workers, clock)
    env = {"ULAK_DATABASE_URL": database_url}
    args = ("customers", "erase", "--store", str(store.id), EMAIL)
    result = await asyncio.to_thread(ulak_cli, *args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "customer 1 erased: 1 profile(s), 1 order(s) kept anonymous, 1 cart(s) deleted, "
        "7 event(s) emptied, 4 message(s) emptied (1 cancelled), 4 enrollment(s), 1 consent "
        "change(s) kept as proof, 1 back-in-stock subscription(s), 2 timer(s), 0 review(s) and"
        " 0 topic choice(s) deleted, 0 return(s) and 0 survey comment(s) emptied\n"
    )
    assert found_in_files(sqlite_files(db)) == {}
    again = await asyncio.to_thread(ulak_cli, *args, env=env)
    assert (again.returncode, again.stderr) == (2, f"error: no customer {EMAIL!r} in this store\n")


async def test_a_shops_event_of_the_erasure_type_erases_nothing(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers
) -> None:
    # Only ulak's own route names a customer by ulak's id: the type alone does nothing.
    await post(
        client,
        store,
        {"id": "evt-signup", "type": "customer.created", "customer": customer()},
        {"id": "evt-fake", "type": "customer.erasure_requested", "customer": {"id": SHOP_ID}},
    )
    await workers.drain()
    data = (await client.get(f"/v1/customers/{SHOP_ID}/export", headers=store.auth)).json()
    assert (data["profile"]["email"], data["profile"]["first_name"]) == (EMAIL, FIRST)
    assert [(e["key"], e["status"]) for e in data["events"]] == [
        ("evt-signup", "applied"),
        ("evt-fake", "applied"),
    ]
