"""Clock-driven triggers as timer rows.

The features whose state decides a trigger set, move or delete its timer here, in the
transaction of the change (the event applier orchestrates: `events.service`):

- `cart.abandoned`: a cart or checkout idle for the store's `abandoned_cart_minutes` with no
  order for it. A cart event moves the deadline to its `occurred_at` + the window; an
  emptied cart, or any order of the customer, deletes it.
- `customer.lapsed`: no order for the store's `lapsed_days`, or, once a customer has 3 or
  more orders, for twice their own median gap between orders. Each order moves it. A
  sign-up (`customer.created`) with no order has the same timer, due `never_bought_days`
  after signing up, whose event says `never_bought: true`: win-back reaches both, and one
  row per customer means the first order simply moves it to the lapse date.
- `customer.birthday`: the start of the birthday in the customer's time zone (else the
  store's); 29 February falls on 28 February in other years. Set when a profile brings a
  birthday or a time zone; after it fires it moves to the next year.
- `replenishment.due`: the start of the day (the customer's time zone, else the store's)
  on which an order's date + the product's `replenish_days` × the quantity falls, per
  customer and product (a later order of the product moves it). The products of one
  customer due on the same day share the moment, and fire as one event listing them all:
  one reminder a day, with one reorder link, rather than one email per product.
- `customer.date`: N days before or after a date attribute of the customer (once, or each
  year on its anniversaries), at the start of that local day, for each `DateRule` the
  store's enabled journeys use. Set when a profile brings the attribute or a time zone
  (`dates_changed`), or when a journey that uses a new rule is applied or switched on
  (`set_date_rule`, one pass over the store's customers); a rule no enabled journey uses
  any longer has its timers deleted (`delete_date_rule`).
- `customer.special_day`: one of the store's special days (`SpecialDay`), at the start of
  the day where the customer lives. The store's row for the day is the one timer waiting
  for it; on the day it fans out, a batch of customers per run, into these timers.

A store's new time zone moves the date-bound timers (birthday, date, special day) of the
customers without one of their own (`store_zone_changed`).

`fire_due` (the job `timers.fire_due`) turns the due timers into derived events, keyed by
the occurrence (`derived:<kind>:<subject>:<due_at>`, or the local date of a birthday, date
or special day), so a timer fired twice, by a worker that crashed before its commit, by two
workers, or set again for the same day in a new time zone, yields one event.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import statistics
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.service import product_views, replenish_days
from ulak.clock import Clock
from ulak.customers.models import Customer
from ulak.customers.service import (
    NotADate,
    attribute_date,
    customer_page,
    identities,
    time_zones,
)
from ulak.db import is_postgres, table_of
from ulak.events.inbox import event_rows, insert_events
from ulak.events.models import Event
from ulak.events.schemas import CustomerIn, EventIn, Item
from ulak.orders.reorder import ReorderItem, ReorderPattern
from ulak.orders.service import find_cart, order_times, ordered_since
from ulak.stores.models import Store
from ulak.timers import special_days
from ulak.timers.models import SpecialDay, Timer

CART_ABANDONED = "cart.abandoned"
BIRTHDAY = "customer.birthday"
LAPSED = "customer.lapsed"
REPLENISHMENT = "replenishment.due"
DATE = "customer.date"
SPECIAL_DAY = "customer.special_day"
# The event types ulak derives from timers; journeys use them like any other.
# review.due is set by `reviews.service.order_delivered`.
KINDS = (CART_ABANDONED, BIRTHDAY, LAPSED, REPLENISHMENT, DATE, SPECIAL_DAY, "review.due")
# The earliest time zone on earth: a special day starts here first.
EARLIEST = timezone(timedelta(hours=14))

log = logging.getLogger(__name__)

# A customer with this many orders lapses by their own rhythm rather than the store's window.
OWN_RHYTHM_ORDERS = 3
# ... but never sooner than a day after their last order (two orders on one day make a
# median gap of nothing).
SHORTEST_LAPSE = timedelta(days=1)


async def set_timer(
    session: AsyncSession,
    *,
    store_id: int,
    kind: str,
    subject: str,
    customer_id: int,
    due_at: datetime,
    data: dict[str, Any],
) -> None:
    """Set a timer, or move the one of this kind and subject to `due_at`."""
    await set_timers(
        session,
        [
            {
                "store_id": store_id,
                "kind": kind,
                "subject": subject,
                "customer_id": customer_id,
                "due_at": due_at,
                "data": data,
            }
        ],
    )


async def set_timers(session: AsyncSession, timers: Sequence[dict[str, Any]]) -> None:
    """Set or move these timers (each with the columns `set_timer` takes) in one statement."""
    if timers:
        await session.execute(_upsert(is_postgres(session)), list(timers))


@functools.cache
def _upsert(postgres: bool) -> Any:
    """The timers' upsert, built once: building it (its `excluded` columns above all) cost
    more CPU than running it, ~1 ms a timer when `fire_due` moved birthdays one by one."""
    table = table_of(Timer)
    if postgres:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.store_id, table.c.kind, table.c.subject],
        set_={
            "customer_id": statement.excluded.customer_id,
            "due_at": statement.excluded.due_at,
            "data": statement.excluded.data,
        },
    )


async def delete_timer(session: AsyncSession, *, store_id: int, kind: str, subject: str) -> None:
    await session.execute(
        delete(Timer).where(
            Timer.store_id == store_id, Timer.kind == kind, Timer.subject == subject
        )
    )


async def timers_of(session: AsyncSession, *, store_id: int) -> list[Timer]:
    """A store's timers, the earliest first: for a small database (tests, a simulation)."""
    rows = await session.execute(
        select(Timer).where(Timer.store_id == store_id).order_by(Timer.due_at, Timer.id)
    )
    return list(rows.scalars())


