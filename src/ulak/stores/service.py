from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import Clock
from ulak.errors import NotFound, Unauthorized
from ulak.stores.models import ApiKey, Store
from ulak.stores.schemas import StoreCreate, StoreUpdate

KEY_PREFIX = "ulak_sk_"


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_store(
    session: AsyncSession, data: StoreCreate, *, clock: Clock
) -> tuple[Store, str]:
    """Create a store and its first API key; the key is returned once and kept hashed."""
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
        link_secret=secrets.token_hex(32),
        created_at=now,
    )
    session.add(store)
    await session.flush()
    key = await create_api_key(session, store_id=store.id, clock=clock)
    return store, key


async def update_store(session: AsyncSession, store_id: int, data: StoreUpdate) -> Store:
    """Change the settings `data` gives; the others stay."""
    store = await get_store(session, store_id)
    for field, value in data.model_dump(exclude_none=True).items():
        setattr(store, field, value)
    await session.flush()
    return store


async def create_api_key(session: AsyncSession, *, store_id: int, clock: Clock) -> str:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            store_id=store_id,
            prefix=key[: len(KEY_PREFIX) + 6],
            key_hash=_hash_key(key),
            created_at=clock.now(),
        )
    )
    await session.flush()
    return key


async def store_for_key(session: AsyncSession, key: str) -> Store:
    row = await session.execute(
        select(Store)
        .join(ApiKey, ApiKey.store_id == Store.id)
        .where(ApiKey.key_hash == _hash_key(key), ApiKey.revoked_at.is_(None))
    )
    store = row.scalar_one_or_none()
    if store is None:
        raise Unauthorized("invalid API key")
    return store


async def get_store(session: AsyncSession, store_id: int) -> Store:
    store = await session.get(Store, store_id)
    if store is None:
        raise NotFound(f"store {store_id} does not exist")
    return store


async def list_stores(session: AsyncSession) -> Sequence[Store]:
    return (await session.execute(select(Store).order_by(Store.id))).scalars().all()
