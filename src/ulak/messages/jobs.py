"""The messages feature's work: deliver the due messages of the outbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ulak.channels.email import OutgoingEmail
from ulak.jobs import JobContext, job
from ulak.messages.service import Claimed, claim_due, record_outcome


@job("messages.send_due")
async def send_due(ctx: JobContext) -> int:
    """Claim due messages under a lease, deliver them at once over the channel's pool, and
    record each outcome."""
    settings = ctx.settings
    async with ctx.transaction() as session:
        claimed = await claim_due(
            session,
            now=ctx.clock.now(),
            limit=ctx.batch_size,
            lease=timedelta(seconds=settings.lease_seconds),
            base_url=settings.base_url,
            max_attempts=settings.send_max_attempts,
        )
    if not claimed:
        return 0
    outcomes = await asyncio.gather(*(ctx.email.deliver(_email(m)) for m in claimed))
    async with ctx.transaction() as session:
        now = ctx.clock.now()
        for message, outcome in zip(claimed, outcomes, strict=True):
            await record_outcome(
                session,
                message_id=message.id,
                attempt=message.attempts,
                error=outcome.error,
                permanent=outcome.permanent,
                max_attempts=settings.send_max_attempts,
                now=now,
            )
    return len(claimed)


def _email(message: Claimed) -> OutgoingEmail:
    return OutgoingEmail(
        message_id=message.message_id_header,
        from_name=message.from_name,
        from_address=message.from_address,
        reply_to=message.reply_to,
        to_address=message.to_address,
        subject=message.subject,
        html=message.html,
        text=message.text,
        date=message.created_at,
        list_unsubscribe_url=message.unsubscribe_url,
    )
