"""Journey definitions (versioned) and how events move customers into, through and out of them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.coupons.service import install_default_templates, missing_templates
from ulak.customers.models import Customer
from ulak.customers.service import new_customers
from ulak.db import Note, attach_row, insert_returning_id, insert_rows, is_postgres, notes
from ulak.errors import Invalid, NotFound
from ulak.events.models import Event
from ulak.journeys.definition import (
    DATE_EVENT,
    PROMOTIONS,
    JourneyDefinition,
    JourneyFileError,
    Program,
    WaitForOp,
    compile_program,
    coupon_keys,
    load_journey,
    parse_day_offset,
    promotion_problems,
    template_names,
)
from ulak.journeys.expressions import ExpressionError, names_in, truthy
from ulak.journeys.models import (
    IS_LIVE,
    LIVE,
    Enrollment,
    EnrollmentStep,
    Journey,
    JourneyVersion,
    ShippedJourney,
)
from ulak.messages.service import templates_reading
from ulak.orders.service import orders_of_cart
from ulak.stores.models import Store
from ulak.timers.service import DateRule, date_rules_in_use, delete_date_rule, set_date_rule

REENTRY_FIELD = {
    "once_per_order": "order_id",
    "once_per_cart": "cart_id",
    "once_per_shipment": "shipment_id",
}


@dataclass(frozen=True)
class CompiledJourney:
    definition: JourneyDefinition
    program: Program


# What one transaction remembers: compiled versions (they never change once written), the
# trace rows to write at the end of a batch or savepoint, and which journeys an event type
# starts (a batch applies many events of few types).
COMPILED: Note[dict[int, CompiledJourney]] = Note("journeys.compiled_versions", dict)
TRACE: Note[list[dict[str, Any]]] = Note("journeys.trace", list, void_on_rollback=True)
TRIGGERED: Note[dict[tuple[int, str], list[tuple[Journey, int]]]] = Note("journeys.triggered", dict)
DATE_RULES: Note[dict[int, list[DateRule]]] = Note("journeys.date_rules", dict)


@lru_cache(maxsize=1024)
def _compile(definition_json: str) -> CompiledJourney:
    definition = JourneyDefinition.model_validate(json.loads(definition_json))
    return CompiledJourney(definition, compile_program(definition))


async def compiled_version(session: AsyncSession, version_id: int) -> CompiledJourney:
    """Versions never change once written, so their compiled form is cached (by content:
    ids repeat across databases, e.g. in tests) and remembered for the transaction."""
    memo = notes(session)(COMPILED)
    if version_id not in memo:
        version = await session.get(JourneyVersion, version_id)
        if version is None:
            raise NotFound(f"journey version {version_id} does not exist")
        memo[version_id] = _compile(json.dumps(version.definition, sort_keys=True))
    return memo[version_id]


async def informational_senders(
    session: AsyncSession, *, store_id: int, template: str
) -> list[str]:
    """The store's informational journeys (on or off) whose current version sends
    `template`: such a template may show no promotion."""
    rows = await session.execute(
        select(Journey.key, JourneyVersion.id)
        .join(
            JourneyVersion,
            (JourneyVersion.journey_id == Journey.id)
            & (JourneyVersion.version == Journey.current_version),
        )
        .where(Journey.store_id == store_id)
        .order_by(Journey.key)
    )
    senders = []
    for key, version_id in rows.all():
        compiled = await compiled_version(session, version_id)
        if compiled.definition.legal_class == "informational" and template in template_names(
            compiled.definition
        ):
            senders.append(key)
    return senders


async def apply_journey(
    session: AsyncSession,
    *,
    store_id: int,
    definition: JourneyDefinition,
    source: str,
    clock: Clock,
    filename: str | None = None,
) -> tuple[Journey, int, bool]:
    """Store a definition as the journey's next version (when it differs from the current).

    Returns the journey, its current version number and whether a new version was written.
    Running enrollments keep the version they started on. A journey that issues coupons of a
    template the store does not have is refused, rather than failing each customer's step;
    so is an informational journey that carries a promotion (`promotion_problems`, on the
    lines of `source`).
    """
    now = clock.now()
    missing = await missing_templates(
        session, store_id=store_id, keys=coupon_keys(definition.steps)
    )
    if missing:
        names = ", ".join(repr(key) for key in missing)
        raise Invalid(
            f"journey {definition.key!r} issues coupons of {names}, which store {store_id} "
            f"has no template for: add one with `ulak coupons set-template KEY --store "
            f"{store_id} --kind percent --amount 10`, or see `ulak coupons templates --store "
            f"{store_id}`",
            details={"missing_coupon_templates": missing},
        )
    promotional = await templates_reading(
        session, store_id=store_id, templates=template_names(definition), names=PROMOTIONS
    )
    if problems := promotion_problems(definition, source, filename or definition.key, promotional):
        raise JourneyFileError(problems)
    dumped = definition.model_dump(mode="json", by_alias=True)
    journey = (
        await session.execute(
            select(Journey).where(Journey.store_id == store_id, Journey.key == definition.key)
        )
    ).scalar_one_or_none()
    if journey is not None:
        current = (
            await session.execute(
                select(JourneyVersion).where(
                    JourneyVersion.journey_id == journey.id,
                    JourneyVersion.version == journey.current_version,
                )
            )
        ).scalar_one()
        if current.definition == dumped:
            journey.enabled = definition.enabled
            journey.priority, journey.over_cap = definition.priority, definition.over_cap
            await sync_date_timers(session, store_id=store_id, now=now)
            return journey, journey.current_version, False
        journey.current_version += 1
    else:
        journey = Journey(store_id=store_id, key=definition.key, current_version=1, created_at=now)
        session.add(journey)
    journey.name = definition.name
    journey.enabled = definition.enabled
    journey.trigger_event = definition.trigger.event
    journey.priority, journey.over_cap = definition.priority, definition.over_cap
    journey.updated_at = now
    await session.flush()
    session.add(
        JourneyVersion(
            journey_id=journey.id,
            version=journey.current_version,
            definition=dumped,
            source=source,
            created_at=now,
        )
    )
    await session.flush()
    await sync_date_timers(session, store_id=store_id, now=now)
    return journey, journey.current_version, True


def date_rule(definition: JourneyDefinition) -> DateRule | None:
    """The rule of a journey's date trigger (None: it has another trigger)."""
    trigger = definition.trigger.date
    if trigger is None:
        return None
    return DateRule(trigger.attribute, parse_day_offset(trigger.offset), trigger.yearly)


