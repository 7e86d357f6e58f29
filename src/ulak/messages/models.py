from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, UTCDateTime

# Written out so the planner matches the partial indexes (see journeys.models.IS_LIVE).
IS_QUEUED = text("messages.status = 'queued'")
IS_SENDING = text("messages.status = 'sending'")


class Message(Base):
    """The outbox: rendered at the send step, delivered by the sender workers."""

    __tablename__ = "messages"
    __table_args__ = (
        # A send step writes at most one message.
        UniqueConstraint("enrollment_id", "step"),
        # Sender: queued messages that are due.
        Index(
            "ix_messages_due",
            "send_after",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        # Sender: claims whose lease ran out (a crashed worker's messages).
        Index(
            "ix_messages_leased",
            "lease_until",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        # Customer timeline.
        Index("ix_messages_customer", "customer_id", "created_at"),
        # SMS delivery reports name the message by the gateway's id.
        Index(
            "ix_messages_provider_id",
            "store_id",
            "provider_id",
            postgresql_where=text("provider_id IS NOT NULL"),
            sqlite_where=text("provider_id IS NOT NULL"),
        ),
        # SMS a gateway took and has not reported on yet, for the report poll.
        Index(
            "ix_messages_awaiting_report",
            "sent_at",
            postgresql_where=text("status = 'sent' AND provider_id IS NOT NULL"),
            sqlite_where=text("status = 'sent' AND provider_id IS NOT NULL"),
        ),
        # Frequency caps (`policy/`): a customer's commercial messages let go since a moment.
        Index(
            "ix_messages_released",
            "customer_id",
            "released_at",
            postgresql_where=text("released_at IS NOT NULL"),
            sqlite_where=text("released_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # None: a message to the shop itself (an alert to its contact address).
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="SET NULL")
    )
    step: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str] = mapped_column(String(16), default="email")
    template: Mapped[str] = mapped_column(String(100))
    locale: Mapped[str] = mapped_column(String(16))
    # informational | commercial
    legal_class: Mapped[str] = mapped_column(String(16))
    # What it is about (`preferences/topics.py`): a customer who turned the topic off on
    # its channel does not get it. None: the order's own news, never stopped.
    topic: Mapped[str | None] = mapped_column(String(32))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    preheader: Mapped[str] = mapped_column(String(500), default="")
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    # The RFC 5322 Message-ID, fixed at creation so a resend after a crash is recognisable.
    message_id_header: Mapped[str] = mapped_column(String(300))
    # queued -> sending -> sent | failed | skipped; an SMS report: sent -> delivered | failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    send_after: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The sender process holding the message while it is `sending` (`messages.sending`).
    claimed_by: Mapped[int | None] = mapped_column(Integer)
    # Deliveries whose sender stopped before it recorded their outcome: each may have
    # reached the customer, so a later successful send may be a duplicate.
    interrupted_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    # The SMS gateway's id of the message, which its delivery reports name.
    provider_id: Mapped[str | None] = mapped_column(String(100))
    # The sending policy (`policy/`): why a queued message waits (quiet hours, a frequency
    # cap) and until when; and when it let a commercial message go (what caps count).
    held_reason: Mapped[str | None] = mapped_column(String(200))
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TemplateOverride(Base):
    """A store's own version of a shipped template (or of the layout)."""

    __tablename__ = "template_overrides"
    __table_args__ = (UniqueConstraint("store_id", "name", "locale"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    locale: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
