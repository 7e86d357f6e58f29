"""Consent to commercial messages: recorded per customer and channel from consent.updated,
checked as each message leaves; informational messages need none."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from tests.support import (
    StoreKey,
    add_journey,
    consent_updated,
    dev_inbox,
    make_store,
    order_placed,
)
from ulak.clock import FrozenClock
from ulak.consent.models import ConsentChange
from ulak.consent.service import refusal
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.messages.models import Message
from ulak.worker import Workers

OFFER = """
key: next-order
name: Next order offer
legal_class: commercial
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - send: email
    template: order_delivered
"""


async def post(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def outcomes(db: Database, after: int = 0) -> set[tuple[str, str, str | None]]:
    """(template, status, reason) of the messages after the first `after`."""
    async with db.read() as session:
        rows = await session.execute(select(Message).order_by(Message.id).offset(after))
        return {(m.template, m.status, m.last_error) for m in rows.scalars()}


async def customer(db: Database) -> Customer:
    async with db.read() as session:
        (found,) = (
            await session.execute(select(Customer).where(Customer.merged_into_id.is_(None)))
        ).scalars()
        return found


async def test_commercial_needs_granted_consent_and_informational_needs_none(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock)  # the shipped order emails are informational
    await add_journey(db, clock, store, OFFER)
    no_consent = ("order_delivered", "skipped", "no consent to commercial email on record")
    revoked = ("order_delivered", "skipped", "consent to commercial email revoked (iys)")
    confirmation = ("order_confirmation", "sent", None)
    steps: list[tuple[list[dict[str, Any]], set[tuple[str, str, str | None]]]] = [
        ([order_placed("1")], {confirmation, no_consent}),
        (
            [consent_updated("granted"), order_placed("2")],
            {confirmation, ("order_delivered", "sent", None)},
        ),
        ([consent_updated("revoked", source="iys"), order_placed("3")], {confirmation, revoked}),
        # Consent to SMS says nothing of email.
        ([consent_updated("granted", channel="sms"), order_placed("4")], {confirmation, revoked}),
    ]
    for number, (events, expected) in enumerate(steps):
        await post(client, store, *events)
        await workers.drain()
        assert await outcomes(db, after=2 * number) == expected, number
    assert len(await dev_inbox(db)) == 5
    person = await customer(db)
    assert {channel: state["status"] for channel, state in person.consent.items()} == {
        "email": "revoked",
        "sms": "granted",
    }
    async with db.read() as session:
        history = (await session.execute(select(ConsentChange).order_by(ConsentChange.id))).all()
        assert [
            (c.customer_id, c.channel, c.status, c.source, c.recipient_type) for (c,) in history
        ] == [
            (person.id, "email", "granted", "checkout", "individual"),
            (person.id, "email", "revoked", "iys", "individual"),
            (person.id, "sms", "granted", "checkout", "individual"),
        ]


async def test_a_grant_reported_late_does_not_undo_a_later_revocation(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    revoked = consent_updated("revoked", occurred_at="2026-03-02T12:00:00+03:00")
    granted = consent_updated("granted", occurred_at="2026-03-02T11:00:00+03:00")
    await post(client, store, revoked)
    await workers.drain()
    await post(client, store, granted)
    await workers.drain()
    person = await customer(db)
    assert person.consent == {
        "email": {
            "status": "revoked",
            "source": "checkout",
            "at": "2026-03-02T09:00:00+00:00",
            "since": "2026-03-02T09:00:00+00:00",
            "recipient_type": "individual",
        }
    }
    async with db.read() as session:
        statuses = (await session.execute(select(ConsentChange.status))).scalars().all()
    assert sorted(statuses) == ["granted", "revoked"]  # both kept as history


async def test_the_change_that_occurred_last_decides_whatever_the_order_they_arrive_in(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    # Revoked on 1 January and again on 1 March; a grant of 1 February arrives last.
    for status, day in (("revoked", "01-01"), ("revoked", "03-01"), ("granted", "02-01")):
        change = consent_updated(status, event_id=f"c-{day}", occurred_at=f"2026-{day}T10:00:00Z")
        await post(client, store, change)
        await workers.drain()
    state = (await customer(db)).consent["email"]
    assert (state["status"], state["at"], state["since"]) == (
        "revoked",
        "2026-03-01T10:00:00+00:00",
        "2026-01-01T10:00:00+00:00",
    )


async def test_a_grant_dated_ahead_does_not_outrank_a_later_unsubscribe(
    client: httpx.AsyncClient, store: StoreKey, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    ahead = (clock.now() + timedelta(days=365)).isoformat()
    await post(client, store, consent_updated("granted", occurred_at=ahead))
    await workers.drain()
    assert (await customer(db)).consent["email"]["at"] == clock.now().isoformat()
    clock.travel(timedelta(minutes=5))
    unsubscribe = {
        "type": "message.unsubscribed",
        "customer": {"id": "c-1042"},
        "data": {"channel": "email"},
    }
    await post(client, store, unsubscribe)
    await workers.drain()
    assert refusal(await customer(db), "email", merchant_opt_out=False) == (
        "consent to commercial email revoked (unsubscribe_link)"
    )


async def test_merged_profiles_keep_both_histories_and_the_latest_change_decides(
    client: httpx.AsyncClient, store: StoreKey, db: Database, workers: Workers
) -> None:
    guest = consent_updated("granted", customer_id="", email="guest@example.com")
    guest["customer"] = {"email": "guest@example.com"}
    guest["occurred_at"] = "2026-03-02T11:00:00+03:00"
    known = consent_updated(
        "revoked",
        customer_id="c-7",
        email="other@example.com",
        occurred_at="2026-03-01T10:00:00+03:00",
    )
    await post(client, store, guest, known)
    await workers.drain()
    merge = {"type": "customer.updated", "customer": {"id": "c-7", "email": "guest@example.com"}}
    await post(client, store, merge)
    await workers.drain()
    person = await customer(db)
    assert person.external_id == "c-7"
    assert person.consent["email"]["status"] == "granted"  # the guest's grant came later
    async with db.read() as session:
        owners = (await session.execute(select(ConsentChange.customer_id))).scalars().all()
    assert owners == [person.id, person.id]


async def test_a_consent_event_that_breaks_the_contract_is_refused_with_its_path(
    client: httpx.AsyncClient, store: StoreKey
) -> None:
    bad = consent_updated("maybe", channel="fax")
    response = await client.post("/v1/events", json=bad, headers=store.auth)
    assert response.status_code == 422
    paths = sorted(detail["path"] for detail in response.json()["error"]["details"])
    assert paths == ["data.channel", "data.status"]
