"""The inbox: events are stored on arrival and applied later, in order, exactly once."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.service import (
    Restocked,
    cancel_subscription,
    requester,
    subscribe,
    upsert_product,
)
from ulak.clock import Clock
from ulak.consent.service import UNSUBSCRIBE_LINK, merge_consent, record_change
from ulak.coupons.service import move_customer as move_coupons
from ulak.coupons.service import redeem_codes
from ulak.customers.models import Customer
from ulak.customers.service import (
    resolve_customer,
    surviving_customer,
)
from ulak.db import Note, is_postgres, notes, savepoint, table_of
from ulak.events.inbox import event_rows, insert_events
from ulak.events.models import IS_PENDING, Event
from ulak.events.schemas import (
    DATA_MODELS,
    BackInStockData,
    BouncedData,
    CartData,
    ComplainedData,
    ConsentData,
    CustomerIn,
    EventIn,
    OrderChangeData,
    OrderDeliveredData,
    OrderPlacedData,
    OrderShippedData,
    ProductData,
    ShipmentUpdatedData,
    SmsReportData,
    UnsubscribedData,
)
from ulak.journeys.context import build_context
from ulak.journeys.service import date_rules, move_enrollments, on_event, write_trace
from ulak.messages.reports import record_report
from ulak.messages.service import move_customer as move_messages
from ulak.orders.models import Order
from ulak.orders.service import (
    ShipmentChange,
    apply_cart,
    apply_order_change,
    apply_order_placed,
    apply_shipment_update,
    order_of_shipment,
)
from ulak.orders.service import (
    move_customer as move_orders,
)
from ulak.preferences import service as preferences
from ulak.preferences.schemas import PreferencesData, PrivacyRequestData
from ulak.privacy.service import ERASURE_REQUESTED, erase_customer
from ulak.returns.schemas import ReturnRequestedData, ReturnUpdatedData
from ulak.returns.service import apply_return_event
from ulak.reviews import service as reviews
from ulak.reviews.schemas import ReviewSubmittedData
from ulak.stores.models import Store
from ulak.suppressions.apply import ERASED_MESSAGE, apply_report
from ulak.suppressions.service import SOFT_BOUNCE_LIMIT
from ulak.surveys import service as surveys
from ulak.surveys.schemas import DUE as SURVEY_DUE
from ulak.surveys.schemas import SurveyAnsweredData
from ulak.timers import service as timers
from ulak.webhooks import reporting as webhooks
from ulak.webhooks.service import move_customer as move_webhook_deliveries

log = logging.getLogger(__name__)


async def apply_pending(
    session: AsyncSession,
    *,
    clock: Clock,
    limit: int,
    isolate: bool = True,
    soft_bounce_limit: int = SOFT_BOUNCE_LIMIT,
) -> int:
    """Apply up to `limit` pending events, the oldest first.

    SQLite has one writer, so a batch takes the oldest events whatever their lane. On
    PostgreSQL it takes a few lanes at random, so that several workers share them.
    """
    lanes = None
    if is_postgres(session):
        rows = await session.execute(select(Event.lane).where(IS_PENDING).group_by(Event.lane))
        lanes = [lane for (lane,) in rows.all()]
        random.shuffle(lanes)
        lanes = lanes[:LANES_PER_WORKER]
    return await apply_lanes(
        session,
        lanes=lanes,
        clock=clock,
        limit=limit,
        isolate=isolate,
        soft_bounce_limit=soft_bounce_limit,
    )


async def apply_lanes(
    session: AsyncSession,
    *,
    lanes: list[int] | None,
    clock: Clock,
    limit: int,
    isolate: bool = True,
    soft_bounce_limit: int = SOFT_BOUNCE_LIMIT,
) -> int:
    """Apply the oldest pending events of these lanes (None: of all lanes, for SQLite's one
    writer), at most `limit` of them, each lane's in order.

    With `isolate`, each event applies in a savepoint and one that fails is set aside with
    its reason. Without it (the fast path: two statements fewer per event), a failure
    raises and the caller rolls back and runs the lanes again isolated.

    On PostgreSQL a transaction-scoped advisory lock makes one worker own a lane until it
    commits; a crash releases it with the rollback, and the events are still pending.
    """
    if is_postgres(session) and lanes:  # one worker at a time per lane
        owned = await session.execute(
            text(
                "SELECT lane FROM unnest(CAST(:lanes AS integer[])) AS lane"
                " WHERE pg_try_advisory_xact_lock(7071, lane)"
            ),
            {"lanes": lanes},
        )
        lanes = [lane for (lane,) in owned.all()]
    # Oldest first across the lanes, so a limit cuts each lane after its oldest events.
    query = select(Event).where(IS_PENDING).order_by(Event.occurred_at, Event.id).limit(limit)
    if lanes is not None:
        if not lanes:
            return 0
        query = query.where(Event.lane.in_(lanes))
    events = list((await session.execute(query)).scalars())
    stores: dict[int, Store] = {}
    stopped: set[int] = set()
    done = 0
    for event in events:
        # Let this process's other work (SMTP sessions in flight) move between events.
        await asyncio.sleep(0)
        if event.lane in stopped or event.status != "pending":  # set aside by an erasure
            continue
        store = stores.get(event.store_id) or await session.get(Store, event.store_id)
        assert store is not None
        stores[store.id] = store
        if not isolate:
            await _apply(session, store=store, event=event, clock=clock, soft=soft_bounce_limit)
            done += 1
            continue
        # Read before the savepoint: a rollback expires what was flushed inside it.
        event_id, event_type, lane = event.id, event.type, event.lane
        try:
            async with savepoint(session):
                await _apply(session, store=store, event=event, clock=clock, soft=soft_bounce_limit)
                await write_applied(session)
                await write_trace(session)
        except Exception as error:
            await session.refresh(event)
            reason = f"{type(error).__name__}: {error}"
            event.attempts += 1
            event.error = reason
            if _may_pass(error, session) and event.attempts < TRANSIENT_ATTEMPTS:
                # Another worker is creating the same customer (their events sit in two
                # lanes): leave this one pending and stop its lane to keep its order.
                log.warning("event %s (%s) will be retried: %s", event_id, event_type, reason)
                stopped.add(lane)
                continue
            log.exception("event %s (%s) could not be applied", event_id, event_type)
            event.status = "failed"
        done += 1
    await write_applied(session)
    await write_trace(session)
    return done


async def _apply(
    session: AsyncSession, *, store: Store, event: Event, clock: Clock, soft: int
) -> None:
    customer_id = await apply_event(
        session, store=store, event=event, clock=clock, soft_bounce_limit=soft
    )
    notes(session)(APPLIED).append(Applied(event.id, customer_id, clock.now()))


@dataclass(frozen=True)
class Applied:
    event: int
    customer: int | None
    at: datetime


# The events applied but not yet marked so: marked by one UPDATE for many (executemany) at
# the end of the batch or of an event's savepoint, and before a merge moves events to
# another customer. The ORM's flush of each event cost 0.2 ms more CPU per event
# (bench/stages.py).
APPLIED: Note[list[Applied]] = Note("events.applied", list, void_on_rollback=True)

_events = table_of(Event)
_MARK_APPLIED = (
    update(_events)
    .where(_events.c.id == bindparam("b_event"))
    .values(status="applied", customer_id=bindparam("b_customer"), applied_at=bindparam("b_at"))
)


async def write_applied(session: AsyncSession) -> None:
    """Mark the events noted as applied. (The Event objects in the session keep their
    loaded status: nothing in the transaction reads it again.)"""
    applied = notes(session).pop(APPLIED)
    if applied:
        rows = [{"b_event": a.event, "b_customer": a.customer, "b_at": a.at} for a in applied]
        await session.execute(_MARK_APPLIED, rows)


# How many lanes one PostgreSQL worker applies in a batch.
LANES_PER_WORKER = 8
# Conflicts with a concurrent worker are retried this many times before the event fails.
TRANSIENT_ATTEMPTS = 5


def _may_pass(error: Exception, session: AsyncSession) -> bool:
    return is_postgres(session) and isinstance(error, IntegrityError | OperationalError)


async def apply_event(
    session: AsyncSession,
    *,
    store: Store,
    event: Event,
    clock: Clock,
    soft_bounce_limit: int = SOFT_BOUNCE_LIMIT,
) -> int | None:
    """Apply one event; returns the customer it is now about (None: none)."""
    now = clock.now()
    if event.type == ERASURE_REQUESTED and event.customer_id is not None:
        return await _erase(session, store=store, customer_id=event.customer_id, now=now)
    customer: Customer | None = None
    merges: list[int] = []
    if event.customer:
        customer = await resolve_customer(
            session,
            store_id=store.id,
            phone_region=store.phone_region,
            profile=event.customer,
            clock=clock,
            merge=partial(_merge, session, store=store, merges=merges, now=now),
        )
        if customer.birthday is not None and (
            merges or "birthday" in event.customer or "timezone" in event.customer
        ):
            await timers.birthday_changed(session, store=store, customer=customer, now=now)
        if merges or "attributes" in event.customer or "timezone" in event.customer:
            rules = await date_rules(session, store_id=store.id)
            if rules:
                await timers.dates_changed(
                    session, store=store, customer=customer, rules=rules, now=now
                )
    elif event.customer_id is not None:  # from ulak's own pages, which know the customer
        customer = await surviving_customer(
            session, store_id=store.id, customer_id=event.customer_id
        )
        if customer is not None and customer.erased_at is not None:
            customer = None  # a link in an old email of an erased customer: nobody now
    model = DATA_MODELS.get(event.type)
    data: Any = model.model_validate(event.data) if model else None
    if customer is not None and isinstance(data, ConsentData | UnsubscribedData):
        await record_change(
            session,
            store_id=store.id,
            customer=customer,
            occurred_at=event.occurred_at,
            event_id=event.id,
            now=now,
            **(
                data.change()
                if isinstance(data, ConsentData)
                else {"channel": data.channel, "status": "revoked", "source": UNSUBSCRIBE_LINK}
            ),
        )
    if isinstance(data, BouncedData | ComplainedData):
        # A bounce or complaint about one of the store's messages (suppressions/apply.py).
        event.error = await apply_report(
            session,
            store_id=store.id,
            data=data,
            customer=customer,
            event_id=event.id,
            soft_bounce_limit=soft_bounce_limit,
            now=now,
        )
        if event.error == ERASED_MESSAGE:
            event.data = {}  # the report's diagnostic may name the erased address
    if isinstance(data, ProductData):
        restocked = await upsert_product(
            session, store_id=store.id, data=data, factor=store.back_in_stock_factor, clock=clock
        )
        if restocked is not None:
            await _derive_back_in_stock(session, event=event, restocked=restocked, clock=clock)
    if isinstance(data, SmsReportData):
        await record_report(
            session,
            store_id=store.id,
            provider_id=data.provider_id,
            delivered=event.type == "message.delivered",
            reason=data.reason,
        )
    if reviews.wants(event.type):
        await reviews.apply(
            session, store=store, event=event, data=data, customer=customer, now=now
        )
        review_id = event.data.get("review_id")
        if isinstance(data, ReviewSubmittedData) and customer and isinstance(review_id, int):
            await webhooks.review_submitted(
                session,
                store_id=store.id,
                event_id=event.id,
                review_id=review_id,
                data=data,
                customer=customer,
                occurred_at=event.occurred_at,
                now=now,
            )
    if customer is None:
        return event.customer_id
    common: dict[str, Any] = {"store_id": store.id, "customer_id": customer.id}
    if isinstance(data, BackInStockData) and event.type == "back_in_stock.requested":
        asked = event.customer or {}
        await subscribe(
            session,
            **common,
            requested_by=requester(asked.get("email"), asked.get("id"), customer.id),
            data=data,
            daily_limit=store.back_in_stock_daily_limit,
            now=now,
        )
    elif isinstance(data, BackInStockData):
        await cancel_subscription(session, **common, data=data)
    elif isinstance(data, PreferencesData):
        await preferences.apply_preferences(
            session, store_id=store.id, customer=customer, data=data, event_id=event.id, now=now
        )
    elif isinstance(data, PrivacyRequestData):
        await preferences.request_privacy(
            session, store=store, customer=customer, data=data, event_id=event.id, clock=clock
        )
    elif isinstance(data, CartData):
        cart = await apply_cart(
            session,
            **common,
            data=data,
            checkout=event.type == "checkout.started",
            occurred_at=event.occurred_at,
            now=now,
        )
        await timers.cart_changed(
            session,
            store=store,
            customer_id=customer.id,
            cart_id=cart.cart_id,
            empty=not cart.items,
            ordered=cart.status == "ordered",
            at=event.occurred_at,
        )
    elif isinstance(data, OrderPlacedData):
        await apply_order_placed(
            session,
            **common,
            data=data,
            currency=store.currency,
            event_id=event.id,
            occurred_at=event.occurred_at,
            now=now,
        )
        if data.discount_codes:
            redeemed = await redeem_codes(
                session,
                store_id=store.id,
                codes=data.discount_codes,
                order_id=data.order_id,
                at=event.occurred_at,
            )
            await webhooks.coupons_redeemed(
                session,
                store_id=store.id,
                event_id=event.id,
                coupons=redeemed,
                customer=customer,
                occurred_at=event.occurred_at,
                now=now,
            )
        await timers.order_placed(
            session,
            store=store,
            customer_id=customer.id,
            order_id=data.order_id,
            cart_id=data.cart_id,
            items=data.items,
            at=event.occurred_at,
            zone=ZoneInfo(customer.timezone or store.timezone),
        )
    elif event.type == "customer.created":
        # A sign-up who never orders gets win-back `never_bought_days` later.
        await timers.signed_up(session, store=store, customer_id=customer.id, at=event.occurred_at)
    elif isinstance(data, OrderChangeData | OrderShippedData | OrderDeliveredData):
        await apply_order_change(
            session,
            **common,
            event_type=event.type,
            data=data,
            currency=store.currency,
            event_id=event.id,
            occurred_at=event.occurred_at,
            now=now,
        )
        if isinstance(data, OrderDeliveredData):
            await surveys.order_delivered(
                session,
                store=store,
                customer=customer,
                order_id=data.order_id,
                delivered_at=event.occurred_at,
            )
    elif event.type == SURVEY_DUE:
        await surveys.survey_asked(
            session, store_id=store.id, data=event.data, asked_at=event.occurred_at
        )
    elif isinstance(data, SurveyAnsweredData):
        await surveys.record_answer(
            session,
            store=store,
            customer=customer,
            data=data,
            answered_at=event.occurred_at,
            clock=clock,
        )
        await webhooks.survey_answered(
            session,
            store_id=store.id,
            event_id=event.id,
            data=data,
            customer=customer,
            occurred_at=event.occurred_at,
            now=now,
        )
    elif isinstance(data, ReturnRequestedData | ReturnUpdatedData):
        event.error = await apply_return_event(
            session, store=store, customer=customer, event=event, data=data, now=now
        )
        if event.error is not None:
            return customer.id  # a refused request or update starts and emails nothing
    elif isinstance(data, ShipmentUpdatedData):
        change = await apply_shipment_update(
            session, store_id=store.id, data=data, occurred_at=event.occurred_at, now=now
        )
        order = await order_of_shipment(session, change.shipment)
        if data.status == "delivered" and order is not None and order.status != "delivered":
            await _derive_order_delivered(
                session, event=event, customer=customer, order_id=order.order_id, clock=clock
            )
        if change.problem is not None:
            await _derive_shipment_problem(
                session, event=event, customer=customer, change=change, order=order, clock=clock
            )
    loaded: dict[str, Any] = {}

    async def context() -> dict[str, Any]:
        if not loaded:
            loaded.update(
                await build_context(
                    session,
                    store_id=store.id,
                    customer=customer,
                    order_id=event.data.get("order_id"),
                    cart_id=event.data.get("cart_id"),
                    shipment_id=event.data.get("shipment_id"),
                )
            )
        return loaded

    if (untrue := await timers.still_holds(session, event=event, customer=customer)) is not None:
        # A derived trigger that stopped being true before it was applied starts nothing.
        log.info("event %s (%s) starts nothing: %s", event.id, event.type, untrue)
        event.error = f"not acted on: {untrue}"
        return customer.id
    await on_event(session, event=event, customer=customer, context=context, clock=clock)
    return customer.id


async def _erase(
    session: AsyncSession, *, store: Store, customer_id: int, now: datetime
) -> int | None:
    """A KVKK/GDPR erasure the API accepted (only ulak's own route names a customer by
    its ulak id, so a shop's event of this type erases nothing)."""
    customer = await surviving_customer(session, store_id=store.id, customer_id=customer_id)
    if customer is None or customer.erased_at is not None:
        return None
    await write_applied(session)  # this batch's events about them, as theirs, first
    erased = await erase_customer(session, customer=customer, now=now)
    log.info("store %s: customer %s erased: %s", store.id, customer.id, erased)
    return customer.id


async def _merge(
    session: AsyncSession,
    survivor: Customer,
    absorbed: Customer,
    *,
    store: Store,
    merges: list[int],
    now: datetime,
) -> None:
    """Two profiles turned out to be one person: each feature moves its own rows of the
    absorbed profile to the survivor (the customers feature then merges the profiles)."""
    moved = {"from_customer": absorbed.id, "to_customer": survivor.id}
    await write_applied(session)  # the events it moves include those applied just now
    await session.execute(
        update(Event).where(Event.customer_id == absorbed.id).values(customer_id=survivor.id)
    )
    await move_orders(session, **moved)
    await timers.move_customer(session, store=store, **moved)
    await move_messages(session, **moved)
    await move_coupons(session, **moved)
    await surveys.move_customer(session, **moved)
    await reviews.move_customer(session, **moved)
    await move_webhook_deliveries(session, **moved)
    await move_enrollments(session, **moved, now=now)
    await merge_consent(session, survivor=survivor, absorbed=absorbed)
    await preferences.move_customer(session, from_id=absorbed.id, to_id=survivor.id)
    merges.append(absorbed.id)


async def _derive_order_delivered(
    session: AsyncSession, *, event: Event, customer: Customer, order_id: str, clock: Clock
) -> None:
    """A carrier's "delivered" is the order's delivery: shops that only report shipment
    statuses still get their delivered journeys. The derived event has a fixed key, so a
    repeated status update derives nothing more."""
    who = {"id": customer.external_id, "email": customer.email, "phone": customer.phone}
    derived = EventIn(
        id=f"derived:order.delivered:{event.data['shipment_id']}",
        type="order.delivered",
        occurred_at=event.occurred_at,
        customer=CustomerIn(**{k: v for k, v in who.items() if v}),
        data={"order_id": order_id, "shipment_id": event.data["shipment_id"]},
    )
    await insert_events(
        session, event_rows(event.store_id, [derived], source="derived", now=clock.now())
    )


@dataclass(frozen=True)
class FailedEvent:
    key: str
    type: str
    received_at: datetime
    error: str


async def failed_events(session: AsyncSession, *, store_id: int) -> list[FailedEvent]:
    """A store's events that could not be applied, with why, oldest first."""
    rows = await session.execute(
        select(Event.key, Event.type, Event.received_at, Event.error)
        .where(Event.store_id == store_id, Event.status == "failed")
        .order_by(Event.id)
    )
    return [FailedEvent(k, t, at, error or "") for k, t, at, error in rows.all()]


async def _derive_back_in_stock(
    session: AsyncSession, *, event: Event, restocked: Restocked, clock: Clock
) -> None:
    """Each customer a restock answers gets a `product.back_in_stock` of their own, keyed by
    subscription and restock, so a product update applied again derives nothing more."""
    product = restocked.product
    view = {
        "product_id": product.product_id,
        "variant_id": product.variant_id or None,
        "title": product.title,
        "url": product.url,
        "image_url": product.image_url,
        "price": str(product.price) if product.price is not None else None,
        "currency": product.currency,
        "inventory": product.inventory,
    }
    data = {k: v for k, v in view.items() if v is not None}
    rows = []
    for subscription in restocked.subscriptions:
        derived = EventIn(
            id=f"derived:product.back_in_stock:{subscription.id}:{restocked.restock}",
            type="product.back_in_stock",
            occurred_at=event.occurred_at,
            data={**data, "subscription_id": subscription.id},
        )
        rows += event_rows(
            event.store_id,
            [derived],
            source="derived",
            now=clock.now(),
            customer_id=subscription.customer_id,
        )
    await insert_events(session, rows)


async def _derive_shipment_problem(
    session: AsyncSession,
    *,
    event: Event,
    customer: Customer,
    change: ShipmentChange,
    order: Order | None,
    clock: Clock,
) -> None:
    """A carrier status the customer must act on, or a later estimated delivery, becomes a
    `shipment.problem` (the delivery-problems journey), once per shipment and status (and
    once per new estimate for a delay): a carrier that repeats a status sends one email."""
    shipment, problem = change.shipment, change.problem
    assert problem is not None
    occurrence = f"delayed:{shipment.estimated_delivery}" if problem == "delayed" else problem
    data = {
        "shipment_id": shipment.shipment_id,
        "order_id": order.order_id if order is not None else None,
        "problem": problem,
        "location": shipment.location,
        "message": shipment.message,
        "estimated_delivery": shipment.estimated_delivery,
        "was_expected": change.was_expected,
    }
    derived = EventIn(
        id=f"derived:shipment.problem:{shipment.shipment_id}:{occurrence}"[:200],
        type="shipment.problem",
        occurred_at=event.occurred_at,
        data={k: v for k, v in data.items() if v is not None},
    )
    await insert_events(
        session,
        event_rows(
            event.store_id, [derived], source="derived", now=clock.now(), customer_id=customer.id
        ),
    )
