"""The messages feature's work: deliver the due messages of the outbox."""

from __future__ import annotations

from ulak.jobs import JobContext, job
from ulak.messages.service import next_due


@job("messages.send_due", due=next_due)
async def send_due(ctx: JobContext) -> int:
    """Fold the outcomes recorded since the last run into `messages`, claim due messages for
    the free delivery slots and start delivering them (`messages.sending`).

    Returns how many messages it claimed, folded or saw delivered. With nothing to claim
    while deliveries are in flight, it waits (up to `poll_seconds`) for one to end, so
    their outcomes are folded promptly and `drain` returns only once every delivery ended.
    """
    sender = ctx.sender
    await sender.free_slot()
    async with ctx.transaction() as session:
        folded = await sender.outcomes.fold(session)
        claimed = await sender.send_due(session, limit=ctx.batch_size)
    sender.outcomes.forget(folded)
    sender.start(claimed)
    if claimed or folded:
        return len(claimed) or 1
    return await sender.ended(ctx.settings.poll_seconds)
