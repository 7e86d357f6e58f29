from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, UTCDateTime


class TopicPreference(Base):
    """A customer's choice of one topic on one channel (`preferences.updated`, from the
    preference page or the shop). No row: the topic is on (what consent allows)."""

    __tablename__ = "topic_preferences"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id"), primary_key=True, autoincrement=False
    )
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)  # email, sms
    topic: Mapped[str] = mapped_column(String(32), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    subscribed: Mapped[bool] = mapped_column(Boolean)
    # Where it was chosen: "preferences_page", or what the shop's event said.
    source: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PrivacyRequest(Base):
    """A customer's KVKK/GDPR request made from the preference page (`privacy.requested`):
    the shop is alerted at once and answers it (`ulak customers export` / `erase`); ulak
    never erases on a page's word alone."""

    __tablename__ = "privacy_requests"
    __table_args__ = (Index("ix_privacy_requests_store", "store_id", "requested_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # A reference only (no foreign key): the request outlives the erasure it asked for.
    customer_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))  # export, erase
    source: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The outbox id of the shop's alert about it, which names the customer: an erasure
    # empties that message too. No foreign key, as `survey_answers.alerts`.
    alert_id: Mapped[int | None] = mapped_column(BigInteger)
