from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, Money, UTCDateTime


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("store_id", "product_id", "variant_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    product_id: Mapped[str] = mapped_column(String(200))
    # "" for the product itself when the shop has no variants.
    variant_id: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str | None] = mapped_column(String(500))
    url: Mapped[str | None] = mapped_column(String(2000))
    image_url: Mapped[str | None] = mapped_column(String(2000))
    price: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    inventory: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # How to use it, from `product.updated`: shown after delivery (`tips` in a message's
    # context); a product without its own falls back to its store's text per tag.
    tips: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=sql_text("'[]'"))
    replenish_days: Mapped[int | None] = mapped_column(Integer)
    # How many times this variant came back from none in stock: a restock's number.
    restocks: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TagTip(Base):
    """A store's usage tip for every product with a tag (`ulak catalog tips`), for the
    products that bring no tips of their own."""

    __tablename__ = "tag_tips"
    __table_args__ = (UniqueConstraint("store_id", "tag"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BackInStockSubscription(Base):
    """A customer who asked to hear when a product (or one variant of it) is back.

    One per customer and variant (`variant_id` "" for any variant of the product): asking
    again renews it. `waiting` until a restock tells it (`notified`, with the restock's
    number) or it runs out (`expires_at`; read as expired, no sweep needed).
    """

    __tablename__ = "back_in_stock_subscriptions"
    __table_args__ = (
        # Named: the convention's name would pass PostgreSQL's 63 characters.
        UniqueConstraint(
            "store_id",
            "customer_id",
            "product_id",
            "variant_id",
            name="uq_back_in_stock_customer_variant",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[str] = mapped_column(String(200))
    variant_id: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    # Who asked, for the per-day limit: the email given, else the shop's customer id.
    requested_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which restock of the variant told it (products.restocks at the time).
    restock: Mapped[int | None] = mapped_column(Integer)


# The restock reads a variant's waiting subscriptions in the order they were made.
Index(
    "ix_back_in_stock_waiting",
    BackInStockSubscription.store_id,
    BackInStockSubscription.product_id,
    BackInStockSubscription.variant_id,
    BackInStockSubscription.created_at,
    sqlite_where=BackInStockSubscription.status == "waiting",
    postgresql_where=BackInStockSubscription.status == "waiting",
)
# The per-day limit counts a requester's recent subscriptions.
Index(
    "ix_back_in_stock_requested_by",
    BackInStockSubscription.store_id,
    BackInStockSubscription.requested_by,
    BackInStockSubscription.created_at,
)
