from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, UTCDateTime


class DevInboxMessage(Base):
    """Mail captured instead of sent when no SMTP server is configured."""

    __tablename__ = "dev_inbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The Message-ID header, to tie a captured mail to its message row.
    message_id: Mapped[str] = mapped_column(String(300))
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
