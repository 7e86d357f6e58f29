"""Pushing a store's queued consent changes to İYS (`consent.iys_push`), in order.

One worker pushes a store at a time (a lease on its account). The calls to İYS are made
outside any transaction, since on SQLite the worker is the only writer and must not wait on
İYS; the outcomes, the token and the backoff are written after, in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.consent.iys import consent_date
from ulak.consent.iys_client import Consent, IysClient, Refused, Retry, Token
from ulak.consent.models import IysAccount, IysPush, IysRecipient
from ulak.consent.privacy import sha256
from ulak.customers.models import Customer
from ulak.db import Database

log = logging.getLogger(__name__)

# A worker's hold on a store's queue; longer than a batch of calls takes at the timeout.
LEASE = timedelta(minutes=5)
# Backoff after a failed push: 30 s, doubling, at most 30 minutes.
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=30)


def client_for(account: IysAccount, http: httpx.AsyncClient) -> IysClient:
    token = None
    if account.access_token and account.access_expires_at:
        token = Token(
            account.access_token,
            account.access_expires_at,
            account.refresh_token,
            account.refresh_expires_at,
        )
    return IysClient(
        http,
        base_url=account.base_url,
        iys_code=account.iys_code,
        brand_code=account.brand_code,
        username=account.username,
        password=account.password,
        token=token,
    )


def keep_token(account: IysAccount, client: IysClient) -> None:
    token = client.token
    account.access_token = token.access if token else None
    account.access_expires_at = token.access_expires_at if token else None
    account.refresh_token = token.refresh if token else None
    account.refresh_expires_at = token.refresh_expires_at if token else None


async def next_push_due(session: AsyncSession) -> datetime | None:
    """When a store's queue may next be pushed: the earliest backoff or lease end of a
    store with pending rows (read from `ix_iys_pushes_pending`)."""
    pending = select(IysPush.store_id).where(IysPush.state == "pending").distinct()
    ready = select(func.min(func.coalesce(IysAccount.push_retry_at, IysAccount.created_at))).where(
        IysAccount.store_id.in_(pending)
    )
    due: datetime | None = (await session.execute(ready)).scalar()
    return due


async def _claim_stores(session: AsyncSession, *, now: datetime) -> list[int]:
    """Take the stores whose queue has pending rows and may be pushed now; concurrent
    workers each get other stores (the UPDATE re-checks the lease of a row it waited for)."""
    pending = select(IysPush.store_id).where(IysPush.state == "pending").distinct()
    claimed = await session.execute(
        update(IysAccount)
        .where(
            IysAccount.store_id.in_(pending),
            or_(IysAccount.push_lease_until.is_(None), IysAccount.push_lease_until <= now),
            or_(IysAccount.push_retry_at.is_(None), IysAccount.push_retry_at <= now),
        )
        .values(push_lease_until=now + LEASE)
        .returning(IysAccount.store_id)
    )
    return [store_id for (store_id,) in claimed]


@dataclass
class Outcome:
    row_id: int
    state: str  # sent, skipped, failed, or pending (tried, İYS away)
    transaction_id: str | None = None
    error_code: str | None = None
    error: str | None = None


async def push_due(
    database: Database,
    http: Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]],
    *,
    now: datetime,
    limit: int,
) -> int:
    """Push the pending rows of the stores that may be pushed now; returns the rows done.
    The calls to İYS are made outside any transaction (the one writer of a SQLite file
    must not wait on İYS); the outcomes are written after. A crash between İYS's answer and
    that write pushes the change again: İYS then holds it already, and it is skipped."""
    async with database.read() as session:
        # Most runs find nothing: a read, rather than a write transaction, tells.
        if await next_push_due(session) is None:
            return 0
    async with database.transaction() as session:
        stores = await _claim_stores(session, now=now)
    if not stores:
        return 0
    done = 0
    async with http() as client:
        for store_id in stores:
            done += await _push_store(database, client, store_id=store_id, now=now, limit=limit)
    return done


async def _push_store(
    database: Database, http: httpx.AsyncClient, *, store_id: int, now: datetime, limit: int
) -> int:
    async with database.read() as session:
        account = await session.get(IysAccount, store_id)
        rows = list(
            (
                await session.execute(
                    select(IysPush)
                    .where(IysPush.store_id == store_id, IysPush.state == "pending")
                    .order_by(IysPush.id)
                    .limit(limit)
                )
            ).scalars()
        )
        keys = {(r.type, r.recipient_type, r.recipient) for r in rows}
        known = {
            (k.type, k.recipient_type, k.recipient): k.status
            for k in (
                await session.execute(
                    select(IysRecipient).where(
                        IysRecipient.store_id == store_id,
                        IysRecipient.recipient.in_({k[2] for k in keys}),
                    )
                )
            ).scalars()
        }
    if account is None:
        return 0
    client = client_for(account, http)
    outcomes: list[Outcome] = []
    learned: dict[tuple[str, str, str], str] = {}
    away: str | None = None
    for row in rows:
        key = (row.type, row.recipient_type, row.recipient)
        try:
            if key not in known:
                # Not known here (a consent given before ulak, or elsewhere): ask İYS.
                status = await client.status(
                    recipient=row.recipient, recipient_type=row.recipient_type, type=row.type,
                    now=now,
                )  # fmt: skip
                known[key] = status or ""
                if status:
                    learned[key] = status
            held = known[key]
            if row.status == "RET" and not held:
                outcomes.append(
                    Outcome(
                        row.id, "skipped", error="İYS has no consent of this recipient to refuse"
                    )
                )
            elif row.status == held:
                outcomes.append(Outcome(row.id, "skipped", error=f"İYS holds {held} already"))
            else:
                consent = Consent(
                    consent_date=consent_date(min(row.consent_date, now)),
                    source=row.source,
                    recipient=row.recipient,
                    recipient_type=row.recipient_type,
                    status=row.status,
                    type=row.type,
                )
                transaction = await client.add(consent, now=now)
                known[key] = learned[key] = row.status
                outcomes.append(Outcome(row.id, "sent", transaction_id=transaction))
        except Refused as refused:
            outcomes.append(
                Outcome(row.id, "failed", error_code=refused.code, error=refused.message)
            )
        except Retry as retry:
            # İYS is away: this row and the ones after it wait, in order.
            away = str(retry)
            outcomes.append(Outcome(row.id, "pending", error=away))
            break
    if away is not None:
        log.warning("İYS push of store %s waits: %s", store_id, away)
    async with database.transaction() as session:
        # None: cleared meanwhile; the outcomes of what was sent still count.
        if (account := await session.get(IysAccount, store_id)) is not None:
            _after_push(account, client, away=away, now=now)
        for outcome in outcomes:
            finished = outcome.state != "pending"
            await session.execute(
                update(IysPush)
                .where(IysPush.id == outcome.row_id)
                .values(
                    state=outcome.state,
                    attempts=IysPush.attempts + (0 if outcome.state == "skipped" else 1),
                    transaction_id=outcome.transaction_id,
                    error_code=outcome.error_code,
                    error=outcome.error,
                    done_at=now if finished else None,
                )
            )
        # A change of a customer erased meanwhile was kept in clear only to be registered
        # (the law asks it): once done, it keeps a digest, and ulak keeps no state of theirs.
        done = {o.row_id for o in outcomes if o.state != "pending"}
        erased = await _erased_recipients(session, [r for r in rows if r.id in done])
        for row in rows:
            if row.id in done and row.recipient in erased:
                await session.execute(
                    update(IysPush)
                    .where(IysPush.id == row.id)
                    .values(recipient="sha256:" + sha256(row.recipient))
                )
        for (type_, recipient_type, recipient), status in learned.items():
            if recipient in erased:
                continue
            await remember(
                session, store_id=store_id, type=type_, recipient_type=recipient_type,
                recipient=recipient, status=status, now=now,
            )  # fmt: skip
    return sum(1 for o in outcomes if o.state != "pending")


async def _erased_recipients(session: AsyncSession, rows: list[IysPush]) -> set[str]:
    """The recipients of these changes whose customer has been erased."""
    if not rows:
        return set()
    gone = set(
        (
            await session.execute(
                select(Customer.id).where(
                    Customer.id.in_({r.customer_id for r in rows}), Customer.erased_at.is_not(None)
                )
            )
        ).scalars()
    )
    return {r.recipient for r in rows if r.customer_id in gone}


def _after_push(account: IysAccount, client: IysClient, *, away: str | None, now: datetime) -> None:
    keep_token(account, client)
    account.push_lease_until = None
    if away is None:
        account.push_failures = 0
        account.push_retry_at = account.last_error = None
        return
    account.push_failures = (account.push_failures or 0) + 1
    backoff = min(FIRST_BACKOFF * 2 ** (account.push_failures - 1), MAX_BACKOFF)
    account.push_retry_at = now + backoff
    account.last_error = f"push: {away}; next try at {account.push_retry_at:%H:%M:%S} UTC"


async def remember(
    session: AsyncSession,
    *,
    store_id: int,
    type: str,
    recipient_type: str,
    recipient: str,
    status: str,
    now: datetime,
) -> None:
    """Keep the status İYS now holds for a recipient."""
    key = (store_id, type, recipient_type, recipient)
    held = await session.get(IysRecipient, key)
    if held is None:
        session.add(
            IysRecipient(
                store_id=store_id, type=type, recipient_type=recipient_type,
                recipient=recipient, status=status, updated_at=now,
            )
        )  # fmt: skip
    else:
        held.status = status
        held.updated_at = now
