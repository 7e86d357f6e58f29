from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.coupons.service import install_default_templates
from ulak.db import Database, is_postgres, listen
from ulak.errors import NotFound, Unauthorized
from ulak.stores.models import ApiKey, Store
from ulak.stores.schemas import StoreCreate, StoreUpdate
from ulak.timers.service import install_default_special_days, store_zone_changed

KEY_PREFIX = "ulak_sk_"

log = logging.getLogger(__name__)


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_store(
    session: AsyncSession, data: StoreCreate, *, clock: Clock
) -> tuple[Store, str]:
    """Create a store with the default coupon templates and its first API key; the key is
    returned once and kept hashed."""
    now = clock.now()
    store = Store(
        name=data.name,
        locale=data.locale,
        timezone=data.timezone,
        currency=data.currency,
        phone_region=data.phone_region,
        sender_name=data.sender_name or data.name,
        sender_email=str(data.sender_email),
        reply_to=data.reply_to,
        logo_url=data.logo_url,
        brand_color=data.brand_color,
        postal_address=data.postal_address,
        contact_email=data.contact_email,
        contact_phone=data.contact_phone,
        website_url=data.website_url,
        back_in_stock_factor=data.back_in_stock_factor,
        back_in_stock_daily_limit=data.back_in_stock_daily_limit,
        abandoned_cart_minutes=data.abandoned_cart_minutes,
        lapsed_days=data.lapsed_days,
        never_bought_days=data.never_bought_days,
        keep_events_days=data.keep_events_days,
        reorder_url=data.reorder_url,
        merchant_opt_out=data.merchant_opt_out,
        sending_hours_email=data.sending_hours_email,
        sending_hours_sms=data.sending_hours_sms,
        cap_email_day=data.cap_email_day,
        cap_email_week=data.cap_email_week,
        cap_sms_day=data.cap_sms_day,
        cap_sms_week=data.cap_sms_week,
        link_secret=secrets.token_hex(32),
        created_at=now,
    )
    session.add(store)
    await session.flush()
    await install_default_templates(session, store_id=store.id, locale=store.locale, now=now)
    await install_default_special_days(session, store_id=store.id, now=now)
    _, key = await create_api_key(session, store_id=store.id, clock=clock)
    return store, key


async def update_store(session: AsyncSession, store_id: int, data: StoreUpdate) -> Store:
    """Change the settings `data` gives (None clears one); the others stay. A new time zone
    moves the date-bound timers of the customers who have none of their own."""
    store = await get_store(session, store_id)
    zone = store.timezone
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(store, field, value)
    await session.flush()
    if store.timezone != zone:
        moved = await store_zone_changed(session, store=store)
        log.info(
            "store %s: time zone %s -> %s, %s timers moved", store.id, zone, store.timezone, moved
        )
    return store


async def create_api_key(session: AsyncSession, *, store_id: int, clock: Clock) -> tuple[int, str]:
    """A new key for the store: its id, and the key itself (kept only as a hash)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        store_id=store_id,
        prefix=key[: len(KEY_PREFIX) + 6],
        key_hash=_hash_key(key),
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return row.id, key


async def list_api_keys(session: AsyncSession, *, store_id: int) -> Sequence[ApiKey]:
    await get_store(session, store_id)
    query = select(ApiKey).where(ApiKey.store_id == store_id).order_by(ApiKey.id)
    return (await session.execute(query)).scalars().all()


async def revoke_api_key(
    session: AsyncSession, *, store_id: int, key_id: int, clock: Clock
) -> ApiKey:
    """Revoke one of a store's keys. Every process checks the key on each request, so the
    next request with it is refused, wherever it arrives."""
    key = await session.get(ApiKey, key_id)
    if key is None or key.store_id != store_id:
        raise NotFound(f"store {store_id} has no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        await session.flush()
        if is_postgres(session):
            await session.execute(text(f"NOTIFY {KEYS_CHANNEL}"))  # delivered on commit
    return key


# PostgreSQL: revoking a key tells every process that keeps known keys (`KeyCheck`).
KEYS_CHANNEL = "ulak_keys"


class KeyCheck:
    """Which store an API key belongs to, on every request; a revoked key is refused from
    the next request on, in every process.

    SQLite: one indexed read per request through a plain read-only connection, in
    microseconds (an ORM session for it took a sixth of the API's CPU under single-event
    POSTs). PostgreSQL: a read there cost a round trip and 2 ms of CPU per request
    (bench/stages.py: ingest 2.3 -> 4.4 ms per order), so known keys are kept while this
    process listens on KEYS_CHANNEL, which `revoke_api_key` notifies when it commits; while
    it does not listen (starting, or its connection lost) every request reads.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._known: dict[str, int] = {}
        self._listening = False
        # Bumped by every revocation: a read that started before one is not kept.
        self._generation = 0

    async def store_id(self, key: str) -> int:
        digest = _hash_key(key)
        if self.database.is_sqlite:
            rows = self.database.lookup(
                "SELECT store_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                (digest,),
            )
            if not rows:
                raise Unauthorized("invalid API key")
            return int(rows[0][0])
        if self._listening and (known := self._known.get(digest)) is not None:
            return known
        generation = self._generation
        query = select(ApiKey.store_id).where(
            ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)
        )
        async with self.database.engine.connect() as connection:
            found = (await connection.execute(query)).scalar()
        if found is None:
            raise Unauthorized("invalid API key")
        if self._listening and generation == self._generation:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[digest] = found
        return int(found)

    def _forget(self) -> None:
        self._generation += 1
        self._known.clear()

    async def listen(self) -> None:
        """PostgreSQL: keep known keys for as long as this process hears of revocations."""
        await listen(self.database.url, KEYS_CHANNEL, heard=self._forget, listening=self._heard)

    def _heard(self, listening: bool) -> None:
        self._forget()
        self._listening = listening


async def get_store(session: AsyncSession, store_id: int) -> Store:
    store = await session.get(Store, store_id)
    if store is None:
        raise NotFound(f"store {store_id} does not exist")
    return store


async def list_stores(session: AsyncSession) -> Sequence[Store]:
    return (await session.execute(select(Store).order_by(Store.id))).scalars().all()


async def retention_settings(session: AsyncSession) -> list[tuple[int, int]]:
    """(store, days its applied events are kept) of every store."""
    rows = await session.execute(select(Store.id, Store.keep_events_days).order_by(Store.id))
    return [(id_, days) for id_, days in rows.all()]
