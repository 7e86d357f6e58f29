"""What the sender's claim gives the sending policy (`policy/`) to decide, and how it
applies the decisions to the claimed messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.consent.service import consent_state, recipient_type_of
from ulak.customers.models import Customer
from ulak.journeys.switch import sending_ranks
from ulak.messages.models import Message
from ulak.policy.service import (
    WEEK,
    Candidate,
    Decision,
    Postpone,
    Rules,
    Send,
    decide_all,
    rules_of,
)
from ulak.stores.models import Store

# The longest window a cap counts over: releases older than this never hold a message.
LOOKBACK = WEEK


async def released_since(
    session: AsyncSession, *, customer_ids: set[int], since: datetime
) -> dict[tuple[int, str], list[datetime]]:
    """When the policy let these customers' commercial messages go since `since`, by
    (customer, channel): one query over `ix_messages_released`."""
    if not customer_ids:
        return {}
    rows = await session.execute(
        select(Message.customer_id, Message.channel, Message.released_at).where(
            Message.customer_id.in_(customer_ids),
            Message.released_at.is_not(None),
            Message.released_at > since,
        )
    )
    found: dict[tuple[int, str], list[datetime]] = {}
    for customer, channel, at in rows.all():
        found.setdefault((customer, channel), []).append(at)
    return found


async def decisions(
    session: AsyncSession,
    rows: Sequence[tuple[Message, Store, Customer | None]],
    *,
    now: datetime,
) -> dict[int, Decision]:
    """The policy's decision for each claimed message, by id. Informational messages cost
    nothing; commercial ones two queries per claim (their journeys' priorities, and their
    customers' recent releases)."""
    commercial = [(m, s, c) for m, s, c in rows if m.legal_class == "commercial" and c is not None]
    if not commercial:
        return {m.id: Send() for m, _, _ in rows}
    ranks = await sending_ranks(
        session, enrollment_ids={m.enrollment_id for m, _, _ in commercial if m.enrollment_id}
    )
    released = await released_since(
        session,
        customer_ids={c.id for _, _, c in commercial if c is not None},
        since=now - LOOKBACK,
    )
    rules: dict[int, Rules] = {}
    candidates = []
    for message, store, customer in rows:
        if store.id not in rules:
            rules[store.id] = rules_of(store)
        if message.legal_class != "commercial" or customer is None:
            candidates.append(
                Candidate(
                    id=message.id,
                    store_id=store.id,
                    customer_id=None,
                    channel=message.channel,
                    legal_class=message.legal_class,
                    to_address=message.to_address,
                    due_at=message.send_after,
                )
            )
            continue
        priority, over_cap = ranks.get(message.enrollment_id or 0, (50, "postpone"))
        candidates.append(
            Candidate(
                id=message.id,
                store_id=store.id,
                customer_id=customer.id,
                channel=message.channel,
                legal_class=message.legal_class,
                to_address=message.to_address,
                due_at=message.send_after,
                priority=priority,
                over_cap=over_cap,
                released=message.released_at is not None,
                consent=consent_state(customer, message.channel),
                recipient_type=recipient_type_of(customer),
                zone=customer.timezone,
            )
        )
    return decide_all(candidates, rules, now=now, released=released)


def hold(message: Message, decision: Postpone) -> None:
    """Back to the queue until the decision's moment, saying why."""
    message.status = "queued"
    message.send_after = decision.until
    message.held_until = decision.until
    message.held_reason = decision.reason
    message.lease_until = None
    message.claimed_by = None
