from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, UTCDateTime


class ConsentChange(Base):
    """One change of a customer's consent to commercial messages on one channel, as the
    shop (or ulak's unsubscribe page) reported it: the proof KVKK and İYS ask for. Rows are
    only ever added; a merge of two profiles points the absorbed one's rows at the survivor.
    The state that decides a send is kept on the customer (`Customer.consent`)."""

    __tablename__ = "consent_changes"
    __table_args__ = (Index("ix_consent_changes_customer", "customer_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    channel: Mapped[str] = mapped_column(String(8))  # email, sms, call
    recipient_type: Mapped[str] = mapped_column(String(16))  # individual, merchant
    status: Mapped[str] = mapped_column(String(8))  # granted, revoked
    # Where it was given or taken back: "checkout", "signup_form", "unsubscribe_link", ...
    source: Mapped[str] = mapped_column(String(100))
    proof: Mapped[Any] = mapped_column(JSONType, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The event that reported it (none for a change carried over by a migration).
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
