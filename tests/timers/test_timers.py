"""Clock-driven triggers: timers set and moved by the state that decides them, fired once per
occurrence as derived events."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from tests.journeys.test_engine import post
from tests.support import StoreKey, make_store, order_placed
from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.events.models import Event
from ulak.orders.models import Cart
from ulak.timers.service import fire_due, lapse_window, next_birthday, timers_of
from ulak.worker import Workers

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # the FrozenClock's start
CUSTOMER = {"id": "c-1042", "email": "ayse@example.com"}


def cart(cart_id: str, at: datetime, *, items: int = 1, key: str | None = None) -> dict[str, Any]:
    return {
        "id": key or f"cart-{cart_id}-{at.isoformat()}",
        "type": "cart.updated",
        "occurred_at": at.isoformat(),
        "customer": CUSTOMER,
        "data": {
            "cart_id": cart_id,
            "items": [{"title": "Seramik kupa", "quantity": 1, "price": "249.95"}] * items,
            "recovery_url": f"https://dukkan.example/cart/{cart_id}",
        },
    }


async def timers(db: Database, store: StoreKey) -> list[tuple[str, str, datetime]]:
    """(kind, subject, due_at) of the store's timers, earliest first."""
    async with db.read() as session:
        return [(t.kind, t.subject, t.due_at) for t in await timers_of(session, store_id=store.id)]


async def derived(db: Database) -> list[tuple[str, str, datetime, dict[str, Any]]]:
    """(key, type, occurred_at, data) of every event ulak derived, oldest first."""
    async with db.read() as session:
        rows = await session.execute(
            select(Event.key, Event.type, Event.occurred_at, Event.data)
            .where(Event.source == "derived")
            .order_by(Event.id)
        )
        return [(k, t, at, d) for k, t, at, d in rows.all()]


async def customer_pk(db: Database) -> int:
    async with db.read() as session:
        found = await session.scalar(select(Customer.id).where(Customer.external_id == "c-1042"))
    assert found is not None
    return found


