"""KVKK/GDPR: the webhook deliveries about a customer. Their payloads name the customer
(the shop's id, email, phone, what a review or survey comment said), so an erasure
deletes them, delivered or not: a pending one is then never sent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.webhooks.models import WebhookDelivery


@dataclass(frozen=True)
class WebhookDeliveryExport:
    endpoint_id: int
    event_type: str
    event_id: str
    status: str
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[WebhookDeliveryExport]:
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.store_id == store_id, WebhookDelivery.customer_id == customer_id)
        .order_by(WebhookDelivery.id)
    )
    return [
        WebhookDeliveryExport(
            d.endpoint_id,
            d.event_type,
            d.event_id,
            d.status,
            d.payload,
            d.created_at,
            d.delivered_at,
        )
        for d in rows
    ]


async def erase_customer(
    session: AsyncSession, *, store_id: int, customer_ids: Iterable[int]
) -> int:
    """Delete the deliveries about the customer (and their merged profiles)."""
    result = await session.execute(
        delete(WebhookDelivery)
        .where(
            WebhookDelivery.store_id == store_id,
            WebhookDelivery.customer_id.in_(list(customer_ids)),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
