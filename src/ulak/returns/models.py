from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, Money, UTCDateTime


class ReturnSettings(Base):
    """A store's return policy (`ulak returns settings`). No row: the defaults of
    `returns.service.DEFAULTS` (14 days, refund and exchange, no store credit)."""

    __tablename__ = "return_settings"

    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    # Days after delivery, counted in the customer's time zone: the last day is whole.
    window_days: Mapped[int] = mapped_column(Integer)
    # {"tr": ..., "en": ...}, or {"*": ...} for one text in every language.
    policy: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    offer_exchange: Mapped[bool] = mapped_column(Boolean)
    offer_store_credit: Mapped[bool] = mapped_column(Boolean)
    # Store credit is worth the returned items' value plus this percent.
    credit_bonus_percent: Mapped[int] = mapped_column(Integer)
    # [{"code": ..., "tr": ..., "en": ...}]; empty: the default reasons.
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReturnRequest(Base):
    """A customer's request to return items of one order, and where the shop has taken it.

    `reference` (like R-7KQ2-9XMD, random) is what the customer and the shop both see; no
    public URL carries a row id."""

    __tablename__ = "return_requests"
    __table_args__ = (
        UniqueConstraint("store_id", "reference"),
        # The shop's list, by status, newest first.
        Index("ix_return_requests_store_status", "store_id", "status", "id"),
        # What earlier requests of an order already cover.
        Index("ix_return_requests_order", "store_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    reference: Mapped[str] = mapped_column(String(20))
    order_id: Mapped[str] = mapped_column(String(200))
    # requested -> approved -> received -> refunded; rejected from any but refunded.
    status: Mapped[str] = mapped_column(String(16))
    # refund | exchange | store_credit
    resolution: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    # [{"line", "product_id", "variant_id", "sku", "title", "quantity", "price",
    #   "exchange_variant_id", "exchange_title"}]: as the order had them when asked.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # The returned items' value at the order's prices.
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    credit_bonus_percent: Mapped[int] = mapped_column(Integer, default=0)
    # What the shop said: instructions and label on approval, the reason of a rejection,
    # the amount refunded.
    instructions: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(2000))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    refunded_amount: Mapped[Decimal | None] = mapped_column(Money)
    # [{"status", "at", "note"}], oldest first.
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
