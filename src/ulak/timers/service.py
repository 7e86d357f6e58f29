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

`fire_due` (the job `timers.fire_due`) turns the due timers into derived events, keyed by
the occurrence (`derived:<kind>:<subject>:<due_at>`), so a timer fired twice, by a worker
that crashed before its commit or by two workers, yields one event.
"""

from __future__ import annotations

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

from ulak.catalog.service import product_views, replenish_days
from ulak.clock import Clock
from ulak.customers.models import Customer
from ulak.customers.service import identities
from ulak.db import is_postgres, table_of
from ulak.events.inbox import event_rows, insert_events
from ulak.events.models import Event
from ulak.events.schemas import CustomerIn, EventIn, Item
from ulak.orders.reorder import ReorderItem, ReorderPattern
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
    table = table_of(Timer)
    values = {
        "store_id": store_id,
        "kind": kind,
        "subject": subject,
        "customer_id": customer_id,
        "due_at": due_at,
        "data": data,
    }
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table)
    statement = statement.values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.store_id, table.c.kind, table.c.subject],
        set_={
            "customer_id": statement.excluded.customer_id,
            "due_at": statement.excluded.due_at,
            "data": statement.excluded.data,
        },
    )
    await session.execute(statement)


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
    timers = table_of(Timer)
    carts = timers.c.customer_id == customer_id
    if cart_id:
        carts = or_(carts, timers.c.subject == cart_id)
    await session.execute(
        delete(timers).where(timers.c.store_id == store.id, timers.c.kind == CART_ABANDONED, carts)
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
    day, due = next_birthday(birthday, from_day=from_day, zone=zone)
    data: dict[str, Any] = {
        "birthday": birthday.isoformat(),
        "date": day.isoformat(),
        "timezone": zone.key,
    }
    if birthday.year > 1900:  # shops that do not know the year send one like 1900 or 1
        data["age"] = day.year - birthday.year
    await set_timer(
        session,
        store_id=store_id,
        kind=BIRTHDAY,
        subject=str(customer_id),
        customer_id=customer_id,
        due_at=due,
        data=data,
    )


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
    profile). Without any order, the person keeps the earlier never-bought timer of the
    two, if either had one."""
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
    await session.execute(
        delete(timers).where(
            timers.c.customer_id == from_customer, timers.c.kind.in_((LAPSED, BIRTHDAY))
        )
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
    due += await _same_day_replenishments(session, due)
    who = await identities(session, ids={t.customer_id for t in due})
    rows = []
    for store_id, kind, subject, due_at, customer_id, data in await _occurrences(session, due):
        derived = EventIn(
            id=occurrence_key(kind, subject, due_at),
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
    gone = []
    for timer in due:
        if timer.kind == BIRTHDAY:
            # The next year's, counted from the day after this one.
            zone = ZoneInfo(timer.data["timezone"])
            fired_day = date.fromisoformat(timer.data["date"])
            await _set_birthday(
                session,
                store_id=timer.store_id,
                customer_id=timer.customer_id,
                birthday=date.fromisoformat(timer.data["birthday"]),
                from_day=fired_day + timedelta(days=1),
                zone=zone,
            )
        else:
            gone.append(timer.id)
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
