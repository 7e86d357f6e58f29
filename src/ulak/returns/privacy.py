"""KVKK/GDPR: a customer's return requests. The export shows each as the shop sees it; an
erasure keeps the requests (what was returned and refunded is part of the store's
figures) without the free text: her comment, and what the shop wrote to her (the
instructions, the label, a rejection's reason), which may name her or her address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.customers.privacy import Personal, family
from ulak.returns.models import ReturnRequest


@dataclass(frozen=True)
class ReturnExport:
    reference: str
    order_id: str
    status: str
    resolution: str
    reason: str
    comment: str | None
    items: list[dict[str, Any]]
    amount: str
    currency: str
    instructions: str | None
    label: str | None
    rejection_reason: str | None
    refunded_amount: str | None
    history: list[dict[str, Any]]
    created_at: datetime


async def _rows(session: AsyncSession, store_id: int, customer_id: int) -> list[ReturnRequest]:
    # A merge leaves a return on the absorbed profile's id: the family's are hers.
    ids = await family(session, customer_id=customer_id)
    rows = await session.execute(
        select(ReturnRequest)
        .where(ReturnRequest.store_id == store_id, ReturnRequest.customer_id.in_(ids))
        .order_by(ReturnRequest.id)
    )
    return list(rows.scalars())


async def export_customer(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[ReturnExport]:
    return [
        ReturnExport(
            r.reference,
            r.order_id,
            r.status,
            r.resolution,
            r.reason,
            r.comment,
            list(r.items),
            str(r.amount),
            r.currency,
            r.instructions,
            r.label,
            r.rejection_reason,
            None if r.refunded_amount is None else str(r.refunded_amount),
            list(r.history),
            r.created_at,
        )
        for r in await _rows(session, store_id, customer_id)
    ]


async def erase_customer(
    session: AsyncSession, *, store_id: int, customer_id: int, personal: Personal
) -> int:
    """Empty the free text of the customer's returns; returns how many she had."""
    rows = await _rows(session, store_id, customer_id)
    for row in rows:
        row.comment = row.instructions = row.label = None
        row.rejection_reason = None if row.rejection_reason is None else "(erased)"
        row.history = [{**step, "note": personal.redact(step.get("note"))} for step in row.history]
    await session.flush()
    return len(rows)