async def date_rules(session: AsyncSession, *, store_id: int) -> list[DateRule]:
    """The date rules of the store's enabled journeys, each once; remembered for the
    transaction (the event applier asks for each profile that brings attributes)."""
    memo = notes(session)(DATE_RULES)
    if store_id not in memo:
        rules = set()
        for _, version in await _triggered_by(session, store_id, DATE_EVENT):
            rule = date_rule((await compiled_version(session, version)).definition)
            if rule is not None:
                rules.add(rule)
        memo[store_id] = sorted(rules)
    return memo[store_id]


async def sync_date_timers(session: AsyncSession, *, store_id: int, now: datetime) -> None:
    """After a journey was applied, switched on or off: a date rule an enabled journey has
    started using gets its customers' timers (one pass over the store's customers, see
    `set_date_rule`); a rule none uses any longer loses them, rather than firing every
    customer's date for nothing."""
    memo = notes(session)
    memo.pop(TRIGGERED)
    memo.pop(DATE_RULES)
    await session.flush()
    wanted = set(await date_rules(session, store_id=store_id))
    have = await date_rules_in_use(session, store_id=store_id)
    store = await session.get(Store, store_id)
    assert store is not None
    for rule in sorted(wanted - have):
        await set_date_rule(session, store=store, rule=rule, now=now)
    for rule in sorted(have - wanted):
        await delete_date_rule(session, store_id=store_id, rule=rule)


