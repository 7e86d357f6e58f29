"""A store's platform integrations, and what every webhook route shares: the secret
lookup and the signature check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.db import Database
from ulak.errors import Invalid, NotFound
from ulak.integrations.models import Integration
from ulak.stores.service import get_store

# The platforms a store may connect, each with its webhook route under
# /v1/integrations/<platform>/<store id>.
PLATFORMS = ("shopify", "woocommerce")


@dataclass(frozen=True)
class IntegrationShown:
    """What may be shown of an integration: never its secret."""

    store_id: int
    platform: str
    created_at: datetime
    updated_at: datetime


def _shown(row: Integration) -> IntegrationShown:
    return IntegrationShown(row.store_id, row.platform, row.created_at, row.updated_at)


def _platform(name: str) -> str:
    if name not in PLATFORMS:
        raise Invalid(f"unknown platform {name!r}: one of {', '.join(PLATFORMS)}")
    return name


async def set_integration(
    session: AsyncSession, *, store_id: int, platform: str, secret: str, clock: Clock
) -> IntegrationShown:
    """Connect a store to a platform, or replace its secret."""
    _platform(platform)
    secret = secret.strip()
    if not secret:
        raise Invalid("the webhook secret is empty")
    if len(secret) > 500:
        raise Invalid("the webhook secret is longer than 500 characters")
    await get_store(session, store_id)
    now = clock.now()
    row = await session.get(Integration, (store_id, platform))
    if row is None:
        row = Integration(store_id=store_id, platform=platform, created_at=now)
        session.add(row)
    row.secret = secret
    row.updated_at = now
    await session.flush()
    return _shown(row)


async def integrations_of(session: AsyncSession, *, store_id: int) -> list[IntegrationShown]:
    await get_store(session, store_id)
    rows = await session.scalars(
        select(Integration).where(Integration.store_id == store_id).order_by(Integration.platform)
    )
    return [_shown(row) for row in rows]


async def remove_integration(session: AsyncSession, *, store_id: int, platform: str) -> None:
    _platform(platform)
    result = await session.execute(
        delete(Integration).where(
            Integration.store_id == store_id, Integration.platform == platform
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"store {store_id} has no {platform} integration")


def signature_ok(secret: str, body: bytes, given: str | None) -> bool:
    """Shopify's `X-Shopify-Hmac-Sha256` and WooCommerce's `X-WC-Webhook-Signature` are
    both base64 of HMAC-SHA256 over the raw body, keyed by the webhook secret; compared in
    constant time."""
    if not given:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, given.strip().encode("ascii", "replace"))


class SecretCache:
    """Each store's secret per platform, kept a few seconds per API process so a burst of
    webhooks reads it once; a new secret takes effect within `SECONDS`."""

    SECONDS = 5.0

    def __init__(self, database: Database) -> None:
        self.database = database
        self._known: dict[tuple[int, str], tuple[float, str | None]] = {}

    async def secret(self, store_id: int, platform: str) -> str | None:
        key = (store_id, platform)
        known = self._known.get(key)
        if known is not None and time.monotonic() - known[0] < self.SECONDS:
            return known[1]
        async with self.database.read() as session:
            secret = await session.scalar(
                select(Integration.secret).where(
                    Integration.store_id == store_id, Integration.platform == platform
                )
            )
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[key] = (time.monotonic(), secret)
        return secret
