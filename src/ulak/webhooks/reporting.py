"""The payloads of the events the event applier reports to webhooks, queued in the
transaction of the change (`queue.enqueue`). `message.sent`'s is built by the database
(`messages.service.sent_webhooks`) in the same shape: the data of the change and the
customer as `queue.customer_ref` names them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from ulak.coupons.models import Coupon
from ulak.customers.models import Customer
from ulak.reviews.schemas import ReviewSubmittedData
from ulak.surveys.schemas import SurveyAnsweredData
from ulak.webhooks.queue import customer_ref, enqueue


def _money(amount: Decimal | None) -> str | None:
    """Two decimals on both databases (PostgreSQL keeps NUMERIC's scale, SQLite does not)."""
    return None if amount is None else str(amount.quantize(Decimal("0.01")))


def _customer(customer: Customer) -> dict[str, str | None]:
    return customer_ref(customer.external_id, customer.email, customer.phone)


async def review_submitted(
    session: AsyncSession,
    *,
    store_id: int,
    event_id: int,
    review_id: int,
    data: ReviewSubmittedData,
    customer: Customer,
    occurred_at: datetime,
    now: datetime,
) -> None:
    await enqueue(
        session,
        store_id=store_id,
        event_type="review.submitted",
        event_id=f"evt_{event_id}",
        occurred_at=occurred_at,
        data={
            "review_id": review_id,
            "order_id": data.order_id,
            "product_id": data.product_id,
            "rating": data.rating,
            "title": data.title.strip(),
            "body": data.body.strip(),
            "display_name": data.display_name.strip(),
            "photos": len(data.photos),
            "customer": _customer(customer),
        },
        customer_id=customer.id,
        now=now,
    )


async def survey_answered(
    session: AsyncSession,
    *,
    store_id: int,
    event_id: int,
    data: SurveyAnsweredData,
    customer: Customer,
    occurred_at: datetime,
    now: datetime,
) -> None:
    await enqueue(
        session,
        store_id=store_id,
        event_type="survey.answered",
        event_id=f"evt_{event_id}",
        occurred_at=occurred_at,
        data={
            "order_id": data.order_id,
            "kind": data.kind,
            "score": data.score,
            "comment": data.comment,
            "customer": _customer(customer),
        },
        customer_id=customer.id,
        now=now,
    )


async def coupons_redeemed(
    session: AsyncSession,
    *,
    store_id: int,
    event_id: int,
    coupons: Sequence[Coupon],
    customer: Customer,
    occurred_at: datetime,
    now: datetime,
) -> None:
    """One `coupon.redeemed` per coupon the order used."""
    for coupon in coupons:
        await enqueue(
            session,
            store_id=store_id,
            event_type="coupon.redeemed",
            event_id=f"evt_{event_id}_coupon_{coupon.id}",
            occurred_at=occurred_at,
            data={
                "code": coupon.code,
                "order_id": coupon.order_id,
                "kind": coupon.kind,
                "amount": _money(coupon.amount),
                "currency": coupon.currency,
                "journey": coupon.journey_key,
                "customer": _customer(customer),
            },
            customer_id=customer.id,
            now=now,
        )
