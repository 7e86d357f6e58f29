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
    # replenishment.due, customer.date, customer.special_day.
    kind: Mapped[str] = mapped_column(String(64))
    # What the timer is about, unique per kind: the shop's cart id, the customer's id, or
    # "customer:product" for a replenishment, "attribute:offset:y|o:customer" for a date,
    # "day key:date:customer" for a special day.
    subject: Mapped[str] = mapped_column(String(300))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The derived event's data.
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class SpecialDay(Base):
    """One of a store's special days (Anneler Günü, Sevgililer Günü, ...) and the store-level
    timer that greets its customers on it.

    `due_at` is when the next occurrence starts anywhere on earth (00:00 at UTC+14): then
    `timers.fire_due` fans it out, a batch of the store's customers at a time
    (`fanned_out_to` is the last customer id done), into one `customer.special_day` timer
    per customer, due at the start of the day where that customer lives. A store's special
    days are a handful of rows, so an idle tick reads one index entry, never the customers."""

    __tablename__ = "special_days"
    __table_args__ = (
        UniqueConstraint("store_id", "key"),
        # timers.fire_due / next_due: the fan-outs that are due.
        Index("ix_special_days_due", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # The shop's name for it, in journeys' `where` and templates: anneler-gunu.
    key: Mapped[str] = mapped_column(String(50))
    name_tr: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    # When it falls (`special_days.py`): "02-14" every year, "05/sun/2" the second Sunday of
    # May, or dates of their own ("2027-03-20,2028-03-09") for days the lunar calendar moves.
    rule: Mapped[str] = mapped_column(String(500))
    # The start of the next occurrence at UTC+14; None when the rule has no future date.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While a fan-out is under way: the last customer id it reached.
    fanned_out_to: Mapped[int | None] = mapped_column(BigId)
