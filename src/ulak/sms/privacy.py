"""KVKK/GDPR: the dev SMS inbox keeps whole texts; an erased customer's go."""

from __future__ import annotations

import re

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.sms.models import DevSms, ShortLink
from ulak.sms.service import TOKEN_LENGTH

SHORT_LINK = re.compile(rf"/s/([A-Za-z0-9]{{{TOKEN_LENGTH}}})\b")


async def erase_captured(session: AsyncSession, *, store_id: int, message_ids: list[int]) -> int:
    """The copies of the customer's messages (whatever number they went to)."""
    if not message_ids:
        return 0
    result = await session.execute(
        delete(DevSms).where(DevSms.store_id == store_id, DevSms.message_id.in_(message_ids))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def erase_links(session: AsyncSession, *, store_id: int, texts: list[str]) -> int:
    """The short links of the customer's SMS: a link's target may carry their data (a
    template that puts the email or a cart token in the URL)."""
    tokens = {token for text in texts for token in SHORT_LINK.findall(text)}
    if not tokens:
        return 0
    result = await session.execute(
        delete(ShortLink).where(ShortLink.store_id == store_id, ShortLink.token.in_(tokens))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
