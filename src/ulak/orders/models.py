from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, Money, UTCDateTime


class Cart(Base):
    __tablename__ = "carts"
    __table_args__ = (UniqueConstraint("store_id", "cart_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    cart_id: Mapped[str] = mapped_column(String(200))
    # open -> checkout -> ordered
    status: Mapped[str] = mapped_column(String(16), default="open")
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    total: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    recovery_url: Mapped[str | None] = mapped_column(String(2000))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("store_id", "order_id"),
        # Customer profile: a customer's orders, newest first.
        Index("ix_orders_customer", "customer_id", "placed_at"),
        # A store's latest orders: its best sellers are counted over them.
        Index("ix_orders_store_placed", "store_id", "placed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    order_id: Mapped[str] = mapped_column(String(200))
    number: Mapped[str | None] = mapped_column(String(100))
    # placed, paid, preparing, shipped, delivered, cancelled, refunded
    status: Mapped[str] = mapped_column(String(32), default="placed")
    channel: Mapped[str] = mapped_column(String(32), default="web")
    subtotal: Mapped[Decimal | None] = mapped_column(Money)
    discount: Mapped[Decimal | None] = mapped_column(Money)
    shipping: Mapped[Decimal | None] = mapped_column(Money)
    tax: Mapped[Decimal | None] = mapped_column(Money)
    total: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    discount_codes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    cart_id: Mapped[str | None] = mapped_column(String(200))
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    payment_method: Mapped[str | None] = mapped_column(String(100))
    # The order's page on the shop (the emails' "view your order" button).
    order_url: Mapped[str | None] = mapped_column(String(2000))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        # The latest orders of a product, for what is bought together with it.
        Index("ix_order_items_product", "product_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[str | None] = mapped_column(String(200))
    variant_id: Mapped[str | None] = mapped_column(String(200))
    sku: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    url: Mapped[str | None] = mapped_column(String(2000))
    image_url: Mapped[str | None] = mapped_column(String(2000))


class OrderStatusChange(Base):
    __tablename__ = "order_status_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_id: Mapped[int | None] = mapped_column(BigId)
    note: Mapped[str | None] = mapped_column(String(500))


class Shipment(Base):
    __tablename__ = "shipments"
    __table_args__ = (UniqueConstraint("store_id", "shipment_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    shipment_id: Mapped[str] = mapped_column(String(200))
    carrier: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str | None] = mapped_column(String(200))
    tracking_url: Mapped[str | None] = mapped_column(String(2000))
    # pending, info_received, in_transit, out_for_delivery, attempt_failed,
    # available_for_pickup, delivered, exception, returned_to_sender
    status: Mapped[str] = mapped_column(String(32), default="info_received")
    location: Mapped[str | None] = mapped_column(String(300))
    message: Mapped[str | None] = mapped_column(String(1000))
    estimated_delivery: Mapped[str | None] = mapped_column(String(40))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ShipmentCheckpoint(Base):
    """One carrier status of a parcel, with when and where the carrier saw it: the
    tracking page's timeline. A `shipment.updated` adds one; the shipment row keeps only
    the latest."""

    __tablename__ = "shipment_checkpoints"
    __table_args__ = (
        # A parcel's checkpoints in order (the tracking page reads them per order).
        Index("ix_shipment_checkpoints_shipment", "shipment_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(32))
    location: Mapped[str | None] = mapped_column(String(300))
    message: Mapped[str | None] = mapped_column(String(1000))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
