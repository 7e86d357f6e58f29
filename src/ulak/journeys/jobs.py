"""The journeys feature's work: the step runner takes due enrollments and runs their steps
until the next wait."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.consent.service import refusal
from ulak.coupons.service import CouponPoolEmpty
from ulak.customers.models import Customer
from ulak.customers.service import NotADate, attribute_date
from ulak.db import Note, is_postgres, notes, savepoint
from ulak.events.models import Event
from ulak.jobs import JobContext, in_batch, job
from ulak.journeys.actions import (
    add_coupon,
    alert_pool_empty,
    run_action,
    take_split,
)
from ulak.journeys.context import add_costly, build_context, prefetch_orders
from ulak.journeys.definition import (
    AlertShopOp,
    BranchOp,
    IssueCouponOp,
    JumpOp,
    SendOp,
    SetAttributeOp,
    SplitOp,
    TagOp,
    WaitForOp,
    WaitOp,
    date_wait_time,
    next_wait_time,
)
from ulak.journeys.expressions import names_in, truthy
from ulak.journeys.models import IS_LIVE, Enrollment, JourneyVersion
from ulak.journeys.service import (
    compiled_version,
    enrollment_view,
    event_view,
    finish,
    next_due,
    trace,
    write_trace,
)
from ulak.journeys.switch import DISABLED, disabled_journeys
from ulak.messages.models import Message
from ulak.messages.rendering import TemplateError, reason_of, store_template_of
from ulak.messages.service import (
    Renders,
    alert_shop_of_template,
    create_email,
    variables_of,
)
from ulak.messages.sms import create_sms
from ulak.offload import Offload
from ulak.stores.models import Store

log = logging.getLogger(__name__)

# Rows loaded for a batch, held so the identity map keeps them (see `_prefetch`).
PREFETCHED: Note[list[object]] = Note("journeys.prefetched", list)
# A journey never jumps backwards, so this only bounds a pathological definition.
MAX_OPS_PER_RUN = 1000


@job("journeys.run_due", wakes=("messages.send_due",), due=next_due)
async def run_due(ctx: JobContext) -> int:
    """Run the steps of the enrollments that are due, until each one's next wait."""

    async def work(session: AsyncSession, isolate: bool) -> int:
        return await run_due_enrollments(
            session,
            clock=ctx.clock,
            limit=ctx.batch_size,
            max_attempts=ctx.settings.step_max_attempts,
            base_url=ctx.settings.base_url,
            offload=ctx.offload,
            isolate=isolate,
        )

    return await in_batch(ctx, work)