# ---------------------------------------------------------------------------------------------
# The state that decides each timer


async def cart_changed(
    session: AsyncSession,
    *,
    store: Store,
    customer_id: int,
    cart_id: str,
    empty: bool,
    ordered: bool,
    at: datetime,
) -> None:
    """A cart event (`cart.updated`, `checkout.started`) that happened `at`."""
    if empty or ordered:
        await delete_timer(session, store_id=store.id, kind=CART_ABANDONED, subject=cart_id)
        return
    window = timedelta(minutes=store.abandoned_cart_minutes)
    await set_timer(
        session,
        store_id=store.id,
        kind=CART_ABANDONED,
        subject=cart_id,
        customer_id=customer_id,
        due_at=at + window,
        data={
            "cart_id": cart_id,
            "idle_since": at.astimezone(UTC).isoformat(),
            "idle_minutes": store.abandoned_cart_minutes,
        },
    )


async def order_placed(
    session: AsyncSession,
    *,
    store: Store,
    customer_id: int,
    order_id: str,
    cart_id: str | None,
    items: Sequence[Item],
    at: datetime,
    zone: ZoneInfo,
) -> None:
    """An order ends the customer's abandoned carts, moves their lapse date (ending the
    wait of a sign-up who never bought) and sets a replenishment timer for each product
    that says how long it lasts, at the start of the day it runs out in `zone`."""
    await session.execute(
        _DELETE_CARTS_OR_CART if cart_id else _DELETE_CARTS,
        {"store_id": store.id, "customer_id": customer_id, "cart_id": cart_id},
    )
    # The first order turns a sign-up's never-bought timer into their lapse timer (one row).
    await set_lapse(session, store=store, customer_id=customer_id)
    lasting = await replenish_days(
        session, store_id=store.id, product_ids=(i.product_id for i in items if i.product_id)
    )
    for item in items:
        days = lasting.get(item.product_id or "")
        if days is None:
            continue
        runs_out = (at + timedelta(days=days * item.quantity)).astimezone(zone).date()
        await set_timer(
            session,
            store_id=store.id,
            kind=REPLENISHMENT,
            subject=f"{customer_id}:{item.product_id}",
            customer_id=customer_id,
            due_at=datetime.combine(runs_out, time(0), tzinfo=zone).astimezone(UTC),
            data={
                "product_id": item.product_id,
                "variant_id": item.variant_id,
                "title": item.title,
                "order_id": order_id,
                "ordered_at": at.astimezone(UTC).isoformat(),
                "quantity": item.quantity,
                "days": days * item.quantity,
                "date": runs_out.isoformat(),
            },
        )


# Built once: built for each order, this delete cost 0.44 ms more CPU than running it
# prebuilt (0.55 ms against 0.11 ms on SQLite, `bench/statements.py`).
_timers = table_of(Timer)
_DELETE_CARTS = delete(_timers).where(
    _timers.c.store_id == bindparam("store_id"),
    _timers.c.kind == CART_ABANDONED,
    _timers.c.customer_id == bindparam("customer_id"),
)
_DELETE_CARTS_OR_CART = delete(_timers).where(
    _timers.c.store_id == bindparam("store_id"),
    _timers.c.kind == CART_ABANDONED,
    or_(
        _timers.c.customer_id == bindparam("customer_id"), _timers.c.subject == bindparam("cart_id")
    ),
)