async def starts_journeys(session: AsyncSession, store_id: int, event_type: str) -> bool:
    """Whether an event of this type would start one of the store's enabled journeys."""
    return bool(await _triggered_by(session, store_id, event_type))


def library() -> list[tuple[str, str]]:
    """The shipped journeys: (file name, YAML source)."""
    folder = resources.files("ulak.journeys") / "library"
    return sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


async def install_library(session: AsyncSession, *, store_id: int, clock: Clock) -> list[str]:
    """Give a new store the shipped journeys (each as its file says, on or off); returns
    their keys."""
    return await offer_library(session, store_id=store_id, clock=clock)


async def offer_library(session: AsyncSession, *, store_id: int, clock: Clock) -> list[str]:
    """Add the shipped journeys the store was never offered (`shipped_journeys`), each
    switched on or off as its file says; returns the keys added.

    A journey offered once is never offered again.
    A journey of the same key the store has already (its own, or one it changed) is
    recorded as offered and left as it is. A newly shipped journey that issues coupons
    brings the default coupon templates it needs and the store lacks."""
    offered = set(
        (
            await session.execute(
                select(ShippedJourney.key).where(ShippedJourney.store_id == store_id)
            )
        ).scalars()
    )
    have = set(
        (await session.execute(select(Journey.key).where(Journey.store_id == store_id))).scalars()
    )
    now = clock.now()
    added = []
    for name, source in library():
        definition = load_journey(source, name)
        if definition.key in offered:
            continue
        if definition.key not in have:
            await _add_default_templates(session, store_id=store_id, definition=definition, now=now)
            await apply_journey(
                session, store_id=store_id, definition=definition, source=source, clock=clock
            )
            added.append(definition.key)
        session.add(ShippedJourney(store_id=store_id, key=definition.key, offered_at=now))
    await session.flush()
    return added


async def _add_default_templates(
    session: AsyncSession, *, store_id: int, definition: JourneyDefinition, now: datetime
) -> None:
    """The default coupon templates a shipped journey needs that the store lacks (a store
    made before the journey, and its template, shipped)."""
    missing = await missing_templates(
        session, store_id=store_id, keys=coupon_keys(definition.steps)
    )
    if not missing:
        return
    store = await session.get(Store, store_id)
    if store is None:
        raise NotFound(f"store {store_id} does not exist")
    await install_default_templates(
        session, store_id=store_id, locale=store.locale, now=now, keys=set(missing)
    )


async def list_journeys(session: AsyncSession, *, store_id: int) -> list[dict[str, Any]]:
    counts = dict(
        (
            await session.execute(
                select(Enrollment.journey_id, func.count())
                .where(Enrollment.store_id == store_id, Enrollment.status.in_(LIVE))
                .group_by(Enrollment.journey_id)
            )
        ).all()
    )
    journeys = (
        await session.execute(
            select(Journey).where(Journey.store_id == store_id).order_by(Journey.key)
        )
    ).scalars()
    return [
        {
            "key": j.key,
            "name": j.name,
            "enabled": j.enabled,
            "version": j.current_version,
            "trigger": j.trigger_event,
            "live_enrollments": counts.get(j.id, 0),
        }
        for j in journeys
    ]


def trace(
    session: AsyncSession,
    enrollment: Enrollment,
    *,
    at: datetime,
    kind: str,
    note: str | Callable[[], str],
) -> None:
    """Note a step in the enrollment's trace; `write_trace` stores what was noted. A note
    that names a row inserted in this batch (a message's id) is a function, called after
    the batch's flush has given the row its id."""
    notes(session)(TRACE).append(
        {"enrollment_id": enrollment.id, "at": at, "pc": enrollment.pc, "kind": kind, "note": note}
    )


async def write_trace(session: AsyncSession) -> None:
    """Flush, then store the noted trace rows in one statement. Callers write before a
    savepoint ends and at the end of a batch; a savepoint that rolls back takes its notes
    with it."""
    await session.flush()
    rows = notes(session).pop(TRACE)
    for row in rows:
        note = row["note"]
        row["note"] = (note if isinstance(note, str) else note())[:1000]
    await insert_rows(session, EnrollmentStep, rows)


