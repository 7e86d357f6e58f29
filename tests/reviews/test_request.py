"""The review request as a customer lives it: the email after delivery, its link to the
form, and the reminder that a review makes unnecessary; the delay per product tag; the
reviews quoted in later emails."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from tests.reviews.support import place_order, review_link, submit
from tests.support import StoreKey, consent_updated, dev_inbox, text_of
from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.reviews.service import set_settings
from ulak.timers.models import Timer
from ulak.worker import Workers

CUSTOMER = {"id": "c-1042", "email": "ayse@example.com"}


async def post(client: httpx.AsyncClient, store: StoreKey, *events: Any) -> None:
    answer = await client.post("/v1/events", json={"events": list(events)}, headers=store.auth)
    assert answer.status_code == 202, answer.text


def delivered(order_id: str = "1001") -> dict[str, object]:
    return {
        "id": f"evt-delivered-{order_id}",
        "type": "order.delivered",
        "customer": CUSTOMER,
        "data": {"order_id": order_id},
    }


async def subjects(db: Database) -> list[str]:
    return [str(m["Subject"]) for m in await dev_inbox(db)]


async def test_the_request_links_to_the_form_and_a_review_stops_the_reminder(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    await post(client, store, consent_updated())
    await place_order(client, store, workers)
    await post(client, store, delivered())
    await workers.drain()
    clock.travel(timedelta(days=7) - timedelta(minutes=1))
    await workers.drain()
    assert not any("nasıl buldunuz" in s for s in await subjects(db))

    clock.travel(timedelta(minutes=1))
    await workers.drain()
    (request,) = [m for m in await dev_inbox(db) if "nasıl buldunuz" in str(m["Subject"])]
    assert str(request["Subject"]) == "Siparişinizi nasıl buldunuz? – #1001"
    html = text_of(request, "html")
    assert html.count("?product=p-1&amp;r=") == 5
    assert html.count("?product=p-2&amp;r=") == 5
    found = re.search(r"http://ulak\.test(/p/\d+/review/[\w.\-]+)\?product=p-2&amp;r=4", html)
    assert found, html
    path = found.group(1)
    # A star opens the form with that product's stars chosen.
    form = await client.get(f"{path}?product=p-2&r=4")
    assert 'id="rating-1-4" name="rating_1" value="4" checked' in form.text

    answer = await submit(client, path, {"rating_1": "4", "body_1": "Güzel"})
    assert answer.status_code == 200
    await workers.drain()
    clock.travel(timedelta(days=6))
    await workers.drain()
    assert [s for s in await subjects(db) if "Bir dakikanız" in s] == []


async def test_a_reminder_five_days_later_without_a_review(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    await post(client, store, consent_updated())
    await place_order(client, store, workers)
    await post(client, store, delivered())
    await workers.drain()
    for _ in range(12):
        clock.travel(timedelta(days=1))
        await workers.drain()
    # The review request and its reminder (the satisfaction survey goes beside them).
    review = ("Siparişinizi nasıl buldunuz?", "Bir dakikanız var mı?")
    asked = [s for s in await subjects(db) if s.startswith(review)]
    assert asked == [
        "Siparişinizi nasıl buldunuz? – #1001",
        "Bir dakikanız var mı? – #1001",
    ]


async def test_the_longest_delay_among_the_orders_product_tags_wins(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    async with db.transaction() as session:
        await set_settings(
            session,
            store_id=store.id,
            delay_days=5,
            tag_delays={"mobilya": 21, "tekstil": 10},
            now=clock.now(),
        )
    products = [
        {"type": "product.updated", "data": {"product_id": "p-1", "title": "Kupa", "tags": []}},
        {
            "type": "product.updated",
            "data": {"product_id": "p-2", "title": "Koltuk", "tags": ["mobilya", "ev"]},
        },
    ]
    await post(client, store, *products)
    await place_order(client, store, workers)
    await post(client, store, delivered())
    await workers.drain()
    async with db.read() as session:
        (timer,) = (
            await session.execute(select(Timer).where(Timer.kind == "review.due"))
        ).scalars()
    assert timer.subject == "1001"
    assert timer.due_at == clock.now() + timedelta(days=21)

    # Refunded before the moment: nothing will ask.
    refund = {"type": "order.refunded", "customer": CUSTOMER, "data": {"order_id": "1001"}}
    await post(client, store, refund)
    await workers.drain()
    async with db.read() as session:
        assert (await session.execute(select(Timer).where(Timer.kind == "review.due"))).all() == []


async def test_untagged_products_wait_the_stores_delay(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    async with db.transaction() as session:
        await set_settings(session, store_id=store.id, delay_days=3, now=clock.now())
    await place_order(client, store, workers)
    await post(client, store, delivered())
    await workers.drain()
    async with db.read() as session:
        (timer,) = (
            await session.execute(select(Timer).where(Timer.kind == "review.due"))
        ).scalars()
    assert timer.due_at == clock.now() + timedelta(days=3)


async def test_welcome_quotes_recent_happy_reviews_that_may_be_quoted(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    await place_order(client, store, workers)
    path = await review_link(db, store, clock)
    xss = "<b>Harika</b> kupa"
    await submit(
        client,
        path,
        {
            "rating_0": "5",
            "title_0": xss,
            "body_0": "Çok memnunum",
            "rating_1": "3",
            "body_1": "İdare eder",
            "display_name": "Ayşe Yılmaz",
            "quote_ok": "1",
        },
    )
    await workers.drain()
    newcomer = {"id": "c-2", "email": "zeynep@example.com", "first_name": "Zeynep"}
    await post(
        client,
        store,
        consent_updated(customer_id="c-2", email="zeynep@example.com"),
        {"type": "customer.created", "customer": newcomer, "data": {}},
    )
    await workers.drain()
    (welcome,) = [m for m in await dev_inbox(db) if m["To"] == "zeynep@example.com"]
    text = text_of(welcome)
    assert "Müşterilerimiz ne diyor?" in text
    assert "★★★★★ <b>Harika</b> kupa: “Çok memnunum” (Ayşe Y.)" in text
    assert "İdare eder" not in text  # 3 stars: not quoted
    html = text_of(welcome, "html")
    assert "&lt;b&gt;Harika&lt;/b&gt; kupa" in html
    assert "<b>Harika</b>" not in html


async def test_no_quotes_without_consent_to_quote(
    client: httpx.AsyncClient,
    store: StoreKey,
    workers: Workers,
    db: Database,
    clock: FrozenClock,
) -> None:
    await place_order(client, store, workers)
    await submit(client, await review_link(db, store, clock), {"rating_0": "5", "body_0": "Süper"})
    await workers.drain()
    newcomer = {"id": "c-2", "email": "zeynep@example.com"}
    await post(
        client,
        store,
        consent_updated(customer_id="c-2", email="zeynep@example.com"),
        {"type": "customer.created", "customer": newcomer, "data": {}},
    )
    await workers.drain()
    (welcome,) = [m for m in await dev_inbox(db) if m["To"] == "zeynep@example.com"]
    assert "Müşterilerimiz ne diyor?" not in text_of(welcome)
    assert "Süper" not in text_of(welcome)