async def signed_up(session: AsyncSession, *, store: Store, customer_id: int, at: datetime) -> None:
    """A `customer.created` that happened `at`: a customer with no order gets a never-bought
    timer, `never_bought_days` later (a second sign-up event keeps the first one's)."""
    if await order_times(session, customer_id=customer_id):
        return
    existing = await session.scalar(
        select(Timer.id).where(
            Timer.store_id == store.id, Timer.kind == LAPSED, Timer.subject == str(customer_id)
        )
    )
    if existing is not None:
        return
    await _set_never_bought(
        session,
        store_id=store.id,
        customer_id=customer_id,
        signed_up_at=at,
        due_at=at + timedelta(days=store.never_bought_days),
        days=store.never_bought_days,
    )


async def _set_never_bought(
    session: AsyncSession,
    *,
    store_id: int,
    customer_id: int,
    signed_up_at: datetime,
    due_at: datetime,
    days: int,
) -> None:
    await set_timer(
        session,
        store_id=store_id,
        kind=LAPSED,
        subject=str(customer_id),
        customer_id=customer_id,
        due_at=due_at,
        data={
            "never_bought": True,
            "signed_up_at": signed_up_at.astimezone(UTC).isoformat(),
            "orders": 0,
            "days": days,
        },
    )


async def set_lapse(session: AsyncSession, *, store: Store, customer_id: int) -> None:
    """Set the customer's lapse timer from their orders (none: no timer)."""
    orders = await order_times(session, customer_id=customer_id)
    if not orders:
        await delete_timer(session, store_id=store.id, kind=LAPSED, subject=str(customer_id))
        return
    last_order, last_at = orders[-1]
    window = lapse_window([at for _, at in orders], days=store.lapsed_days)
    await set_timer(
        session,
        store_id=store.id,
        kind=LAPSED,
        subject=str(customer_id),
        customer_id=customer_id,
        due_at=last_at + window,
        data={
            "never_bought": False,
            "last_order_id": last_order,
            "last_order_at": last_at.isoformat(),
            "orders": len(orders),
            "days": round(window / timedelta(days=1), 1),
        },
    )


def lapse_window(placed: Sequence[datetime], *, days: int) -> timedelta:
    """How long after the last of these orders (oldest first) the customer has lapsed: the
    store's window, or for 3+ orders twice the median gap between them (at least a day)."""
    if len(placed) < OWN_RHYTHM_ORDERS:
        return timedelta(days=days)
    gaps = [later - earlier for earlier, later in itertools.pairwise(placed)]
    median = timedelta(seconds=statistics.median(g.total_seconds() for g in gaps))
    return max(2 * median, SHORTEST_LAPSE)


async def birthday_changed(
    session: AsyncSession, *, store: Store, customer: Customer, now: datetime
) -> None:
    """The customer's birthday or time zone may have changed: set their next birthday.

    The next one counts from the start of today, so a profile update on the birthday
    itself, before its timer fired, keeps today's (which fires once all the same: its
    event's key names the occurrence)."""
    if customer.birthday is None:
        return
    zone = ZoneInfo(customer.timezone or store.timezone)
    await _set_birthday(
        session,
        store_id=store.id,
        customer_id=customer.id,
        birthday=customer.birthday,
        from_day=now.astimezone(zone).date(),
        zone=zone,
    )


async def _set_birthday(
    session: AsyncSession,
    *,
    store_id: int,
    customer_id: int,
    birthday: date,
    from_day: date,
    zone: ZoneInfo,
) -> None:
    await set_timers(
        session,
        [
            _birthday_timer(
                store_id=store_id,
                customer_id=customer_id,
                birthday=birthday,
                from_day=from_day,
                zone=zone,
            )
        ],
    )


def _birthday_timer(
    *, store_id: int, customer_id: int, birthday: date, from_day: date, zone: ZoneInfo
) -> dict[str, Any]:
    """The customer's birthday timer: the first birthday on or after `from_day`."""
    day, due = next_birthday(birthday, from_day=from_day, zone=zone)
    data: dict[str, Any] = {
        "birthday": birthday.isoformat(),
        "date": day.isoformat(),
        "timezone": zone.key,
    }
    if birthday.year > 1900:  # shops that do not know the year send one like 1900 or 1
        data["age"] = day.year - birthday.year
    return {
        "store_id": store_id,
        "kind": BIRTHDAY,
        "subject": str(customer_id),
        "customer_id": customer_id,
        "due_at": due,
        "data": data,
    }


def birthday_on(birthday: date, year: int) -> date:
    """The day a birthday is kept in `year`: 29 February is 28 February in other years."""
    if birthday.month == 2 and birthday.day == 29:
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    return birthday.replace(year=year)


