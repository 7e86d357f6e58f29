"""The events feature's work: take accepted events over and apply them."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ulak.db import notes
from ulak.events.inbox import take_from_inbox
from ulak.events.privacy import delete_events, old_events
from ulak.events.service import apply_pending
from ulak.jobs import JobContext, in_batch, job
from ulak.journeys.privacy import events_in_use
from ulak.privacy.service import ERASURES, Erased
from ulak.stores.service import retention_settings

log = logging.getLogger(__name__)


@job("events.apply", wakes=("journeys.run_due",), on_events=True)
async def apply_events(ctx: JobContext) -> int:
    """Copy what the API appended (SQLite's inbox file) and apply the oldest pending
    events, in one transaction."""

    erased: list[Erased] = []

    async def work(session: AsyncSession, isolate: bool) -> int:
        erased.clear()
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
        done_now: list[Erased] = notes(session).pop(ERASURES)
        erased.extend(done_now)
        return copied + applied

    done = await in_batch(ctx, work)
    if erased and ctx.database.is_sqlite:
        # The erased bytes are zeroed in the file (secure_delete) but the pages as they
        # were stay in the WAL until it is checkpointed and emptied. The outcomes file
        # (its writer: the sender) may hold an SMTP reply naming the address.
        for name in (None, "outcomes"):
            if not await ctx.database.checkpoint(name):
                log.warning(
                    "the WAL of %s could not be emptied after an erasure", name or "ulak.db"
                )
    return done


# How many old events one transaction deletes: a long delete would hold SQLite's one
# writer (and PostgreSQL's locks) while events wait.
FORGET_PAGE = 1000


@job("events.forget_old", every=timedelta(hours=1))
async def forget_old_events(ctx: JobContext) -> int:
    """Delete each store's applied events older than its `keep_events_days`, a page per
    transaction; never pending or failed ones, nor those a live enrollment still reads."""
    async with ctx.database.read() as session:
        stores = await retention_settings(session)
    now = ctx.clock.now()
    deleted = 0
    for store_id, days in stores:
        after = 0
        while True:
            async with ctx.transaction() as session:
                page = await old_events(
                    session,
                    store_id=store_id,
                    before=now - timedelta(days=days),
                    after=after,
                    limit=FORGET_PAGE,
                )
                if not page:
                    break
                in_use = await events_in_use(
                    session,
                    customer_ids={c for _, c in page if c is not None},
                    event_ids={id_ for id_, _ in page},
                )
                deleted += await delete_events(
                    session, ids=[id_ for id_, _ in page if id_ not in in_use]
                )
                after = page[-1][0]
    return deleted
