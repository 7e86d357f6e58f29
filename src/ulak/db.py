"""Engine, sessions, and the column types every feature shares.

The caller owns the transaction: a request or a job opens `database.transaction()`, calls
service functions with the session, and the block commits once at the end.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Integer,
    MetaData,
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
from sqlalchemy.orm import DeclarativeBase, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.util import identity_key
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator

from ulak import sqlite

T = TypeVar("T")

# Integer keys: time-ordered and cheap to index (random UUIDs cost 6x on batched inserts).
BigId = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")

log = logging.getLogger(__name__)


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


def sqlite_utc(value: str | None) -> datetime | None:
    """A `UTCDateTime` column as SQLite keeps it (naive UTC text), read without the ORM
    (`Database.lookup`): the aware UTC datetime the column type would give."""
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


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


# Constraint names that every database spells the same, so a migration can name the one
# it changes (PostgreSQL's own names differ, SQLite's constraints have none). Migration
# 0004 gave PostgreSQL's existing constraints these names.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


B = TypeVar("B", bound=Base)


def sync_url(url: str) -> str:
    """The same database for a synchronous engine (Alembic's checks)."""
    return _async_url(url).replace("sqlite+aiosqlite://", "sqlite://", 1)


def _async_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    return url


def side_path(path: str, name: str) -> str:
    """A SQLite file beside the main one, with one writer of its own: `ulak.db` ->
    `ulak-inbox.db` (accepted events, written by the API process) or `ulak-outcomes.db`
    (delivery outcomes, written by the sender)."""
    stem, dot, suffix = path.rpartition(".")
    if not dot or "/" in suffix:
        return f"{path}-{name}"
    return f"{stem}-{name}.{suffix}"


def create_private(path: str) -> None:
    """Create a SQLite file that only its owner may read, if it does not exist yet: it holds
    customers' data and each store's link secret. SQLite gives the `-wal` and `-shm` files
    it creates beside it the same mode."""
    if path and path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))


def inbox_path(path: str) -> str:
    return side_path(path, "inbox")


class Database:
    """The main database, and on SQLite the side files beside it (inbox, outcomes).

    On SQLite every file has one writing process: the worker writes the main database, the
    API process writes the inbox (see `events/inbox.py`). Everyone else only reads, and a
    read (`read()`, BEGIN DEFERRED) never waits for a writer: WAL gives it a snapshot. A
    write transaction (`transaction()`) begins IMMEDIATE, so a rare second writer (an admin
    command beside a running server) waits for the lock up to `lock_timeout` and then fails
    with a clear error instead of deadlocking halfway through.
    """

    def __init__(self, url: str, *, echo: bool = False, lock_timeout: float = 30.0) -> None:
        self.url = _async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.path = (make_url(self.url).database or "") if self.is_sqlite else ""
        self.lock_timeout = lock_timeout
        self.engine: AsyncEngine
        self._side_engines: dict[tuple[str, bool], AsyncEngine] = {}
        if self.is_sqlite:
            create_private(self.path)
            # One connection writes: this process's transactions queue for it in order.
            self.engine = _sqlite_engine(self.path, echo, immediate=True, lock_timeout=lock_timeout)
            # Readers have connections of their own, so they never queue behind a write.
            self.read_engine = _sqlite_engine(self.path, echo, immediate=False, pool_size=4)
        else:
            self.engine = create_async_engine(
                self.url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True
            )
            self.read_engine = self.engine
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.turns = WriterTurns() if self.is_sqlite else None
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._plain: sqlite3.Connection | None = None

    @asynccontextmanager
    async def transaction(self, *, priority: int = 0) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block ends, rolls back on an exception.

        On SQLite this process's write transactions take turns on its one connection;
        among those waiting, the highest `priority` goes first (the worker gives the later
        stages of its pipeline priority, so mail already rendered leaves before more events
        are taken in). PostgreSQL has no turns to take.
        """
        if self.turns is not None:
            await self.turns.take(priority)
        try:
            async with self.sessions() as session, session.begin():
                yield session
        finally:
            if self.turns is not None:
                self.turns.hand_on()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work: a consistent snapshot that never waits for a writer."""
        async with self.read_sessions() as session, session.begin():
            yield session

    @property
    def inbox_engine(self) -> AsyncEngine:
        """SQLite only: the inbox file, for its one writer (the API process)."""
        return self.side_engine("inbox", write=True)

    @property
    def inbox_reader(self) -> AsyncEngine:
        """SQLite only: the inbox file, for its reader (the worker)."""
        return self.side_engine("inbox", write=False)

    def side_engine(self, name: str, *, write: bool) -> AsyncEngine:
        """SQLite only: a side file (`side_path`), for its one writer or for readers."""
        assert self.is_sqlite, "PostgreSQL keeps everything in the one database"
        if (name, write) not in self._side_engines:
            create_private(side_path(self.path, name))
            self._side_engines[name, write] = _sqlite_engine(
                side_path(self.path, name), False, immediate=write, lock_timeout=self.lock_timeout
            )
        return self._side_engines[name, write]

    def lookup(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """SQLite only: the rows of one statement, on a plain read-only connection of this
        process, in microseconds. For the API's reads on every request (the key, a
        duplicate's stored event): an ORM session for them took a sixth of the API's CPU
        under single-event POSTs."""
        assert self.is_sqlite
        if self._plain is None:
            self._plain = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
            )
        rows: list[Any] = self._plain.execute(sql, parameters).fetchall()
        return rows

    async def checkpoint(self, name: str | None = None, *, attempts: int = 50) -> bool:
        """SQLite: copy the WAL into the file (the main one, or side file `name`) and empty
        it (TRUNCATE), so what was deleted or overwritten leaves the `-wal` file too. A
        reader in the middle of a snapshot holds it back: try again every 20 ms, up to
        `attempts` times. True once the WAL is empty."""
        assert self.is_sqlite
        path = side_path(self.path, name) if name else self.path
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            for _ in range(attempts):
                busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return True
                await asyncio.sleep(0.02)
            return False
        finally:
            connection.close()

    async def dispose(self) -> None:
        if self._plain is not None:
            self._plain.close()
            self._plain = None
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        for engine in self._side_engines.values():
            await engine.dispose()


