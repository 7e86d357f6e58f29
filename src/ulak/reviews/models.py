from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, UTCDateTime


class ReviewSettings(Base):
    """A store's review settings (`ulak reviews settings`). No row: the defaults below."""

    __tablename__ = "review_settings"

    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    # On: a review waits for `ulak reviews approve` (or the API) before it is shown.
    moderate: Mapped[bool] = mapped_column(Boolean, default=False)
    # Days after delivery before the review request; per product tag, longer or shorter
    # (a mattress is judged after weeks, a T-shirt after a wash). The order's longest wins.
    delay_days: Mapped[int] = mapped_column(Integer, default=7)
    tag_delays: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Review(Base):
    """A verified buyer's review of one product of one order: the order's link proves the
    purchase. A second submission for the same order and product replaces the first."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("store_id", "order_id", "product_id"),
        # The public list of a product (and of a store), newest first.
        Index("ix_reviews_published", "store_id", "status", "product_id", "published_at"),
        # A merge or an erasure finds a customer's reviews.
        Index("ix_reviews_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    order_id: Mapped[str] = mapped_column(String(200))
    product_id: Mapped[str] = mapped_column(String(200))
    # The product's title as the order named it, for the moderation list and JSON-LD.
    product_title: Mapped[str | None] = mapped_column(String(500))
    rating: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    # The name shown with the review ("Ayşe Y."), as the customer left it.
    display_name: Mapped[str] = mapped_column(String(100), default="")
    # The customer allowed the shop to quote it in its emails (`testimonials`).
    quote_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    # published | pending (the store moderates) | rejected
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The applied review.submitted event it came from (its photos' tokens replace the bytes).
    event_id: Mapped[int | None] = mapped_column(BigId)


class ReviewPhoto(Base):
    """A photo of a review, re-encoded from its pixels only (no EXIF, no GPS), served at
    /v1/reviews/photos/<token>: the random token is the whole capability."""

    __tablename__ = "review_photos"
    __table_args__ = (Index("ix_review_photos_review", "review_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    token: Mapped[str] = mapped_column(String(32), unique=True)
    position: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
