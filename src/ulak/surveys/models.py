"""Satisfaction surveys: a store's survey settings, and each order's answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, UTCDateTime


class SurveySettings(Base):
    """How a store asks: the scale, how long after delivery, and whether an unhappy
    customer gets a make-good code. No row: CSAT, 2 days, no code."""

    __tablename__ = "survey_settings"

    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    # "csat" (1-5) or "nps" (0-10).
    kind: Mapped[str] = mapped_column(String(8), default="csat")
    delay_days: Mapped[int] = mapped_column(Integer, default=2)
    # A detractor is sent a code of the store's `make-good` coupon template (the
    # commercial `satisfaction-make-good` journey).
    make_good: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SurveyRequest(Base):
    """The scale an order's survey was asked on: written when its `survey.due` is applied
    (the event the `satisfaction-survey` email renders its scale from), the first one
    kept, as the journey asks once per order. The survey page validates and shows the
    score on this scale, not on the store's setting now, which may have changed since the
    email went out. No personal data: an order's id and a scale."""

    __tablename__ = "survey_requests"
    __table_args__ = (PrimaryKeyConstraint("store_id", "order_id"),)

    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    order_id: Mapped[str] = mapped_column(String(200))
    # "csat" or "nps".
    kind: Mapped[str] = mapped_column(String(8))
    # The `survey.due` event's moment.
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SurveyAnswer(Base):
    """A customer's answer about one order; a second answer replaces the first."""

    __tablename__ = "survey_answers"
    __table_args__ = (
        UniqueConstraint("store_id", "order_id"),
        # The scores: a store's answers between two moments.
        Index("ix_survey_answers_store_answered", "store_id", "answered_at"),
        # KVKK/GDPR export and erasure, merges.
        Index("ix_survey_answers_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    order_id: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(8))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    # When the customer gave this answer (the event's moment).
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # How many answers this one replaced.
    replaced: Mapped[int] = mapped_column(Integer, default=0)
    # The outbox ids of the shop's alerts about this order's unhappy answers, which name
    # the customer and quote them: a KVKK/GDPR erasure empties those messages too.
    alerts: Mapped[list[Any]] = mapped_column(JSONType, default=list)
