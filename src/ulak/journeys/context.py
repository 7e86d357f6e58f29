"""What journey expressions and templates can read about a customer and their order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.customers.models import Customer
from ulak.customers.service import customer_view
from ulak.orders.models import Shipment
from ulak.orders.service import (
    cart_view,
    find_cart,
    find_order,
    find_shipment,
    order_view,
    shipment_view,
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
    order = await find_order(session, store_id=store_id, order_id=order_id) if order_id else None
    if order is not None:
        context["order"] = await order_view(session, order)
    if cart_id:
        cart = await find_cart(session, store_id=store_id, cart_id=cart_id)
        if cart is not None:
            context["cart"] = cart_view(cart)
    shipment = None
    if shipment_id:
        shipment = await find_shipment(session, store_id=store_id, shipment_id=shipment_id)
    elif order is not None:
        # The order's latest shipment, for messages about an order with one parcel.
        shipment = (
            await session.execute(
                select(Shipment)
                .where(Shipment.order_id == order.id)
                .order_by(Shipment.updated_at.desc(), Shipment.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    if shipment is not None:
        context["shipment"] = shipment_view(shipment)
    return context
