"""The sender: delivers claimed messages and records each outcome the moment it is known.

A message the SMTP server accepted ("250") must be marked sent before a crash can make us
send it again. So the sender does not wait for a whole batch: each delivery's outcome joins
a group commit (`Outcomes`) that starts as soon as the previous one ends, and the delivery
counts as done only once its outcome is durable. The window in which a crash can still
cause a duplicate is the time between the "250" and that commit: one commit of a few rows,
plus at most one commit already under way (measured in `bench/RESULTS.md`).

Where the outcomes are committed:
- SQLite: the worker's main-database transactions can be long (a batch of events), so an
  outcome waiting for the one writer connection could wait that long. Outcomes go to a side
  file of their own instead (`ulak-outcomes.db`, one writer: this process), and the next
  claim folds them into `messages` in its transaction. Folding is idempotent (an outcome
  only counts for its attempt while that attempt is `sending`), so the rows are deleted
  from the side file after the fold committed, and a crash in between folds them again
  harmlessly.
- PostgreSQL: straight into `messages`, in a transaction of their own; there is no one
  writer to wait for.

At most one SMTP pool's worth of messages is claimed at a time (`slots`), so a crash strands
few claims, and those come back at once: each sender has an id (`claimed_by`), and a claim
whose sender is provably gone is taken over without waiting for the lease. On SQLite the
worker is the database's one writer (`ulak.worker.writer_lock`), so every sender but this
one is gone. On PostgreSQL each sender holds an advisory lock on its id for as long as it
lives, on a connection of its own; a claim whose sender's lock is free is orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Coroutine, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ColumnElement, false, or_, text
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.channels.email import OutgoingEmail
from ulak.channels.service import EmailChannel
from ulak.clock import Clock
from ulak.config import Settings
from ulak.db import Database, side_path
from ulak.messages.models import Message
from ulak.messages.service import (
    Claimed,
    Delivered,
    claim_due,
    outcome_rows,
    record_outcomes,
    recording_outcomes,
)

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

log = logging.getLogger(__name__)

# The first key of every sender's PostgreSQL advisory lock ("ulak" in ASCII); the second
# is the sender's id.
SENDER_LOCKS = 0x756C616B

# The outcomes side file's one table (SQLite). Not part of the main schema: it only holds
# outcomes on their way into `messages`.
_OUTCOMES_TABLE = """CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    error TEXT,
    permanent INTEGER NOT NULL,
    at TEXT NOT NULL
)"""


class Outcomes:
    """Delivery outcomes, each durable as soon as `record` returns.

    SQLite: one INSERT on a plain connection to the side file, committed before `record`
    returns, without leaving the event loop (measured: ~0.1 ms). Through aiosqlite's thread
    the same write waited for four turns of a busy event loop: 4 ms at the median and 16 ms
    at p99, which at 300 emails/s meant three duplicates per crash.

    PostgreSQL: outcomes that arrive while one commit runs are written together by the
    next, as one pipelined transaction on the sender's own connection.
    """

    def __init__(self, database: Database, *, max_attempts: int) -> None:
        self.database = database
        self.max_attempts = max_attempts
        # SQLite: the side file, on one connection per thread that uses it (the delivery
        # thread records, the worker's loop folds).
        self._files: dict[int, sqlite3.Connection] = {}
        self._waiting: list[tuple[Delivered, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        # PostgreSQL: the sender's own connection, which holds its lock.
        self.connection: psycopg.AsyncConnection[Any] | None = None

    async def record(self, outcome: Delivered) -> None:
        """Returns once the outcome is durable."""
        if self.database.is_sqlite:
            self._side_file().execute(
                "INSERT INTO outcomes (message_id, attempt, error, permanent, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    outcome.message_id,
                    outcome.attempt,
                    outcome.error,
                    outcome.permanent,
                    outcome.at.isoformat(),
                ),
            )
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((outcome, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await asyncio.shield(done)

    async def _write(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                await self._commit([outcome for outcome, _ in group])
            except Exception as error:
                for _, done in group:
                    done.set_exception(error)
            else:
                for _, done in group:
                    done.set_result(None)

    async def _commit(self, outcomes: list[Delivered]) -> None:
        rows = outcome_rows(outcomes, max_attempts=self.max_attempts)
        connection = self.connection
        assert connection is not None, "the sender connects before it claims"
        async with (
            connection.pipeline(),
            connection.transaction(),
            connection.cursor() as cursor,
        ):
            await cursor.executemany(_recording_on_postgres(), rows)

    async def fold(self, session: AsyncSession) -> int:
        """SQLite: apply the side file's outcomes to `messages` in the caller's transaction
        (the main database's one writer). Returns the last sequence number folded (0: none),
        for `forget` once that transaction committed."""
        if not self.database.is_sqlite:
            return 0
        rows = (
            self._side_file()
            .execute(
                "SELECT seq, message_id, attempt, error, permanent, at FROM outcomes ORDER BY seq"
            )
            .fetchall()
        )
        await record_outcomes(
            session,
            [
                Delivered(message, attempt, error, bool(permanent), datetime.fromisoformat(at))
                for _, message, attempt, error, permanent, at in rows
            ],
            max_attempts=self.max_attempts,
        )
        return int(rows[-1][0]) if rows else 0

    def forget(self, up_to: int) -> None:
        """Delete the outcomes folded into `messages`, once that fold committed."""
        if up_to:
            self._side_file().execute("DELETE FROM outcomes WHERE seq <= ?", (up_to,))

    def _side_file(self) -> sqlite3.Connection:
        thread = threading.get_ident()
        if thread not in self._files:
            path = side_path(self.database.path, "outcomes")
            # Only this process may read it: it names customers' messages.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            # Autocommit: each statement is its own transaction. WAL with synchronous=NORMAL
            # survives a crash of the process (not of the machine), like the main database.
            file = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            file.execute(f"PRAGMA busy_timeout={int(self.database.lock_timeout * 1000)}")
            file.execute("PRAGMA journal_mode=WAL")
            file.execute("PRAGMA synchronous=NORMAL")
            file.execute(_OUTCOMES_TABLE)
            self._files[thread] = file
        return self._files[thread]

    async def wait(self) -> None:
        """Until every outcome recorded so far is committed (or failed)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()


@functools.cache
def _recording_on_postgres() -> str:
    """`recording_outcomes` in PostgreSQL's SQL, for the sender's own psycopg connection."""
    from sqlalchemy.dialects.postgresql import psycopg

    return str(recording_outcomes().compile(dialect=psycopg.dialect()))  # type: ignore[no-untyped-call]


class DeliveryThread:
    """An event loop of its own, on a thread of its own, for SMTP conversations and the
    recording of their outcomes.

    On the worker's loop, which applies events and runs journeys, a reply from the SMTP
    server waited for that loop's turn: at capacity the loop is always busy, so every
    conversation spent a share of its time with a "250" received and not yet recorded, and
    a crash then sent those messages twice (measured: about one per crash with ten
    connections). Here a reply waits at most for the interpreter to switch threads.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="ulak-delivery", daemon=True
        )
        self._thread.start()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the delivery loop; cancelling this cancels it there."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class Sender:
    """This worker process's deliveries: at most `slots` in flight (the SMTP pool's
    connections), each outcome recorded as soon as it is known.

    Claims and folds run in the worker's transactions; SMTP conversations and outcomes run
    on a `DeliveryThread`. The dev inbox (no SMTP server configured) writes the main
    database through the worker's own engine, so there deliveries run on the worker's loop.
    """

    def __init__(
        self, email: EmailChannel, database: Database, settings: Settings, clock: Clock
    ) -> None:
        self.email = email
        self.database = database
        self.settings = settings
        self.clock = clock
        self.slots = settings.smtp_pool_size
        self.outcomes = Outcomes(database, max_attempts=settings.send_max_attempts)
        self.claimer = _new_claimer()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._thread: DeliveryThread | None = None
        self._own_thread = bool(settings.smtp_url)
        # PostgreSQL: the connection holding this sender's lock (on the delivery loop).
        self._alive: psycopg.AsyncConnection[Any] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def _there(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` where deliveries run."""
        if not self._own_thread:
            return await work
        if self._thread is None:
            self._thread = DeliveryThread()
        return await self._thread.run(work)

    async def send_due(self, session: AsyncSession, *, limit: int) -> list[Claimed]:
        """Claim up to `limit` due messages (no more than the free slots) in the caller's
        transaction; deliver them once it has committed (`start`)."""
        if not self.database.is_sqlite and (self._alive is None or self._alive.closed):
            await self._there(self._hold_claimer_lock())
        now = self.clock.now()
        return await claim_due(
            session,
            now=now,
            limit=min(limit, self.slots - self.in_flight),
            lease=timedelta(seconds=self.settings.lease_seconds),
            base_url=self.settings.base_url,
            max_attempts=self.settings.send_max_attempts,
            claimer=self.claimer,
            orphaned=await self._orphaned(session),
        )

    def start(self, claimed: Sequence[Claimed]) -> None:
        for message in claimed:
            task = asyncio.create_task(self._there(self._deliver(message)))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def free_slot(self) -> None:
        """Until a slot is free."""
        while self.in_flight >= self.slots:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)

    async def one_delivered(self, within: float) -> bool:
        """Until one delivery in flight ends (True), or `within` seconds pass."""
        if not self._in_flight:
            return False
        done, _ = await asyncio.wait(
            self._in_flight, timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
        return bool(done)

    async def _deliver(self, message: Claimed) -> None:
        outcome = await self.email.deliver(_email(message))
        delivered = Delivered(
            message.id, message.attempts, outcome.error, outcome.permanent, self.clock.now()
        )
        try:
            await self.outcomes.record(delivered)
        except Exception:
            # The message stays claimed; it comes back when this sender is gone or its
            # lease runs out, and is counted as possibly sent twice.
            log.exception("the outcome of message %s could not be recorded", message.id)

    async def _orphaned(self, session: AsyncSession) -> ColumnElement[bool]:
        """Which `sending` messages belong to a sender that is provably gone."""
        if self.database.is_sqlite:
            # This process is the one writer: no other sender is running.
            return Message.claimed_by != self.claimer
        # A sender holds its lock while it lives; taking it (until this transaction ends)
        # proves that sender gone. The DISTINCT subquery asks once per sender, and
        # PostgreSQL never pushes a volatile condition into it.
        dead = (
            await session.execute(
                text(
                    "SELECT s.claimed_by FROM (SELECT DISTINCT claimed_by FROM messages"
                    " WHERE messages.status = 'sending' AND claimed_by <> :me) s"
                    " WHERE pg_try_advisory_xact_lock(:locks, s.claimed_by)"
                ),
                {"me": self.claimer, "locks": SENDER_LOCKS},
            )
        ).scalars()
        ids = list(dead)
        return Message.claimed_by.in_(ids) if ids else or_(false())

    async def _hold_claimer_lock(self) -> None:
        """PostgreSQL: hold this sender's lock on a connection of its own; if that
        connection was lost (others may now take its claims), go on under a new id."""
        import psycopg

        if self._alive is not None:
            log.warning("the sender's lock connection was lost; continuing under a new id")
            self.claimer = _new_claimer()
        url = self.database.url.replace("postgresql+psycopg://", "postgresql://")
        connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
        await connection.execute("SELECT pg_advisory_lock(%s, %s)", (SENDER_LOCKS, self.claimer))
        # Outcomes committed on this connection do not wait for the WAL's flush to disk: a
        # crash of ulak loses none of them (the server flushes them regardless); a crash of
        # the database server's machine may lose the last fraction of a second, as
        # SQLite's synchronous=NORMAL does. Waiting for the flush kept the window in which
        # a crash duplicates a delivery several times longer.
        await connection.execute("SET synchronous_commit = off")
        self._alive = self.outcomes.connection = connection

    async def close(self, grace: float) -> None:
        """Let the deliveries in flight finish and record their outcomes (up to `grace`
        seconds), then close the channel."""
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=grace)
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await (self._thread.run(self._close()) if self._thread is not None else self._close())
        self.outcomes.close()
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    async def _close(self) -> None:
        await self.outcomes.wait()
        await self.email.close()
        if self._alive is not None:
            await self._alive.close()
            self._alive = None


def _new_claimer() -> int:
    # Positive and within 32 bits: PostgreSQL's two-key advisory locks take int4.
    return 1 + secrets.randbelow(2**31 - 2)


def _email(message: Claimed) -> OutgoingEmail:
    return OutgoingEmail(
        message_id=message.message_id_header,
        from_name=message.from_name,
        from_address=message.from_address,
        reply_to=message.reply_to,
        to_address=message.to_address,
        subject=message.subject,
        html=message.html,
        text=message.text,
        date=message.created_at,
        list_unsubscribe_url=message.unsubscribe_url,
    )
