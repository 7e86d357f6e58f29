"""SQLite for SQLAlchemy's asyncio engine, run on the event loop's own thread.

aiosqlite hands every call to a thread and back: measured here at ~400 µs of CPU per
statement, more than SQLite needs to run it, and several milliseconds of wall time when the
event loop is busy (the thread waits for the GIL). A statement on a local file in WAL mode
takes microseconds, so this connection runs statements inline, with SQLite's busy timeout
at zero. Only a BEGIN that finds the write lock taken by another process (the worker
processes, a CLI command) waits for it: it tries again every half millisecond, yielding to the
event loop in between, so the loop never stalls on a lock.

While a process waits for the write lock it says so in `LockWaiters`, a few bytes beside
the database that every process maps: the workers, which hold the lock longest, read it
and end their transaction early, so the API's commits wait milliseconds, not a batch.

It speaks the subset of aiosqlite's API that SQLAlchemy's aiosqlite dialect uses, and is
plugged in through `create_async_engine(..., async_creator=connect)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# How long a BEGIN waits for another process's write lock before it fails.
BUSY_TIMEOUT_MS = 30_000
# How often a waiting BEGIN tries again when nobody announces a release. SQLite's own busy
# handler sleeps longer and longer between tries (up to 100 ms), so a waiter can starve
# behind a process that commits and begins again in quick succession; short, even tries
# catch the gaps between its transactions. Shorter tries cost CPU: at 0.5 ms, waiting took
# a third of a core.
BUSY_RETRY_SECONDS = 0.002


class LockWaiters:
    """Who waits for the database's write lock: since when (0: nobody) and how many requests
    wait on it, in a small file beside the database that every process using it maps.

    The first waiter sets the time, a waiter that gets the lock clears it, and one still
    waiting sets it again; a waiter that died leaves a time that soon counts as stale.
    `requests` tells how many requests a waiting transaction answers (group commit).
    """

    STALE = BUSY_TIMEOUT_MS / 1000

    def __init__(self, path: str) -> None:
        self.requests: Callable[[], int] = lambda: 1
        # Set when another process says it let the lock go (`ulak serve` hears it from its
        # worker processes); a waiting BEGIN then tries at once instead of at its next turn.
        self.released: asyncio.Event | None = None
        self._map: mmap.mmap | bytearray
        if not path or path == ":memory:":
            self._map = bytearray(16)
            return
        fd = os.open(f"{path}-waiting", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 16:
                os.ftruncate(fd, 16)
            self._map = mmap.mmap(fd, 16)
        finally:
            os.close(fd)

    def mark(self, waiting: bool) -> None:
        if not waiting:
            struct.pack_into("dd", self._map, 0, 0.0, 0.0)
            return
        since = self._read()[0] or time.time()
        struct.pack_into("dd", self._map, 0, since, float(max(1, self.requests())))

    def waiting(self) -> bool:
        return self.pressure() > 0

    async def pause(self) -> None:
        """Wait before the next try: until a release is announced, or BUSY_RETRY_SECONDS."""
        if self.released is None:
            await asyncio.sleep(BUSY_RETRY_SECONDS)
            return
        self.released.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.released.wait(), BUSY_RETRY_SECONDS)

    def pressure(self) -> float:
        """Request-seconds spent waiting so far: how long, times how many requests."""
        since, requests = self._read()
        waited = time.time() - since
        return waited * requests if since and 0 <= waited < self.STALE else 0.0

    def _read(self) -> tuple[float, float]:
        since, requests = struct.unpack_from("dd", self._map, 0)
        return since, requests


class Cursor:
    def __init__(self, cursor: sqlite3.Cursor, waiters: LockWaiters) -> None:
        self._cursor = cursor
        self._waiters = waiters

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
            try:
                await _retry(self._cursor, operation, parameters, self._waiters)
            finally:
                self._waiters.mark(False)
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
    cursor: sqlite3.Cursor, operation: str, parameters: Sequence[Any], waiters: LockWaiters
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
    while True:
        waiters.mark(True)
        await waiters.pause()
        try:
            cursor.execute(operation, parameters)
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or loop.time() > deadline:
                raise
        else:
            return


class _NewCursor:
    """What `connection.cursor()` returns: SQLAlchemy enters it with `async with`."""

    def __init__(self, connection: sqlite3.Connection, waiters: LockWaiters) -> None:
        self._connection = connection
        self._waiters = waiters

    async def __aenter__(self) -> Cursor:
        return Cursor(self._connection.cursor(), self._waiters)

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
    def __init__(self, connection: sqlite3.Connection, waiters: LockWaiters) -> None:
        self._conn = connection
        self._waiters = waiters
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _NewCursor:
        return _NewCursor(self._conn, self._waiters)

    async def execute(self, operation: str, parameters: Sequence[Any] = ()) -> Cursor:
        cursor = Cursor(self._conn.cursor(), self._waiters)
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


def connector(path: str, waiters: LockWaiters) -> Callable[[], Any]:
    """The `async_creator` for an engine on the SQLite file at `path`."""

    async def connect() -> Connection:
        # Opening may wait on a locked file (a migration elsewhere): do it off the loop.
        raw = await asyncio.to_thread(
            sqlite3.connect, path, check_same_thread=False, isolation_level=None
        )
        return Connection(raw, waiters)

    return connect
