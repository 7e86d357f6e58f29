"""İYS (İleti Yönetim Sistemi), the Turkish consent registry, both ways.

A store with an İYS account (`ulak stores iys set`) registers every consent change at İYS:
`record_change` queues one `IysPush` row in the transaction of the change, and
`consent.iys_push` sends a store's pending rows in order, one worker per store at a time.
Changes that came from İYS (source "iys") are never pushed back. While İYS is away (a
timeout, a 5xx, a 429, refused credentials) the rows stay pending and the store's queue
waits with a growing backoff; a change İYS refuses (422 and its code) is marked failed with
İYS's code and message; one İYS's rules forbid (a RET for a recipient İYS has no consent of,
a status İYS already holds) is skipped with the reason. `iys_pull.py` reads İYS's changes.

ulak → İYS: channel email → EPOSTA, sms → MESAJ, call → ARAMA; individual → BIREYSEL,
merchant → TACIR; granted → ONAY, revoked → RET; the time in GMT+3; the recipient is the
email, or for MESAJ and ARAMA the phone as +905XXXXXXXXX (İYS knows Turkish mobiles only).
The source is `SOURCES[source]`, an HS_* value given as is, or HS_WEB.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.consent.iys_client import Consent, IysClient, Refused, Retry, Token
from ulak.consent.models import IysAccount, IysPush, IysRecipient
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.errors import Invalid

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.iys.org.tr"
# Changes pulled from İYS carry this source and are never pushed back.
IYS_SOURCE = "iys"
# İYS's times are GMT+3 (Türkiye has had no DST since 2016).
GMT3 = timezone(timedelta(hours=3))
TYPES = {"email": "EPOSTA", "sms": "MESAJ", "call": "ARAMA"}
RECIPIENT_TYPES = {"individual": "BIREYSEL", "merchant": "TACIR"}
STATUSES = {"granted": "ONAY", "revoked": "RET"}
# Where a consent was given or taken back, as İYS names it. A source not listed is a form
# on the shop's site (HS_WEB); one that is an İYS source already passes as is.
SOURCES = {
    "checkout": "HS_WEB",
    "signup_form": "HS_WEB",
    "web": "HS_WEB",
    "preferences_page": "HS_WEB",
    "unsubscribe_link": "HS_EPOSTA",
    "email": "HS_EPOSTA",
    "sms": "HS_MESAJ",
    "sms_reply": "HS_MESAJ",
    "mobile_app": "HS_MOBIL",
    "app": "HS_MOBIL",
    "call_center": "HS_CAGRI_MERKEZI",
    "phone": "HS_CAGRI_MERKEZI",
    "store": "HS_FIZIKSEL_ORTAM",
    "in_store": "HS_FIZIKSEL_ORTAM",
    "wet_signature": "HS_ISLAK_IMZA",
    "social_media": "HS_SOSYAL_MEDYA",
    "event": "HS_ETKINLIK",
    "atm": "HS_ATM",
}
HS_SOURCES = frozenset(
    {
        "HS_WEB", "HS_MESAJ", "HS_EPOSTA", "HS_MOBIL", "HS_CAGRI_MERKEZI",
        "HS_FIZIKSEL_ORTAM", "HS_ISLAK_IMZA", "HS_SOSYAL_MEDYA", "HS_ETKINLIK", "HS_ATM",
        "HS_EORTAM", "HS_KARAR", "HS_2015",
    }
)  # fmt: skip
TURKISH_MOBILE = re.compile(r"^\+905\d{9}$")
# A worker's hold on a store's queue; longer than a batch of calls takes at the timeout.
LEASE = timedelta(minutes=5)
# Backoff after a failed push: 30 s, doubling, at most 30 minutes.
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=30)


def iys_source(source: str) -> str:
    if source.upper() in HS_SOURCES:
        return source.upper()
    return SOURCES.get(source.lower(), "HS_WEB")


def consent_date(at: datetime) -> str:
    return at.astimezone(GMT3).strftime("%Y-%m-%d %H:%M:%S")


def parse_consent_date(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=GMT3)


# -- the account -------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountView:
    """What `ulak stores iys show` tells: which settings are set (never a secret's value)
    and how the queue stands."""

    iys_code: str
    brand_code: str
    base_url: str
    username_set: bool
    password_set: bool
    pending: int
    sent: int
    skipped: int
    failed: int
    pulled_at: datetime | None
    last_error: str | None
    failures: list[tuple[int, str, str, str | None, str | None]]  # id, type, status, code, msg


async def set_account(
    session: AsyncSession,
    *,
    store_id: int,
    iys_code: str | None,
    brand_code: str | None,
    username: str | None,
    password: str | None,
    base_url: str | None,
    now: datetime,
) -> IysAccount:
    """Create or change a store's İYS account; a value not given stays as it was."""
    account = await session.get(IysAccount, store_id)
    if account is None:
        missing = [
            name
            for name, value in (
                ("iys code", iys_code),
                ("brand code", brand_code),
                ("username", username),
                ("password", password),
            )
            if not value
        ]
        if missing:
            raise Invalid(f"a new İYS account needs: {', '.join(missing)}")
        account = IysAccount(
            store_id=store_id, base_url=DEFAULT_BASE_URL, push_failures=0, created_at=now
        )
        session.add(account)
    if base_url is not None and not base_url.startswith(("https://", "http://")):
        raise Invalid("the İYS base URL must start with https://")
    changed_login = False
    for field, value in (
        ("iys_code", iys_code),
        ("brand_code", brand_code),
        ("username", username),
        ("password", password),
        ("base_url", base_url),
    ):
        if value is not None:
            changed_login |= field in ("username", "password", "base_url")
            setattr(account, field, value.strip() if field != "password" else value)
    if changed_login:  # a token of the old login is of no use
        account.access_token = account.refresh_token = None
        account.access_expires_at = account.refresh_expires_at = None
        account.push_retry_at = None  # new credentials: try at once
    account.updated_at = now
    return account


async def clear_account(session: AsyncSession, *, store_id: int) -> bool:
    """Forget a store's İYS account (its queue stays, as history; nothing more is queued)."""
    account = await session.get(IysAccount, store_id)
    if account is None:
        return False
    await session.delete(account)
    return True


async def account_view(session: AsyncSession, *, store_id: int) -> AccountView | None:
    account = await session.get(IysAccount, store_id)
    if account is None:
        return None
    counts = dict(
        (
            await session.execute(
                select(IysPush.state, func.count())
                .where(IysPush.store_id == store_id)
                .group_by(IysPush.state)
            )
        ).all()
    )
    failures = (
        await session.execute(
            select(IysPush.id, IysPush.type, IysPush.status, IysPush.error_code, IysPush.error)
            .where(IysPush.store_id == store_id, IysPush.state == "failed")
            .order_by(IysPush.id.desc())
            .limit(10)
        )
    ).all()
    return AccountView(
        iys_code=account.iys_code,
        brand_code=account.brand_code,
        base_url=account.base_url,
        username_set=bool(account.username),
        password_set=bool(account.password),
        pending=counts.get("pending", 0),
        sent=counts.get("sent", 0),
        skipped=counts.get("skipped", 0),
        failed=counts.get("failed", 0),
        pulled_at=account.pulled_at,
        last_error=account.last_error,
        failures=[tuple(row) for row in failures],  # type: ignore[misc]
    )


# -- queueing a change -------------------------------------------------------------------


async def queue_change(
    session: AsyncSession,
    *,
    store_id: int,
    customer: Customer,
    channel: str,
    status: str,
    source: str,
    recipient_type: str,
    at: datetime,
    now: datetime,
) -> None:
    """Queue a consent change for İYS, if the store has an account there (in the caller's
    transaction: the change and its push commit together). A change İYS cannot take (no
    address for the channel) is kept as skipped, with the reason."""
    if source == IYS_SOURCE or await session.get(IysAccount, store_id) is None:
        return
    type_ = TYPES[channel]
    recipient, reason = customer.email, "the customer has no email address"
    if type_ != "EPOSTA":
        recipient = customer.phone
        reason = "the customer has no phone number"
        if recipient and not TURKISH_MOBILE.match(recipient):
            reason, recipient = f"{recipient} is not a Turkish mobile number", None
    session.add(
        IysPush(
            store_id=store_id,
            customer_id=customer.id,
            type=type_,
            recipient=recipient or "",
            recipient_type=RECIPIENT_TYPES[recipient_type],
            status=STATUSES[status],
            source=iys_source(source),
            consent_date=at,
            state="pending" if recipient else "skipped",
            attempts=0,
            error=None if recipient else reason,
            created_at=now,
            done_at=None if recipient else now,
        )
    )


# -- pushing -----------------------------------------------------------------------------


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
    async with database.transaction() as session:
        account = await session.get(IysAccount, store_id)
        if account is None:  # cleared meanwhile: the outcomes of what was sent still count
            account = IysAccount()
        keep_token(account, client)
        account.push_lease_until = None
        if away is None:
            account.push_failures = 0
            account.push_retry_at = None
            account.last_error = None
        else:
            account.push_failures = (account.push_failures or 0) + 1
            backoff = min(FIRST_BACKOFF * 2 ** (account.push_failures - 1), MAX_BACKOFF)
            account.push_retry_at = now + backoff
            account.last_error = f"push: {away}; next try at {account.push_retry_at:%H:%M:%S} UTC"
            log.warning("İYS push of store %s waits: %s", store_id, away)
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
        for (type_, recipient_type, recipient), status in learned.items():
            await remember(
                session, store_id=store_id, type=type_, recipient_type=recipient_type,
                recipient=recipient, status=status, now=now,
            )  # fmt: skip
    return sum(1 for o in outcomes if o.state != "pending")


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
