"""SQLite for SQLAlchemy's asyncio engine, run on the event loop's own thread.

aiosqlite hands every call to a thread and back: measured here at ~400 µs of CPU per
statement, more than SQLite needs to run it, and several milliseconds of wall time when the
event loop is busy (the thread waits for the GIL). A statement on a local file in WAL mode
takes microseconds, so this connection runs statements inline, with SQLite's busy timeout
at zero. Each file has one writing process, so a BEGIN IMMEDIATE finds the lock taken only
when an admin command writes beside a running server: it then tries again every few
milliseconds, yielding to the event loop in between, until `lock_timeout`, and fails with
`DatabaseLocked`, which says so.

It speaks the subset of aiosqlite's API that SQLAlchemy's aiosqlite dialect uses (its
private `_connection` and `_tx` included), and is plugged in through
`create_async_engine(..., async_creator=connect)`. SQLAlchemy is pinned below its next minor
version for that reason, and `tests/test_sqlite.py` fails loudly if the contract changes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# How often a BEGIN that found the write lock taken tries again.
BUSY_RETRY_SECONDS = 0.005


class DatabaseLocked(sqlite3.OperationalError):
    """Another process held the write lock for longer than this connection would wait."""


class Cursor:
    def __init__(self, cursor: sqlite3.Cursor, lock_timeout: float) -> None:
        self._cursor = cursor
        self._lock_timeout = lock_timeout

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
            await _retry(self._cursor, operation, parameters, self._lock_timeout)
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


async def _retry(
    cursor: sqlite3.Cursor, operation: str, parameters: Sequence[Any], lock_timeout: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lock_timeout
    while True:
        await asyncio.sleep(BUSY_RETRY_SECONDS)
        try:
            cursor.execute(operation, parameters)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
            if loop.time() > deadline:
                raise DatabaseLocked(
                    f"another process held the database's write lock for {lock_timeout:g} s"
                ) from error
        else:
            return


class _NewCursor:
    """What `connection.cursor()` returns: SQLAlchemy enters it with `async with`."""

    def __init__(self, connection: sqlite3.Connection, lock_timeout: float) -> None:
        self._connection = connection
        self._lock_timeout = lock_timeout

    async def __aenter__(self) -> Cursor:
        return Cursor(self._connection.cursor(), self._lock_timeout)

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
    def __init__(self, connection: sqlite3.Connection, lock_timeout: float) -> None:
        self._conn = connection
        self._lock_timeout = lock_timeout
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _NewCursor:
        return _NewCursor(self._conn, self._lock_timeout)

    async def execute(self, operation: str, parameters: Sequence[Any] = ()) -> Cursor:
        cursor = Cursor(self._conn.cursor(), self._lock_timeout)
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


def connector(path: str, *, lock_timeout: float) -> Callable[[], Any]:
    """The `async_creator` for an engine on the SQLite file at `path`."""

    async def connect() -> Connection:
        # Opening may wait on a locked file (a migration elsewhere): do it off the loop.
        raw = await asyncio.to_thread(
            sqlite3.connect, path, check_same_thread=False, isolation_level=None
        )
        return Connection(raw, lock_timeout)

    return connect
