"""Orders in bulk, for `ulak import`: history written as it was, with no event behind it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.db import insert_ignoring_conflicts, insert_rows, table_of
from ulak.orders.models import Order, OrderItem, OrderStatusChange

if TYPE_CHECKING:
    from ulak.customers.bulk import Profile

# Customers per query (see customers.bulk.CHUNK).
CHUNK = 5000


@dataclass(frozen=True)
class ImportedOrder:
    order_id: str
    number: str
    customer: Profile | None
    status: str
    total: Decimal
    currency: str
    placed_at: datetime
    # (status, when), oldest first: "placed" at placed_at, then what the export says.
    history: list[tuple[str, datetime]]
    items: list[dict[str, Any]] = field(default_factory=list)
    channel: str = "web"
    subtotal: Decimal | None = None
    discount: Decimal | None = None
    shipping: Decimal | None = None
    tax: Decimal | None = None
    discount_codes: list[str] = field(default_factory=list)
    cart_id: str | None = None
    shipping_address: dict[str, Any] | None = None
    payment_method: str | None = None
    order_url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


_ITEM_FIELDS = ("product_id", "variant_id", "sku", "title", "quantity", "price", "url", "image_url")


async def import_orders(
    session: AsyncSession,
    *,
    store_id: int,
    orders: Sequence[ImportedOrder],
    customer_ids: Sequence[int | None],
    now: datetime,
) -> list[ImportedOrder]:
    """Add the orders the store does not have yet (store × order id), each with its items
    and status history; one it has is left as it is. Returns the orders added."""
    if not orders:
        return []
    table = table_of(Order)
    statement = insert_ignoring_conflicts(session, table).returning(table.c.id, table.c.order_id)
    rows: dict[str, dict[str, Any]] = {}
    for order, customer_id in zip(orders, customer_ids, strict=True):
        # A file naming an order twice keeps its first.
        rows.setdefault(
            order.order_id,
            {
                "store_id": store_id,
                "customer_id": customer_id,
                "order_id": order.order_id,
                "number": order.number,
                "status": order.status,
                "channel": order.channel,
                "subtotal": order.subtotal,
                "discount": order.discount,
                "shipping": order.shipping,
                "tax": order.tax,
                "total": order.total,
                "currency": order.currency,
                "discount_codes": order.discount_codes,
                "cart_id": order.cart_id,
                "shipping_address": order.shipping_address,
                "payment_method": order.payment_method,
                "order_url": order.order_url,
                "data": order.data,
                "placed_at": order.placed_at,
                "updated_at": now,
            },
        )
    added = {
        order_id: id_ for id_, order_id in await session.execute(statement, list(rows.values()))
    }
    items: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    written: list[ImportedOrder] = []
    for order in orders:
        pk = added.pop(order.order_id, None)
        if pk is None:
            continue
        written.append(order)
        for position, item in enumerate(order.items):
            items.append(
                {"order_id": pk, "position": position, **{f: item.get(f) for f in _ITEM_FIELDS}}
            )
        for status, at in order.history:
            changes.append(
                {
                    "order_id": pk,
                    "status": status,
                    "occurred_at": at,
                    "event_id": None,
                    "note": "import",
                }
            )
    await insert_rows(session, OrderItem, items)
    await insert_rows(session, OrderStatusChange, changes)
    return written


async def order_times_of(
    session: AsyncSession, *, customer_ids: Iterable[int]
) -> dict[int, list[tuple[str, datetime]]]:
    """`order_times` of many customers at once: (order id, placed at), oldest first."""
    found: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
    wanted = sorted(set(customer_ids))
    for at in range(0, len(wanted), CHUNK):
        rows = await session.execute(
            select(Order.customer_id, Order.order_id, Order.placed_at)
            .where(Order.customer_id.in_(wanted[at : at + CHUNK]))
            .order_by(Order.customer_id, Order.placed_at, Order.id)
        )
        for customer_id, order_id, placed_at in rows:
            if customer_id is not None:
                found[customer_id].append((order_id, placed_at))
    return dict(found)