def finish(enrollment: Enrollment, status: str, *, at: datetime, reason: str | None = None) -> None:
    enrollment.status = status
    enrollment.next_run_at = None
    enrollment.waiting_for = None
    enrollment.finished_at = at
    if status == "exited":
        enrollment.exit_reason = reason
    elif status == "failed":
        enrollment.failure_reason = reason


def enrollment_view(enrollment: Enrollment) -> dict[str, Any]:
    view = {
        "order_id": enrollment.order_id,
        "cart_id": enrollment.cart_id,
        "shipment_id": enrollment.shipment_id,
        "started_at": enrollment.started_at,
    }
    return {k: v for k, v in view.items() if v is not None}


def event_view(event: Event) -> dict[str, Any]:
    return {
        "id": event.key,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "data": event.data,
    }


async def on_event(
    session: AsyncSession,
    *,
    event: Event,
    customer: Customer,
    context: Callable[[], Awaitable[dict[str, Any]]],
    clock: Clock,
) -> None:
    """Let one applied event exit, resume and start enrollments of its customer.

    `context` loads what expressions may read (customer, order, cart, shipment) for this
    event, only when an expression needs it; `event` and `enrollment` are added here.
    """
    now = clock.now()
    fresh = new_customers(session).get(customer.id)
    live: Iterable[Enrollment]
    if fresh is not None:  # created in this transaction: nothing to look up
        live = [enrollment for enrollment in fresh if enrollment.status in LIVE]
    else:
        query = select(Enrollment).where(Enrollment.customer_id == customer.id, IS_LIVE)
        if is_postgres(session):
            # The step runner may hold one of these rows (FOR UPDATE) and finish it; wait
            # for it and read the row as it committed, so a finished enrollment is not
            # revived.
            query = query.with_for_update().execution_options(populate_existing=True)
        live = (await session.execute(query)).scalars()
    for enrollment in live:
        compiled = await compiled_version(session, enrollment.journey_version_id)
        exits = [rule for rule in compiled.definition.exit_when if rule.event == event.type]
        waited = enrollment.status == "waiting" and enrollment.waiting_for == event.type
        if not (exits or waited):
            continue
        scope = {
            **await context(),
            "event": event_view(event),
            "enrollment": enrollment_view(enrollment),
        }
        if any(rule.match and "trigger" in names_in(rule.match) for rule in exits):
            # An exit may compare the event with the one that started the enrollment (an
            # order of a product the replenishment reminder is about).
            started = await session.get(Event, enrollment.trigger_event_id)
            scope["trigger"] = event_view(started) if started is not None else None
        if any(_holds(rule.match, scope) for rule in exits):
            trace(session, enrollment, at=now, kind="exit", note=f"exit_when {event.type}")
            finish(enrollment, "exited", at=now, reason=f"exit_when: {event.type}")
            continue
        if waited:
            op = compiled.program.ops[enrollment.pc]
            if isinstance(op, WaitForOp) and _holds(op.match, scope):
                trace(session, enrollment, at=now, kind="wait_for", note=f"received {event.type}")
                enrollment.status = "active"
                enrollment.waiting_for = None
                enrollment.pc = op.resume_pc
                enrollment.event_id = event.id
                enrollment.next_run_at = now
                enrollment.anchor_at = min(event.occurred_at, now)
    await _start_enrollments(session, event=event, customer=customer, context=context, now=now)


async def _triggered_by(
    session: AsyncSession, store_id: int, event_type: str
) -> list[tuple[Journey, int]]:
    """The enabled journeys an event type starts, with their current version; remembered
    for the rest of the transaction, which applies many events of few types."""
    memo = notes(session)(TRIGGERED)
    if (store_id, event_type) not in memo:
        rows = await session.execute(
            select(Journey, JourneyVersion.id)
            .join(
                JourneyVersion,
                (JourneyVersion.journey_id == Journey.id)
                & (JourneyVersion.version == Journey.current_version),
            )
            .where(
                Journey.store_id == store_id,
                Journey.trigger_event == event_type,
                Journey.enabled.is_(True),
            )
        )
        memo[(store_id, event_type)] = [(journey, version) for journey, version in rows.all()]
    return memo[(store_id, event_type)]