async def test_a_cart_update_moves_its_deadline_and_an_order_ends_it(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await post(client, store, cart("k1", T0))
    await workers.drain()
    assert await timers(db, store) == [("cart.abandoned", "k1", T0 + timedelta(hours=1))]

    clock.travel(timedelta(minutes=20))
    await post(client, store, cart("k1", T0 + timedelta(minutes=20), items=2))
    await workers.drain()
    assert await timers(db, store) == [("cart.abandoned", "k1", T0 + timedelta(minutes=80))]

    # An order (here for another cart, or none) ends every cart of the customer.
    placed_at = T0 + timedelta(minutes=30)
    clock.set(placed_at)
    await post(client, store, order_placed("1", occurred_at=placed_at.isoformat()))
    await workers.drain()
    me = await customer_pk(db)
    assert await timers(db, store) == [("customer.lapsed", str(me), placed_at + timedelta(days=90))]
    clock.travel(timedelta(days=1))
    await workers.drain()
    assert await derived(db) == []


async def test_an_emptied_or_ordered_cart_has_no_deadline(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await post(client, store, cart("k1", T0), cart("k2", T0))
    await workers.drain()
    await post(client, store, cart("k1", T0 + timedelta(minutes=1), items=0))
    placed = order_placed("1", cart_id="k2", customer_id="c-other", email="other@example.com")
    await post(client, store, placed)
    # A late cart update of the ordered cart does not revive it.
    await post(client, store, cart("k2", T0 - timedelta(minutes=5), key="late"))
    await workers.drain()
    assert [kind for kind, _, _ in await timers(db, store)] == ["customer.lapsed"]


async def test_an_abandoned_cart_fires_once_at_its_deadline_as_a_derived_event(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await post(client, store, cart("k1", T0))
    await workers.drain()
    clock.travel(timedelta(minutes=59, seconds=59))
    await workers.drain()
    assert await derived(db) == []

    clock.travel(timedelta(seconds=1))
    await workers.drain()
    due = T0 + timedelta(hours=1)
    assert await derived(db) == [
        (
            f"derived:cart.abandoned:k1:{due.isoformat()}",
            "cart.abandoned",
            due,
            {
                "cart_id": "k1",
                "idle_since": T0.isoformat(),
                "idle_minutes": 60,
            },
        )
    ]
    assert await timers(db, store) == []
    async with db.read() as session:
        status, customer = (
            await session.execute(
                select(Event.status, Event.customer).where(Event.type == "cart.abandoned")
            )
        ).one()
    assert (status, customer) == ("applied", CUSTOMER)
    clock.travel(timedelta(days=3))
    await workers.drain()
    assert len(await derived(db)) == 1


async def test_the_store_says_when_a_cart_is_abandoned(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, abandoned_cart_minutes=30)
    await post(client, store, cart("k1", T0))
    await workers.drain()
    assert await timers(db, store) == [("cart.abandoned", "k1", T0 + timedelta(minutes=30))]


def birthday_event(birthday: str, *, timezone: str | None = None) -> dict[str, Any]:
    profile: dict[str, Any] = {**CUSTOMER, "birthday": birthday}
    if timezone:
        profile["timezone"] = timezone
    return {"id": f"profile-{birthday}-{timezone}", "type": "customer.updated", "customer": profile}


async def test_a_birthday_fires_at_the_start_of_the_day_where_the_customer_lives(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    # 23 November 2026, 09:00 UTC: her birthday is tomorrow in New York.
    await post(client, store, birthday_event("1990-11-24", timezone="America/New_York"))
    await workers.drain()
    me = await customer_pk(db)
    start = datetime(2026, 11, 24, tzinfo=ZoneInfo("America/New_York"))
    assert await timers(db, store) == [("customer.birthday", str(me), start)]

    clock.set(start)
    await workers.drain()
    assert await derived(db) == [
        (
            f"derived:customer.birthday:{me}:2026-11-24",  # one per local date
            "customer.birthday",
            start,
            {
                "birthday": "1990-11-24",
                "date": "2026-11-24",
                "timezone": "America/New_York",
                "age": 36,
            },
        )
    ]
    # The next one, a year later.
    next_year = datetime(2027, 11, 24, tzinfo=ZoneInfo("America/New_York"))
    assert await timers(db, store) == [("customer.birthday", str(me), next_year)]
    # Her profile sent again on her birthday changes nothing: today's has fired.
    clock.travel(timedelta(hours=10))
    await post(client, store, birthday_event("1990-11-24", timezone="America/New_York"))
    await workers.drain()
    assert await timers(db, store) == [("customer.birthday", str(me), next_year)]
    assert len(await derived(db)) == 1


async def test_a_birthday_without_a_time_zone_is_the_stores_and_may_be_today(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    # Today in Istanbul (12:00 there): the birthday began at 00:00 and fires at once.
    await post(client, store, birthday_event("1985-11-23"))
    await workers.drain()
    me = await customer_pk(db)
    start = datetime(2026, 11, 23, tzinfo=ZoneInfo("Europe/Istanbul"))
    assert [(k, at) for k, _, at, _ in await derived(db)] == [
        (f"derived:customer.birthday:{me}:2026-11-23", start)
    ]


async def test_a_time_zone_that_changes_on_the_birthday_does_not_greet_twice(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    # 12:00 in Istanbul: her birthday began there and fired. Then she says she lives in New
    # York, where it is 04:00 on the same birthday: its midnight there has passed too.
    await post(client, store, birthday_event("1985-11-23"))
    await workers.drain()
    await post(client, store, birthday_event("1985-11-23", timezone="America/New_York"))
    await workers.drain()
    me = await customer_pk(db)
    assert [k for k, _, _, _ in await derived(db)] == [f"derived:customer.birthday:{me}:2026-11-23"]
    next_year = datetime(2027, 11, 23, tzinfo=ZoneInfo("America/New_York"))
    assert await timers(db, store) == [("customer.birthday", str(me), next_year)]


async def test_one_batch_moves_each_birthday_to_its_own_next_year_and_deletes_the_rest(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    # Three birthdays on 24 November where each customer lives, and an idle cart.
    people = [("c-ny", "1990-11-24", "America/New_York"), ("c-ist", "1985-11-24", None)]
    people.append(("c-tokyo", "2000-11-24", "Asia/Tokyo"))
    profiles = [
        {
            "id": f"profile-{who}",
            "type": "customer.updated",
            "customer": {"id": who, "email": f"{who}@example.com", "birthday": born}
            | ({"timezone": zone} if zone else {}),
        }
        for who, born, zone in people
    ]
    await post(client, store, *profiles, cart("k1", T0))
    await workers.drain()
    async with db.read() as session:
        rows = await session.execute(select(Customer.external_id, Customer.id))
        ids = {str(external): pk for external, pk in rows.all()}

    # All four due: one batch fires them in one transaction.
    clock.set(datetime(2026, 11, 25, tzinfo=UTC))
    async with db.transaction() as session:
        assert await fire_due(session, clock=clock, limit=100) == 4
    assert sorted((t, at) for _, t, at, _ in await derived(db)) == [
        ("cart.abandoned", T0 + timedelta(hours=1)),
        ("customer.birthday", datetime(2026, 11, 24, tzinfo=ZoneInfo("Asia/Tokyo"))),
        ("customer.birthday", datetime(2026, 11, 24, tzinfo=ZoneInfo("Europe/Istanbul"))),
        ("customer.birthday", datetime(2026, 11, 24, tzinfo=ZoneInfo("America/New_York"))),
    ]
    # Each birthday moved to the start of the next one where its customer lives; the cart's
    # timer is gone.
    assert sorted(await timers(db, store)) == sorted(
        ("customer.birthday", str(ids[who]), datetime(2027, 11, 24, tzinfo=ZoneInfo(zone)))
        for who, zone in [
            ("c-ny", "America/New_York"),
            ("c-ist", "Europe/Istanbul"),
            ("c-tokyo", "Asia/Tokyo"),
        ]
    )
    async with db.read() as session:
        data = {t.subject: t.data for t in await timers_of(session, store_id=store.id)}
    assert data[str(ids["c-tokyo"])] == {
        "birthday": "2000-11-24",
        "date": "2027-11-24",
        "timezone": "Asia/Tokyo",
        "age": 27,
    }


def test_29_february_falls_on_28_february_in_other_years() -> None:
    zone = ZoneInfo("Europe/Istanbul")
    leap = date(2000, 2, 29)
    assert next_birthday(leap, from_day=date(2026, 1, 1), zone=zone)[0] == date(2026, 2, 28)
    assert next_birthday(leap, from_day=date(2026, 3, 1), zone=zone)[0] == date(2027, 2, 28)
    assert next_birthday(leap, from_day=date(2027, 3, 1), zone=zone)[0] == date(2028, 2, 29)
    day, start = next_birthday(date(1990, 5, 17), from_day=date(2026, 5, 17), zone=zone)
    assert (day, start) == (date(2026, 5, 17), datetime(2026, 5, 16, 21, 0, tzinfo=UTC))


def test_a_regular_customer_lapses_by_their_own_rhythm() -> None:
    day = timedelta(days=1)
    assert lapse_window([T0], days=90) == 90 * day
    assert lapse_window([T0, T0 + 5 * day], days=90) == 90 * day
    # Gaps of 10 and 20 days: median 15, lapsed after 30.
    assert lapse_window([T0, T0 + 10 * day, T0 + 30 * day], days=90) == 30 * day
    # Twice the median even when that is longer than the store's window.
    assert lapse_window([T0, T0 + 100 * day, T0 + 200 * day], days=90) == 200 * day
    # Orders on one day: never sooner than a day.
    assert lapse_window([T0, T0, T0], days=90) == day


async def test_each_order_moves_the_lapse_date(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    day = timedelta(days=1)
    for n, at in enumerate([T0, T0 + 10 * day, T0 + 30 * day]):
        clock.set(at)
        await post(client, store, order_placed(str(n), occurred_at=at.isoformat()))
        await workers.drain()
    me = await customer_pk(db)
    assert await timers(db, store) == [("customer.lapsed", str(me), T0 + 60 * day)]
    clock.set(T0 + 60 * day)
    await workers.drain()
    ((_, type_, at, data),) = await derived(db)
    assert (type_, at) == ("customer.lapsed", T0 + 60 * day)
    assert data == {
        "never_bought": False,
        "last_order_id": "2",
        "last_order_at": (T0 + 30 * day).isoformat(),
        "orders": 3,
        "days": 30.0,
    }
    assert await timers(db, store) == []


async def test_a_product_update_between_two_orders_of_one_batch_counts_for_the_second(
    client: httpx.AsyncClient, db: Database, workers: Workers, store: StoreKey
) -> None:
    # The applier remembers products' replenish days for its transaction: the update in
    # the middle of the batch must be seen by the order after it.
    product = {
        "id": "p-1-update",
        "type": "product.updated",
        "data": {"product_id": "p-1", "title": "Kahve", "replenish_days": 15},
    }
    later = order_placed("2", customer_id="c-2", email="zeynep@example.com")
    await post(client, store, order_placed("1"), product, later)
    await workers.drain()
    first = await customer_pk(db)
    async with db.read() as session:
        second = await session.scalar(select(Customer.id).where(Customer.external_id == "c-2"))
    runs_out = datetime(2026, 12, 23, tzinfo=ZoneInfo("Europe/Istanbul"))
    assert await timers(db, store) == [
        ("replenishment.due", f"{second}:p-1", runs_out),
        ("customer.lapsed", str(first), T0 + timedelta(days=90)),
        ("customer.lapsed", str(second), T0 + timedelta(days=90)),
    ]


async def test_a_product_that_runs_out_sets_a_replenishment_timer(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    product = {
        "id": "p-1-update",
        "type": "product.updated",
        "data": {"product_id": "p-1", "title": "Kahve", "replenish_days": 15},
    }
    await post(client, store, product, order_placed("1"))
    await workers.drain()
    me = await customer_pk(db)
    # Two of p-1 (the sample order), 15 days each, run out on 23 December in Istanbul: due
    # at the start of that day. p-2 says nothing.
    runs_out = datetime(2026, 12, 23, tzinfo=ZoneInfo("Europe/Istanbul"))
    assert await timers(db, store) == [
        ("replenishment.due", f"{me}:p-1", runs_out),
        ("customer.lapsed", str(me), T0 + timedelta(days=90)),
    ]
    clock.travel(timedelta(days=30))
    await workers.drain()
    ((key, type_, at, data),) = await derived(db)
    assert (key, type_, at) == (
        f"derived:replenishment.due:{me}:2026-12-22T21:00:00+00:00",
        "replenishment.due",
        runs_out,
    )
    assert data == {
        "date": "2026-12-23",
        "items": [
            {
                "product_id": "p-1",
                "title": "Seramik kupa",
                "order_id": "1",
                "ordered_at": "2026-11-23T09:00:00+00:00",
                "quantity": 2,
                "days": 30,
                "currency": "TRY",
            }
        ],
        "product_ids": ["p-1"],
    }


async def test_a_timer_fired_in_a_transaction_that_rolled_back_fires_again_once(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await post(client, store, *(cart(f"k{n}", T0) for n in range(5)))
    await workers.drain()
    clock.travel(timedelta(hours=2))

    class Crash(Exception):
        pass

    async def fire_and_crash() -> None:
        async with db.transaction() as session:
            assert await fire_due(session, clock=clock, limit=100) == 5
            raise Crash

    # The process dies after firing, before its commit.
    with pytest.raises(Crash):
        await fire_and_crash()
    assert await derived(db) == []
    assert len(await timers(db, store)) == 5
    # Started again: each fires once; nothing is left to fire twice.
    async with db.transaction() as session:
        assert await fire_due(session, clock=clock, limit=3) == 3
    async with db.transaction() as session:
        assert await fire_due(session, clock=clock, limit=100) == 2
    async with db.transaction() as session:
        assert await fire_due(session, clock=clock, limit=100) == 0
    assert sorted(d[3]["cart_id"] for d in await derived(db)) == [f"k{n}" for n in range(5)]


async def test_two_workers_fire_each_timer_once(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    if db.is_sqlite:
        pytest.skip("two workers racing on rows: PostgreSQL only (SQLite has one writer)")
    await post(client, store, *(cart(f"k{n}", T0) for n in range(40)))
    await workers.drain()
    clock.travel(timedelta(hours=2))

    async def worker() -> int:
        fired = 0
        while True:
            async with db.transaction() as session:
                done = await fire_due(session, clock=clock, limit=7)
                await asyncio.sleep(0.01)  # hold the rows a moment, as a real batch does
            if not done:
                return fired
            fired += done

    first, second = await asyncio.gather(worker(), worker())
    assert first + second == 40
    assert first > 0
    assert second > 0
    carts = sorted(d[3]["cart_id"] for d in await derived(db))
    assert carts == sorted(f"k{n}" for n in range(40))


async def test_a_cart_abandoned_before_an_earlier_order_was_applied_starts_nothing(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await post(client, store, cart("k1", T0))
    await workers.drain()
    clock.travel(timedelta(hours=2))
    # The timer fires; then an order placed 30 minutes after the cart comes in late.
    await workers.once("timers.fire_due")
    late = order_placed("1", occurred_at=(T0 + timedelta(minutes=30)).isoformat())
    await post(client, store, late)
    await workers.drain()
    async with db.read() as session:
        row = (
            await session.execute(
                select(Event.status, Event.error).where(Event.type == "cart.abandoned")
            )
        ).one()
    assert tuple(row) == ("applied", "not acted on: the customer ordered since")


async def test_an_idle_worker_wakes_when_the_next_timer_is_due(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    job = workers.jobs["timers.fire_due"]
    poll = workers.ctx.settings.poll_seconds
    assert await workers._idle(job) == poll  # no timer: it polls
    await post(client, store, cart("k1", T0 - timedelta(minutes=60) + timedelta(seconds=0.3)))
    await workers.drain()
    assert await workers._idle(job) == pytest.approx(0.3)
    # Due, yet found nothing (another worker holds it): poll rather than spin.
    clock.travel(timedelta(seconds=1))
    assert await workers._idle(job) == poll


async def test_a_profile_the_api_would_refuse_now_does_not_stop_the_timers(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await post(client, store, cart("k1", T0))
    await workers.drain()
    me = await customer_pk(db)
    async with db.transaction() as session:  # an address email-validator came to refuse
        customer = await session.get(Customer, me)
        assert customer is not None
        customer.external_id, customer.email = None, "ayse@dukkan.test"
    clock.travel(timedelta(hours=1))
    await workers.drain()
    async with db.read() as session:
        row = (
            await session.execute(
                select(Event.customer, Event.customer_id, Event.status).where(
                    Event.type == "cart.abandoned"
                )
            )
        ).one()
    # Named by its id instead, and applied.
    assert tuple(row) == ({}, me, "applied")


async def test_a_cart_id_used_again_after_its_order_is_a_new_cart_abandoned_again(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    # Segment's default cart id is the person's: the same id for each of their carts.
    def added(at: datetime, title: str, price: str, *, key: str) -> dict[str, Any]:
        event = cart("k1", at, key=key)
        event["data"] = {"cart_id": "k1", "change": "add", "items": [
            {"product_id": title, "title": title, "quantity": 1, "price": price}
        ]}  # fmt: skip
        return event

    await post(client, store, added(T0, "Seramik kupa", "249.95", key="add-1"))
    placed_at = T0 + timedelta(minutes=30)
    clock.set(placed_at)
    await post(client, store, order_placed("1", occurred_at=placed_at.isoformat(), cart_id="k1"))
    # One put in before the order but come in after it is part of the bought cart.
    await post(client, store, added(T0 + timedelta(minutes=10), "Kaşık", "20", key="late"))
    await workers.drain()
    me = await customer_pk(db)
    assert await timers(db, store) == [("customer.lapsed", str(me), placed_at + timedelta(days=90))]

    again = T0 + timedelta(days=3)
    clock.set(again)
    await post(client, store, added(again, "Bakır çaydanlık", "750.00", key="add-2"))
    await workers.drain()
    async with db.read() as session:
        (k1,) = (await session.execute(select(Cart))).scalars()
    assert (k1.status, k1.total, k1.recovery_url, k1.items) == ("open", Decimal("750.00"), None, [
        {"product_id": "Bakır çaydanlık", "variant_id": None, "sku": None,
         "title": "Bakır çaydanlık", "quantity": 1, "price": "750.00", "url": None,
         "image_url": None}
    ])  # fmt: skip
    due = again + timedelta(hours=1)
    assert await timers(db, store) == [
        ("cart.abandoned", "k1", due),
        ("customer.lapsed", str(me), placed_at + timedelta(days=90)),
    ]
    clock.set(due)
    await workers.drain()
    assert await derived(db) == [
        (
            f"derived:cart.abandoned:k1:{due.isoformat()}",
            "cart.abandoned",
            due,
            {"cart_id": "k1", "idle_since": again.isoformat(), "idle_minutes": 60},
        )
    ]
    async with db.read() as session:
        found = await session.execute(
            select(Event.status, Event.error).where(Event.type == "cart.abandoned")
        )
        assert found.one() == ("applied", None)
