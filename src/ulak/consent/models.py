from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
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


class IysAccount(Base):
    """A store's account at İYS (the Turkish consent registry, `consent/iys.py`): where its
    consent changes are pushed and İYS's own changes pulled from. The password and the
    tokens are secrets: never logged, never shown (`ulak stores iys show` says only whether
    they are set)."""

    __tablename__ = "iys_accounts"

    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    iys_code: Mapped[str] = mapped_column(String(32))
    brand_code: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(200))
    password: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str] = mapped_column(String(2000))
    # The last token, shared by every worker, kept until it expires (İYS: 2 h, its refresh
    # token 4 h) rather than asked for on every push.
    access_token: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Pull: İYS's cursor (`after`) past the last change recorded, moved in the transaction
    # that records the changes it covers.
    pull_after: Mapped[str | None] = mapped_column(String(200))
    pulled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Push: one worker pushes a store's queue at a time (its lease), in order; after a
    # failure İYS is not asked again before `push_retry_at` (backoff), and the queue waits.
    push_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    push_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    push_failures: Mapped[int] = mapped_column(Integer, default=0)
    # Why the last push or pull did not get through (an outage, refused credentials).
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IysPush(Base):
    """One consent change to register at İYS, queued in the transaction of the change;
    `consent.iys_push` sends a store's pending rows in order. Kept once done: sent (with
    İYS's transaction id), skipped (İYS's rules forbid it; `error` says which) or failed
    (İYS refused it: its code and message)."""

    __tablename__ = "iys_pushes"
    __table_args__ = (
        # consent.iys_push: a store's pending rows, oldest first.
        Index(
            "ix_iys_pushes_pending",
            "store_id",
            "id",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # Whose change it was (a reference only: the recipient below is what İYS is told).
    customer_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(8))  # EPOSTA, MESAJ, ARAMA
    recipient: Mapped[str] = mapped_column(String(320))  # +905XXXXXXXXX or an email
    recipient_type: Mapped[str] = mapped_column(String(8))  # BIREYSEL, TACIR
    status: Mapped[str] = mapped_column(String(4))  # ONAY, RET
    source: Mapped[str] = mapped_column(String(32))  # HS_WEB, HS_EPOSTA, ...
    consent_date: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(1000))
    transaction_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IysRecipient(Base):
    """What İYS holds for a recipient of the store's brand, as far as ulak knows (from its
    pushes, its pulls and İYS's answers to a query): İYS refuses a RET for a recipient it
    has no consent of, and a change to the status it already has."""

    __tablename__ = "iys_recipients"

    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    type: Mapped[str] = mapped_column(String(8), primary_key=True)
    recipient_type: Mapped[str] = mapped_column(String(8), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320), primary_key=True)
    status: Mapped[str] = mapped_column(String(4))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
