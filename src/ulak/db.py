"""Engine, sessions, and the column types every feature shares.

The caller owns the transaction: a request or a job opens `database.transaction()`, calls
service functions with the session, and the block commits once at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Integer,
    Numeric,
    String,
    Table,
    event,
    insert,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.types import TypeDecorator

from ulak import sqlite

# Integer keys: time-ordered and cheap to index (random UUIDs cost 6x on batched inserts).
BigId = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite too (which has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """Decimal money: NUMERIC on PostgreSQL, exact text on SQLite (whose numbers are floats)."""

    impl = String(40)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(18, 4))
        return dialect.type_descriptor(String(40))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value))


# How long background work on SQLite waits, before each transaction, while requests (in
# this process or another) wait for the connection or the write lock.
BACKGROUND_MAX_WAIT = 0.05
# How long requests may wait for another process's write lock before background work ends
# its batch early, in request-seconds: one request 40 ms, a commit that answers eight of
# them 5 ms. Batches stay batches under a steady stream of requests, and a burst of them
# gets the lock within milliseconds (measured: at 25 ms the latency at 100 orders/s
# sometimes ran away, at 15 ms more often).
LOCK_PATIENCE = 0.04
# How often background work that stepped aside looks whether the waiter got the lock.
STEP_ASIDE_POLL_SECONDS = 0.001


class Base(DeclarativeBase):
    pass


def _async_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    return url


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = _async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine: AsyncEngine
        path = (make_url(self.url).database or "") if self.is_sqlite else ""
        self.lock_waiters = sqlite.LockWaiters(path)
        if self.is_sqlite:
            # SQLite has one writer. One pooled connection serialises this process's
            # transactions in FIFO order; BEGIN IMMEDIATE, which waits for the write lock,
            # makes other processes (the CLI beside a running server) wait, not fail.
            self.engine = create_async_engine(
                self.url,
                echo=echo,
                async_creator=sqlite.connector(path, self.lock_waiters),
                poolclass=AsyncAdaptedQueuePool,
                pool_size=1,
                max_overflow=0,
                pool_timeout=120,
            )
            _configure_sqlite(self.engine)
        else:
            self.engine = create_async_engine(
                self.url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True
            )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite's one connection: requests waiting for it or holding it.
        self._requests = 0
        self._no_requests = asyncio.Event()
        self._no_requests.set()
        self._background = asyncio.Lock()
        # Called after a background transaction that another process waited for: a worker
        # process of `ulak serve` tells the server through a pipe (see WorkerProcesses).
        self.lock_released: Callable[[], None] = lambda: None

    @asynccontextmanager
    async def transaction(self, *, background: bool = False) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block ends, rolls back on an exception.

        On SQLite, which has one writer, `background` work (the workers) lets the requests
        that wait for this process's connection or another process's lock go first, for
        up to BACKGROUND_MAX_WAIT, and ends its batches early while they wait (see
        `lock_wanted`), so a shop's events are acknowledged quickly while a backlog is
        worked off.
        """
        if self.is_sqlite and background:
            # One background transaction at a time (there is one connection anyway), so
            # each steps aside just before it begins, not before it queued for the pool.
            async with self._background:
                await self._step_aside()
                async with self.sessions() as session, session.begin():
                    yield session
                if self.lock_waiters.waiting():
                    self.lock_released()
            return
        counted = self.is_sqlite
        if counted:
            self._requests += 1
            self._no_requests.clear()
        try:
            async with self.sessions() as session, session.begin():
                yield session
        finally:
            if counted:
                self._requests -= 1
                if not self._requests:
                    self._no_requests.set()

    def lock_wanted(self) -> bool:
        """Whether a request waits for what background work holds: this process's SQLite
        connection, or (beyond LOCK_PATIENCE) another process's write lock.
        Always False on PostgreSQL."""
        return self.is_sqlite and (
            self._requests > 0 or self.lock_waiters.pressure() > LOCK_PATIENCE
        )

    async def _step_aside(self) -> None:
        if self._requests:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_requests.wait(), BACKGROUND_MAX_WAIT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BACKGROUND_MAX_WAIT
        # Another process's flag in shared memory: nothing to await but time.
        while self.lock_waiters.waiting() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(STEP_ASIDE_POLL_SECONDS)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue the BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Switching a new file to WAL may wait for another process; after that, the
        # connection (ulak.sqlite) waits for locks only in a BEGIN, off the event loop.
        cursor.execute(f"PRAGMA busy_timeout={sqlite.BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements that skip the ORM's unit of work."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


async def insert_rows(session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Insert rows with one statement (executemany), bypassing the ORM's unit of work: for
    rows nothing in the transaction reads back as objects (trace, order items, history)."""
    if rows:
        await session.execute(insert(table_of(model)), rows)


def insert_ignoring_conflicts(session: AsyncSession, model: type[Base] | Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the session's dialect."""
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model).on_conflict_do_nothing()


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"
