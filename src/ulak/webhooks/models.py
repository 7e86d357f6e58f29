from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, UTCDateTime

# Written out so the planner matches the partial index (see journeys.models.IS_LIVE).
IS_PENDING_DELIVERY = text("webhook_deliveries.status = 'pending'")


class WebhookEndpoint(Base):
    """Where a store wants ulak's own events POSTed, signed with `secret` (Standard
    Webhooks: `whsec_` + base64 of 32 random bytes). The secret is shown once, at `ulak
    webhooks add`, and never again: not in a list, a log line, an error or a repr."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    # The subscribed types between commas, ",message.sent,review.submitted,", so the
    # enqueueing statement selects subscribers with one LIKE on both databases.
    event_types: Mapped[str] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Development mode: private and loopback addresses and plain http are allowed. There
    # is no store-wide development mode (yet), so it is the endpoint's own setting.
    development: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why it was switched off (a 410 Gone), for `ulak webhooks list`.
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One event for one endpoint: the queue as rows. `pending` rows are due at
    `next_attempt_at` (also the lease of a claimed one: a worker that dies mid-POST leaves
    it due again then); `delivered` or `failed` end it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # An event reaches an endpoint once however often it is enqueued (a fold run
        # again after a crash, an event applied twice): `event_id` is the receivers'
        # deduplication key, the same on every attempt (`webhook-id`).
        UniqueConstraint("endpoint_id", "event_id"),
        # webhooks.deliver: the due pending rows, and `next_due`.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Export and erasure of a customer's payloads.
        Index("ix_webhook_deliveries_customer", "customer_id"),
        # `ulak webhooks deliveries`: a store's latest.
        Index("ix_webhook_deliveries_store", "store_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    # The customer the payload is about (None: none), for export and erasure.
    customer_id: Mapped[int | None] = mapped_column(BigId)
    event_type: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # pending | delivered | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
