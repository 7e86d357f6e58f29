"""Whether journeys are switched on: read by the step runner and by the sender, each
after it took its rows, so a journey switched off sends nothing more. (Apart from
`service.py`, which the sender's feature cannot import: coupons import messages.)"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.journeys.models import Enrollment, Journey

DISABLED = "the journey was disabled"


async def disabled_journeys(session: AsyncSession, *, ids: Iterable[int]) -> set[int]:
    """Which of these journeys are switched off, as committed now (read by each batch after
    it took its rows, so a switch-off that committed meanwhile is seen)."""
    wanted = set(ids)
    if not wanted:
        return set()
    rows = await session.execute(
        select(Journey.id).where(Journey.id.in_(wanted), Journey.enabled.is_(False))
    )
    return set(rows.scalars())


@dataclass(frozen=True)
class SendingRank:
    """What the sending policy needs of a message's journey."""

    priority: int
    over_cap: str  # postpone, skip
    enabled: bool


async def sending_ranks(
    session: AsyncSession, *, enrollment_ids: Iterable[int]
) -> dict[int, SendingRank]:
    """Per enrollment, its journey's priority, what its messages do over a frequency cap,
    and whether it is switched on."""
    wanted = set(enrollment_ids)
    if not wanted:
        return {}
    rows = await session.execute(
        select(Enrollment.id, Journey.priority, Journey.over_cap, Journey.enabled)
        .join(Journey, Journey.id == Enrollment.journey_id)
        .where(Enrollment.id.in_(wanted))
    )
    return {id_: SendingRank(p, o, e) for id_, p, o, e in rows.all()}
