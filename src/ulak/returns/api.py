"""The shop's view of its returns: `GET /v1/returns` and `GET /v1/returns/{reference}`.
The shop moves a return on with `return.updated` events (`POST /v1/events`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ulak.returns.service import find_return, list_returns, policy_of, return_view
from ulak.web.deps import AppDatabase, CurrentStore

router = APIRouter(prefix="/v1", tags=["returns"])


class ReturnItemOut(BaseModel):
    # The order's line (0 first), as the order listed it.
    line: int
    product_id: str | None
    variant_id: str | None
    sku: str | None
    title: str
    quantity: int
    price: str
    exchange_variant_id: str | None
    exchange_title: str | None


class ReturnStep(BaseModel):
    status: str
    at: datetime
    note: str | None


class ReturnOut(BaseModel):
    # What the customer saw on the page and in her emails, like R-7KQ2-9XMD.
    reference: str
    order_id: str
    status: Literal["requested", "approved", "received", "refunded", "rejected"]
    resolution: Literal["refund", "exchange", "store_credit"]
    reason: str
    reason_text: str
    comment: str | None
    items: list[ReturnItemOut]
    # The items' value at the order's prices (decimal string).
    amount: str
    currency: str
    credit_bonus_percent: int
    # For store credit: the amount with the store's bonus.
    credit_amount: str | None
    instructions: str | None
    label: str | None
    label_url: str | None
    rejection_reason: str | None
    refunded_amount: str | None
    history: list[ReturnStep]
    created_at: datetime
    updated_at: datetime


def _out(view: dict[str, Any]) -> ReturnOut:
    return ReturnOut.model_validate(view)


@router.get("/returns", response_model=list[ReturnOut], summary="The store's return requests")
async def get_returns(
    store: CurrentStore,
    database: AppDatabase,
    status: Literal["requested", "approved", "received", "refunded", "rejected"] | None = None,
    order_id: str | None = Query(default=None, max_length=200, pattern=r"^[^\x00]*$"),
    limit: int = Query(default=100, ge=1, le=500),
) -> list[ReturnOut]:
    """Newest first; `status` and `order_id` narrow the list."""
    async with database.read() as session:
        policy = await policy_of(session, store_id=store.id)
        rows = await list_returns(
            session, store_id=store.id, status=status, order_id=order_id, limit=limit
        )
        return [_out(return_view(row, policy=policy, locale=store.locale)) for row in rows]


@router.get("/returns/{reference}", response_model=ReturnOut, summary="One return request")
async def get_return(reference: str, store: CurrentStore, database: AppDatabase) -> ReturnOut:
    """By its reference (any case); another store's reference is not found."""
    async with database.read() as session:
        policy = await policy_of(session, store_id=store.id)
        row = await find_return(session, store_id=store.id, reference=reference.upper()[:20])
        return _out(return_view(row, policy=policy, locale=store.locale))