class WriterTurns:
    """Whose write transaction runs next on this process's one SQLite connection: the
    waiter with the highest priority, the earliest first among equals."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    async def take(self, priority: int) -> None:
        if not self._busy:
            self._busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (-priority, next(self._arrivals), turn)
        heapq.heappush(self._waiting, entry)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.hand_on()  # the turn came as the waiter was cancelled: pass it on
            else:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
            raise

    def hand_on(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self._busy = False


def _sqlite_engine(
    path: str,
    echo: bool,
    *,
    immediate: bool,
    lock_timeout: float = 30.0,
    pool_size: int = 1,
) -> AsyncEngine:
    engine = create_async_engine(
        "sqlite+aiosqlite:///" + path,
        echo=echo,
        async_creator=sqlite.connector(path, lock_timeout=lock_timeout),
        poolclass=AsyncAdaptedQueuePool,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=120,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue the BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Switching a new file to WAL may wait for another process; after that, the
        # connection (ulak.sqlite) waits for locks only in a BEGIN, off the event loop.
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted and overwritten content is zeroed, not left in free pages and cells: an
        # erased customer (KVKK/GDPR) must not stay readable in the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN DEFERRED"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


@dataclass(frozen=True, eq=False)
class Note(Generic[T]):
    """Something a transaction remembers while it runs (a cache, rows to write at its end),
    declared by the feature that owns it: `NEW = Note("customers.new", dict)`."""

    name: str
    start: Callable[[], T]
    # Noted inside a savepoint that rolled back: void, like the rows it was about.
    void_on_rollback: bool = False


class Notes:
    """The typed per-transaction memory of one unit of work (see `notes`)."""

    def __init__(self) -> None:
        self._values: dict[Note[Any], Any] = {}

    def __call__(self, note: Note[T]) -> T:
        if note not in self._values:
            self._values[note] = note.start()
        value: T = self._values[note]
        return value

    def pop(self, note: Note[T]) -> T:
        value: T = self._values.pop(note, None) or note.start()
        return value

    def after_rollback(self) -> None:
        for note in [n for n in self._values if n.void_on_rollback]:
            del self._values[note]


def notes(session: AsyncSession) -> Notes:
    """What this session's transaction remembers; it ends with the session."""
    found = session.info.get(Notes)
    if found is None:
        found = session.info[Notes] = Notes()
    assert isinstance(found, Notes)
    return found


@asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """A savepoint; when it rolls back, so does what the transaction noted inside it, and
    the session lets go of the objects of the rows `insert_returning_id` wrote inside it."""
    inserted = notes(session)(INSERTED)
    mark = len(inserted)
    try:
        async with session.begin_nested():
            yield
    except BaseException:
        # Their rows are gone and SQLite hands their ids out again: an object left in the
        # identity map would stand for the next row that gets one. (The ORM does this for
        # the objects its own flush inserted.)
        for model, id_ in inserted[mark:]:
            obj = session.identity_map.get(identity_key(model, id_))
            if obj is not None:
                session.expunge(obj)
        del inserted[mark:]
        notes(session).after_rollback()
        raise


