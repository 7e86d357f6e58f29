"""A store's SMS setup, the short links SMS carry, and the dev SMS inbox.

Credentials are write-only: `set_sms` stores them and `gateway_setup` hands them to the
SMS channel; everything that shows a setup (`SmsSetup`) carries only their names.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.channels.gateways import PROVIDERS
from ulak.clock import Clock
from ulak.errors import Invalid, NotFound
from ulak.sms.length import sms_length
from ulak.sms.models import DevSms, ShortLink, SmsSettings
from ulak.stores.models import Store

# 3-11 ASCII letters, digits, space, dot or hyphen: operators refuse Turkish letters.
SENDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .\-]{1,9}[A-Za-z0-9]$")
DEFAULT_SENDER = "ULAK"
DEFAULT_SEGMENT_LIMIT = 2
# 62 letters and digits, 10 of them: 59.5 bits. The token is the link's whole capability
# (a row per link holds the store and target), so a signature would only add characters
# to every SMS without making a token harder to guess. A forged or altered one finds no row.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
TOKEN_LENGTH = 10
LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class SmsSetup:
    """A store's SMS setup as it may be shown: credentials by name only."""

    store_id: int
    provider: str | None
    sender: str
    credentials_set: tuple[str, ...]
    segment_limit: int
    price_per_segment: Decimal | None
    currency: str
    report_token: str | None


@dataclass(frozen=True)
class GatewaySetup:
    """What the SMS channel needs to send for a store (credentials included)."""

    store_id: int
    provider: str | None
    sender: str
    credentials: Mapping[str, str]
    report_token: str | None


def check_sender(sender: str) -> str:
    if not SENDER.match(sender):
        raise Invalid(
            f"invalid SMS sender {sender!r}: 3-11 ASCII letters or digits"
            " (no Turkish letters), as approved by the provider"
        )
    return sender


async def sms_setup(session: AsyncSession, *, store_id: int) -> SmsSetup:
    store = await session.get(Store, store_id)
    if store is None:
        raise NotFound(f"store {store_id} does not exist")
    row = await session.get(SmsSettings, store_id)
    if row is None:
        return SmsSetup(
            store_id, None, DEFAULT_SENDER, (), DEFAULT_SEGMENT_LIMIT, None, store.currency, None
        )
    return SmsSetup(
        store_id=store_id,
        provider=row.provider,
        sender=row.sender or DEFAULT_SENDER,
        credentials_set=tuple(sorted(name for name, value in row.credentials.items() if value)),
        segment_limit=row.segment_limit,
        price_per_segment=row.price_per_segment,
        currency=store.currency,
        report_token=row.report_token,
    )


async def set_sms(
    session: AsyncSession,
    *,
    store_id: int,
    clock: Clock,
    provider: str | None = None,
    clear_provider: bool = False,
    credentials: Mapping[str, str] | None = None,
    sender: str | None = None,
    segment_limit: int | None = None,
    price_per_segment: Decimal | None = None,
) -> SmsSetup:
    """Change what is given, keep the rest. Credentials given are merged into those set
    (a provider change starts from none). Refuses a provider without all its credentials."""
    if await session.get(Store, store_id) is None:
        raise NotFound(f"store {store_id} does not exist")
    row = await session.get(SmsSettings, store_id)
    if row is None:
        row = SmsSettings(
            store_id=store_id,
            credentials={},
            segment_limit=DEFAULT_SEGMENT_LIMIT,
            report_token=secrets.token_urlsafe(32),
        )
        session.add(row)
    if clear_provider:
        row.provider, row.credentials = None, {}
    if provider is not None:
        if provider not in PROVIDERS:
            raise Invalid(
                f"unknown SMS provider {provider!r}; known: {', '.join(sorted(PROVIDERS)) or '-'}"
            )
        if provider != row.provider:
            row.credentials = {}
        row.provider = provider
    if credentials:
        if row.provider is None:
            raise Invalid("set a provider before its credentials")
        unknown = sorted(set(credentials) - set(PROVIDERS[row.provider]))
        if unknown:
            raise Invalid(
                f"{row.provider} takes no credential {', '.join(unknown)};"
                f" it takes {', '.join(PROVIDERS[row.provider])}"
            )
        row.credentials = {**row.credentials, **credentials}
    if row.provider is not None:
        missing = [name for name in PROVIDERS[row.provider] if not row.credentials.get(name)]
        if missing:
            raise Invalid(f"{row.provider} needs the credential(s) {', '.join(missing)}")
    if sender is not None:
        row.sender = check_sender(sender)
    if segment_limit is not None:
        if not 1 <= segment_limit <= 10:
            raise Invalid("the segment limit is between 1 and 10")
        row.segment_limit = segment_limit
    if price_per_segment is not None:
        if price_per_segment < 0:
            raise Invalid("the price per segment cannot be negative")
        row.price_per_segment = price_per_segment
    row.updated_at = clock.now()
    await session.flush()
    return await sms_setup(session, store_id=store_id)


