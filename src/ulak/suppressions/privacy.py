"""KVKK/GDPR: the suppression list holds addresses. An export shows the customer's; an
erasure deletes them (and their soft-bounce counts): the address is personal data, and a
hard bounce to it, if she comes back, only suppresses it again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.suppressions.models import SoftBounce, Suppression


@dataclass(frozen=True)
class SuppressionExport:
    channel: str
    address: str
    reason: str
    detail: str
    at: datetime


def _addresses(email: str | None, phone: str | None) -> list[str]:
    return [a.lower() for a in (email, phone) if a]


async def export_addresses(
    session: AsyncSession, *, store_id: int, email: str | None, phone: str | None
) -> list[SuppressionExport]:
    addresses = _addresses(email, phone)
    if not addresses:
        return []
    rows = (
        await session.execute(
            select(Suppression)
            .where(Suppression.store_id == store_id, Suppression.address.in_(addresses))
            .order_by(Suppression.id)
        )
    ).scalars()
    return [SuppressionExport(r.channel, r.address, r.reason, r.detail, r.at) for r in rows]


async def erase_addresses(session: AsyncSession, *, store_id: int, addresses: list[str]) -> int:
    """Every address the customer had or was sent to (lower-cased as the list keeps them)."""
    addresses = sorted({a.lower() for a in addresses})
    if not addresses:
        return 0
    await session.execute(
        delete(SoftBounce).where(SoftBounce.store_id == store_id, SoftBounce.address.in_(addresses))
    )
    result = await session.execute(
        delete(Suppression).where(
            Suppression.store_id == store_id, Suppression.address.in_(addresses)
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