def next_birthday(birthday: date, *, from_day: date, zone: ZoneInfo) -> tuple[date, datetime]:
    """The first birthday on or after `from_day` (a local date), and when it starts (UTC)."""
    day = birthday_on(birthday, from_day.year)
    if day < from_day:
        day = birthday_on(birthday, from_day.year + 1)
    return day, datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# Dates of the customer's attributes


@dataclass(frozen=True, order=True)
class DateRule:
    """A journey's `trigger: {date: ...}`: `offset_days` from the date in `attribute`, once
    or (`yearly`) on each of its anniversaries."""

    attribute: str
    offset_days: int
    yearly: bool

    @property
    def prefix(self) -> str:
        """Its timers' subjects start with this (then the customer's id)."""
        return f"{self.attribute}:{self.offset_days:+d}:{'y' if self.yearly else 'o'}:"

    def describe(self) -> str:
        every = "each year" if self.yearly else "once"
        return f"{self.attribute} {self.offset_days:+d}d ({every})"


def date_occurrence(value: date, rule: DateRule, *, from_day: date) -> tuple[date, int] | None:
    """The rule's first day on or after `from_day` for a date attribute `value`, with the
    years since `value` it marks (0 for a one-off); None when a one-off has passed.

    A yearly rule counts the anniversaries (a year after the date, and each year on), so
    a membership that starts today is not greeted today; 29 February is kept on 28
    February in other years, like a birthday."""
    offset = timedelta(days=rule.offset_days)
    if not rule.yearly:
        day = value + offset
        return (day, 0) if day >= from_day else None
    years = max(1, (from_day - offset).year - value.year)
    while True:
        day = birthday_on(value, value.year + years) + offset
        if day >= from_day:
            return day, years
        years += 1


async def dates_changed(
    session: AsyncSession,
    *,
    store: Store,
    customer: Customer,
    rules: Iterable[DateRule],
    now: datetime,
) -> None:
    """The customer's attributes or time zone may have changed: set, move or delete their
    timer for each date rule the store's journeys use. An attribute that holds no date is
    ignored (logged), and its timer deleted: the date it was set from is gone."""
    zone = ZoneInfo(customer.timezone or store.timezone)
    for rule in rules:
        await _set_date(
            session,
            store_id=store.id,
            customer_id=customer.id,
            attributes=customer.attributes,
            rule=rule,
            from_day=now.astimezone(zone).date(),
            zone=zone,
        )


async def _set_date(
    session: AsyncSession,
    *,
    store_id: int,
    customer_id: int,
    attributes: dict[str, Any],
    rule: DateRule,
    from_day: date,
    zone: ZoneInfo,
) -> None:
    subject = f"{rule.prefix}{customer_id}"
    try:
        value = attribute_date(attributes, rule.attribute, zone)
    except NotADate:
        # Not the value itself: a log is no place for a customer's data.
        log.warning(
            "customer %s: attribute %r is not a date (YYYY-MM-DD); no %s timer",
            customer_id,
            rule.attribute,
            rule.describe(),
        )
        value = None
    occurrence = date_occurrence(value, rule, from_day=from_day) if value else None
    if value is None or occurrence is None:
        await delete_timer(session, store_id=store_id, kind=DATE, subject=subject)
        return
    day, years = occurrence
    data: dict[str, Any] = {
        "attribute": rule.attribute,
        "offset_days": rule.offset_days,
        "yearly": rule.yearly,
        "value": value.isoformat(),
        "date": day.isoformat(),
        "timezone": zone.key,
    }
    if rule.yearly:
        data["years"] = years
    await set_timer(
        session,
        store_id=store_id,
        kind=DATE,
        subject=subject,
        customer_id=customer_id,
        due_at=datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC),
        data=data,
    )


# Customers read per query by the passes over a store's customers.
PAGE = 1000


async def set_date_rule(
    session: AsyncSession, *, store: Store, rule: DateRule, now: datetime
) -> int:
    """A journey that uses `rule` was applied or switched on: set the timers of the store's
    customers that have the attribute. One pass over the store's customers, a page at a
    time, in the caller's transaction: it happens when a shop applies such a journey, not
    on a tick, and a shop's customer list fits that. Returns how many timers were set."""
    set_ = 0
    after = 0
    while page := await customer_page(session, store_id=store.id, after=after, limit=PAGE):
        for customer_id, own_zone, attributes in page:
            if attributes.get(rule.attribute) is None:
                continue
            zone = ZoneInfo(own_zone or store.timezone)
            await _set_date(
                session,
                store_id=store.id,
                customer_id=customer_id,
                attributes=attributes,
                rule=rule,
                from_day=now.astimezone(zone).date(),
                zone=zone,
            )
            set_ += 1
        after = page[-1][0]
    return set_


