"""Back-in-stock subscriptions: the shop asks for a customer (or its product page does),
lists them, and withdraws one. Requests become events through the inbox (the worker
creates the subscription), so the API process writes only its own inbox."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from ulak.catalog.service import (
    find_product,
    get_subscription,
    list_subscriptions,
    requester,
    subscription_status,
    subscriptions_today,
)
from ulak.clock import Clock
from ulak.customers.service import find_customer
from ulak.errors import Conflict, UlakError
from ulak.events.inbox import Inbox
from ulak.events.schemas import Accepted, CustomerIn, EventIn, Id
from ulak.web.deps import AppDatabase, CurrentStore

router = APIRouter(prefix="/v1", tags=["back in stock"])


class TooManyRequests(UlakError):
    status_code = 429
    code = "too_many_requests"


class BackInStockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: CustomerIn
    product_id: Id
    # None: any variant of the product.
    variant_id: Id | None = None
    # The shop's idempotency key for this request, as for events.
    id: str | None = Field(default=None, max_length=200)


class BackInStockAccepted(BaseModel):
    # The event that carries the request to the worker.
    event: str
    duplicate: bool


class SubscriptionOut(BaseModel):
    id: int
    customer_id: int
    product_id: str
    variant_id: str | None
    status: str  # waiting | notified | expired | cancelled
    created_at: datetime
    expires_at: datetime
    notified_at: datetime | None


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


async def _accept(
    request: Request, store_id: int, event: EventIn, customer_id: int | None
) -> Accepted:
    inbox: Inbox = request.app.state.inbox
    (answer,) = await inbox.accept(store_id, [(0, event)], customer_id=customer_id)
    if not isinstance(answer, Accepted):
        raise Conflict(f"id {event.id!r} was used before for a different request")
    return answer


@router.post(
    "/back-in-stock",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BackInStockAccepted,
    summary="Tell a customer when a product is back in stock",
)
async def request_back_in_stock(
    body: BackInStockRequest, request: Request, store: CurrentStore, database: AppDatabase
) -> BackInStockAccepted:
    """404 for a product (or variant) the store never sent; 429 past the store's daily
    limit of subscriptions per email. Asking again for the same variant renews the
    subscription (90 days). Answered once the request is committed; the worker then
    creates the subscription."""
    now = _clock(request).now()
    async with database.read() as session:
        await find_product(
            session, store_id=store.id, product_id=body.product_id, variant_id=body.variant_id
        )
        who = requester(body.customer.email, body.customer.id, 0)
        if (
            await subscriptions_today(session, store_id=store.id, requested_by=who, now=now)
            >= store.back_in_stock_daily_limit
        ):
            raise TooManyRequests(
                f"{store.back_in_stock_daily_limit} back-in-stock subscriptions a day is this "
                "store's limit for one customer; try again tomorrow"
            )
    event = EventIn(
        id=body.id,
        type="back_in_stock.requested",
        customer=body.customer,
        data={"product_id": body.product_id, "variant_id": body.variant_id},
    )
    answer = await _accept(request, store.id, event, None)
    return BackInStockAccepted(event=answer.key, duplicate=answer.duplicate)


@router.get(
    "/back-in-stock",
    response_model=list[SubscriptionOut],
    summary="A customer's or a product's back-in-stock subscriptions",
)
async def list_back_in_stock(
    request: Request,
    store: CurrentStore,
    database: AppDatabase,
    # No NUL: PostgreSQL text cannot hold one, so such a value names nothing.
    customer: str | None = Query(
        default=None,
        max_length=320,
        pattern=r"^[^\x00]*$",
        description="The shop's customer id or an email",
    ),
    product_id: str | None = Query(default=None, max_length=200, pattern=r"^[^\x00]*$"),
) -> list[SubscriptionOut]:
    now = _clock(request).now()
    async with database.read() as session:
        ids = None
        if customer is not None:
            ids = [(await find_customer(session, store_id=store.id, ref=customer)).id]
        rows = await list_subscriptions(
            session, store_id=store.id, customer_ids=ids, product_id=product_id
        )
        return [
            SubscriptionOut(
                id=row.id,
                customer_id=row.customer_id,
                product_id=row.product_id,
                variant_id=row.variant_id or None,
                status=subscription_status(row, now),
                created_at=row.created_at,
                expires_at=row.expires_at,
                notified_at=row.notified_at,
            )
            for row in rows
        ]


@router.delete(
    "/back-in-stock/{subscription_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BackInStockAccepted,
    summary="Withdraw a back-in-stock subscription",
)
async def cancel_back_in_stock(
    subscription_id: int, request: Request, store: CurrentStore, database: AppDatabase
) -> BackInStockAccepted:
    async with database.read() as session:
        # An id no database column can hold names no subscription (asking would overflow).
        if not 0 < subscription_id < 2**63:
            subscription_id = 0
        row = await get_subscription(session, store_id=store.id, subscription_id=subscription_id)
        customer_id, product_id, variant_id = row.customer_id, row.product_id, row.variant_id
    event = EventIn(
        type="back_in_stock.cancelled",
        data={"product_id": product_id, "variant_id": variant_id or None},
    )
    answer = await _accept(request, store.id, event, customer_id)
    return BackInStockAccepted(event=answer.key, duplicate=answer.duplicate)
