from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, UTCDateTime


class Integration(Base):
    """A store's connection to its shop platform: the secret that platform signs its
    webhooks with. Write-only: set by `ulak integrations set`, read only to verify a
    webhook, never shown, logged nor returned."""

    __tablename__ = "integrations"

    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    # A name of `integrations.service.PLATFORMS`.
    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