async def gateway_setup(session: AsyncSession, *, store_id: int) -> GatewaySetup:
    row = await session.get(SmsSettings, store_id)
    if row is None:
        return GatewaySetup(store_id, None, DEFAULT_SENDER, {}, None)
    return GatewaySetup(
        store_id,
        row.provider,
        row.sender or DEFAULT_SENDER,
        dict(row.credentials),
        row.report_token,
    )


async def store_of_report_token(session: AsyncSession, *, token: str) -> GatewaySetup | None:
    row = (
        await session.execute(select(SmsSettings).where(SmsSettings.report_token == token))
    ).scalar_one_or_none()
    if row is None:
        return None
    return GatewaySetup(
        row.store_id, row.provider, row.sender or DEFAULT_SENDER, dict(row.credentials), token
    )


async def shorten_links(
    session: AsyncSession, *, store_id: int, text: str, base_url: str, clock: Clock
) -> str:
    """The text with each http(s) link replaced by a short link of ulak's (`/s/<token>`)."""
    targets = list(dict.fromkeys(LINK.findall(text)))
    if not targets:
        return text
    now = clock.now()
    tokens = {
        target: "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))
        for target in targets
    }
    await session.execute(
        insert(ShortLink),
        [
            {"token": token, "store_id": store_id, "target": target, "created_at": now}
            for target, token in tokens.items()
        ],
    )
    return LINK.sub(lambda m: f"{base_url}/s/{tokens[m.group(0)]}", text)


async def link_target(session: AsyncSession, *, token: str) -> str | None:
    if len(token) != TOKEN_LENGTH or not token.isascii() or not token.isalnum():
        return None
    return await session.scalar(select(ShortLink.target).where(ShortLink.token == token))


def cost(segments: int, setup: SmsSetup) -> Decimal | None:
    if setup.price_per_segment is None:
        return None
    return setup.price_per_segment * segments


@dataclass(frozen=True)
class CapturedSms:
    id: int
    store_id: int
    message_id: int
    to: str
    sender: str
    text: str
    encoding: str
    segments: int
    received_at: datetime


async def capture(
    session: AsyncSession,
    *,
    store_id: int,
    message_id: int,
    to: str,
    sender: str,
    text: str,
    at: datetime,
) -> None:
    """Keep an SMS in the dev SMS inbox instead of sending it."""
    length = sms_length(text)
    session.add(
        DevSms(
            store_id=store_id,
            message_id=message_id,
            to=to,
            sender=sender,
            text=text,
            encoding=length.encoding,
            segments=length.segments,
            received_at=at,
        )
    )


async def captured_sms(session: AsyncSession, *, limit: int = 500) -> list[CapturedSms]:
    """The dev SMS inbox, oldest first."""
    rows = await session.execute(select(DevSms).order_by(DevSms.id.desc()).limit(limit))
    return [
        CapturedSms(
            r.id,
            r.store_id,
            r.message_id,
            r.to,
            r.sender,
            r.text,
            r.encoding,
            r.segments,
            r.received_at,
        )
        for r in reversed(list(rows.scalars()))
    ]
