"""Topics: a customer who turned a topic off on a channel gets none of its messages there,
at creation and at the sender's claim; every other topic, channel and the order's own
news go on."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support import (
    StoreKey,
    add_journey,
    consent_updated,
    dev_inbox,
    make_store,
    order_placed,
    text_of,
)
from ulak.clock import FrozenClock
from ulak.coupons.models import Coupon
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.journeys.definition import load_journey
from ulak.journeys.models import EnrollmentStep
from ulak.messages.models import Message
from ulak.preferences.models import TopicPreference
from ulak.preferences.topics import topic_of
from ulak.worker import Workers

OFFERS = """
key: next-order
name: Next order offer
legal_class: commercial
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - send: email
    template: order_delivered
"""

NEWS = """
key: news
name: News
legal_class: commercial
topic: newsletters
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - send: email
    template: order_preparing
"""

SMS_OFFERS = """
key: sms-offer
name: SMS offer
legal_class: commercial
trigger: {event: order.placed}
reentry: once_per_order
steps:
  - send: sms
    template: birthday_sms
"""

PHONE = "+905321234567"


def customer() -> dict[str, Any]:
    return {"id": "c-1042", "email": "ayse@example.com", "phone": PHONE}


def preferences(topics: dict[str, dict[str, bool]], key: str = "evt-prefs") -> dict[str, Any]:
    return {
        "id": key,
        "type": "preferences.updated",
        "customer": customer(),
        "data": {"topics": topics, "source": "account_page"},
    }


async def post(client: httpx.AsyncClient, store: StoreKey, *events: dict[str, Any]) -> None:
    response = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []


async def outbox(db: Database) -> set[tuple[str, str, str, str | None, str | None]]:
    async with db.read() as session:
        rows = (await session.execute(select(Message))).scalars()
        return {(m.template, m.channel, m.status, m.topic, m.last_error) for m in rows}


async def setup(client: httpx.AsyncClient, db: Database, clock: FrozenClock) -> StoreKey:
    store = await make_store(db, clock)  # with the shipped (informational) order emails
    for journey in (OFFERS, NEWS, SMS_OFFERS):
        await add_journey(db, clock, store, journey)
    with_phone = {"customer": customer()}
    await post(
        client,
        store,
        consent_updated("granted") | with_phone,
        consent_updated("granted", channel="sms") | with_phone,
    )
    return store


def order(order_id: str) -> dict[str, Any]:
    placed = order_placed(order_id)
    placed["customer"]["phone"] = PHONE
    return placed


async def test_a_topic_turned_off_stops_exactly_its_messages_on_that_channel(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await setup(client, db, clock)
    await post(client, store, preferences({"email": {"offers": False}}))
    await post(client, store, order("1"))
    await workers.drain()
    assert await outbox(db) == {
        # The order's own news is never stopped, and has no topic.
        ("order_confirmation", "email", "sent", None, None),
        ("order_delivered", "email", "skipped", "offers", "turned off offers on email"),
        # Another topic on the same channel, and the same topic on another channel, go.
        ("order_preparing", "email", "sent", "newsletters", None),
        ("birthday_sms", "sms", "sent", "offers", None),
    }
    # A commercial email's footer links to the preference page; an order email's does not.
    mails = {m["Subject"]: m for m in await dev_inbox(db)}
    assert len(mails) == 2
    for subject, mail in mails.items():
        commercial = not subject.startswith("Siparişiniz alındı")
        html, text = text_of(mail, "html"), text_of(mail).replace("\r\n", "\n")
        link = re.search(rf'href="(http://[^"]+/p/{store.id}/preferences/[^"]+)"', html)
        assert (link is not None) == commercial, subject
        assert ("E-posta tercihlerinizi yönetin" in html) == commercial
        if link is not None:
            assert f"\nTercihleriniz: {link.group(1)}\n" in text


async def test_turning_a_topic_off_stops_a_message_already_queued_at_the_claim(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await setup(client, db, clock)
    await workers.drain()
    await post(client, store, order("1"))
    await workers.once("events.apply")
    await workers.once("journeys.run_due")
    assert {(t, status) for t, _, status, _, _ in await outbox(db)} == {
        ("order_confirmation", "queued"),
        ("order_delivered", "queued"),
        ("order_preparing", "queued"),
        ("birthday_sms", "queued"),
    }
    await post(
        client, store, preferences({"sms": {"offers": False}, "email": {"newsletters": False}})
    )
    await workers.drain()
    async with db.read() as session:
        held = await session.scalar(
            select(Message.held_reason).where(Message.template == "order_delivered")
        )
    # The offer waits for the store's frequency cap (the newsletter went first): not topics.
    assert held is not None
    assert "cap" in held
    assert await outbox(db) == {
        ("order_confirmation", "email", "sent", None, None),
        ("order_delivered", "email", "queued", "offers", None),
        ("order_preparing", "email", "skipped", "newsletters", "turned off newsletters on email"),
        ("birthday_sms", "sms", "skipped", "offers", "turned off offers on sms"),
    }


async def test_a_topic_turned_on_again_sends_again_and_order_updates_cannot_be_turned_off(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await setup(client, db, clock)
    await post(client, store, preferences({"email": {"offers": False}}))
    await post(client, store, preferences({"email": {"offers": True}}, key="evt-prefs-2"))
    refused = await client.post(
        "/v1/events",
        json={"events": [preferences({"email": {"order_updates": False}}, key="evt-3")]},
        headers=store.auth,
    )
    assert refused.status_code == 422
    assert "order updates always go" in refused.text
    await post(client, store, order("1"))
    await workers.drain()
    # Nothing skipped (the offer waits for the store's frequency cap, behind the news).
    assert {(t, status, error) for t, _, status, _, error in await outbox(db)} == {
        ("order_confirmation", "sent", None),
        ("order_delivered", "queued", None),
        ("order_preparing", "sent", None),
        ("birthday_sms", "sent", None),
    }


def test_a_journey_topic_defaults_by_legal_class_and_the_library_names_its_own() -> None:
    assert load_journey(OFFERS).message_topic() == "offers"
    assert load_journey(NEWS).message_topic() == "newsletters"
    informational = OFFERS.replace("legal_class: commercial", "legal_class: informational")
    assert load_journey(informational).message_topic() is None
    assert topic_of(topic="order_updates", legal_class="commercial") is None
    # A definition without a topic dumps as before topics existed (no new version).
    assert "topic" not in load_journey(OFFERS).model_dump(mode="json")


async def test_no_coupon_is_issued_for_an_email_whose_topic_is_off(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock)  # the shipped welcome: offers, with a coupon
    await post(client, store, preferences({"email": {"offers": False}}))
    await post(
        client,
        store,
        {"id": "evt-signup", "type": "customer.created", "customer": customer()},
        consent_updated("granted") | {"customer": customer()},
    )
    await workers.drain()
    assert await outbox(db) == {
        ("welcome", "email", "skipped", "offers", "turned off offers on email")
    }
    async with db.read() as session:
        assert (await session.scalars(select(Coupon))).all() == []
        traced = await session.scalars(
            select(EnrollmentStep.note).where(EnrollmentStep.kind == "action")
        )
        assert list(traced) == ["no coupon issued (welcome): turned off offers on email"]


@pytest.mark.parametrize("later", ["absorbed", "survivor"])
async def test_a_merge_keeps_the_later_choice_of_a_topic_both_profiles_chose(
    client: httpx.AsyncClient,
    store: StoreKey,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    later: str,
) -> None:
    # The shop's known profile survives a merge with a guest's (the id names it).
    known = {"id": "c-7", "email": "other@example.com"}
    guest = {"email": "guest@example.com"}

    def chose(key: str, who: dict[str, str], topics: dict[str, bool]) -> dict[str, Any]:
        data = {"topics": {"email": topics}, "source": f"{key}_page"}
        return {"id": key, "type": "preferences.updated", "customer": who, "data": data}

    first, second = (known, guest) if later == "absorbed" else (guest, known)
    # The first leaves offers on; an hour later the second turns them off.
    await post(client, store, chose("first", first, {"offers": True, "surveys": False}))
    await workers.drain()
    start = clock.now()
    clock.travel(timedelta(hours=1))
    await post(client, store, chose("second", second, {"offers": False, "reviews": False}))
    await workers.drain()
    merge = {"type": "customer.updated", "customer": {"id": "c-7", "email": "guest@example.com"}}
    await post(client, store, merge)
    await workers.drain()
    async with db.read() as session:
        (survivor,) = (
            await session.scalars(select(Customer.id).where(Customer.merged_into_id.is_(None)))
        ).all()
        assert await session.scalar(select(Customer.external_id).where(Customer.id == survivor))
        rows = (await session.scalars(select(TopicPreference))).all()
        chosen = {
            (r.customer_id, r.channel, r.topic): (r.subscribed, r.source, r.updated_at)
            for r in rows
        }
    at = clock.now()
    # The later opt-out wins whichever profile made it; each one's other topics stay, on
    # the survivor.
    assert chosen == {
        (survivor, "email", "offers"): (False, "second_page", at),
        (survivor, "email", "surveys"): (False, "first_page", start),
        (survivor, "email", "reviews"): (False, "second_page", at),
    }
