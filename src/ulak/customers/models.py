from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, JSONType, UTCDateTime


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        # Identity resolution looks a customer up by each of these (NULLs never collide).
        UniqueConstraint("store_id", "external_id"),
        UniqueConstraint("store_id", "email"),
        UniqueConstraint("store_id", "phone"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    birthday: Mapped[date | None] = mapped_column(Date)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Labels journeys put on a customer (`action: tag`), for their expressions to read.
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=text("'[]'"))
    # When two profiles turn out to be one person, the absorbed one points at the survivor.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    # Consent to commercial messages per channel, as the change that occurred last set it:
    # {"email": {"status": "granted", "source": "checkout", "at": ISO time}}. The changes
    # themselves, with their proof, are `consent.models.ConsentChange`.
    consent: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # KVKK/GDPR erasure (`privacy/`): the row stays, without anything personal and without
    # identifiers (a later event naming the same email makes a new customer), so orders
    # and counts still add up.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