async def delete_date_rule(session: AsyncSession, *, store_id: int, rule: DateRule) -> None:
    """No enabled journey uses `rule` any longer: its timers go. (Left in place, a yearly
    rule's timers would fire for every customer every year, for nothing.)"""
    timers = table_of(Timer)
    await session.execute(
        delete(timers).where(
            timers.c.store_id == store_id,
            timers.c.kind == DATE,
            timers.c.subject.startswith(rule.prefix, autoescape=True),
        )
    )


async def date_rules_in_use(session: AsyncSession, *, store_id: int) -> set[DateRule]:
    """The rules the store's date timers were set for: a pass over its date timers' subjects
    (`attribute:offset:y|o:customer`), when a journey is applied or switched on or off."""
    rows = await session.execute(
        select(Timer.subject).where(Timer.store_id == store_id, Timer.kind == DATE)
    )
    prefixes = {subject.rpartition(":")[0] for subject in rows.scalars()}
    rules = set()
    for prefix in prefixes:
        attribute, offset, every = prefix.split(":")
        rules.add(DateRule(attribute, int(offset), every == "y"))
    return rules


# ---------------------------------------------------------------------------------------------
# Special days


async def special_days_of(session: AsyncSession, *, store_id: int) -> list[SpecialDay]:
    rows = await session.execute(
        select(SpecialDay).where(SpecialDay.store_id == store_id).order_by(SpecialDay.key)
    )
    return list(rows.scalars())


async def set_special_day(
    session: AsyncSession,
    *,
    store_id: int,
    key: str,
    name_tr: str,
    name_en: str,
    rule: str,
    now: datetime,
) -> SpecialDay:
    """Add a special day to the store, or change the one with this key; its store-level
    timer is set to its next occurrence. special_days.RuleError names a bad rule."""
    if not special_days.KEY.match(key):
        raise ValueError(f"invalid key {key!r}: use lowercase letters, digits and -")
    rule = special_days.check_rule(rule)
    day = (
        await session.execute(
            select(SpecialDay).where(SpecialDay.store_id == store_id, SpecialDay.key == key)
        )
    ).scalar_one_or_none()
    if day is None:
        day = SpecialDay(store_id=store_id, key=key)
        session.add(day)
    day.name_tr, day.name_en, day.rule = name_tr, name_en, rule
    day.fanned_out_to = None
    day.due_at = _special_day_start(rule, from_day=now.astimezone(EARLIEST).date())
    await session.flush()
    return day


async def install_default_special_days(
    session: AsyncSession, *, store_id: int, now: datetime
) -> list[str]:
    """Give a store the default special days (`special_days.DEFAULTS`, Turkish) it does not
    have yet; returns their keys. A day the shop changed keeps its changes."""
    have = {day.key for day in await special_days_of(session, store_id=store_id)}
    added = []
    for default in special_days.DEFAULTS:
        if default.key in have:
            continue
        added.append(default.key)
        await set_special_day(
            session,
            store_id=store_id,
            key=default.key,
            name_tr=default.name_tr,
            name_en=default.name_en,
            rule=default.rule,
            now=now,
        )
    return added


async def remove_special_day(session: AsyncSession, *, store_id: int, key: str) -> bool:
    """Remove a special day, with the greetings of it still waiting; False if none."""
    removed = await session.execute(
        delete(SpecialDay).where(SpecialDay.store_id == store_id, SpecialDay.key == key)
    )
    timers = table_of(Timer)
    await session.execute(
        delete(timers).where(
            timers.c.store_id == store_id,
            timers.c.kind == SPECIAL_DAY,
            timers.c.subject.startswith(f"{key}:", autoescape=True),
        )
    )
    return bool(getattr(removed, "rowcount", 0))


def _special_day_start(rule: str, *, from_day: date) -> datetime | None:
    day = special_days.next_date(rule, from_day=from_day)
    return None if day is None else datetime.combine(day, time(0), tzinfo=EARLIEST).astimezone(UTC)


# Whether a store has an enabled journey that a derived event type starts: a special day
# no journey listens to is not fanned out to every customer for nothing.
Listened = Callable[[AsyncSession, int, str], Awaitable[bool]]


