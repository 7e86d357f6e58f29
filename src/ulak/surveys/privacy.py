"""KVKK/GDPR: a customer's survey answers. An erasure empties each comment (free text the
customer wrote) and keeps the score, as anonymous as the order it is about, so the
store's NPS/CSAT history does not change."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.surveys.models import SurveyAnswer


@dataclass(frozen=True)
class SurveyAnswerExport:
    order_id: str
    kind: str
    score: int
    comment: str | None
    answered_at: datetime


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[SurveyAnswerExport]:
    rows = await session.execute(
        select(SurveyAnswer)
        .where(SurveyAnswer.store_id == store_id, SurveyAnswer.customer_id == customer_id)
        .order_by(SurveyAnswer.id)
    )
    return [
        SurveyAnswerExport(a.order_id, a.kind, a.score, a.comment, a.answered_at)
        for a in rows.scalars()
    ]


@dataclass(frozen=True)
class SurveysErased:
    comments: int
    # The outbox ids of the shop's alerts that quoted the customer, for the messages
    # feature to empty.
    alert_ids: list[int]


async def erase_customer(
    session: AsyncSession, *, store_id: int, customer_ids: Iterable[int]
) -> SurveysErased:
    """Empty the comments of the customer's answers (their merged profiles' too), and
    name the shop's alerts that quoted them."""
    mine = (
        SurveyAnswer.store_id == store_id,
        SurveyAnswer.customer_id.in_(list(customer_ids)),
    )
    alerts = [
        int(i)
        for ids in (await session.execute(select(SurveyAnswer.alerts).where(*mine))).scalars()
        for i in ids
    ]
    result = await session.execute(
        update(SurveyAnswer)
        .where(*mine)
        .values(comment=None, alerts=[])
        .execution_options(synchronize_session=False)
    )
    return SurveysErased(int(getattr(result, "rowcount", 0) or 0), sorted(alerts))
