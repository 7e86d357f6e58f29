"""The events feature's work: take accepted events over and apply them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ulak.events.inbox import take_from_inbox
from ulak.events.service import apply_pending
from ulak.jobs import JobContext, in_batch, job


@job("events.apply", wakes=("journeys.run_due",), on_events=True)
async def apply_events(ctx: JobContext) -> int:
    """Copy what the API appended (SQLite's inbox file) and apply the oldest pending
    events, in one transaction."""

    async def work(session: AsyncSession, isolate: bool) -> int:
        copied = (
            await take_from_inbox(session, ctx.database, limit=ctx.batch_size)
            if ctx.database.is_sqlite
            else 0
        )
        applied = await apply_pending(
            session,
            clock=ctx.clock,
            limit=ctx.batch_size,
            isolate=isolate,
            soft_bounce_limit=ctx.settings.soft_bounce_limit,
        )
        return copied + applied

    return await in_batch(ctx, work)
