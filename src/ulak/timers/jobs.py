"""The timers feature's work: due timers become derived events."""

from __future__ import annotations

from ulak.jobs import JobContext, job
from ulak.journeys.service import starts_journeys
from ulak.timers.service import fire_due, next_due


@job("timers.fire_due", wakes=("events.apply",), due=next_due)
async def fire_timers(ctx: JobContext) -> int:
    """Derive the events of the timers that are due, in one transaction."""
    async with ctx.transaction() as session:
        return await fire_due(
            session, clock=ctx.clock, limit=ctx.batch_size, listened=starts_journeys
        )
