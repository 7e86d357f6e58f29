"""What the sender's claim gives the sending policy (`policy/`) to decide, and how it
applies the decisions to the claimed messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.consent.service import consent_state, recipient_type_of
from ulak.customers.models import Customer
from ulak.db import is_postgres
from ulak.journeys.switch import SendingRank, sending_ranks
from ulak.messages.models import IS_QUEUED, Message
from ulak.policy.service import (
    SEND,
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

# A message of no journey (none is commercial today) ranks in the middle.
DEFAULT_RANK = SendingRank(priority=50, over_cap="postpone", enabled=True)
OUTRANKED = "a message of a journey of higher priority went first"
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
        if customer is not None and at is not None:  # as the WHERE says
            found.setdefault((customer, channel), []).append(at)
    return found


Row = tuple[Message, Store, Customer | None]


async def competitors(session: AsyncSession, rows: Sequence[Row], *, now: datetime) -> list[Row]:
    """The due commercial messages of the claim's commercial customers that the claim did
    not take (beyond its batch): they compete with its messages for the customers' caps,
    so priority decides across the batch's edge too. Locked like the claim's own rows."""
    customers = {c.id for m, _, c in rows if m.legal_class == "commercial" and c is not None}
    if not customers:
        return []
    query = (
        select(Message, Store, Customer)
        .join(Store, Store.id == Message.store_id)
        .join(Customer, Customer.id == Message.customer_id)
        .where(
            Message.customer_id.in_(customers),  # ix_messages_customer
            IS_QUEUED,
            Message.send_after <= now,
            Message.legal_class == "commercial",
            Message.id.not_in([m.id for m, _, _ in rows]),
        )
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=Message)
    return [(m, s, c) for m, s, c in (await session.execute(query)).all()]


async def decisions(
    session: AsyncSession,
    rows: Sequence[Row],
    *,
    ranks: Mapping[int, SendingRank],
    now: datetime,
) -> tuple[dict[int, Decision], list[Row]]:
    """The policy's decision for each claimed message, by id, and the messages beyond the
    claim's batch it decided too (`competitors`), to be applied with the claim's own.
    Informational messages cost nothing; commercial ones two queries per claim (the
    competitors, their customers' recent releases), and a third for the journeys of
    competitors outside the batch (`ranks` holds the batch's, read by the claim).

    A competitor that wins takes its place from one of the batch's messages of the same
    customer and channel (which goes back to the queue, due at once): a claim never lets
    more messages go than its batch held, so never more than the sender's free slots."""
    commercial = [(m, s, c) for m, s, c in rows if m.legal_class == "commercial" and c is not None]
    if not commercial:
        return {m.id: SEND for m, _, _ in rows}, []
    extra = await competitors(session, commercial, now=now)
    ranks = {
        **ranks,
        **await sending_ranks(
            session,
            enrollment_ids={
                m.enrollment_id
                for m, _, _ in extra
                if m.enrollment_id and m.enrollment_id not in ranks
            },
        ),
    }
    # A competitor of a journey switched off is left to the switch-off, which skips it.
    extra = [
        r for r in extra if (rank := ranks.get(r[0].enrollment_id or 0)) is None or rank.enabled
    ]
    everyone = [*rows, *extra]
    extra_ids = {m.id for m, _, _ in extra}
    released = await released_since(
        session,
        customer_ids={c.id for _, _, c in commercial if c is not None},
        since=now - LOOKBACK,
    )
    rules: dict[int, Rules] = {}
    candidates = []
    for message, store, customer in everyone:
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
        rank = ranks.get(message.enrollment_id or 0, DEFAULT_RANK)
        candidates.append(
            Candidate(
                id=message.id,
                store_id=store.id,
                customer_id=customer.id,
                channel=message.channel,
                legal_class=message.legal_class,
                to_address=message.to_address,
                due_at=message.send_after,
                priority=rank.priority,
                over_cap=rank.over_cap,
                released=message.released_at is not None,
                consent=consent_state(customer, message.channel),
                recipient_type=recipient_type_of(customer),
                zone=customer.timezone,
            )
        )
    decided = decide_all(candidates, rules, now=now, released=released)
    # Per customer and channel, as many sends as the batch held; a competitor sent beyond
    # them stays queued, untouched, for a later claim.
    room: dict[tuple[int, str], int] = {}
    for message, _, customer in commercial:
        key = (customer.id if customer else 0, message.channel)
        room[key] = room.get(key, 0) + 1
    ranked = sorted(
        (c for c in candidates if c.customer_id is not None and isinstance(decided[c.id], Send)),
        key=lambda c: (-c.priority, c.due_at, c.id),
    )
    dropped: set[int] = set()
    for candidate in ranked:
        key = (candidate.customer_id or 0, candidate.channel)
        if room.get(key, 0) > 0:
            room[key] -= 1
        else:
            dropped.add(candidate.id)
    for candidate in ranked:
        if candidate.id in dropped and candidate.id not in extra_ids:
            # A competitor of higher priority took its place in this claim: it is next.
            decided[candidate.id] = Postpone(now, OUTRANKED)
    return decided, [r for r in extra if r[0].id not in dropped]


def hold(message: Message, decision: Postpone) -> None:
    """Back to the queue until the decision's moment, saying why."""
    message.status = "queued"
    message.send_after = decision.until
    message.held_until = decision.until
    message.held_reason = decision.reason
    message.lease_until = None
    message.claimed_by = None
