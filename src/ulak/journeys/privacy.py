"""KVKK/GDPR: a customer's enrollments and their traces, exported and (on erasure)
ended and kept without personal data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.customers.privacy import Personal
from ulak.journeys.models import IS_LIVE, Enrollment, EnrollmentStep, Journey
from ulak.journeys.service import finish, trace, write_trace


@dataclass(frozen=True)
class StepExport:
    at: datetime
    kind: str
    note: str


@dataclass(frozen=True)
class EnrollmentExport:
    journey: str
    status: str
    order_id: str | None
    cart_id: str | None
    shipment_id: str | None
    started_at: datetime
    finished_at: datetime | None
    exit_reason: str | None
    failure_reason: str | None
    steps: list[StepExport]


async def _enrollments(
    session: AsyncSession, store_id: int, customer_id: int
) -> list[tuple[Enrollment, str]]:
    rows = await session.execute(
        select(Enrollment, Journey.key)
        .join(Journey, Journey.id == Enrollment.journey_id)
        .where(Enrollment.store_id == store_id, Enrollment.customer_id == customer_id)
        .order_by(Enrollment.id)
    )
    return [(e, key) for e, key in rows.all()]


async def _steps(session: AsyncSession, ids: list[int]) -> dict[int, list[EnrollmentStep]]:
    out: dict[int, list[EnrollmentStep]] = {id_: [] for id_ in ids}
    if ids:
        rows = await session.execute(
            select(EnrollmentStep)
            .where(EnrollmentStep.enrollment_id.in_(ids))
            .order_by(EnrollmentStep.id)
        )
        for step in rows.scalars():
            out[step.enrollment_id].append(step)
    return out


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[EnrollmentExport]:
    enrollments = await _enrollments(session, store_id, customer_id)
    steps = await _steps(session, [e.id for e, _ in enrollments])
    return [
        EnrollmentExport(
            journey=key,
            status=e.status,
            order_id=e.order_id,
            cart_id=e.cart_id,
            shipment_id=e.shipment_id,
            started_at=e.started_at,
            finished_at=e.finished_at,
            exit_reason=e.exit_reason,
            failure_reason=e.failure_reason,
            steps=[StepExport(s.at, s.kind, s.note) for s in steps[e.id]],
        )
        for e, key in enrollments
    ]


async def erase_customer(
    session: AsyncSession, *, store_id: int, customer_id: int, personal: Personal, now: datetime
) -> list[int]:
    """End the live enrollments ("customer erased") and take personal data out of every
    trace; returns the customer's enrollment ids (their messages are the customer's too)."""
    enrollments = await _enrollments(session, store_id, customer_id)
    for enrollment, _ in enrollments:
        if enrollment.status in ("active", "waiting"):
            trace(session, enrollment, at=now, kind="exit", note="customer erased (KVKK/GDPR)")
            finish(enrollment, "exited", at=now, reason="customer erased")
        enrollment.exit_reason = personal.redact(enrollment.exit_reason)
        enrollment.failure_reason = personal.redact(enrollment.failure_reason)
    await write_trace(session)
    for steps in (await _steps(session, [e.id for e, _ in enrollments])).values():
        for step in steps:
            step.note = personal.redact(step.note) or ""
    return [e.id for e, _ in enrollments]


async def events_in_use(
    session: AsyncSession, *, customer_ids: set[int], event_ids: set[int]
) -> set[int]:
    """Which of these events live enrollments of these customers still read (the trigger,
    the event a wait_for received): retention keeps them until the enrollment ends."""
    if not customer_ids or not event_ids:
        return set()
    rows = await session.execute(
        select(Enrollment.trigger_event_id, Enrollment.event_id).where(
            Enrollment.customer_id.in_(customer_ids),  # ix_enrollments_customer_live
            IS_LIVE,
            or_(Enrollment.trigger_event_id.in_(event_ids), Enrollment.event_id.in_(event_ids)),
        )
    )
    return {id_ for pair in rows.all() for id_ in pair if id_ in event_ids}
