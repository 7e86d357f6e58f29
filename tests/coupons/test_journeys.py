"""Coupons inside journeys: issued, shown, redeemed by an order, a pool that runs dry."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import select

from tests.journeys.test_engine import enrollments, post
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
from ulak.coupons.schemas import TemplateChange
from ulak.coupons.service import import_pool, set_template
from ulak.db import Database
from ulak.journeys.models import EnrollmentStep
from ulak.messages.models import Message, TemplateOverride
from ulak.worker import Workers

WELCOME = """
key: welcome
name: Welcome offer
legal_class: commercial
trigger: {event: order.placed}
reentry: once
steps:
  - action: issue_coupon
    coupon: welcome
  - send: email
    template: order_delivered
"""

# A store's own email that shows the coupon.
SHOWS_COUPON = """{% block subject %}Kodunuz: {{ coupon.code }}{% endblock %}
{% block body %}<p>{{ coupon.value }} indirim, {{ coupon.expires_at|date }} tarihine kadar</p>
{% endblock %}
{% block text %}{{ coupon.code }}: {{ coupon.value }} indirim, {{ coupon.expires_at|date }}
tarihine kadar{% if coupon.minimum_order %}, en az {{ coupon.minimum_order|money }}{% endif %}
{% endblock %}"""


async def shows_coupon(db: Database, store: StoreKey, clock: FrozenClock) -> None:
    async with db.transaction() as session:
        session.add(
            TemplateOverride(
                store_id=store.id,
                name="order_delivered",
                locale="tr",
                source=SHOWS_COUPON,
                updated_at=clock.now(),
            )
        )


async def coupon_store(db: Database, clock: FrozenClock, journey: str = WELCOME) -> StoreKey:
    store = await make_store(db, clock, library=False)
    await shows_coupon(db, store, clock)
    await add_journey(db, clock, store, journey)
    return store


async def shown_in(client: httpx.AsyncClient, store: StoreKey, code: str) -> int | None:
    """The message the coupon API says showed the code."""
    response = await client.get(f"/v1/coupons/{code}", headers=store.auth)
    assert response.status_code == 200, response.text
    message_id: int | None = response.json()["message_id"]
    return message_id


def plain(mail: EmailMessage) -> str:
    return text_of(mail).replace("\r\n", "\n")


async def coupons(db: Database) -> list[Coupon]:
    async with db.read() as session:
        return list((await session.execute(select(Coupon).order_by(Coupon.id))).scalars())


async def messages(db: Database) -> list[Message]:
    async with db.read() as session:
        return list((await session.execute(select(Message).order_by(Message.id))).scalars())


async def trace(db: Database) -> list[tuple[str, str]]:
    async with db.read() as session:
        rows = await session.execute(
            select(EnrollmentStep.kind, EnrollmentStep.note).order_by(EnrollmentStep.id)
        )
        return [(kind, note) for kind, note in rows.all()]


async def test_a_journey_issues_a_coupon_and_its_email_shows_it(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await coupon_store(db, clock)
    await post(client, store, consent_updated(), order_placed("1"))
    await workers.drain()
    (coupon,) = await coupons(db)
    (message,) = await messages(db)
    (enrollment,) = await enrollments(db)
    assert re.fullmatch(r"HOSGELDIN-\w{4}-\w{4}", coupon.code)
    assert (coupon.enrollment_id, coupon.step, coupon.journey_key) == (enrollment.id, 0, "welcome")
    assert await shown_in(client, store, coupon.code) == message.id
    assert message.customer_id == coupon.customer_id
    (mail,) = await dev_inbox(db)
    assert mail["Subject"] == f"Kodunuz: {coupon.code}"
    # 30 days from 23 November 2026, in Turkish.
    assert plain(mail).startswith(f"{coupon.code}: %10 indirim, 23 Aralık 2026\ntarihine kadar")
    assert await trace(db) == [
        ("enter", "triggered by order.placed"),
        ("action", f"issued coupon {coupon.code} (welcome)"),
        ("send", f"order_delivered -> message {message.id} (queued)"),
        ("complete", "journey completed"),
    ]


async def test_no_code_is_issued_for_a_customer_the_journey_may_not_write_to(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await coupon_store(db, clock)
    await post(client, store, order_placed("1"))  # no consent on record
    await workers.drain()
    assert await coupons(db) == []
    (message,) = await messages(db)
    reason = "no consent to commercial email on record"
    assert (message.status, message.last_error, message.subject) == ("skipped", reason, "")
    assert await trace(db) == [
        ("enter", "triggered by order.placed"),
        ("action", f"no coupon issued (welcome): {reason}"),
        ("send", f"order_delivered -> message {message.id} (skipped)"),
        ("complete", "journey completed"),
    ]


async def test_a_coupon_issued_before_a_wait_is_shown_after_it(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    journey = WELCOME.replace("  - send:", "  - wait: 1d\n  - send:")
    store = await coupon_store(db, clock, journey)
    async with db.transaction() as session:
        await set_template(
            session,
            store_id=store.id,
            key="welcome",
            change=TemplateChange(kind="fixed", amount=Decimal(50), minimum_order=Decimal(500)),
            now=clock.now(),
        )
    await post(client, store, consent_updated(), order_placed("1"))
    await workers.drain()
    assert await dev_inbox(db) == []
    clock.travel(timedelta(days=1))
    await workers.drain()
    (coupon,) = await coupons(db)
    (mail,) = await dev_inbox(db)
    assert plain(mail).startswith(
        f"{coupon.code}: 50,00 ₺ indirim, 23 Aralık 2026\ntarihine kadar, en az 500,00 ₺"
    )
    (message,) = await messages(db)
    assert await shown_in(client, store, coupon.code) == message.id


async def test_a_send_that_needs_a_coupon_fails_when_none_was_issued(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await coupon_store(
        db, clock, WELCOME.replace("  - action: issue_coupon\n    coupon: welcome\n", "")
    )
    await post(client, store, consent_updated(), order_placed("1"))
    await workers.drain()
    (enrollment,) = await enrollments(db)
    assert (enrollment.status, enrollment.attempts) == ("active", 1)
    assert enrollment.failure_reason == (
        "step 0: TemplateError: order_delivered (tr, store override), line 1: coupon: no "
        "coupon was issued earlier in this journey (an issue_coupon action)"
    )
    # No customer got an email without its code; the shop heard its template fails.
    assert [(m.template, m.customer_id) for m in await messages(db)] == [("shop_alert", None)]
    assert await coupons(db) == []


async def test_an_order_with_the_code_redeems_it_for_the_journey_that_issued_it(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await coupon_store(db, clock)
    other = await make_store(db, clock, library=False, name="Başka Dükkan")
    await post(client, store, consent_updated(), order_placed("1"))
    await workers.drain()
    (issued,) = await coupons(db)
    # Another store's order with the same code is not this store's business.
    await post(client, other, order_placed("9", discount_codes=[issued.code]))
    clock.travel(timedelta(days=3))
    # The customer types it in lower case.
    await post(
        client, store, order_placed("2", discount_codes=["YAZ10", f" {issued.code.lower()} "])
    )
    await workers.drain()
    response = await client.get(f"/v1/coupons/{issued.code.lower()}", headers=store.auth)
    assert response.status_code == 200, response.text
    (message,) = [m for m in await messages(db) if m.store_id == store.id]
    body = response.json()
    assert body == {
        "code": issued.code,
        "status": "redeemed",
        "template": "welcome",
        "kind": "percent",
        "amount": "10.00",
        "currency": "TRY",
        "minimum_order": None,
        "issued_at": "2026-11-23T09:00:00Z",
        "expires_at": "2026-12-23T09:00:00Z",
        "expired": False,
        "customer": {"id": "c-1042", "email": "ayse@example.com"},
        "journey": "welcome",
        "message_id": message.id,
        "order_id": "2",
        # The order's own time, not when ulak applied it.
        "redeemed_at": "2026-11-26T09:00:00Z",  # when the order was placed, 3 days on
    }
    # The second order of the same customer and code redeems nothing more.
    await post(client, store, order_placed("3", discount_codes=[issued.code]))
    await workers.drain()
    (after,) = await coupons(db)
    assert (after.status, after.order_id) == ("redeemed", "2")


async def test_the_coupon_api_finds_only_the_stores_own_codes(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await coupon_store(db, clock)
    other = await make_store(db, clock, library=False, name="Başka Dükkan")
    await post(client, store, consent_updated(), order_placed("1"))
    await workers.drain()
    (issued,) = await coupons(db)
    mine = await client.get(f"/v1/coupons/{issued.code}", headers=store.auth)
    assert (mine.status_code, mine.json()["status"], mine.json()["order_id"]) == (
        200,
        "issued",
        None,
    )
    theirs = await client.get(f"/v1/coupons/{issued.code}", headers=other.auth)
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (404, "not_found")
    unknown = await client.get("/v1/coupons/HOSGELDIN-XXXX-XXXX", headers=store.auth)
    assert unknown.status_code == 404
    anonymous = await client.get(f"/v1/coupons/{issued.code}")
    assert anonymous.status_code == 401


async def test_a_pool_that_runs_dry_fails_the_step_and_alerts_the_shop_once(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await coupon_store(db, clock)
    async with db.transaction() as session:
        await set_template(
            session,
            store_id=store.id,
            key="welcome",
            change=TemplateChange(source="pool"),
            now=clock.now(),
        )
        await import_pool(
            session, store_id=store.id, template_key="welcome", text="ILK-KOD\n", now=clock.now()
        )
    customers: list[dict[str, Any]] = [
        consent_updated(),
        consent_updated(customer_id="c-2", email="can@example.com"),
        consent_updated(customer_id="c-3", email="ece@example.com"),
        order_placed("1"),
        order_placed("2", customer_id="c-2", email="can@example.com"),
        order_placed("3", customer_id="c-3", email="ece@example.com"),
    ]
    await post(client, store, *customers)
    await workers.drain()
    first, second, third = await enrollments(db)
    assert first.status == "completed"
    reason = (
        "step 0: CouponPoolEmpty: the pool of coupon template 'welcome' has no codes left: "
        f"import more with `ulak coupons import FILE --store {store.id} --template welcome`, "
        f"then `ulak steps retry --store {store.id}`"
    )
    assert [(e.status, e.failure_reason) for e in (second, third)] == [("active", reason)] * 2
    clock.travel(timedelta(minutes=1))
    await workers.drain()  # the steps fail again: the shop is not told again
    # Delivered side by side: the dev inbox holds them in either order.
    mails = sorted(await dev_inbox(db), key=lambda m: str(m["To"]))
    assert [(m["To"], m["Subject"]) for m in mails] == [
        ("ayse@example.com", "Kodunuz: ILK-KOD"),
        ("merhaba@dukkan.example", "ulak: welcome kuponlarınız tükendi"),
    ]
    assert f"ulak coupons import DOSYA --store {store.id} --template welcome" in text_of(mails[1])
    # The shop imports more; the waiting steps take them at their next attempt.
    async with db.transaction() as session:
        await import_pool(
            session,
            store_id=store.id,
            template_key="welcome",
            text="ILK-KOD\nIKINCI\nUCUNCU\n",
            now=clock.now(),
        )
    clock.travel(timedelta(minutes=2))
    await workers.drain()
    assert [e.status for e in await enrollments(db)] == ["completed"] * 3
    assert sorted((c.code, c.status) for c in await coupons(db)) == [
        ("IKINCI", "issued"),
        ("ILK-KOD", "issued"),
        ("UCUNCU", "issued"),
    ]


async def test_a_customer_merge_moves_their_coupons(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await coupon_store(db, clock)
    guest = order_placed("1", email="misafir@example.com")
    del guest["customer"]["id"]
    consent = consent_updated(customer_id="c-7", email="uye@example.com")
    guest_consent = consent_updated(email="misafir@example.com")
    del guest_consent["customer"]["id"]
    await post(
        client,
        store,
        consent,
        guest_consent,
        order_placed("2", customer_id="c-7", email="uye@example.com"),
        guest,
    )
    await workers.drain()
    # The guest turns out to be member c-7: the two profiles are one person.
    await post(client, store, order_placed("3", customer_id="c-7", email="misafir@example.com"))
    await workers.drain()
    response = await client.get("/v1/customers/c-7", headers=store.auth)
    survivor = response.json()["customer"]["ulak_id"]
    assert [c.customer_id for c in await coupons(db)] == [survivor, survivor]