async def _fan_out(
    session: AsyncSession, day: SpecialDay, *, now: datetime, limit: int, listened: Listened | None
) -> None:
    """One batch of a special day's fan-out: a `customer.special_day` timer for each of up
    to `limit` customers, due at the start of the day where they live. The cursor moves in
    the same transaction, so a crash repeats the batch, whose timers are upserts with keyed
    events. When every customer has theirs, the day waits for its next occurrence."""
    assert day.due_at is not None
    on = day.due_at.astimezone(EARLIEST).date()
    store = await session.get(Store, day.store_id)
    assert store is not None
    page = []
    if listened is None or await listened(session, store.id, SPECIAL_DAY):
        page = await customer_page(
            session, store_id=store.id, after=day.fanned_out_to or 0, limit=limit
        )
    for customer_id, own_zone, _ in page:
        zone = ZoneInfo(own_zone or store.timezone)
        starts = datetime.combine(on, time(0), tzinfo=zone).astimezone(UTC)
        if now >= starts + timedelta(days=1):
            continue  # the day is over where they live (it was added on the day itself)
        await set_timer(
            session,
            store_id=store.id,
            kind=SPECIAL_DAY,
            subject=f"{day.key}:{on.isoformat()}:{customer_id}",
            customer_id=customer_id,
            due_at=starts,
            data=_special_day_data(day, on=on, zone=zone),
        )
    if len(page) == limit:
        day.fanned_out_to = page[-1][0]
        return
    day.fanned_out_to = None
    day.due_at = _special_day_start(day.rule, from_day=on + timedelta(days=1))


def _special_day_data(day: SpecialDay, *, on: date, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "key": day.key,
        "name_tr": day.name_tr,
        "name_en": day.name_en,
        "date": on.isoformat(),
        "timezone": zone.key,
    }


# ---------------------------------------------------------------------------------------------
# The store's time zone


async def store_zone_changed(session: AsyncSession, *, store: Store) -> int:
    """The store's time zone changed: the birthday, date, special-day and replenishment
    timers of its customers without a time zone of their own move to the start of the same
    day in the
    new zone (an occurrence that has not fired is still owed, so one now in the past fires
    at once). A page of the store's such timers at a time; returns how many moved."""
    zone = ZoneInfo(store.timezone)
    moved = 0
    after = 0
    while True:
        page = list(
            (
                await session.execute(
                    select(Timer)
                    .where(
                        Timer.store_id == store.id,
                        # A replenishment too: one day's products share one moment (one
                        # email), which the day's timers set later in the new zone must meet.
                        Timer.kind.in_((BIRTHDAY, DATE, SPECIAL_DAY, REPLENISHMENT)),
                        Timer.id > after,
                    )
                    .order_by(Timer.id)
                    .limit(PAGE)
                )
            ).scalars()
        )
        if not page:
            return moved
        after = page[-1].id
        own = await time_zones(session, ids={t.customer_id for t in page})
        for timer in page:
            if own.get(timer.customer_id) or timer.data.get("timezone") == zone.key:
                continue
            day = date.fromisoformat(timer.data["date"])
            timer.due_at = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
            timer.data = {**timer.data, "timezone": zone.key}
            moved += 1
        await session.flush()


async def move_customer(
    session: AsyncSession, *, store: Store, from_customer: int, to_customer: int
) -> None:
    """On a customer merge (after the orders moved): carts and replenishments go with the
    person; the absorbed profile's lapse, birthday, date and special-day timers go (the
    survivor has their own), the survivor's lapse date is set again from all the orders
    (the caller sets the birthday and dates from the merged profile). Without any order,
    the person keeps the earlier never-bought timer of the two, if either had one."""
    timers = table_of(Timer)
    waiting = (
        await session.execute(
            select(Timer.due_at, Timer.data)
            .where(
                Timer.store_id == store.id,
                Timer.kind == LAPSED,
                Timer.subject.in_((str(from_customer), str(to_customer))),
            )
            .order_by(Timer.due_at)
        )
    ).all()
    never_bought = [(due, data) for due, data in waiting if data.get("never_bought")]
    gone = (LAPSED, BIRTHDAY, DATE, SPECIAL_DAY)
    await session.execute(
        delete(timers).where(timers.c.customer_id == from_customer, timers.c.kind.in_(gone))
    )
    await session.execute(
        update(timers).where(timers.c.customer_id == from_customer).values(customer_id=to_customer)
    )
    await set_lapse(session, store=store, customer_id=to_customer)
    if never_bought and not await order_times(session, customer_id=to_customer):
        due_at, data = never_bought[0]
        await _set_never_bought(
            session,
            store_id=store.id,
            customer_id=to_customer,
            signed_up_at=datetime.fromisoformat(data["signed_up_at"]),
            due_at=due_at,
            days=data["days"],
        )


# ---------------------------------------------------------------------------------------------
# Firing


async def next_due(session: AsyncSession, *, kinds: Iterable[str] | None = None) -> datetime | None:
    """When the earliest timer (of these kinds) is due (ix_timers_due); None when none is."""
    query = select(func.min(Timer.due_at))
    if kinds is not None:
        kinds = set(kinds)
        query = query.where(Timer.kind.in_(kinds))
    due: datetime | None = await session.scalar(query)
    if kinds is None or SPECIAL_DAY in kinds:  # a special day fans out into such timers
        fan_out: datetime | None = await session.scalar(select(func.min(SpecialDay.due_at)))
        due = min((m for m in (due, fan_out) if m is not None), default=None)
    return due