# The rows this transaction inserted with `insert_returning_id`, for `savepoint`.
INSERTED: Note[list[tuple[type[Base], int]]] = Note("db.inserted", list)


def attach(session: AsyncSession, obj: B) -> B:
    """Make an object persistent in the session, as if loaded, for the row that
    `insert_returning_id` just wrote from the same values: a Core insert and this cost
    0.09 ms less CPU than the ORM's flush of one new object (a customer, measured alone).
    Every column must be set: a missing one would be loaded lazily, which an async
    session cannot do."""
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def attach_row(session: AsyncSession, model: type[B], id_: int, values: dict[str, Any]) -> B:
    """`attach` for an object made from the row's values without the model's constructor:
    the values go straight into its state, as loading a row puts them, rather than through
    each attribute's instrumented setter and its events. ~0.05 ms of CPU an enrollment by
    the constructor and `attach`, ~0.02 ms this way (20 columns; `bench/statements.py`).
    `values` must hold every column but the id, as for `attach`: a column left out would
    be loaded when read, which an async session cannot do (a customer's `erased_at` was)."""
    missing = _columns_of(model) - values.keys()
    assert not missing, f"{model.__name__} made without {sorted(missing)}"
    obj: B = model.__mapper__.class_manager.new_instance()
    state = instance_state(obj)
    state.dict.update(values)
    state.dict["id"] = id_
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


@functools.cache
def _columns_of(model: type[Base]) -> frozenset[str]:
    return frozenset(c.key for c in model.__mapper__.column_attrs) - {"id"}


def new_object(model: type[B], values: dict[str, Any]) -> B:
    """A new (transient) object of `model` with these column values, made without the
    model's constructor: the values go straight into its state, where a flush reads them,
    rather than through each attribute's instrumented setter. The step runner makes one
    message per email: `Message(...)` (18 columns) was a tenth of its own CPU in the
    profile (`bench/stages.py --profile steps`). Attributes set afterwards are tracked as
    usual."""
    obj: B = model.__mapper__.class_manager.new_instance()
    instance_state(obj).dict.update(values)
    return obj


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements that skip the ORM's unit of work."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


async def insert_rows(session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Insert rows with one statement (executemany), bypassing the ORM's unit of work: for
    rows nothing in the transaction reads back as objects (trace, order items, history)."""
    if rows:
        await session.execute(_inserting(table_of(model)), rows)


async def insert_returning_id(session: AsyncSession, model: type[Base], row: dict[str, Any]) -> int:
    """Insert one row, bypassing the ORM's unit of work, and return its id."""
    result = await session.execute(_inserting(table_of(model), returning_id=True), row)
    id_ = int(result.scalar_one())
    notes(session)(INSERTED).append((model, id_))
    return id_


@functools.cache
def _inserting(table: Table, *, returning_id: bool = False) -> Insert:
    # Built once per table: building it for every insert cost 0.01 ms more each (a fifth
    # of an executed one-row insert on SQLite).
    statement = insert(table)
    return statement.returning(table.c.id) if returning_id else statement


def insert_ignoring_conflicts(session: AsyncSession, model: type[Base] | Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the session's dialect."""
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model).on_conflict_do_nothing()


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def libpq_url(url: str) -> str:
    """A PostgreSQL URL as psycopg itself takes it (without SQLAlchemy's driver name)."""
    return url.replace("postgresql+psycopg://", "postgresql://")


async def listen(
    url: str,
    channel: str,
    *,
    heard: Callable[[], None],
    listening: Callable[[bool], None] | None = None,
) -> None:
    """PostgreSQL: call `heard` at every NOTIFY on `channel`, until cancelled; a lost
    connection is opened again after 5 s. `listening` is told when LISTEN is in place and
    when the connection is lost: what a process keeps on the strength of what it hears
    only holds while it listens."""
    import psycopg

    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                # Keepalives: a connection that died silently must not count as listening.
                libpq_url(url), autocommit=True, keepalives=1, keepalives_idle=10,
                keepalives_interval=5, keepalives_count=3,
            ) as connection:  # fmt: skip
                await connection.execute(f"LISTEN {channel}")
                if listening is not None:
                    listening(True)
                async for _ in connection.notifies():
                    heard()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("listening on %s failed (%s); retrying in 5 s", channel, error)
        finally:
            if listening is not None:
                listening(False)
        await asyncio.sleep(5)
