"""KVKK/GDPR: the clock-driven triggers waiting for a customer, exported and (on erasure)
deleted: an erased customer has nothing more coming."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.timers.models import Timer


@dataclass(frozen=True)
class TimerExport:
    kind: str
    due_at: datetime
    data: dict[str, Any]


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[TimerExport]:
    rows = await session.execute(
        select(Timer)
        .where(Timer.store_id == store_id, Timer.customer_id == customer_id)  # ix_timers_customer
        .order_by(Timer.due_at, Timer.id)
    )
    return [TimerExport(t.kind, t.due_at, t.data) for t in rows.scalars()]


async def erase_customer(session: AsyncSession, *, store_id: int, customer_id: int) -> int:
    result = await session.execute(
        delete(Timer).where(Timer.store_id == store_id, Timer.customer_id == customer_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
