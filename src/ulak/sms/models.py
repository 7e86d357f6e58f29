from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, Money, UTCDateTime


class SmsSettings(Base):
    """A store's SMS provider and what its messages cost. No row, or no provider: SMS go to
    the dev SMS inbox."""

    __tablename__ = "sms_settings"

    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    # A name of `channels.gateways.PROVIDERS`; None: the dev SMS inbox.
    provider: Mapped[str | None] = mapped_column(String(32))
    # Write-only: given by `ulak stores sms set`, read by the SMS channel, never shown,
    # logged nor returned (`sms.service.SmsSetup` carries only their names).
    credentials: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The originator header approved at the provider: 3-11 letters or digits, no Turkish letter.
    sender: Mapped[str | None] = mapped_column(String(11))
    # `ulak journeys validate` warns when a template's sample takes more segments than this.
    segment_limit: Mapped[int] = mapped_column(Integer, default=2)
    price_per_segment: Mapped[Decimal | None] = mapped_column(Money)
    # Names the store in the delivery-report URL its provider posts to; unguessable.
    report_token: Mapped[str] = mapped_column(String(64), unique=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ShortLink(Base):
    """A link in an SMS, served as /s/<token>: the random token is the whole capability
    (see `sms.service.shorten`)."""

    __tablename__ = "short_links"

    token: Mapped[str] = mapped_column(String(16), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DevSms(Base):
    """An SMS kept instead of sent, for a store without a provider."""

    __tablename__ = "dev_sms"
    __table_args__ = (
        # The dev SMS page, newest first.
        Index("ix_dev_sms_store", "store_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(BigId)  # the outbox row
    to: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(11))
    text: Mapped[str] = mapped_column(Text)
    encoding: Mapped[str] = mapped_column(String(16))
    segments: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
