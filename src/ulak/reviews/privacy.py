"""KVKK/GDPR: a customer's reviews (what they wrote, the name they showed, their photos),
exported and, on erasure, deleted with their photos: an erased customer's words and
pictures are no longer published. The store's average loses them too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.reviews.models import Review, ReviewPhoto


@dataclass(frozen=True)
class ReviewExport:
    order_id: str
    product_id: str
    rating: int
    title: str
    body: str
    display_name: str
    quote_ok: bool
    status: str
    submitted_at: datetime
    photos: int
    reply: str | None


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[ReviewExport]:
    photos = (
        select(func.count())
        .where(ReviewPhoto.review_id == Review.id)
        .correlate(Review)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Review, photos)
        .where(
            Review.store_id == store_id, Review.customer_id == customer_id
        )  # ix_reviews_customer
        .order_by(Review.submitted_at, Review.id)
    )
    return [
        ReviewExport(
            r.order_id,
            r.product_id,
            r.rating,
            r.title,
            r.body,
            r.display_name,
            r.quote_ok,
            r.status,
            r.submitted_at,
            int(count),
            r.reply,
        )
        for r, count in rows.all()
    ]


async def erase_customer(session: AsyncSession, *, store_id: int, customer_id: int) -> int:
    ids = list(
        (
            await session.execute(
                select(Review.id).where(
                    Review.store_id == store_id, Review.customer_id == customer_id
                )
            )
        ).scalars()
    )
    if not ids:
        return 0
    await session.execute(delete(ReviewPhoto).where(ReviewPhoto.review_id.in_(ids)))
    await session.execute(delete(Review).where(Review.id.in_(ids)))
    return len(ids)
