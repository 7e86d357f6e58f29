from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, UTCDateTime


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(16), default="tr")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Istanbul")
    currency: Mapped[str] = mapped_column(String(3), default="TRY")
    # Default phone region for numbers given without a country code.
    phone_region: Mapped[str] = mapped_column(String(2), default="TR")
    # Sender identity
    sender_name: Mapped[str] = mapped_column(String(200))
    sender_email: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    # Brand shown in every message and page
    logo_url: Mapped[str | None] = mapped_column(String(2000))
    brand_color: Mapped[str] = mapped_column(String(16), default="#1f6feb")
    postal_address: Mapped[str | None] = mapped_column(Text)
    contact_email: Mapped[str | None] = mapped_column(String(320))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    website_url: Mapped[str | None] = mapped_column(String(2000))
    # Back in stock: a restock of N items tells at most N × this many waiting customers
    # (not all who wait will buy); and one requester may subscribe this often a day.
    back_in_stock_factor: Mapped[int] = mapped_column(Integer, default=3)
    back_in_stock_daily_limit: Mapped[int] = mapped_column(Integer, default=10)
    # Clock-driven triggers (`timers/`): a cart idle this long, with no order, is abandoned;
    # a customer without an order for this many days has lapsed.
    abandoned_cart_minutes: Mapped[int] = mapped_column(Integer, default=60)
    lapsed_days: Mapped[int] = mapped_column(Integer, default=90)
    # A sign-up with no order this many days later gets the win-back journey too.
    never_bought_days: Mapped[int] = mapped_column(Integer, default=14)
    # The shop's one-click reorder link, a pattern over the items (`orders/reorder.py`);
    # None: the replenishment reminder links each product's page.
    reorder_url: Mapped[str | None] = mapped_column(String(2000))
    # Sending policy (`policy/`), for commercial messages only. Merchant recipients may get
    # them without a recorded grant (the law's opt-out for merchants; a revocation still
    # stops them).
    merchant_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The local hours ("HH:MM-HH:MM", in the recipient's zone) a commercial message may
    # arrive per channel; None: any time.
    sending_hours_email: Mapped[str | None] = mapped_column(String(11))
    sending_hours_sms: Mapped[str | None] = mapped_column(String(11), default="09:00-20:00")
    # Frequency caps per customer and channel across all journeys, over a rolling day and
    # week; 0: no cap.
    cap_email_day: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    cap_email_week: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    cap_sms_day: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cap_sms_week: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Applied events older than this many days are deleted (`events.forget_old`): they hold
    # what customers did, which KVKK/GDPR allows keeping only as long as it is needed.
    keep_events_days: Mapped[int] = mapped_column(Integer, default=365)
    # Signs this store's links (unsubscribe, pages): a token of one store opens nothing elsewhere.
    link_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True)
    # The first characters of the key, to tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(24))
    # SHA-256 of the whole key: keys are 256-bit random, so a slow hash adds nothing.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
