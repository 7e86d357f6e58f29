"""Pull: the consent changes made at İYS itself (a citizen's opt-out on e-Devlet, in the
İYS app, by SMS to 3338) become `consent.updated` events with source "iys".

`consent.iys_pull` runs once a minute across all workers. Per store it reads
`…/consents/changes?source=IYS&after=<cursor>` a page at a time and, per page, in one
transaction, inserts one event per change (keyed by İYS's transaction id, so a page read
twice stores nothing twice) and moves the cursor: a crash loses no change and records
none twice. The event names the customer by the recipient (email, or phone): a recipient
who is no customer yet gets a profile of just that address, which holds the consent, so
that the shop's later events about that person (matched by email or phone) find it.
The opt-out stops commercial messages as soon as the event is applied: the sender checks
consent as it claims each message.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.consent.iys import IYS_SOURCE, RECIPIENT_TYPES, STATUSES, TYPES, parse_consent_date
from ulak.consent.iys_client import Retry
from ulak.consent.iys_push import client_for, keep_token, remember
from ulak.consent.models import IysAccount
from ulak.db import Database
from ulak.events.inbox import event_rows, insert_events
from ulak.events.schemas import EventIn

log = logging.getLogger(__name__)

# İYS gives the brand a citizen's opt-out by pull; the law allows 3 business days to honour
# it, a pull a minute has it stop commercial messages within minutes.
PULL_EVERY = timedelta(minutes=1)
# Changes asked for a page; İYS keeps 7 days of them.
PAGE = 500
# Pages one store reads a tick; the rest come the next minute.
MAX_PAGES = 20
CHANNELS = {v: k for k, v in TYPES.items()}
ULAK_RECIPIENT_TYPES = {v: k for k, v in RECIPIENT_TYPES.items()}
ULAK_STATUSES = {v: k for k, v in STATUSES.items()}


async def next_pull_due(session: AsyncSession) -> datetime | None:
    """When a store's İYS changes are next pulled (None: no store has an account)."""
    last = func.min(func.coalesce(IysAccount.pulled_at, IysAccount.created_at))
    at: datetime | None = (await session.execute(select(last))).scalar()
    return None if at is None else at + PULL_EVERY


def change_event(change: dict[str, Any]) -> EventIn | None:
    """The consent.updated event of one İYS change; None for one ulak cannot read."""
    try:
        channel = CHANNELS[change["type"]]
        status = ULAK_STATUSES[change["status"]]
        recipient_type = ULAK_RECIPIENT_TYPES[change.get("recipientType", "BIREYSEL")]
        occurred_at = parse_consent_date(change["consentDate"])
        recipient = str(change["recipient"])
    except (KeyError, ValueError, TypeError):
        return None
    transaction = (
        change.get("transactionId")
        or hashlib.sha256(repr(sorted(change.items())).encode()).hexdigest()[:32]
    )
    who = {"email": recipient} if channel == "email" else {"phone": recipient}
    return EventIn.model_validate(
        {
            "id": f"iys:{transaction}",
            "type": "consent.updated",
            "occurred_at": occurred_at,
            "customer": who,
            "data": {
                "channel": channel,
                "status": status,
                "source": IYS_SOURCE,
                "recipient_type": recipient_type,
                "proof": {
                    "iys_transaction_id": change.get("transactionId"),
                    "iys_source": change.get("source"),
                    "creation_date": change.get("creationDate"),
                },
            },
        }
    )


async def pull_all(
    database: Database,
    http: Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]],
    *,
    now: datetime,
) -> int:
    """Pull every store's İYS changes; returns the changes recorded."""
    async with database.read() as session:
        stores = list((await session.execute(select(IysAccount.store_id))).scalars())
    recorded = 0
    if stores:
        async with http() as client:
            for store_id in stores:
                recorded += await _pull_store(database, client, store_id=store_id, now=now)
    return recorded


async def _pull_store(
    database: Database, http: httpx.AsyncClient, *, store_id: int, now: datetime
) -> int:
    recorded = 0
    for _ in range(MAX_PAGES):
        async with database.read() as session:
            account = await session.get(IysAccount, store_id)
        if account is None:
            return recorded
        client = client_for(account, http)
        try:
            page = await client.changes(after=account.pull_after, limit=PAGE, now=now)
        except Retry as away:
            log.warning("İYS pull of store %s waits: %s", store_id, away)
            async with database.transaction() as session:
                kept = await session.get(IysAccount, store_id)
                if kept is not None:
                    keep_token(kept, client)
                    kept.last_error = f"pull: {away}"
            return recorded
        events = [e for e in map(change_event, page.changes) if e is not None]
        async with database.transaction() as session:
            kept = await session.get(IysAccount, store_id)
            if kept is None:
                return recorded
            keep_token(kept, client)
            kept.pull_after = page.after
            kept.pulled_at = now
            if kept.last_error and kept.last_error.startswith("pull:"):
                kept.last_error = None
            await insert_events(session, event_rows(store_id, events, source="iys", now=now))
            for change in page.changes:
                if change.get("type") in CHANNELS and change.get("status") in ULAK_STATUSES:
                    await remember(
                        session,
                        store_id=store_id,
                        type=change["type"],
                        recipient_type=change.get("recipientType", "BIREYSEL"),
                        recipient=str(change["recipient"]),
                        status=change["status"],
                        now=now,
                    )
        recorded += len(events)
        if len(page.changes) < PAGE:
            break
    return recorded
