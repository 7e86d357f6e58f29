"""KVKK/GDPR: the dev inbox keeps whole mails; an erased customer's go."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.channels.models import DevInboxMessage


async def erase_captured(session: AsyncSession, *, message_ids: list[str]) -> int:
    if not message_ids:
        return 0
    result = await session.execute(
        delete(DevInboxMessage).where(DevInboxMessage.message_id.in_(message_ids))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
