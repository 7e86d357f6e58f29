from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, UTCDateTime

LIVE = ("active", "waiting")
# Written out (not bound) so the planner can use the partial indexes below: SQLite cannot
# match `IN (?, ?)` to an index's WHERE, nor can a PostgreSQL generic plan.
IS_LIVE = text("enrollments.status IN ('active', 'waiting')")


class Journey(Base):
    __tablename__ = "journeys"
    __table_args__ = (UniqueConstraint("store_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The version new enrollments get; running enrollments keep the one they started on.
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    trigger_event: Mapped[str] = mapped_column(String(100))
    # The sending policy's order among journeys competing for one customer's frequency cap
    # (higher first), and what its messages do over the cap: wait (postpone) or skip.
    # From the current version's definition.
    priority: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    over_cap: Mapped[str] = mapped_column(String(8), default="postpone", server_default="postpone")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ShippedJourney(Base):
    """A shipped journey (`journeys/library/`) offered to a store: offered once, so one the
    store removed is never added again, and one it changed is never overwritten."""

    __tablename__ = "shipped_journeys"

    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JourneyVersion(Base):
    __tablename__ = "journey_versions"
    __table_args__ = (UniqueConstraint("journey_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # The validated definition (JSON) and the YAML it came from.
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Enrollment(Base):
    """One customer's progress through one journey: the durable timer is `next_run_at`."""

    __tablename__ = "enrollments"
    __table_args__ = (
        # Re-entry rule: one enrollment per journey, customer and key ("" for once,
        # the order id for once_per_order, the event id for always, ...).
        UniqueConstraint("journey_id", "customer_id", "reentry_key"),
        # Step runner: live enrollments that are due, oldest first.
        Index(
            "ix_enrollments_due",
            "next_run_at",
            postgresql_where=text("status IN ('active', 'waiting')"),
            sqlite_where=text("status IN ('active', 'waiting')"),
        ),
        # Event applier: a customer's live enrollments (wait_for and exit_when matching).
        Index(
            "ix_enrollments_customer_live",
            "customer_id",
            postgresql_where=text("status IN ('active', 'waiting')"),
            sqlite_where=text("status IN ('active', 'waiting')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    journey_version_id: Mapped[int] = mapped_column(ForeignKey("journey_versions.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    reentry_key: Mapped[str] = mapped_column(String(200))
    trigger_event_id: Mapped[int] = mapped_column(BigId)
    # The shop's ids this enrollment is keyed to, for expressions and exits.
    order_id: Mapped[str | None] = mapped_column(String(200))
    cart_id: Mapped[str | None] = mapped_column(String(200))
    shipment_id: Mapped[str | None] = mapped_column(String(200))
    # active: runs when next_run_at is due; waiting: a wait_for, times out at next_run_at;
    # completed, exited, failed: done (see exit_reason / failure_reason).
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Index of the next step in the compiled program.
    pc: Mapped[int] = mapped_column(Integer, default=0)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The moment the next wait counts from and a send is meant for: the trigger's
    # `occurred_at`, then the end of each wait as scheduled (not as run), or the
    # `occurred_at` of the event a wait_for received. None on rows from before it existed.
    anchor_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The event type a waiting enrollment listens for.
    waiting_for: Mapped[str | None] = mapped_column(String(100))
    # The event that last moved the enrollment (trigger, or the one a wait_for received).
    event_id: Mapped[int | None] = mapped_column(BigId)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    exit_reason: Mapped[str | None] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EnrollmentStep(Base):
    """The trace: what each enrollment did and why, for "why did (not) she get it?"."""

    __tablename__ = "enrollment_steps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    pc: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(String(1000))