# Timers of a local day: an occurrence is its date, wherever the customer's midnight falls.
DAY_BOUND = frozenset({BIRTHDAY, DATE, SPECIAL_DAY})


def occurrence_key(kind: str, subject: str, due_at: datetime, data: dict[str, Any]) -> str:
    """The derived event's idempotency key: one event per timer and occurrence. A birthday,
    date or special day is keyed by its local date: a customer whose time zone changes on
    the day (its timer set again for that day's midnight in the new zone, a moment that
    may not have passed) is greeted once, not twice."""
    moment = (
        data["date"]
        if kind in DAY_BOUND and isinstance(data.get("date"), str)
        else due_at.astimezone(UTC).isoformat()
    )
    key = f"derived:{kind}:{subject}:{moment}"
    if len(key) > 200:  # the events' key column; a long cart id is hashed
        digest = hashlib.sha256(key.encode()).hexdigest()
        key = f"derived:{kind}:{digest}"
    return key


async def fire_due(
    session: AsyncSession, *, clock: Clock, limit: int, listened: Listened | None = None
) -> int:
    """Turn up to `limit` due timers, the earliest first, into derived events, and delete
    each (a birthday or a yearly date moves to the next year); fan out a batch of each
    special day that has begun (`listened`: only where a journey starts on it). The
    event's `occurred_at` is the timer's due moment, however late it fires. Returns how
    many timers fired and special days moved on.

    On PostgreSQL `SKIP LOCKED` gives each timer to one worker; were one fired twice all
    the same (a crash between insert and commit rolls both back), its occurrence's key
    stores one event."""
    now = clock.now()
    days_query = select(SpecialDay).where(SpecialDay.due_at <= now).order_by(SpecialDay.due_at)
    if is_postgres(session):
        days_query = days_query.with_for_update(skip_locked=True)
    days = list((await session.execute(days_query.limit(limit))).scalars())
    for day in days:
        await _fan_out(session, day, now=now, limit=limit, listened=listened)
    return len(days) + await _fire_timers(session, now=now, limit=limit)


async def _fire_timers(session: AsyncSession, *, now: datetime, limit: int) -> int:
    query = select(Timer).where(Timer.due_at <= now).order_by(Timer.due_at).limit(limit)
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    due = list((await session.execute(query)).scalars())
    if not due:
        return 0
    due += await _same_day_replenishments(session, due)
    who = await identities(session, ids={t.customer_id for t in due})
    rows = []
    for store_id, kind, subject, due_at, customer_id, data in await _occurrences(session, due):
        derived = EventIn(
            id=occurrence_key(kind, subject, due_at, data),
            type=kind,
            occurred_at=due_at,
            customer=_named(who.get(customer_id)),
            data=data,
        )
        rows += event_rows(
            store_id,
            [derived],
            source="derived",
            now=now,
            customer_id=None if derived.customer else customer_id,
        )
    await insert_events(session, rows)
    gone, moved = [], []
    for timer in due:
        if timer.kind == BIRTHDAY:
            # The next year's, counted from the day after this one.
            moved.append(
                _birthday_timer(
                    store_id=timer.store_id,
                    customer_id=timer.customer_id,
                    birthday=date.fromisoformat(timer.data["birthday"]),
                    from_day=date.fromisoformat(timer.data["date"]) + timedelta(days=1),
                    zone=ZoneInfo(timer.data["timezone"]),
                )
            )
        elif timer.kind == DATE and timer.data.get("yearly"):
            # The next anniversary (the attribute's date as the timer was set from it).
            await _set_date(
                session,
                store_id=timer.store_id,
                customer_id=timer.customer_id,
                attributes={timer.data["attribute"]: timer.data["value"]},
                rule=DateRule(timer.data["attribute"], int(timer.data["offset_days"]), True),
                from_day=date.fromisoformat(timer.data["date"]) + timedelta(days=1),
                zone=ZoneInfo(timer.data["timezone"]),
            )
        else:
            gone.append(timer.id)
    await set_timers(session, moved)
    if gone:
        await session.execute(delete(table_of(Timer)).where(table_of(Timer).c.id.in_(gone)))
    return len(due)