def _is_date_of(rule: DateRule, event: Event) -> bool:
    data = event.data
    return (data.get("attribute"), data.get("offset_days"), bool(data.get("yearly"))) == (
        rule.attribute,
        rule.offset_days,
        rule.yearly,
    )


def _holds(expression: str | None, scope: dict[str, Any]) -> bool:
    if expression is None:
        return True
    try:
        return truthy(expression, scope)
    except ExpressionError:
        return False


async def _cart_key(session: AsyncSession, event: Event, customer: Customer, cart_id: str) -> str:
    """A cart's re-entry key: its id, and after each order placed from it the round (a shop,
    or Segment by default, may use one cart id for all of a person's carts, and each new
    cart may be abandoned again); cut to fit `reentry_key`'s 200 characters."""
    ordered = await orders_of_cart(
        session, store_id=event.store_id, customer_id=customer.id, cart_id=cart_id
    )
    return cart_id if not ordered else f"{cart_id[:180]}#{ordered + 1}"


async def _start_enrollments(
    session: AsyncSession,
    *,
    event: Event,
    customer: Customer,
    context: Callable[[], Awaitable[dict[str, Any]]],
    now: datetime,
) -> None:
    fresh = new_customers(session).get(customer.id)
    for journey, version in await _triggered_by(session, event.store_id, event.type):
        compiled = await compiled_version(session, version)
        definition = compiled.definition
        if (rule := date_rule(definition)) is not None and not _is_date_of(rule, event):
            continue  # a date of another journey's rule
        keys = {
            "order_id": event.data.get("order_id"),
            "cart_id": event.data.get("cart_id"),
            "shipment_id": event.data.get("shipment_id"),
        }
        if definition.trigger.where:
            scope = {**await context(), "event": event_view(event), "enrollment": keys}
            if not _holds(definition.trigger.where, scope):
                continue
        if definition.reentry == "once":
            reentry_key = ""
        elif definition.reentry == "always":
            reentry_key = f"event:{event.id}"
        else:
            value = keys[REENTRY_FIELD[definition.reentry]]
            # An event without the id the rule needs enters once per event.
            reentry_key = str(value) if value else f"event:{event.id}"
            if value and definition.reentry == "once_per_cart":
                reentry_key = await _cart_key(session, event, customer, str(value))
        if fresh is not None:
            exists = any(e.journey_id == journey.id and e.reentry_key == reentry_key for e in fresh)
        else:
            found = await session.execute(
                select(Enrollment.id).where(
                    Enrollment.journey_id == journey.id,
                    Enrollment.customer_id == customer.id,
                    Enrollment.reentry_key == reentry_key,
                )
            )
            exists = found.first() is not None
        if exists:
            continue
        values: dict[str, Any] = {
            "store_id": event.store_id,
            "journey_id": journey.id,
            "journey_version_id": version,
            "customer_id": customer.id,
            "reentry_key": reentry_key,
            "trigger_event_id": event.id,
            "event_id": event.id,
            **keys,
            "status": "active",
            "pc": 0,
            "next_run_at": now,
            # Waits count from when the trigger happened, not from when it was applied (a
            # time in the future is taken as now).
            "anchor_at": min(event.occurred_at, now),
            "waiting_for": None,
            "attempts": 0,
            "failure_reason": None,
            "exit_reason": None,
            "started_at": now,
            "finished_at": None,
        }
        # Core, not the ORM's flush (see `attach`).
        id_ = await insert_returning_id(session, Enrollment, values)
        enrollment = attach_row(session, Enrollment, id_, values)
        if fresh is not None:
            fresh.append(enrollment)
        trace(session, enrollment, at=now, kind="enter", note=f"triggered by {event.type}")


