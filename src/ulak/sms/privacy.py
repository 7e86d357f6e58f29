"""KVKK/GDPR: the dev SMS inbox keeps whole texts; an erased customer's go."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.sms.models import DevSms


async def erase_captured(session: AsyncSession, *, store_id: int, phone: str | None) -> int:
    if not phone:
        return 0
    result = await session.execute(
        delete(DevSms).where(DevSms.store_id == store_id, DevSms.to == phone)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
