from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, UTCDateTime


class Timer(Base):
    """A clock-driven trigger waiting for its moment: when `due_at` comes, `timers.fire_due`
    derives the event `kind` for the customer and deletes the row, or moves it to its next
    occurrence (a birthday). The state that decides a timer sets or moves it in the same
    transaction (a cart update moves its cart's deadline, an order the customer's lapse
    date), so firing costs work proportional to what is due, never a scan of customers."""

    __tablename__ = "timers"
    __table_args__ = (
        # Setting a timer is an upsert: one per store, kind and subject.
        UniqueConstraint("store_id", "kind", "subject"),
        # timers.fire_due: the due timers, earliest first (and `next_due`: the earliest).
        Index("ix_timers_due", "due_at"),
        # An order deletes its customer's cart timers; a merge moves a customer's timers.
        Index("ix_timers_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # The derived event's type: cart.abandoned, customer.birthday, customer.lapsed,
    # replenishment.due.
    kind: Mapped[str] = mapped_column(String(64))
    # What the timer is about, unique per kind: the shop's cart id, the customer's id, or
    # "customer:product" for a replenishment.
    subject: Mapped[str] = mapped_column(String(300))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The derived event's data.
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
