from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, UTCDateTime


class Suppression(Base):
    """An address a store no longer sends to on a channel, and why. The sender reads it
    at each claim, in one query for the batch (uq_suppressions_store_id: store, channel,
    address)."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("store_id", "channel", "address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))  # email
    # Lower-cased: mailbox providers treat the local part case-insensitively.
    address: Mapped[str] = mapped_column(String(320))
    # hard_bounce, complaint, soft_bounces, manual
    reason: Mapped[str] = mapped_column(String(16))
    # The DSN status and diagnostic, the SMTP reply, the feedback type, an operator's note.
    detail: Mapped[str] = mapped_column(Text, default="")
    # The message whose bounce or complaint caused it (none when added by hand).
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SoftBounce(Base):
    """Messages to an address in a row that could not be delivered for temporary reasons
    (retries ran out, or the receiving server gave up with a 4.x.x status), counted until
    the limit suppresses the address; a delivery in between, or a count older than
    SOFT_BOUNCE_WINDOW, starts it again."""

    __tablename__ = "soft_bounces"
    __table_args__ = (UniqueConstraint("store_id", "channel", "address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(320))
    count: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_detail: Mapped[str] = mapped_column(Text, default="")
