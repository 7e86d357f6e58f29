"""KVKK/GDPR: the coupons a customer was issued. They hold nothing personal but whose
they are, so an erasure keeps them (a redeemed code is part of an order's figures)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.coupons.models import Coupon


@dataclass(frozen=True)
class CouponExport:
    code: str
    status: str
    kind: str | None
    amount: str | None
    currency: str | None
    journey: str | None
    issued_at: datetime | None
    expires_at: datetime | None
    order_id: str | None
    redeemed_at: datetime | None


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[CouponExport]:
    rows = await session.execute(
        select(Coupon)
        .where(Coupon.store_id == store_id, Coupon.customer_id == customer_id)
        .order_by(Coupon.id)
    )
    return [
        CouponExport(
            c.code,
            c.status,
            c.kind,
            None if c.amount is None else str(c.amount),
            c.currency,
            c.journey_key,
            c.issued_at,
            c.expires_at,
            c.order_id,
            c.redeemed_at,
        )
        for c in rows.scalars()
    ]
