"""Date-relative triggers (`customer.date`), a store's special days and its time zone: timers
set, moved and deleted by the state that decides them, and fired once per occurrence."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from tests.journeys.test_engine import post
from tests.support import StoreKey, add_journey, make_store
from tests.timers.test_timers import customer_pk, derived, timers
from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.operations import set_journey_enabled
from ulak.stores.schemas import StoreUpdate
from ulak.stores.service import update_store
from ulak.timers import special_days
from ulak.timers.service import (
    DateRule,
    date_occurrence,
    fire_due,
    next_due,
    remove_special_day,
    set_special_day,
    special_days_of,
)
from ulak.worker import Workers

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # the FrozenClock's start: 12:00 in Istanbul
ISTANBUL = ZoneInfo("Europe/Istanbul")
NEW_YORK = ZoneInfo("America/New_York")

ANNIVERSARY = """\
key: anniversary
name: Üyelik yıldönümü
legal_class: commercial
trigger:
  date: {attribute: member_since, yearly: true}
reentry: always
steps:
  - send: email
    template: birthday
"""
ENDING = """\
key: ending
name: Abonelik bitiyor
legal_class: commercial
trigger:
  date: {attribute: subscription_ends, offset: -3d}
steps:
  - send: email
    template: birthday
"""


def profile(key: str, *, timezone: str | None = None, **attributes: Any) -> dict[str, Any]:
    customer: dict[str, Any] = {"id": "c-1042", "email": "ayse@example.com"}
    if timezone:
        customer["timezone"] = timezone
    if attributes:
        customer["attributes"] = attributes
    return {"id": key, "type": "customer.updated", "customer": customer}


def local(day: date, zone: ZoneInfo = ISTANBUL) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def test_a_date_rule_counts_anniversaries_and_offsets() -> None:
    yearly = DateRule("member_since", 0, yearly=True)
    # Joined today: the first anniversary is next year, not today.
    assert date_occurrence(date(2026, 11, 23), yearly, from_day=date(2026, 11, 23)) == (
        date(2027, 11, 23),
        1,
    )
    assert date_occurrence(date(2020, 11, 25), yearly, from_day=date(2026, 11, 23)) == (
        date(2026, 11, 25),
        6,
    )
    # A week before each anniversary: this year's is still to come on 23 November.
    week_before = DateRule("member_since", -7, yearly=True)
    assert date_occurrence(date(2020, 11, 30), week_before, from_day=date(2026, 11, 23)) == (
        date(2026, 11, 23),
        6,
    )
    # 29 February falls on 28 February in other years.
    assert date_occurrence(date(2024, 2, 29), yearly, from_day=date(2026, 1, 1)) == (
        date(2026, 2, 28),
        2,
    )
    once = DateRule("subscription_ends", -3, yearly=False)
    assert date_occurrence(date(2026, 12, 1), once, from_day=date(2026, 11, 23)) == (
        date(2026, 11, 28),
        0,
    )
    assert date_occurrence(date(2026, 11, 25), once, from_day=date(2026, 11, 23)) is None


async def test_a_profile_sets_and_moves_a_date_and_it_fires_once_a_year(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await add_journey(db, clock, store, ANNIVERSARY)
    await post(client, store, profile("p1", member_since="2024-11-30"))
    await workers.drain()
    me = await customer_pk(db)
    subject = f"member_since:+0:y:{me}"
    assert await timers(db, store) == [("customer.date", subject, local(date(2026, 11, 30)))]

    # The shop corrects the date: the timer moves; she lives in New York now, too.
    await post(client, store, profile("p2", timezone="America/New_York", member_since="2023-11-26"))
    await workers.drain()
    due = local(date(2026, 11, 26), NEW_YORK)
    assert await timers(db, store) == [("customer.date", subject, due)]

    clock.set(due - timedelta(seconds=1))
    await workers.drain()
    assert await derived(db) == []
    clock.set(due)
    await workers.drain()
    assert await derived(db) == [
        (
            f"derived:customer.date:{subject}:2026-11-26",  # one per local date
            "customer.date",
            due,
            {
                "attribute": "member_since",
                "offset_days": 0,
                "yearly": True,
                "value": "2023-11-26",
                "date": "2026-11-26",
                "timezone": "America/New_York",
                "years": 3,
            },
        )
    ]
    # The next anniversary waits for next year.
    assert await timers(db, store) == [
        ("customer.date", subject, local(date(2027, 11, 26), NEW_YORK))
    ]
    # Another worker firing the same occurrence again stores nothing more.
    async with db.transaction() as session:
        assert await fire_due(session, clock=clock, limit=10) == 0
    assert len(await derived(db)) == 1


async def test_a_value_that_is_not_a_date_is_ignored_with_a_log_line(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    store: StoreKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await add_journey(db, clock, store, ENDING)
    await post(client, store, profile("p1", subscription_ends="2026-12-10"))
    await workers.drain()
    me = await customer_pk(db)
    assert await timers(db, store) == [
        ("customer.date", f"subscription_ends:-3:o:{me}", local(date(2026, 12, 7)))
    ]
    with caplog.at_level(logging.WARNING, logger="ulak.timers.service"):
        await post(client, store, profile("p2", subscription_ends="next month"))
        await workers.drain()
    # The date it was set from is gone: so is the timer, and the event applied.
    assert await timers(db, store) == []
    assert [r.getMessage() for r in caplog.records if r.name == "ulak.timers.service"] == [
        f"customer {me}: attribute 'subscription_ends' is not a date (YYYY-MM-DD);"
        " no subscription_ends -3d (once) timer"
    ]
    async with db.read() as session:
        customer = await session.scalar(select(Customer).where(Customer.id == me))
    assert customer is not None
    assert customer.attributes == {"subscription_ends": "next month"}
    # A date that has passed (three days before it is yesterday) sets nothing either.
    await post(client, store, profile("p3", subscription_ends="2026-11-25"))
    await workers.drain()
    assert await timers(db, store) == []


async def test_applying_a_journey_sets_the_timers_of_existing_customers_and_disabling_deletes_them(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await post(
        client,
        store,
        profile("p1", member_since="2021-12-01"),
        {
            "id": "p2",
            "type": "customer.updated",
            "customer": {"id": "c-2", "attributes": {"member_since": "2022-01-15"}},
        },
        {"id": "p3", "type": "customer.updated", "customer": {"id": "c-3"}},
    )
    await workers.drain()
    assert await timers(db, store) == []  # no journey uses the date yet
    await add_journey(db, clock, store, ANNIVERSARY)
    found = await timers(db, store)
    assert [(kind, due) for kind, _, due in found] == [
        ("customer.date", local(date(2026, 12, 1))),
        ("customer.date", local(date(2027, 1, 15))),
    ]
    async with db.transaction() as session:
        await set_journey_enabled(
            session, store_id=store.id, key="anniversary", enabled=False, clock=clock
        )
    assert await timers(db, store) == []
    async with db.transaction() as session:
        await set_journey_enabled(
            session, store_id=store.id, key="anniversary", enabled=True, clock=clock
        )
    assert await timers(db, store) == found


async def test_a_new_store_time_zone_moves_the_date_timers_of_customers_without_one(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await add_journey(db, clock, store, ANNIVERSARY)
    mine = {"id": "c-1042", "birthday": "1990-12-05", "attributes": {"member_since": "2020-12-05"}}
    theirs = {**mine, "id": "c-2", "timezone": "Asia/Tokyo"}
    await post(
        client,
        store,
        {"id": "p1", "type": "customer.updated", "customer": mine},
        {"id": "p2", "type": "customer.updated", "customer": theirs},
    )
    await workers.drain()
    day = date(2026, 12, 5)
    tokyo = local(day, ZoneInfo("Asia/Tokyo"))
    assert sorted((kind, due) for kind, _, due in await timers(db, store)) == [
        ("customer.birthday", tokyo),
        ("customer.birthday", local(day)),
        ("customer.date", tokyo),
        ("customer.date", local(day)),
    ]
    async with db.transaction() as session:
        await update_store(session, store.id, StoreUpdate(timezone="America/New_York"))
    # Hers follow the store to New York; the Tokyo customer's stay.
    assert sorted((kind, due) for kind, _, due in await timers(db, store)) == [
        ("customer.birthday", tokyo),
        ("customer.birthday", local(day, NEW_YORK)),
        ("customer.date", tokyo),
        ("customer.date", local(day, NEW_YORK)),
    ]
    clock.set(local(day, NEW_YORK))
    await workers.drain()
    assert sorted((kind, at, data["timezone"]) for _, kind, at, data in await derived(db)) == [
        ("customer.birthday", tokyo, "Asia/Tokyo"),
        ("customer.birthday", local(day, NEW_YORK), "America/New_York"),
        ("customer.date", tokyo, "Asia/Tokyo"),
        ("customer.date", local(day, NEW_YORK), "America/New_York"),
    ]


def test_special_day_rules() -> None:
    assert special_days.dates_in("05/sun/2", 2026) == [date(2026, 5, 10)]
    assert special_days.dates_in("06/sun/3", 2026) == [date(2026, 6, 21)]
    assert special_days.dates_in("05/sun/last", 2026) == [date(2026, 5, 31)]
    assert special_days.dates_in("02-29", 2027) == [date(2027, 2, 28)]
    assert special_days.next_date("01-01", from_day=date(2026, 11, 23)) == date(2027, 1, 1)
    dates = special_days.check_rule("2028-02-26, 2027-03-09")
    assert dates == "2027-03-09,2028-02-26"
    assert special_days.next_date(dates, from_day=date(2027, 3, 10)) == date(2028, 2, 26)
    assert special_days.next_date(dates, from_day=date(2028, 2, 27)) is None
    for wrong in ("14 Feb", "13-01", "05/sun/6", "2027-02-30"):
        with pytest.raises(special_days.RuleError):
            special_days.check_rule(wrong)


async def test_a_new_store_has_the_turkish_special_days(db: Database, store: StoreKey) -> None:
    async with db.read() as session:
        days = await special_days_of(session, store_id=store.id)
    earliest = ZoneInfo("Pacific/Kiritimati")  # UTC+14: where each day starts first
    assert [(d.key, d.name_tr, d.rule, d.due_at) for d in days] == [
        ("anneler-gunu", "Anneler Günü", "05/sun/2", local(date(2027, 5, 9), earliest)),
        ("babalar-gunu", "Babalar Günü", "06/sun/3", local(date(2027, 6, 20), earliest)),
        ("kadinlar-gunu", "Dünya Kadınlar Günü", "03-08", local(date(2027, 3, 8), earliest)),
        ("sevgililer-gunu", "Sevgililer Günü", "02-14", local(date(2027, 2, 14), earliest)),
        ("yilbasi", "Yılbaşı", "01-01", local(date(2027, 1, 1), earliest)),
    ]


async def test_a_special_day_fans_out_in_batches_to_each_customers_start_of_day(
    db: Database, clock: FrozenClock
) -> None:
    store = await make_store(db, clock, library=False)
    async with db.transaction() as session:
        for default in await special_days_of(session, store_id=store.id):
            await remove_special_day(session, store_id=store.id, key=default.key)
        await set_special_day(
            session,
            store_id=store.id,
            key="kermes",
            name_tr="Kermes",
            name_en="Fair",
            rule="11-25",
            now=clock.now(),
        )
        for n, zone in enumerate([None, "America/New_York", "Asia/Tokyo"]):
            session.add(
                Customer(
                    store_id=store.id,
                    external_id=f"c-{n}",
                    timezone=zone,
                    attributes={},
                    tags=[],
                    created_at=T0,
                    updated_at=T0,
                )
            )
    day = date(2026, 11, 25)
    starts = local(day, ZoneInfo("Pacific/Kiritimati"))
    async with db.read() as session:
        assert await next_due(session) == starts
    # Idle until then: nothing is read but the due index.
    clock.set(starts - timedelta(seconds=1))
    async with db.transaction() as session:
        assert await fire_due(session, clock=clock, limit=2) == 0
    clock.set(starts)
    async with db.transaction() as session:
        assert await fire_due(session, clock=clock, limit=2) == 1  # two customers
        (kermes,) = await special_days_of(session, store_id=store.id)
        assert kermes.due_at == starts
        assert kermes.fanned_out_to is not None
    async with db.transaction() as session:
        assert await fire_due(session, clock=clock, limit=2) == 1  # the third, and done
        (kermes,) = await special_days_of(session, store_id=store.id)
        assert kermes.due_at == local(date(2027, 11, 25), ZoneInfo("Pacific/Kiritimati"))
        assert kermes.fanned_out_to is None
    ids = {}
    async with db.read() as session:
        for id_, ref in (await session.execute(select(Customer.id, Customer.external_id))).all():
            ids[ref] = id_
    assert await timers(db, store) == sorted(
        [
            (
                "customer.special_day",
                f"kermes:2026-11-25:{ids['c-2']}",
                local(day, ZoneInfo("Asia/Tokyo")),
            ),
            ("customer.special_day", f"kermes:2026-11-25:{ids['c-0']}", local(day)),
            ("customer.special_day", f"kermes:2026-11-25:{ids['c-1']}", local(day, NEW_YORK)),
        ],
        key=lambda t: t[2],
    )
    # Each fires at its moment, as one event per customer.
    clock.set(local(day, NEW_YORK))
    async with db.transaction() as session:
        assert await fire_due(session, clock=clock, limit=10) == 3
    assert [(kind, at, data["name_tr"]) for _, kind, at, data in await derived(db)] == [
        ("customer.special_day", local(day, ZoneInfo("Asia/Tokyo")), "Kermes"),
        ("customer.special_day", local(day), "Kermes"),
        ("customer.special_day", local(day, NEW_YORK), "Kermes"),
    ]
    assert await timers(db, store) == []


async def test_dates_and_a_special_day_due_while_no_worker_ran_fire_once(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await add_journey(db, clock, store, ANNIVERSARY)
    async with db.transaction() as session:
        # Without a journey that greets on them, special days are not fanned out at all.
        await set_journey_enabled(
            session, store_id=store.id, key="special-days", enabled=True, clock=clock
        )
    await post(
        client,
        store,
        *(
            {
                "id": f"p{n}",
                "type": "customer.updated",
                "customer": {"id": f"c-{n}", "attributes": {"member_since": "2025-12-31"}},
            }
            for n in range(5)
        ),
    )
    await workers.drain()
    # No worker runs over New Year's Eve and Day (Yılbaşı, a default special day) ...
    clock.set(datetime(2027, 1, 1, 12, 0, tzinfo=UTC))

    class Crash(Exception):
        pass

    async def fire_and_crash() -> None:
        async with db.transaction() as session:
            assert await fire_due(session, clock=clock, limit=3) > 0
            raise Crash

    # ... and the first one to start dies before its commit.
    with pytest.raises(Crash):
        await fire_and_crash()
    assert await derived(db) == []
    await workers.drain()
    events = await derived(db)
    assert (
        sorted(
            (kind, at.astimezone(ISTANBUL).isoformat(), data.get("key"))
            for _, kind, at, data in events
        )
        == [("customer.date", "2026-12-31T00:00:00+03:00", None)] * 5
        + [("customer.special_day", "2027-01-01T00:00:00+03:00", "yilbasi")] * 5
    )
    assert len({key for key, _, _, _ in events}) == 10
    # Nothing is left to fire twice: next year's anniversaries wait.
    clock.travel(timedelta(days=1))
    await workers.drain()
    assert len(await derived(db)) == 10
    assert {(kind, due) for kind, _, due in await timers(db, store)} == {
        ("customer.date", local(date(2027, 12, 31)))
    }


async def test_a_special_day_no_journey_greets_on_is_not_fanned_out(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    async with db.transaction() as session:
        await set_journey_enabled(
            session, store_id=store.id, key="special-days", enabled=False, clock=clock
        )
    await post(client, store, profile("p1"))
    await workers.drain()
    clock.set(datetime(2027, 1, 1, 12, 0, tzinfo=UTC))  # Yılbaşı; special-days is off
    await workers.drain()
    assert await derived(db) == []
    assert await timers(db, store) == []
    async with db.read() as session:
        days = {d.key: d.due_at for d in await special_days_of(session, store_id=store.id)}
    assert days["yilbasi"] == local(date(2028, 1, 1), ZoneInfo("Pacific/Kiritimati"))


async def test_a_journey_setting_a_date_attribute_sets_its_timer(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers, store: StoreKey
) -> None:
    await add_journey(db, clock, store, ANNIVERSARY)
    await add_journey(
        db,
        clock,
        store,
        """\
key: member
name: Üye
legal_class: informational
trigger:
  event: customer.updated
steps:
  - action: set_attribute
    attribute: member_since
    value: "2025-12-24"
""",
    )
    await post(client, store, profile("p1"))
    await workers.drain()
    me = await customer_pk(db)
    assert await timers(db, store) == [
        ("customer.date", f"member_since:+0:y:{me}", local(date(2026, 12, 24)))
    ]