async def run_due_enrollments(
    session: AsyncSession,
    *,
    clock: Clock,
    limit: int,
    max_attempts: int,
    base_url: str,
    offload: Offload,
    isolate: bool = True,
) -> int:
    """Run the due enrollments of one batch; returns how many ran.

    With `isolate`, each enrollment runs in a savepoint and a failing step is recorded on
    its enrollment. Without it (the fast path), a failure raises and the caller rolls back
    and runs the batch again isolated.
    """
    now = clock.now()
    query = (
        select(Enrollment)
        .where(IS_LIVE, Enrollment.next_run_at <= now)
        .order_by(Enrollment.next_run_at)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    enrollments = list((await session.execute(query)).scalars())
    # Read after the rows are taken: a journey switched off before then (by `ulak journeys
    # disable`, or by a file applied with `enabled: false`, which exits nothing itself)
    # advances none of its enrollments. One switched off later waits for this batch's
    # rows and then skips the messages it queued.
    disabled = await disabled_journeys(session, ids={e.journey_id for e in enrollments})
    stopped = [e for e in enrollments if e.journey_id in disabled]
    for enrollment in stopped:
        trace(session, enrollment, at=now, kind="exit", note=DISABLED)
        finish(enrollment, "exited", at=now, reason=DISABLED)
    enrollments = [e for e in enrollments if e.journey_id not in disabled]
    await _prefetch(session, enrollments)
    renders = Renders(offload, deferred=not isolate)
    try:
        done = await _run_all(
            session,
            enrollments,
            clock=clock,
            max_attempts=max_attempts,
            base_url=base_url,
            renders=renders,
            isolate=isolate,
        )
    finally:
        await renders.finish()
    await write_trace(session)
    return done + len(stopped)


async def _run_all(
    session: AsyncSession,
    enrollments: list[Enrollment],
    *,
    clock: Clock,
    max_attempts: int,
    base_url: str,
    renders: Renders,
    isolate: bool,
) -> int:
    now = clock.now()
    done = 0
    for enrollment in enrollments:
        # Let this process's other work (SMTP sessions in flight) move between enrollments.
        await asyncio.sleep(0)
        done += 1
        if not isolate:
            await _run(session, enrollment, clock=clock, base_url=base_url, renders=renders)
            continue
        # Read before the savepoint: a rollback expires what was flushed inside it.
        enrollment_id = enrollment.id
        try:
            async with savepoint(session):
                await _run(session, enrollment, clock=clock, base_url=base_url, renders=renders)
                await write_trace(session)
        except Exception as error:  # a step's failure is recorded on its enrollment
            await session.refresh(enrollment)
            log.exception("enrollment %s failed at step %s", enrollment_id, enrollment.pc)
            enrollment.attempts += 1
            reason = f"step {enrollment.pc}: {type(error).__name__}: {error}"
            if enrollment.attempts >= max_attempts:
                finish(enrollment, "failed", at=now, reason=f"gave up: {reason}")
            else:
                enrollment.failure_reason = reason
                enrollment.next_run_at = now + timedelta(
                    seconds=30 * 2 ** (enrollment.attempts - 1)
                )
            trace(session, enrollment, at=now, kind="error", note=reason)
            if isinstance(error, TemplateError) and (template := store_template_of(error)):
                await _alert_shop(
                    session, enrollment.store_id, template, reason_of(error), clock, renders
                )
            elif isinstance(error, CouponPoolEmpty):
                await alert_pool_empty(session, error=error, clock=clock, renders=renders)
    return done


async def _alert_shop(
    session: AsyncSession,
    store_id: int,
    template: str,
    reason: str,
    clock: Clock,
    renders: Renders,
) -> None:
    """A store's own template failed a customer's email: the shop must hear of it."""
    store = await session.get(Store, store_id)
    assert store is not None
    try:
        async with savepoint(session):
            await alert_shop_of_template(
                session, store=store, template=template, reason=reason, clock=clock, renders=renders
            )
    except Exception:  # the alert is ulak's own template: never expected, never fatal
        log.exception("could not alert store %s about its template %s", store_id, template)


async def _prefetch(session: AsyncSession, enrollments: list[Enrollment]) -> None:
    """Load what the batch's steps will read in one query per table, into the session's
    identity map, so each `session.get` below is a lookup rather than a round trip. The
    identity map keeps only weak references, so the rows are held as a note of the
    transaction."""
    loaded = notes(session)(PREFETCHED)
    for model, ids in (
        (Customer, {e.customer_id for e in enrollments}),
        (Store, {e.store_id for e in enrollments}),
        (Event, {e.event_id for e in enrollments if e.event_id is not None}),
        (JourneyVersion, {e.journey_version_id for e in enrollments}),
    ):
        if ids:
            loaded.extend((await session.execute(select(model).where(model.id.in_(ids)))).scalars())
    await prefetch_orders(session, {(e.store_id, e.order_id) for e in enrollments if e.order_id})


async def _run(
    session: AsyncSession,
    enrollment: Enrollment,
    *,
    clock: Clock,
    base_url: str,
    renders: Renders,
) -> None:
    now = clock.now()
    compiled = await compiled_version(session, enrollment.journey_version_id)
    definition, ops = compiled.definition, compiled.program.ops
    store = await session.get(Store, enrollment.store_id)
    customer = await session.get(Customer, enrollment.customer_id)
    assert store is not None
    assert customer is not None
    if enrollment.status == "waiting":
        trace(session, enrollment, at=now, kind="wait_for", note="timed out")
        enrollment.status = "active"
        enrollment.waiting_for = None
        enrollment.pc += 1
    context = await build_context(
        session,
        store_id=store.id,
        customer=customer,
        order_id=enrollment.order_id,
        cart_id=enrollment.cart_id,
        shipment_id=enrollment.shipment_id,
    )
    event = await session.get(Event, enrollment.event_id) if enrollment.event_id else None
    if event is not None:
        context["event"] = event_view(event)
    context["enrollment"] = enrollment_view(enrollment)
    if compiled.program.issues_coupons:
        await add_coupon(session, context, store=store, customer=customer, enrollment=enrollment)
    if definition.guard:
        await add_costly(
            session, context, names_in(definition.guard), store=store, customer=customer
        )
    for _ in range(MAX_OPS_PER_RUN):
        if enrollment.pc >= len(ops):
            trace(session, enrollment, at=now, kind="complete", note="journey completed")
            finish(enrollment, "completed", at=now)
            return
        if definition.guard and not truthy(definition.guard, context):
            trace(session, enrollment, at=now, kind="exit", note=f"guard: {definition.guard}")
            finish(
                enrollment, "exited", at=now, reason=f"guard no longer holds: {definition.guard}"
            )
            return
        op = ops[enrollment.pc]
        # The moment this step is meant for (see `Enrollment.anchor_at`).
        anchor = enrollment.anchor_at or now
        if isinstance(op, WaitOp):
            zone = ZoneInfo(customer.timezone or store.timezone)
            if op.date_attribute is None:
                due = next_wait_time(op, anchor, zone)
            else:
                try:
                    day = attribute_date(customer.attributes, op.date_attribute, zone)
                except NotADate as error:
                    log.info(
                        "enrollment %s exits: %r is not a date", enrollment.id, op.date_attribute
                    )
                    day, missing = None, str(error)
                else:
                    missing = f"the customer has no {op.date_attribute}"
                if day is None:
                    # The wait is for a date this customer lacks: nothing to wait for.
                    trace(session, enrollment, at=now, kind="exit", note=missing)
                    finish(enrollment, "exited", at=now, reason=f"wait until_date: {missing}")
                    return
                due = date_wait_time(op, day, zone)
            enrollment.pc += 1
            enrollment.anchor_at = due
            if due <= now:  # its trigger came in late: the wait is over already
                trace(
                    session,
                    enrollment,
                    at=now,
                    kind="wait",
                    note=f"until {due.isoformat()}, passed",
                )
                continue
            trace(session, enrollment, at=now, kind="wait", note=f"until {due.isoformat()}")
            enrollment.next_run_at = due
            return
        if isinstance(op, WaitForOp):
            due = anchor + timedelta(seconds=op.timeout_seconds)
            # On a timeout the steps after it count from the timeout's moment.
            enrollment.anchor_at = due
            trace(
                session,
                enrollment,
                at=now,
                kind="wait_for",
                note=f"{op.event} until {due.isoformat()}",
            )
            enrollment.status = "waiting"
            enrollment.waiting_for = op.event
            enrollment.next_run_at = due
            return
        if isinstance(op, BranchOp):
            await add_costly(
                session, context, names_in(op.condition), store=store, customer=customer
            )
            taken = truthy(op.condition, context)
            trace(session, enrollment, at=now, kind="if", note=f"{op.condition} -> {taken}")
            enrollment.pc = enrollment.pc + 1 if taken else op.else_pc
        elif isinstance(op, JumpOp):
            enrollment.pc = op.target
        elif isinstance(op, SendOp):
            late = now - anchor
            # Values that cost queries, only when the guard or the template reads them.
            if op.guard:
                await add_costly(
                    session, context, names_in(op.guard), store=store, customer=customer
                )
            if op.guard and not truthy(op.guard, context):
                trace(session, enrollment, at=now, kind="send", note=f"skipped: {op.guard}")
            else:
                if (
                    definition.legal_class != "commercial"
                    or refusal(customer, op.channel, merchant_opt_out=store.merchant_opt_out)
                    is None
                ):
                    # Not for a message kept unrendered, skipped for want of consent.
                    reads = await variables_of(
                        session, store=store, customer=customer, template=op.template
                    )
                    await add_costly(session, context, reads, store=store, customer=customer)
                stale = None
                if late > definition.send_window():
                    stale = (
                        f"too late: meant for {anchor.isoformat()}, {_hours(late)} ago"
                        f" ({definition.legal_class} sends go within"
                        f" {_hours(definition.send_window())})"
                    )
                message = await (create_sms if op.channel == "sms" else create_email)(
                    session,
                    store=store,
                    customer=customer,
                    enrollment_id=enrollment.id,
                    step=enrollment.pc,
                    template=op.template,
                    legal_class=definition.legal_class,
                    context=context,
                    base_url=base_url,
                    clock=clock,
                    renders=renders,
                    skip=stale,
                    topic=definition.message_topic(),
                )
                trace(session, enrollment, at=now, kind="send", note=_sent(op.template, message))
            enrollment.pc += 1
        elif isinstance(op, SplitOp):
            target, note = take_split(op, journey=definition.key, customer_id=customer.id)
            trace(session, enrollment, at=now, kind="split", note=note)
            enrollment.pc = target
        elif isinstance(op, IssueCouponOp | TagOp | SetAttributeOp | AlertShopOp):
            note = await run_action(
                session,
                op,
                store=store,
                customer=customer,
                enrollment=enrollment,
                journey=definition.key,
                legal_class=definition.legal_class,
                context=context,
                clock=clock,
                renders=renders,
                topic=definition.message_topic(),
            )
            trace(session, enrollment, at=now, kind="action", note=note)
            enrollment.pc += 1
        else:  # pragma: no cover - the compiler emits only the kinds above
            raise TypeError(f"unknown step {op!r}")
    raise RuntimeError(f"more than {MAX_OPS_PER_RUN} steps without a wait")


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.0f}h" if hours >= 10 else f"{hours:.1f}h"


def _sent(template: str, message: Message) -> Callable[[], str]:
    return lambda: f"{template} -> message {message.id} ({message.status})"
