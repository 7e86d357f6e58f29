"""Clock-driven triggers as timer rows.

The features whose state decides a trigger set, move or delete its timer here, in the
transaction of the change (the event applier orchestrates: `events.service`):

- `cart.abandoned`: a cart or checkout idle for the store's `abandoned_cart_minutes` with no
  order for it. A cart event moves the deadline to its `occurred_at` + the window; an
  emptied cart, or any order of the customer, deletes it.
- `customer.lapsed`: no order for the store's `lapsed_days`, or, once a customer has 3 or
  more orders, for twice their own median gap between orders. Each order moves it.
- `customer.birthday`: the start of the birthday in the customer's time zone (else the
  store's); 29 February falls on 28 February in other years. Set when a profile brings a
  birthday or a time zone; after it fires it moves to the next year.
- `replenishment.due`: an order's date + the product's `replenish_days` × the quantity,
  per customer and product (a later order of the product moves it).

`fire_due` (the job `timers.fire_due`) turns the due timers into derived events, keyed by
the occurrence (`derived:<kind>:<subject>:<due_at>`), so a timer fired twice, by a worker
that crashed before its commit or by two workers, yields one event.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.service import replenish_days
from ulak.clock import Clock
from ulak.customers.models import Customer
from ulak.customers.service import identities
from ulak.db import is_postgres, table_of
from ulak.events.inbox import event_rows, insert_events
from ulak.events.models import Event
from ulak.events.schemas import CustomerIn, EventIn, Item
from ulak.orders.service import find_cart, order_times, ordered_since
from ulak.stores.models import Store
from ulak.timers.models import Timer

CART_ABANDONED = "cart.abandoned"
BIRTHDAY = "customer.birthday"
LAPSED = "customer.lapsed"
REPLENISHMENT = "replenishment.due"
# The event types ulak derives from timers; journeys use them like any other.
KINDS = (CART_ABANDONED, BIRTHDAY, LAPSED, REPLENISHMENT)

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
) -> None:
    """An order ends the customer's abandoned carts, moves their lapse date and sets a
    replenishment timer for each product that says how long it lasts."""
    timers = table_of(Timer)
    carts = timers.c.customer_id == customer_id
    if cart_id:
        carts = or_(carts, timers.c.subject == cart_id)
    await session.execute(
        delete(timers).where(timers.c.store_id == store.id, timers.c.kind == CART_ABANDONED, carts)
    )
    await set_lapse(session, store=store, customer_id=customer_id)
    lasting = await replenish_days(
        session, store_id=store.id, product_ids=(i.product_id for i in items if i.product_id)
    )
    for item in items:
        days = lasting.get(item.product_id or "")
        if days is None:
            continue
        await set_timer(
            session,
            store_id=store.id,
            kind=REPLENISHMENT,
            subject=f"{customer_id}:{item.product_id}",
            customer_id=customer_id,
            due_at=at + timedelta(days=days * item.quantity),
            data={
                "product_id": item.product_id,
                "variant_id": item.variant_id,
                "title": item.title,
                "order_id": order_id,
                "quantity": item.quantity,
                "days": days * item.quantity,
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


async def move_customer(
    session: AsyncSession, *, store: Store, from_customer: int, to_customer: int
) -> None:
    """On a customer merge (after the orders moved): carts and replenishments go with the
    person; the absorbed profile's lapse and birthday timers go, the survivor's lapse date
    is set again from all the orders (the caller sets the birthday from the merged
    profile)."""
    timers = table_of(Timer)
    await session.execute(
        delete(timers).where(
            timers.c.customer_id == from_customer, timers.c.kind.in_((LAPSED, BIRTHDAY))
        )
    )
    await session.execute(
        update(timers).where(timers.c.customer_id == from_customer).values(customer_id=to_customer)
    )
    await set_lapse(session, store=store, customer_id=to_customer)


# ---------------------------------------------------------------------------------------------
# Firing


async def next_due(session: AsyncSession, *, kinds: Iterable[str] | None = None) -> datetime | None:
    """When the earliest timer (of these kinds) is due (ix_timers_due); None when none is."""
    query = select(func.min(Timer.due_at))
    if kinds is not None:
        query = query.where(Timer.kind.in_(set(kinds)))
    due: datetime | None = await session.scalar(query)
    return due


def occurrence_key(kind: str, subject: str, due_at: datetime) -> str:
    """The derived event's idempotency key: one event per timer and occurrence."""
    key = f"derived:{kind}:{subject}:{due_at.astimezone(UTC).isoformat()}"
    if len(key) > 200:  # the events' key column; a long cart id is hashed
        digest = hashlib.sha256(key.encode()).hexdigest()
        key = f"derived:{kind}:{digest}"
    return key


async def fire_due(session: AsyncSession, *, clock: Clock, limit: int) -> int:
    """Turn up to `limit` due timers, the earliest first, into derived events, and delete
    each (a birthday moves to the next year). The event's `occurred_at` is the timer's due
    moment, however late it fires. Returns how many fired.

    On PostgreSQL `SKIP LOCKED` gives each timer to one worker; were one fired twice all
    the same (a crash between insert and commit rolls both back), its occurrence's key
    stores one event."""
    now = clock.now()
    query = select(Timer).where(Timer.due_at <= now).order_by(Timer.due_at).limit(limit)
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    due = list((await session.execute(query)).scalars())
    if not due:
        return 0
    who = await identities(session, ids={t.customer_id for t in due})
    rows = []
    for timer in due:
        derived = EventIn(
            id=occurrence_key(timer.kind, timer.subject, timer.due_at),
            type=timer.kind,
            occurred_at=timer.due_at,
            customer=_named(who.get(timer.customer_id)),
            data=timer.data,
        )
        customer_id = None if derived.customer else timer.customer_id
        rows += event_rows(
            timer.store_id, [derived], source="derived", now=now, customer_id=customer_id
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
        else:
            gone.append(timer.id)
    await set_timers(session, moved)
    if gone:
        await session.execute(delete(table_of(Timer)).where(table_of(Timer).c.id.in_(gone)))
    return len(due)


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
    else:
        since = datetime.fromisoformat(event.data["last_order_at"]) + timedelta(microseconds=1)
    if await ordered_since(session, customer_id=customer.id, since=since):
        return "the customer ordered since"
    return None
