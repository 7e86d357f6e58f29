"""KVKK/GDPR: a customer's back-in-stock subscriptions, exported and (on erasure)
deleted: they keep the email the request came with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.models import BackInStockSubscription


@dataclass(frozen=True)
class SubscriptionExport:
    product_id: str
    variant_id: str | None
    status: str
    requested_by: str
    created_at: datetime
    expires_at: datetime
    notified_at: datetime | None


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[SubscriptionExport]:
    rows = await session.execute(
        select(BackInStockSubscription)
        .where(
            BackInStockSubscription.store_id == store_id,
            BackInStockSubscription.customer_id == customer_id,
        )
        .order_by(BackInStockSubscription.id)
    )
    return [
        SubscriptionExport(
            s.product_id,
            s.variant_id or None,
            s.status,
            s.requested_by,
            s.created_at,
            s.expires_at,
            s.notified_at,
        )
        for s in rows.scalars()
    ]


async def erase_customer(session: AsyncSession, *, store_id: int, customer_id: int) -> int:
    result = await session.execute(
        delete(BackInStockSubscription).where(
            BackInStockSubscription.store_id == store_id,
            BackInStockSubscription.customer_id == customer_id,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
