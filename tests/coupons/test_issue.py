"""Issuing coupons: templates, made codes, pool codes, and never one code twice."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from tests.support import StoreKey, make_store
from ulak.clock import FrozenClock
from ulak.coupons import service
from ulak.coupons.models import Coupon
from ulak.coupons.schemas import TemplateChange
from ulak.coupons.service import (
    CouponPoolEmpty,
    import_pool,
    issue_coupon,
    list_templates,
    set_template,
)
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.errors import Invalid, NotFound

CODE = "[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}"


async def new_customers(db: Database, store: StoreKey, clock: FrozenClock, n: int) -> list[int]:
    async with db.transaction() as session:
        rows = [
            Customer(
                store_id=store.id,
                external_id=f"c-{i}",
                email=f"c{i}@example.com",
                attributes={},
                tags=[],
                created_at=clock.now(),
                updated_at=clock.now(),
            )
            for i in range(n)
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def issue(
    db: Database, store: StoreKey, customer_id: int, clock: FrozenClock, template: str = "welcome"
) -> Coupon:
    async with db.transaction() as session:
        return await issue_coupon(
            session,
            store_id=store.id,
            template_key=template,
            customer_id=customer_id,
            currency="TRY",
            now=clock.now(),
        )


async def coupons(db: Database) -> list[Coupon]:
    async with db.read() as session:
        return list((await session.execute(select(Coupon).order_by(Coupon.id))).scalars())


async def to_pool(db: Database, store: StoreKey, clock: FrozenClock, codes: list[str]) -> None:
    async with db.transaction() as session:
        await set_template(
            session,
            store_id=store.id,
            key="welcome",
            change=TemplateChange(source="pool"),
            now=clock.now(),
        )
        report = await import_pool(
            session,
            store_id=store.id,
            template_key="welcome",
            text="\n".join(codes),
            now=clock.now(),
        )
    assert (report.added, report.problems) == (len(codes), [])


async def test_every_store_starts_with_the_default_templates(db: Database, store: StoreKey) -> None:
    async with db.read() as session:
        templates = await list_templates(session, store_id=store.id)
    assert [
        (t.key, t.kind, t.amount, t.minimum_order, t.validity_days, t.prefix, t.source)
        for t in templates
    ] == [
        ("birthday", "percent", Decimal(15), None, 7, "DOGUMGUNU", "generated"),
        ("cart", "percent", Decimal(10), None, 7, "SEPET", "generated"),
        ("make-good", "percent", Decimal(15), None, 30, "OZUR", "generated"),
        ("next-order", "percent", Decimal(10), None, 30, "TESEKKURLER", "generated"),
        ("special-day", "percent", Decimal(10), None, 7, "OZELGUN", "generated"),
        ("welcome", "percent", Decimal(10), None, 30, "HOSGELDIN", "generated"),
        ("win-back", "percent", Decimal(15), None, 30, "OZLEDIK", "generated"),
    ]


async def test_an_english_store_gets_english_prefixes(db: Database, clock: FrozenClock) -> None:
    store = await make_store(db, clock, locale="en", library=False)
    async with db.read() as session:
        templates = await list_templates(session, store_id=store.id)
    assert [t.prefix for t in templates] == [
        "BIRTHDAY",
        "CART",
        "SORRY",
        "THANKYOU",
        "SPECIALDAY",
        "WELCOME",
        "COMEBACK",
    ]


async def test_a_made_code_is_random_unambiguous_and_carries_its_value(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    (customer,) = await new_customers(db, store, clock, 1)
    coupon = await issue(db, store, customer, clock)
    assert re.fullmatch(f"HOSGELDIN-{CODE}-{CODE}", coupon.code)
    assert coupon.code_key == coupon.code
    (stored,) = await coupons(db)
    assert (
        stored.code,
        stored.status,
        stored.kind,
        stored.amount,
        stored.currency,
        stored.minimum_order,
        stored.customer_id,
        stored.issued_at,
        stored.expires_at,
        stored.order_id,
    ) == (
        coupon.code,
        "issued",
        "percent",
        Decimal(10),
        "TRY",
        None,
        customer,
        clock.now(),
        clock.now() + timedelta(days=30),
        None,
    )


async def test_a_template_change_does_not_change_codes_already_issued(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    first, second = await new_customers(db, store, clock, 2)
    before = await issue(db, store, first, clock)
    async with db.transaction() as session:
        changed = await set_template(
            session,
            store_id=store.id,
            key="welcome",
            change=TemplateChange(
                kind="fixed",
                amount=Decimal("50.00"),
                minimum_order=Decimal(500),
                validity_days=7,
                prefix="MERHABA",
            ),
            now=clock.now(),
        )
    assert (changed.kind, changed.amount, changed.minimum_order, changed.prefix) == (
        "fixed",
        Decimal("50.00"),
        Decimal(500),
        "MERHABA",
    )
    after = await issue(db, store, second, clock)
    assert re.fullmatch(f"MERHABA-{CODE}-{CODE}", after.code)
    stored = {c.code: (c.kind, c.amount, c.minimum_order, c.expires_at) for c in await coupons(db)}
    assert stored == {
        before.code: ("percent", Decimal(10), None, clock.now() + timedelta(days=30)),
        after.code: ("fixed", Decimal(50), Decimal(500), clock.now() + timedelta(days=7)),
    }


async def test_a_template_is_checked_when_it_is_set(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    async with db.transaction() as session:
        with pytest.raises(Invalid, match="at most 100 % off, not 150"):
            await set_template(
                session,
                store_id=store.id,
                key="welcome",
                change=TemplateChange(amount=Decimal(150)),
                now=clock.now(),
            )
        with pytest.raises(Invalid, match="needs a kind and an amount"):
            await set_template(
                session, store_id=store.id, key="vip", change=TemplateChange(), now=clock.now()
            )


async def test_an_unknown_template_is_not_issued(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    (customer,) = await new_customers(db, store, clock, 1)
    with pytest.raises(NotFound, match="no coupon template 'vip'"):
        await issue(db, store, customer, clock, template="vip")
    assert await coupons(db) == []


async def test_a_code_that_collides_is_drawn_again_never_duplicated(
    db: Database, store: StoreKey, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: Iterator[str] = iter(
        ["HOSGELDIN-AAAA-BBBB", "HOSGELDIN-AAAA-BBBB", "HOSGELDIN-CCCC-DDDD"]
    )
    monkeypatch.setattr(service, "new_code", lambda prefix: next(drawn))
    first, second = await new_customers(db, store, clock, 2)
    assert (await issue(db, store, first, clock)).code == "HOSGELDIN-AAAA-BBBB"
    assert (await issue(db, store, second, clock)).code == "HOSGELDIN-CCCC-DDDD"
    assert [(c.code, c.customer_id) for c in await coupons(db)] == [
        ("HOSGELDIN-AAAA-BBBB", first),
        ("HOSGELDIN-CCCC-DDDD", second),
    ]


async def test_concurrent_issues_never_share_a_made_code(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    customers = await new_customers(db, store, clock, 40)
    # Each issue in its own transaction, at once (on SQLite they take turns at the writer).
    issued = await asyncio.gather(*(issue(db, store, c, clock) for c in customers))
    assert len({coupon.code for coupon in issued}) == 40
    assert sorted((c.customer_id, c.code) for c in await coupons(db)) == sorted(
        (c.customer_id, c.code) for c in issued
    )


async def test_concurrent_issues_hand_each_pool_code_out_once(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    pool = [f"SHOP-{i:04d}" for i in range(30)]
    await to_pool(db, store, clock, pool)
    customers = await new_customers(db, store, clock, 40)
    results = await asyncio.gather(
        *(issue(db, store, c, clock) for c in customers), return_exceptions=True
    )
    issued = [r for r in results if isinstance(r, Coupon)]
    empty = [r for r in results if isinstance(r, CouponPoolEmpty)]
    assert (len(issued), len(empty)) == (30, 10)
    assert sorted(c.code for c in issued) == pool
    rows = await coupons(db)
    assert sorted((c.code, c.status) for c in rows) == [(code, "issued") for code in pool]
    assert len({c.customer_id for c in rows}) == 30


async def test_a_pool_hands_out_its_oldest_code_first_and_then_runs_dry(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    await to_pool(db, store, clock, ["B-2", "A-1"])
    first, second, third = await new_customers(db, store, clock, 3)
    assert (await issue(db, store, first, clock)).code == "B-2"
    assert (await issue(db, store, second, clock)).code == "A-1"
    with pytest.raises(CouponPoolEmpty) as caught:
        await issue(db, store, third, clock)
    assert caught.value.message == (
        "the pool of coupon template 'welcome' has no codes left: import more with "
        f"`ulak coupons import FILE --store {store.id} --template welcome`, then "
        f"`ulak steps retry --store {store.id}`"
    )
    assert [(c.code, c.customer_id) for c in await coupons(db)] == [("B-2", first), ("A-1", second)]
