from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, Money, UTCDateTime

# Written out so the planner matches the partial index (see journeys.models.IS_LIVE).
IS_AVAILABLE = text("coupons.status = 'available'")


class CouponTemplate(Base):
    """What a store's coupons of one kind are worth, and where their codes come from."""

    __tablename__ = "coupon_templates"
    __table_args__ = (UniqueConstraint("store_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # What a journey's `issue_coupon` names: welcome, cart, birthday, win-back, ...
    key: Mapped[str] = mapped_column(String(50))
    # percent: `amount` percent off; fixed: `amount` off, in the store's currency.
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money)
    minimum_order: Mapped[Decimal | None] = mapped_column(Money)
    validity_days: Mapped[int] = mapped_column(Integer)
    # generated: ulak makes each code (prefix + random); pool: codes the shop imported,
    # because its checkout only accepts codes it created itself.
    source: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(20), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Coupon(Base):
    """One code: waiting in a pool, issued to a customer, or redeemed by an order. Its
    value is fixed when it is issued, so a later change of its template changes no code
    a customer already has."""

    __tablename__ = "coupons"
    __table_args__ = (
        # A code is one coupon of its store, whatever the case it is typed in.
        UniqueConstraint("store_id", "code_key"),
        # An issue step issues at most one coupon; the step runner's lookup of the coupon
        # an enrollment was issued reads it too.
        UniqueConstraint("enrollment_id", "step"),
        # Issuing from a pool: the oldest code still available of a template.
        Index(
            "ix_coupons_available",
            "template_id",
            "id",
            postgresql_where=text("status = 'available'"),
            sqlite_where=text("status = 'available'"),
        ),
        # A customer merge moves a customer's coupons.
        Index("ix_coupons_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    # As the customer sees it and the shop's checkout knows it.
    code: Mapped[str] = mapped_column(String(64))
    # The code upper-cased: orders report codes in whatever case the customer typed.
    code_key: Mapped[str] = mapped_column(String(64))
    # available (in a pool) -> issued -> redeemed
    status: Mapped[str] = mapped_column(String(16))
    # The value as issued (None while a pool code waits).
    kind: Mapped[str | None] = mapped_column(String(16))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    minimum_order: Mapped[Decimal | None] = mapped_column(Money)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    # The journey step that issued it. The message that showed it is the enrollment's first
    # to the customer after that step (`service.find_coupon`): nothing is written per send.
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="SET NULL")
    )
    step: Mapped[int | None] = mapped_column(Integer)
    journey_key: Mapped[str | None] = mapped_column(String(100))
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The shop's order that used it.
    order_id: Mapped[str | None] = mapped_column(String(200))
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
