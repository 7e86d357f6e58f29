from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ulak.db import Base, BigId, UTCDateTime


class ImportRun(Base):
    """One `ulak import` of a file: where it stopped, so a run cut short (Ctrl-C, kill -9, a
    lost connection) goes on from there. `line` moves in the transaction of the rows it
    covers."""

    __tablename__ = "imports"
    __table_args__ = (
        # A new run of the same file looks for the run it continues.
        Index("ix_imports_file", "store_id", "kind", "file_sha256", "file_size"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # customers, products, orders
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(2000))
    file_size: Mapped[int] = mapped_column(BigInteger)
    # SHA-256 of the file's first MiB: the same path holding another file starts afresh.
    file_sha256: Mapped[str] = mapped_column(String(64))
    # The records (CSV rows or JSON lines, after the header) written or skipped so far.
    line: Mapped[int] = mapped_column(Integer, default=0)
    # Records read well (rows_in) and bad ones skipped (rows_skipped), over every run that
    # continued this one.
    rows_in: Mapped[int] = mapped_column(Integer, default=0)
    # Of rows_in, those the store did not have (the others were there already).
    rows_added: Mapped[int] = mapped_column(Integer, default=0)
    rows_skipped: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
