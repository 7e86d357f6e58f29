"""What an operator asks: how much work is waiting, and what failed and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.events.models import Event
from ulak.journeys.models import Enrollment
from ulak.messages.models import Message


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
    return {"counts": counts, "failures": failures, "resent": resent}