async def move_enrollments(
    session: AsyncSession, *, from_customer: int, to_customer: int, now: datetime
) -> None:
    """On a customer merge: keep the absorbed profile's enrollments unless they would
    duplicate one the survivor already has. Of two such, a live one that the other already
    went through ends as exited (the welcome a guest got is not sent again to the profile
    they signed up with); of two live ones, the absorbed profile's ends."""
    mine_query = select(Enrollment).where(Enrollment.customer_id == to_customer)
    query = select(Enrollment).where(Enrollment.customer_id == from_customer)
    if is_postgres(session):
        # The step runner may hold these rows: wait for it and read them as committed.
        mine_query = mine_query.with_for_update().execution_options(populate_existing=True)
        query = query.with_for_update().execution_options(populate_existing=True)
    mine = {(e.journey_id, e.reentry_key): e for e in (await session.execute(mine_query)).scalars()}
    theirs = list((await session.execute(query)).scalars())
    reason = "customer merged"
    for enrollment in theirs:
        ours = mine.get((enrollment.journey_id, enrollment.reentry_key))
        if ours is not None:
            enrollment.reentry_key = f"merged:{enrollment.id}"
            if enrollment.status in LIVE:
                trace(session, enrollment, at=now, kind="exit", note=reason)
                finish(enrollment, "exited", at=now, reason=reason)
            elif ours.status in LIVE:
                note = f"{reason}: the merged profile went through it already"
                trace(session, ours, at=now, kind="exit", note=note)
                finish(ours, "exited", at=now, reason=note)
        enrollment.customer_id = to_customer
    await session.flush()


async def listened_events(session: AsyncSession, *, store_id: int) -> set[str]:
    """The event types a store's enabled journeys start on, exit on or wait for."""
    rows = await session.execute(
        select(JourneyVersion.id)
        .join(
            Journey,
            (JourneyVersion.journey_id == Journey.id)
            & (JourneyVersion.version == Journey.current_version),
        )
        .where(Journey.store_id == store_id, Journey.enabled.is_(True))
    )
    listened: set[str] = set()
    for (version,) in rows.all():
        compiled = await compiled_version(session, version)
        listened.add(compiled.definition.trigger.event)
        listened.update(rule.event for rule in compiled.definition.exit_when)
        listened.update(op.event for op in compiled.program.ops if isinstance(op, WaitForOp))
    return listened


async def next_due(session: AsyncSession) -> datetime | None:
    """When the earliest live enrollment is due (ix_enrollments_due); None when none is."""
    due: datetime | None = await session.scalar(
        select(func.min(Enrollment.next_run_at)).where(IS_LIVE)
    )
    return due


@dataclass(frozen=True)
class EnrollmentSummary:
    """An enrollment as a timeline shows it."""

    id: int
    journey: str
    customer_id: int
    # active | waiting | completed | exited | failed
    status: str
    # Why it exited or failed (or, while it is retried, why its last attempt failed).
    reason: str | None
    started_at: datetime
    finished_at: datetime | None
    next_run_at: datetime | None
    waiting_for: str | None


async def enrollments_of(session: AsyncSession, *, store_id: int) -> list[EnrollmentSummary]:
    """Every enrollment of a store, oldest first: for a small database (a simulation's)."""
    rows = await session.execute(
        select(Enrollment, Journey.key)
        .join(Journey, Journey.id == Enrollment.journey_id)
        .where(Enrollment.store_id == store_id)
        .order_by(Enrollment.id)
    )
    return [
        EnrollmentSummary(
            id=e.id,
            journey=key,
            customer_id=e.customer_id,
            status=e.status,
            reason=e.exit_reason if e.status == "exited" else e.failure_reason,
            started_at=e.started_at,
            finished_at=e.finished_at,
            next_run_at=e.next_run_at,
            waiting_for=e.waiting_for,
        )
        for e, key in rows.all()
    ]
