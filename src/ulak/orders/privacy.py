"""KVKK/GDPR: a customer's orders, carts and shipments, exported and (on erasure) kept
only as the anonymous rows revenue figures need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.customers.privacy import Personal
from ulak.orders.models import (
    Cart,
    Order,
    OrderItem,
    OrderStatusChange,
    Shipment,
    ShipmentCheckpoint,
)


@dataclass(frozen=True)
class ItemExport:
    product_id: str | None
    variant_id: str | None
    sku: str | None
    title: str
    quantity: int
    price: str


@dataclass(frozen=True)
class CheckpointExport:
    status: str
    location: str | None
    message: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class ShipmentExport:
    shipment_id: str
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    status: str
    location: str | None
    message: str | None
    estimated_delivery: str | None
    updated_at: datetime
    checkpoints: list[CheckpointExport]


@dataclass(frozen=True)
class StatusChangeExport:
    status: str
    occurred_at: datetime
    note: str | None


@dataclass(frozen=True)
class OrderExport:
    order_id: str
    number: str | None
    status: str
    channel: str
    total: str | None
    currency: str | None
    discount_codes: list[str]
    shipping_address: dict[str, Any] | None
    payment_method: str | None
    data: dict[str, Any]
    placed_at: datetime
    items: list[ItemExport]
    status_history: list[StatusChangeExport]
    shipments: list[ShipmentExport]


@dataclass(frozen=True)
class CartExport:
    cart_id: str
    status: str
    items: list[dict[str, Any]]
    total: str | None
    currency: str | None
    recovery_url: str | None
    updated_at: datetime


def _money(value: Any) -> str | None:
    return None if value is None else str(value)


async def _orders(session: AsyncSession, store_id: int, customer_id: int) -> list[Order]:
    return list(
        (
            await session.execute(
                select(Order)
                .where(Order.store_id == store_id, Order.customer_id == customer_id)
                .order_by(Order.placed_at, Order.id)
            )
        ).scalars()
    )


async def _by_order(
    session: AsyncSession, model: Any, ids: list[int], *order: Any
) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {id_: [] for id_ in ids}
    if ids:
        for row in (
            await session.execute(select(model).where(model.order_id.in_(ids)).order_by(*order))
        ).scalars():
            out[row.order_id].append(row)
    return out


async def _checkpoints(
    session: AsyncSession, shipment_ids: list[int]
) -> dict[int, list[ShipmentCheckpoint]]:
    out: dict[int, list[ShipmentCheckpoint]] = {}
    if shipment_ids:
        rows = await session.execute(
            select(ShipmentCheckpoint)
            .where(ShipmentCheckpoint.shipment_id.in_(shipment_ids))
            .order_by(ShipmentCheckpoint.occurred_at, ShipmentCheckpoint.id)
        )
        for row in rows.scalars():
            out.setdefault(row.shipment_id, []).append(row)
    return out


async def export_orders(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[OrderExport]:
    orders = await _orders(session, store_id, customer_id)
    ids = [o.id for o in orders]
    items = await _by_order(session, OrderItem, ids, OrderItem.position)
    history = await _by_order(
        session, OrderStatusChange, ids, OrderStatusChange.occurred_at, OrderStatusChange.id
    )
    shipments = await _by_order(session, Shipment, ids, Shipment.id)
    checkpoints = await _checkpoints(session, [s.id for ss in shipments.values() for s in ss])
    return [
        OrderExport(
            order_id=o.order_id,
            number=o.number,
            status=o.status,
            channel=o.channel,
            total=_money(o.total),
            currency=o.currency,
            discount_codes=o.discount_codes,
            shipping_address=o.shipping_address,
            payment_method=o.payment_method,
            data=o.data,
            placed_at=o.placed_at,
            items=[
                ItemExport(i.product_id, i.variant_id, i.sku, i.title, i.quantity, str(i.price))
                for i in items[o.id]
            ],
            status_history=[
                StatusChangeExport(h.status, h.occurred_at, h.note) for h in history[o.id]
            ],
            shipments=[
                ShipmentExport(
                    s.shipment_id,
                    s.carrier,
                    s.tracking_number,
                    s.tracking_url,
                    s.status,
                    s.location,
                    s.message,
                    s.estimated_delivery,
                    s.updated_at,
                    [
                        CheckpointExport(c.status, c.location, c.message, c.occurred_at)
                        for c in checkpoints.get(s.id, [])
                    ],
                )
                for s in shipments[o.id]
            ],
        )
        for o in orders
    ]


async def export_carts(
    session: AsyncSession, *, store_id: int, customer_id: int
) -> list[CartExport]:
    carts = (
        await session.execute(
            select(Cart)
            .where(Cart.store_id == store_id, Cart.customer_id == customer_id)
            .order_by(Cart.id)
        )
    ).scalars()
    return [
        CartExport(
            c.cart_id, c.status, c.items, _money(c.total), c.currency, c.recovery_url, c.updated_at
        )
        for c in carts
    ]


@dataclass(frozen=True)
class OrdersErased:
    orders: int
    carts: int


async def erase_customer(
    session: AsyncSession, *, store_id: int, customer_id: int, personal: Personal
) -> OrdersErased:
    """Orders stay (items, totals, status: what revenue figures count) without the address,
    the shop's extra fields or free text; their shipments lose where they were and what the
    carrier said; carts go."""
    orders = await _orders(session, store_id, customer_id)
    ids = [o.id for o in orders]
    for order in orders:
        order.shipping_address = None
        order.data = {}
    for changes in (
        await _by_order(session, OrderStatusChange, ids, OrderStatusChange.id)
    ).values():
        for change in changes:
            change.note = personal.redact(change.note)
    shipment_ids = []
    for shipments in (await _by_order(session, Shipment, ids, Shipment.id)).values():
        for shipment in shipments:
            shipment.location = shipment.message = None
            shipment.tracking_number = shipment.tracking_url = None
            shipment_ids.append(shipment.id)
    # Their history keeps each status and its time, not where or what the carrier said.
    if shipment_ids:
        await session.execute(
            update(ShipmentCheckpoint)
            .where(ShipmentCheckpoint.shipment_id.in_(shipment_ids))
            .values(location=None, message=None)
        )
    carts = await session.execute(
        delete(Cart).where(Cart.store_id == store_id, Cart.customer_id == customer_id)
    )
    await session.flush()
    return OrdersErased(orders=len(orders), carts=carts.rowcount or 0)  # type: ignore[attr-defined]
