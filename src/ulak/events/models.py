from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, UTCDateTime

# How many ordering lanes events are spread over. A customer's events share one lane, and a
# lane is applied by one worker at a time, in order; lanes run in parallel on PostgreSQL.
LANES = 64
# Written out so the planner matches the partial index (see journeys.models.IS_LIVE).
IS_PENDING = text("events.status = 'pending'")


class Event(Base):
    """The durable inbox: a row is written (and committed) before the API answers 202."""

    __tablename__ = "events"
    __table_args__ = (
        # The same idempotency key twice stores one event.
        UniqueConstraint("store_id", "key"),
        # Applier: the pending events of one lane, in order.
        Index(
            "ix_events_pending",
            "lane",
            "occurred_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Applier on SQLite (one writer): the oldest pending events, whatever their lane.
        Index(
            "ix_events_pending_oldest",
            "occurred_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Customer timeline.
        Index("ix_events_customer", "customer_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # The shop's id for the event, or one ulak made up when the shop sent none.
    key: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(32), default="api")
    lane: Mapped[int] = mapped_column(Integer)
    customer: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # pending -> applied | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class InboxCursor(Base):
    """SQLite: how far the worker has copied the API's inbox file into `events` (one row).

    Moved in the transaction that copies, so each inbox row is copied exactly once.
    """

    __tablename__ = "inbox_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The inbox file the sequence numbers belong to (see events.inbox.inbox_file).
    generation: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigId)
