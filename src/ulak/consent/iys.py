"""İYS (İleti Yönetim Sistemi), the Turkish consent registry, both ways.

A store with an İYS account (`ulak stores iys set`) registers every consent change at İYS:
`record_change` queues one `IysPush` row in the transaction of the change, and
`consent.iys_push` (`iys_push.py`) sends a store's pending rows in order, one worker per
store at a time.
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

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.consent.models import IysAccount, IysPush
from ulak.customers.models import Customer
from ulak.errors import Invalid

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
        raise Invalid("the İYS base URL must start with https:// (or http:// for a test host)")
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
        failures=[
            (id_, type_, status, code, error) for id_, type_, status, code, error in failures
        ],
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
