"""What an operator asks and does: how much work is waiting, what failed and why; retry
failed work, switch a journey off and on; give stores the journeys shipped since."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.db import insert_rows
from ulak.errors import Invalid, NotFound
from ulak.events.models import Event
from ulak.journeys.models import IS_LIVE, Enrollment, EnrollmentStep, Journey
from ulak.journeys.service import offer_library, sync_date_timers
from ulak.journeys.switch import DISABLED
from ulak.messages.models import IS_QUEUED, Message
from ulak.stores.models import Store


async def failures_report(
    session: AsyncSession, *, store_id: int | None, limit: int
) -> dict[str, Any]:
    def scoped(model: type[Event] | type[Enrollment] | type[Message]) -> list[Any]:
        return [model.store_id == store_id] if store_id is not None else []

    counts: dict[str, dict[str, int]] = {}
    failures: list[dict[str, Any]] = []
    for kind, model, at in (
        ("events", Event, Event.received_at),
        ("enrollments", Enrollment, Enrollment.started_at),
        ("messages", Message, Message.created_at),
    ):
        scope = scoped(model)
        rows = await session.execute(
            select(model.status, func.count()).where(*scope).group_by(model.status)
        )
        counts[kind] = {state: int(count) for state, count in rows.all()}
        if model is Message:
            # Sent again after its sender stopped mid-delivery: the customer may have it twice.
            twice = await session.scalar(
                select(func.count()).where(Message.interrupted_attempts > 0, *scope)
            )
            if twice:
                counts[kind]["resent after a crash"] = int(twice)
        reason = {"events": Event.error, "enrollments": Enrollment.failure_reason}.get(
            kind, Message.last_error
        )
        recent = await session.execute(
            select(model.id, model.store_id, at, reason)
            .where(model.status == "failed", *scope)
            .order_by(at.desc())
            .limit(limit)
        )
        failures += [
            {"kind": kind, "id": id_, "store_id": s, "at": when.isoformat(), "reason": why or ""}
            for id_, s, when, why in recent.all()
        ]
    interrupted = await session.execute(
        select(Message.id, Message.store_id, Message.created_at, Message.to_address, Message.status)
        .where(Message.interrupted_attempts > 0, *scoped(Message))
        .order_by(Message.created_at.desc())
        .limit(limit)
    )
    resent = [
        {"id": id_, "store_id": s, "at": when.isoformat(), "to": to, "status": status}
        for id_, s, when, to, status in interrupted.all()
    ]
    return {
        "counts": counts,
        "failures": failures,
        "resent": resent,
        "held": await held_report(session, store_id=store_id),
    }


async def held_report(session: AsyncSession, *, store_id: int | None) -> list[dict[str, Any]]:
    """Why messages were not sent: per store, the skipped ones by reason and the ones the
    sending policy postpones (queued with a reason) by reason, most first."""
    scope = [Message.store_id == store_id] if store_id is not None else []
    held: list[dict[str, Any]] = []
    for state, reason, where in (
        ("skipped", Message.last_error, Message.status == "skipped"),
        ("postponed", Message.held_reason, and_(IS_QUEUED, Message.held_reason.is_not(None))),
    ):
        rows = await session.execute(
            select(Message.store_id, reason, func.count())
            .where(where, *scope)
            .group_by(Message.store_id, reason)
        )
        held += [
            {"store_id": s, "status": state, "reason": why or "", "count": int(n)}
            for s, why, n in rows.all()
        ]
    held.sort(key=lambda h: (h["store_id"], h["status"], -h["count"], h["reason"]))
    return held


@dataclass(frozen=True)
class Selection:
    """Which failed rows of one store an operator names: by id, or all failed since a time."""

    store_id: int
    ids: Sequence[int] = ()
    since: datetime | None = None

    def __post_init__(self) -> None:
        if not self.ids and self.since is None:
            raise Invalid("name the rows to retry by id, or give --since for all failed since then")


def _of_enabled_journeys() -> Select[int]:
    return (
        select(Enrollment.id)
        .join(Journey, Journey.id == Enrollment.journey_id)
        .where(Journey.enabled.is_(True))
    )


async def retry_messages(session: AsyncSession, which: Selection, *, clock: Clock) -> list[int]:
    """Queue failed messages again, each with a full set of attempts (not those of a
    journey switched off); returns their ids.
    One UPDATE guarded by the status, so a message a sender holds is never touched."""
    query = (
        update(Message)
        .where(
            Message.store_id == which.store_id,
            Message.status == "failed",
            # Nothing is sent again from a journey that was switched off.
            or_(Message.enrollment_id.is_(None), Message.enrollment_id.in_(_of_enabled_journeys())),
        )
        .values(
            status="queued", attempts=0, send_after=clock.now(), lease_until=None, claimed_by=None
        )
        .returning(Message.id)
    )
    if which.ids:
        query = query.where(Message.id.in_(which.ids))
    if which.since is not None:
        query = query.where(Message.created_at >= which.since)
    return sorted((await session.execute(query)).scalars())


async def retry_steps(session: AsyncSession, which: Selection, *, clock: Clock) -> list[int]:
    """Run failed enrollments again from the step that failed (not those of a journey
    switched off); returns their ids. A step retried by hand is meant for now: a send is
    not skipped as too late, and the waits after it count from now."""
    now = clock.now()
    query = (
        update(Enrollment)
        .where(
            Enrollment.store_id == which.store_id,
            Enrollment.status == "failed",
            Enrollment.id.in_(_of_enabled_journeys()),
        )
        .values(
            status="active",
            attempts=0,
            failure_reason=None,
            finished_at=None,
            next_run_at=now,
            anchor_at=now,
        )
        .returning(Enrollment.id, Enrollment.pc)
    )
    if which.ids:
        query = query.where(Enrollment.id.in_(which.ids))
    if which.since is not None:
        query = query.where(Enrollment.finished_at >= which.since)
    retried = (await session.execute(query)).all()
    await insert_rows(
        session,
        EnrollmentStep,
        [
            {"enrollment_id": i, "at": now, "pc": pc, "kind": "retry", "note": "retried by hand"}
            for i, pc in retried
        ],
    )
    return sorted(i for i, _ in retried)


async def set_journey_enabled(
    session: AsyncSession, *, store_id: int, key: str, enabled: bool, clock: Clock
) -> int:
    """Switch a journey on or off; returns how many live enrollments were stopped.

    Off means nothing more is sent from it: no event starts it, its live enrollments exit
    ("the journey was disabled") and its messages not yet handed to a sender are skipped.
    On again, new events start it; the enrollments that exited stay finished, so nobody
    gets a reminder that was due while it was off.
    """
    journey = (
        await session.execute(
            select(Journey).where(Journey.store_id == store_id, Journey.key == key)
        )
    ).scalar_one_or_none()
    if journey is None:
        raise NotFound(f"store {store_id} has no journey {key!r} (see `ulak journeys list`)")
    now = clock.now()
    journey.enabled = enabled
    journey.updated_at = now
    # A date trigger's timers exist only while an enabled journey uses its rule.
    await sync_date_timers(session, store_id=store_id, now=now)
    if enabled:
        return 0
    reason = DISABLED
    # Guarded UPDATEs: an enrollment a worker is running right now is stopped after it
    # commits (PostgreSQL re-checks the status once the row's lock is free).
    stopped = (
        await session.execute(
            update(Enrollment)
            .where(Enrollment.journey_id == journey.id, IS_LIVE)
            .values(
                status="exited",
                exit_reason=reason,
                next_run_at=None,
                waiting_for=None,
                finished_at=now,
            )
            .returning(Enrollment.id, Enrollment.pc)
        )
    ).all()
    await insert_rows(
        session,
        EnrollmentStep,
        [
            {"enrollment_id": i, "at": now, "pc": pc, "kind": "exit", "note": reason}
            for i, pc in stopped
        ],
    )
    await session.execute(
        update(Message)
        .where(
            Message.status == "queued",
            Message.enrollment_id.in_(
                select(Enrollment.id).where(Enrollment.journey_id == journey.id)
            ),
        )
        .values(status="skipped", last_error=reason)
    )
    return len(stopped)


async def offer_shipped_journeys(session: AsyncSession, *, clock: Clock) -> dict[int, list[str]]:
    """Give every store the shipped journeys it was never offered (those shipped since it
    was made), each on or off as its file says; returns the keys added, by store (stores
    that got none are left out). `ulak migrate` runs it after the schema's migrations."""
    added = {}
    for store_id in (await session.execute(select(Store.id).order_by(Store.id))).scalars():
        keys = await offer_library(session, store_id=store_id, clock=clock)
        if keys:
            added[store_id] = keys
    return added
