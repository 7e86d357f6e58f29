"""KVKK/GDPR: a customer's topic choices and the requests they made from the preference
page. An erasure deletes the choices; the requests stay (a reference to the customer id,
the kind and the moment, nothing that identifies them): the shop's proof that it answered.
The shop's alerts about those requests name the customer: `alert_ids` gives them to the
erasure, which empties them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.preferences.models import PrivacyRequest, TopicPreference


@dataclass(frozen=True)
class TopicExport:
    channel: str
    topic: str
    subscribed: bool
    source: str
    updated_at: datetime


@dataclass(frozen=True)
class PrivacyRequestExport:
    kind: str
    source: str
    requested_at: datetime


async def export_topics(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[TopicExport]:
    rows = await session.scalars(
        select(TopicPreference)
        .where(TopicPreference.store_id == store_id, TopicPreference.customer_id == customer_id)
        .order_by(TopicPreference.channel, TopicPreference.topic)
    )
    return [TopicExport(r.channel, r.topic, r.subscribed, r.source, r.updated_at) for r in rows]


async def export_requests(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[PrivacyRequestExport]:
    rows = await session.scalars(
        select(PrivacyRequest)
        .where(PrivacyRequest.store_id == store_id, PrivacyRequest.customer_id == customer_id)
        .order_by(PrivacyRequest.id)
    )
    return [PrivacyRequestExport(r.kind, r.source, r.requested_at) for r in rows]


async def erase_customer(session: AsyncSession, *, store_id: int, customer_id: int) -> int:
    result = await session.execute(
        delete(TopicPreference).where(
            TopicPreference.store_id == store_id, TopicPreference.customer_id == customer_id
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def alert_ids(session: AsyncSession, *, store_id: int, customer_ids: list[int]) -> list[int]:
    """The outbox ids of the shop's alerts about the requests of these profiles (a merge
    moves an absorbed profile's requests to the survivor, so the family finds them all)."""
    if not customer_ids:
        return []
    rows = await session.scalars(
        select(PrivacyRequest.alert_id).where(
            PrivacyRequest.store_id == store_id,
            PrivacyRequest.customer_id.in_(customer_ids),
            PrivacyRequest.alert_id.is_not(None),
        )
    )
    return sorted({int(i) for i in rows if i is not None})