async def _same_day_replenishments(session: AsyncSession, due: list[Timer]) -> list[Timer]:
    """The replenishment timers a batch's limit cut off from their customer's others due at
    the same moment (the same day): they fire together."""
    moments = {(t.customer_id, t.due_at) for t in due if t.kind == REPLENISHMENT}
    if not moments:
        return []
    taken = {t.id for t in due}
    query = select(Timer).where(
        Timer.kind == REPLENISHMENT,
        Timer.customer_id.in_({customer for customer, _ in moments}),
        Timer.due_at.in_({at for _, at in moments}),
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    found = (await session.execute(query)).scalars()
    return [t for t in found if t.id not in taken and (t.customer_id, t.due_at) in moments]


Occurrence = tuple[int, str, str, datetime, int, dict[str, Any]]


async def _occurrences(session: AsyncSession, due: list[Timer]) -> list[Occurrence]:
    """(store, event type, subject, moment, customer, data) of each event the due timers
    derive: one per timer, except a customer's replenishments due at one moment, which make
    one `replenishment.due` listing the items (with the catalogue's pictures, pages and
    prices, and the store's reorder link)."""
    occurrences: list[Occurrence] = []
    grouped: dict[tuple[int, int, datetime], list[Timer]] = {}
    for timer in due:
        if timer.kind == REPLENISHMENT:
            grouped.setdefault((timer.store_id, timer.customer_id, timer.due_at), []).append(timer)
        else:
            occurrences.append(
                (
                    timer.store_id,
                    timer.kind,
                    timer.subject,
                    timer.due_at,
                    timer.customer_id,
                    timer.data,
                )
            )
    for (store_id, customer_id, due_at), timers in grouped.items():
        timers.sort(key=lambda t: (t.data.get("ordered_at") or "", t.subject))
        store = await session.get(Store, store_id)
        assert store is not None
        data = await replenishment_data(session, store=store, bought=[t.data for t in timers])
        occurrences.append((store_id, REPLENISHMENT, str(customer_id), due_at, customer_id, data))
    return occurrences


async def replenishment_data(
    session: AsyncSession, *, store: Store, bought: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """A `replenishment.due`'s data: the day, the items as bought (each with the catalogue's
    title, page, picture and current price), their product ids, and the one-click reorder
    link when the store has a pattern and every item the ids it needs."""
    views = await product_views(
        session,
        store_id=store.id,
        wanted=[(item["product_id"], item.get("variant_id")) for item in bought],
    )
    items = []
    for item in bought:
        view = views.get((item["product_id"], item.get("variant_id")))
        shown = {
            "product_id": item["product_id"],
            "variant_id": item.get("variant_id"),
            "title": item.get("title") or (view.title if view else None),
            "quantity": item["quantity"],
            "order_id": item.get("order_id"),
            "ordered_at": item.get("ordered_at"),
            "days": item.get("days"),
            "url": view.url if view else None,
            "image_url": view.image_url if view else None,
            "price": view.price if view else None,
            "currency": (view.currency if view else None) or store.currency,
        }
        items.append({k: v for k, v in shown.items() if v is not None})
    data: dict[str, Any] = {
        "date": bought[0].get("date"),
        "items": items,
        "product_ids": [item["product_id"] for item in items],
    }
    if store.reorder_url:
        link = ReorderPattern.parse(store.reorder_url).link(
            [ReorderItem(i["product_id"], i.get("variant_id"), int(i["quantity"])) for i in items]
        )
        if link is not None:
            data["reorder_url"] = link
    return data


def _named(identifiers: dict[str, str] | None) -> CustomerIn | None:
    """The customer by their identifiers, so the derived event takes the lane of the shop's
    events about them; None (name them by id) for a profile without any (merged away) or
    with one the API would no longer accept: one odd profile must not stop every timer."""
    if not identifiers:
        return None
    try:
        return CustomerIn(**identifiers)
    except ValidationError:
        return None


async def still_holds(session: AsyncSession, *, event: Event, customer: Customer) -> str | None:
    """Whether a derived trigger is still true as it is applied; None if so, else why not.

    An order that happened before a cart's deadline may be applied after the timer fired
    (it came in late, or sat in another lane): the cart was not abandoned after all."""
    if event.source != "derived" or event.type not in (CART_ABANDONED, LAPSED):
        return None
    if event.type == CART_ABANDONED:
        cart = await find_cart(session, store_id=event.store_id, cart_id=event.data["cart_id"])
        if cart is None or cart.status == "ordered" or not cart.items:
            return "the cart was ordered or emptied"
        since = datetime.fromisoformat(event.data["idle_since"])
    elif event.data.get("never_bought"):
        if await order_times(session, customer_id=customer.id):
            return "the customer has ordered since signing up"
        return None
    else:
        since = datetime.fromisoformat(event.data["last_order_at"]) + timedelta(microseconds=1)
    if await ordered_since(session, customer_id=customer.id, since=since):
        return "the customer ordered since"
    return None
