"""SQLite for SQLAlchemy's asyncio engine, run on the event loop's own thread.

aiosqlite hands every call to a thread and back: measured here at ~400 µs of CPU per
statement, more than SQLite needs to run it, and several milliseconds of wall time when the
event loop is busy (the thread waits for the GIL). A statement on a local file in WAL mode
takes microseconds, so this connection runs statements inline, with SQLite's busy timeout
at zero. Only a BEGIN that finds the write lock taken by another process (a CLI command, a
second worker) waits for it, in a thread, so the event loop never stalls on a lock.

It speaks the subset of aiosqlite's API that SQLAlchemy's aiosqlite dialect uses, and is
plugged in through `create_async_engine(..., async_creator=connect)`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# How long a BEGIN waits for another process's write lock before it fails.
BUSY_TIMEOUT_MS = 30_000


class Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, operation: str, parameters: Sequence[Any] = ()) -> Cursor:
        try:
            self._cursor.execute(operation, parameters)
        except sqlite3.OperationalError as error:
            if not (_is_busy(error) and operation.lstrip()[:5].upper() == "BEGIN"):
                raise
            await asyncio.to_thread(_wait_and_execute, self._cursor, operation, parameters)
        return self

    async def executemany(self, operation: str, parameters: Iterable[Sequence[Any]]) -> Cursor:
        self._cursor.executemany(operation, parameters)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size or self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()


def _is_busy(error: sqlite3.OperationalError) -> bool:
    # The primary code: extended ones (SQLITE_BUSY_RECOVERY, ...) carry it in the low byte.
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def _wait_and_execute(cursor: sqlite3.Cursor, operation: str, parameters: Sequence[Any]) -> None:
    connection = cursor.connection
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        cursor.execute(operation, parameters)
    finally:
        connection.execute("PRAGMA busy_timeout=0")


class _NewCursor:
    """What `connection.cursor()` returns: SQLAlchemy enters it with `async with`."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def __aenter__(self) -> Cursor:
        return Cursor(self._connection.cursor())

    async def __aexit__(self, *_: object) -> None:
        return None


class _RunNow:
    """SQLAlchemy sets `isolation_level` by queueing a function on aiosqlite's worker
    thread (`_tx.put_nowait((future, function))`); here it simply runs."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:
            future.set_exception(error)


class Connection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _NewCursor:
        return _NewCursor(self._conn)

    async def execute(self, operation: str, parameters: Sequence[Any] = ()) -> Cursor:
        cursor = Cursor(self._conn.cursor())
        return await cursor.execute(operation, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def connector(path: str) -> Callable[[], Any]:
    """The `async_creator` for an engine on the SQLite file at `path`."""

    async def connect() -> Connection:
        # Opening may wait on a locked file (a migration elsewhere): do it off the loop.
        raw = await asyncio.to_thread(
            sqlite3.connect, path, check_same_thread=False, isolation_level=None
        )
        return Connection(raw)

    return connect
