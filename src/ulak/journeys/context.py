"""What journey expressions and templates can read about a customer and their order."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ulak.customers.models import Customer
from ulak.customers.service import customer_view
from ulak.db import Note, notes
from ulak.orders.service import (
    cart_view,
    find_cart,
    find_shipment,
    order_views,
    shipment_view,
)

# The step runner's batch of orders, loaded at once (see `prefetch_orders`).
ORDER_VIEWS: Note[dict[tuple[int, str], tuple[dict[str, Any], dict[str, Any] | None]]] = Note(
    "journeys.order_views", dict
)


async def build_context(
    session: AsyncSession,
    *,
    store_id: int,
    customer: Customer,
    order_id: str | None,
    cart_id: str | None,
    shipment_id: str | None,
) -> dict[str, Any]:
    context: dict[str, Any] = {"customer": customer_view(customer)}
    latest = None
    if order_id:
        key = (store_id, order_id)
        views = notes(session)(ORDER_VIEWS)  # see prefetch_orders
        if key not in views:
            views = await order_views(session, {key})
        if key in views:
            context["order"], latest = views[key]
    if cart_id:
        cart = await find_cart(session, store_id=store_id, cart_id=cart_id)
        if cart is not None:
            context["cart"] = cart_view(cart)
    if shipment_id:
        shipment = await find_shipment(session, store_id=store_id, shipment_id=shipment_id)
        if shipment is not None:
            context["shipment"] = shipment_view(shipment)
    elif latest is not None:
        # The order's latest shipment, for messages about an order with one parcel.
        context["shipment"] = latest
    return context


async def prefetch_orders(session: AsyncSession, keys: set[tuple[int, str]]) -> None:
    """Load the views of a batch's orders at once, for `build_context` in the rest of the
    transaction. Only for work that does not change orders (the step runner)."""
    notes(session)(ORDER_VIEWS).update(await order_views(session, keys))
