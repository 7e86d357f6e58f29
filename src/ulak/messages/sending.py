"""The sender: delivers claimed messages and records each outcome the moment it is known.

A message the SMTP server accepted ("250") must be marked sent before a crash can make us
send it again. The sender does not wait for a batch: each delivery's outcome is made
durable as soon as the reply is read, and only then does the delivery count as done. The
only duplicate a crash can still cause is a message whose "250" came in that short window
(tests/test_end_to_end.py measures it on every crash: 0 to 7 ms on this 2-core machine,
12.5 ms with one of its cores hogged).

Where an outcome is recorded (`Outcomes`):
- SQLite: the worker's main-database transactions can be long (a batch of events), so an
  outcome that waited for the one writer could wait that long. Outcomes go to a side file
  of their own (`ulak-outcomes.db`, one writer at a time: the sender), committed before
  `record` returns, and the next claim folds them into `messages` in its transaction.
  Folding is idempotent (an outcome only counts for its attempt while that attempt is
  `sending`), so the rows are deleted from the side file after the fold committed, and a
  crash in between folds them again harmlessly.
- PostgreSQL: straight into `messages`, on the sender's own connection.

Who delivers (`Deliveries`): with SMTP configured, a sender process of its own
(`SenderProcess`), so that a reply is read and recorded the moment it arrives instead of
waiting for the busy worker; otherwise (the dev inbox, tests, one-process mode) the worker's
own loop (`LocalDeliveries`).

At most one SMTP pool's worth of messages is claimed at a time (`slots`), so a crash strands
few claims, and those come back at once: each sender has an id (`claimed_by`), and a claim
whose sender is provably gone is taken over without waiting for the lease, and counted
(`interrupted_attempts`: the customer may have it twice). On SQLite the worker is the
database's one writer (`ulak.worker.writer_lock`) and its sender the only one (a new sender
process waits for the last one's `sender_lock`), so every other sender is gone. On
PostgreSQL each sender holds an advisory lock on its id for as long as it lives; a claim
whose sender's lock is free is orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import multiprocessing
import multiprocessing.process
import os
import secrets
import signal
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from time import monotonic
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import ColumnElement, and_, false, or_, text
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.channels.email import DkimSigner, OutgoingEmail
from ulak.channels.service import EmailChannel, Outcome
from ulak.channels.sms import SmsChannel, SmsOut
from ulak.clock import Clock
from ulak.config import Settings
from ulak.db import Database, create_private, libpq_url, side_path
from ulak.messages.models import Message
from ulak.messages.service import (
    Claimed,
    Delivered,
    bounce_rows,
    claim_due,
    outcome_rows,
    record_outcomes,
    recording_bounces,
    recording_outcomes,
    sent_ids,
    sent_webhooks,
)
from ulak.offload import Offload
from ulak.suppressions.verp import return_path

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# The first key of every sender's PostgreSQL advisory lock ("ulak" in ASCII); the second
# is the sender's id.
SENDER_LOCKS = 0x756C616B
# PostgreSQL: a sender asks which senders are gone at most this often, not on every claim
# (one query fewer per claim; a check costs a round trip and scans the sending ones).
DEAD_SENDER_CHECK_SECONDS = 1.0

# The outcomes side file's one table (SQLite). Not part of the main schema: it only holds
# outcomes on their way into `messages`.
_OUTCOMES_TABLE = """CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    error TEXT,
    permanent INTEGER NOT NULL,
    at TEXT NOT NULL,
    bounce_code INTEGER,
    provider_id TEXT,
    retry_after REAL
)"""
# Columns added since the table was first made: a side file from an earlier version may
# still hold outcomes.
_OUTCOMES_ADDED = {"bounce_code": "INTEGER", "provider_id": "TEXT", "retry_after": "REAL"}


class Outcomes:
    """Delivery outcomes, each durable as soon as `record` returns.

    SQLite: one INSERT on a plain connection to the side file, committed before `record`
    returns, without leaving the event loop (measured: 0.06 ms at the median, 0.7 ms at
    p99). Through the async engine the same write waited for turns of a busy event loop:
    4 ms at the median and 16 ms at p99.

    PostgreSQL: outcomes that arrive while one commit runs are written together by the
    next, as one pipelined transaction on the sender's own connection.
    """

    def __init__(self, database: Database, *, max_attempts: int) -> None:
        self.database = database
        self.max_attempts = max_attempts
        self._file: sqlite3.Connection | None = None  # SQLite: the side file
        self._waiting: list[tuple[Delivered, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        # PostgreSQL: the sender's own connection, which holds its lock.
        self.connection: psycopg.AsyncConnection[Any] | None = None

    async def record(self, outcome: Delivered) -> None:
        """Returns once the outcome is durable."""
        if self.database.is_sqlite:
            self._side_file().execute(
                "INSERT INTO outcomes (message_id, attempt, error, permanent, at,"
                " provider_id, retry_after, bounce_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    outcome.message_id,
                    outcome.attempt,
                    outcome.error,
                    outcome.permanent,
                    outcome.at.isoformat(),
                    outcome.provider_id,
                    outcome.retry_after,
                    outcome.bounce_code,
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
            if bounces := bounce_rows(outcomes, max_attempts=self.max_attempts):
                from psycopg.types.json import Jsonb

                await cursor.executemany(
                    _bounces_on_postgres(),
                    [b | {"data": Jsonb(b["data"]), "customer": Jsonb({})} for b in bounces],
                )
                await cursor.execute("NOTIFY ulak_events")
            if sent := sent_ids(outcomes):
                # `message.sent` for the stores' webhooks: one statement for the group.
                await cursor.execute(_sent_webhooks_on_postgres(), {"ids": sent})

    async def fold(self, session: AsyncSession) -> int:
        """SQLite: apply the side file's outcomes to `messages` in the caller's transaction
        (the main database's one writer). Returns the last sequence number folded (0: none),
        for `forget` once that transaction committed."""
        if not self.database.is_sqlite:
            return 0
        rows = (
            self._side_file()
            .execute(
                "SELECT seq, message_id, attempt, error, permanent, at, bounce_code,"
                " provider_id, retry_after FROM outcomes ORDER BY seq"
            )
            .fetchall()
        )
        await record_outcomes(
            session,
            [
                Delivered(
                    message,
                    attempt,
                    error,
                    bool(permanent),
                    datetime.fromisoformat(at),
                    provider_id=provider_id,
                    retry_after=retry_after,
                    bounce_code=bounce,
                )
                for _, message, attempt, error, permanent, at, bounce, provider_id, retry_after in (
                    rows
                )
            ],
            max_attempts=self.max_attempts,
        )
        return int(rows[-1][0]) if rows else 0

    def forget(self, up_to: int) -> None:
        """Delete the outcomes folded into `messages`, once that fold committed."""
        if up_to:
            self._side_file().execute("DELETE FROM outcomes WHERE seq <= ?", (up_to,))

    def _side_file(self) -> sqlite3.Connection:
        if self._file is None:
            path = side_path(self.database.path, "outcomes")
            create_private(path)
            # Autocommit: each statement is its own transaction. WAL with synchronous=NORMAL
            # survives a crash of the process (not of the machine), like the main database.
            file = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            file.execute(f"PRAGMA busy_timeout={int(self.database.lock_timeout * 1000)}")
            file.execute("PRAGMA journal_mode=WAL")
            file.execute("PRAGMA synchronous=NORMAL")
            # Folded outcomes are deleted: zeroed, as everywhere (see `db._sqlite_engine`).
            file.execute("PRAGMA secure_delete=ON")
            file.execute(_OUTCOMES_TABLE)
            have = {row[1] for row in file.execute("PRAGMA table_info(outcomes)")}
            for column, kind in _OUTCOMES_ADDED.items():
                if column not in have:
                    file.execute(f"ALTER TABLE outcomes ADD COLUMN {column} {kind}")
            self._file = file
        return self._file

    async def wait(self) -> None:
        """Until every outcome recorded so far is committed (or failed)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@functools.cache
def _recording_on_postgres() -> str:
    """`recording_outcomes` in PostgreSQL's SQL, for the sender's own psycopg connection."""
    from sqlalchemy.dialects.postgresql import psycopg

    return str(recording_outcomes().compile(dialect=psycopg.dialect()))  # type: ignore[no-untyped-call]


@functools.cache
def _bounces_on_postgres() -> str:
    """`recording_bounces` in PostgreSQL's SQL."""
    from sqlalchemy.dialects.postgresql import psycopg

    statement = recording_bounces(postgres=True)
    return str(statement.compile(dialect=psycopg.dialect()))  # type: ignore[no-untyped-call]


@functools.cache
def _sent_webhooks_on_postgres() -> str:
    """`sent_webhooks` in PostgreSQL's SQL."""
    from sqlalchemy.dialects.postgresql import psycopg

    return str(sent_webhooks(postgres=True).compile(dialect=psycopg.dialect()))  # type: ignore[no-untyped-call]


class Deliveries(Protocol):
    """Where claimed messages are delivered and their outcomes recorded."""

    claimer: int

    async def ready(self) -> None:
        """Until deliveries can start under `claimer` (which may change here)."""

    async def deliver(self, message: Claimed) -> None:
        """Until the message's outcome is recorded, or its delivery was abandoned."""

    async def close(self, grace: float) -> None: ...


class LocalDeliveries:
    """Deliveries on the worker's own event loop: for the dev inbox, which writes the main
    database through the worker's engine, and where one process does everything."""

    def __init__(
        self, email: EmailChannel, sms: SmsChannel, outcomes: Outcomes, clock: Clock
    ) -> None:
        self.email = email
        self.sms = sms
        self.outcomes = outcomes
        self.clock = clock
        self.claimer = _new_claimer()
        # PostgreSQL: the connection holding this sender's lock.
        self._alive: psycopg.AsyncConnection[Any] | None = None

    async def ready(self) -> None:
        database = self.outcomes.database
        if database.is_sqlite or (self._alive is not None and not self._alive.closed):
            return
        if self._alive is not None:
            log.warning("the sender's lock connection was lost; continuing under a new id")
            self.claimer = _new_claimer()
        self._alive = self.outcomes.connection = await hold_claimer_lock(database, self.claimer)

    async def deliver(self, message: Claimed) -> None:
        await deliver_and_record(message, self.email, self.sms, self.outcomes, self.clock)

    async def close(self, grace: float) -> None:
        await self.outcomes.wait()
        await self.email.close()
        await self.sms.close()
        if self._alive is not None:
            await self._alive.close()
            self._alive = None


async def deliver_and_record(
    message: Claimed, email: EmailChannel, sms: SmsChannel, outcomes: Outcomes, clock: Clock
) -> None:
    if message.channel == "sms":
        outcome = await sms.deliver(_sms(message))
    else:
        outcome = await email.deliver(_email(message))
    await record(message.id, message.attempts, outcome, outcomes, clock)


async def record(
    message: int, attempt: int, outcome: Outcome, outcomes: Outcomes, clock: Clock
) -> None:
    delivered = Delivered(
        message,
        attempt,
        outcome.error,
        outcome.permanent,
        clock.now(),
        provider_id=outcome.provider_id,
        retry_after=outcome.retry_after,
        bounce_code=outcome.bounce_code,
    )
    try:
        await outcomes.record(delivered)
    except Exception:
        # The message stays claimed; it comes back when this sender is gone or its lease
        # runs out, and is counted as possibly sent twice.
        log.exception("the outcome of message %s could not be recorded", message)


async def hold_claimer_lock(database: Database, claimer: int) -> psycopg.AsyncConnection[Any]:
    """PostgreSQL: a connection of the sender's own that holds its lock while it lives,
    and on which it commits its outcomes."""
    import psycopg

    connection = await psycopg.AsyncConnection.connect(libpq_url(database.url), autocommit=True)
    await connection.execute("SELECT pg_advisory_lock(%s, %s)", (SENDER_LOCKS, claimer))
    # Outcomes committed on this connection do not wait for the WAL's flush to disk: a
    # crash of ulak loses none of them (the server flushes them regardless); a crash of the
    # database server's machine may lose the last fraction of a second, as SQLite's
    # synchronous=NORMAL does. Waiting for the flush kept the window in which a crash
    # duplicates a delivery several times longer.
    await connection.execute("SET synchronous_commit = off")
    return connection


class SenderProcess:
    """Deliveries in a process of their own (a worker with SMTP configured).

    Measured on the worker's loop, and then on a thread of the worker's: the worker is
    busy at capacity (it applies events and runs journeys), so a reply from the SMTP server
    waited for its loop or for the interpreter lock. Each of the ten conversations spent a
    share of its time with a "250" received and not yet recorded, and a kill then sent
    about one message twice per crash. In a process whose only work is the SMTP
    conversations and their records, a reply is recorded as it arrives.

    The worker sends each claimed message over a pipe; the sender process builds its MIME
    (and DKIM signature) between conversations, delivers it, and answers with the
    message's id once the outcome is recorded (in the outcomes side file on SQLite, in
    `messages` on PostgreSQL). When the pipe closes (the worker stopped or died) it
    finishes the deliveries it has and exits. A sender process that dies is replaced under
    a new id, so its claims come back at once.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.claimer = 0
        self._process: multiprocessing.process.BaseProcess | None = None
        self._pipe: Connection | None = None
        self._started: asyncio.Future[None] | None = None
        self._waiting: dict[tuple[int, int], asyncio.Future[None]] = {}

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def ready(self) -> None:
        if self._pipe is None or self._process is None or not self._process.is_alive():
            self._start()
        assert self._started is not None
        await asyncio.shield(self._started)

    def _start(self) -> None:
        if self._process is not None:
            self._gone()
            if self._process.is_alive():  # alive, but its pipe broke: it cannot be told
                self._process.kill()
            self._process.join()
            log.error(
                "the sender process %s exited (%s); starting another",
                self._process.pid,
                self._process.exitcode,
            )
        self.claimer = _new_claimer()
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        self._process = context.Process(
            target=run_sender_process,
            args=(self.settings, self.claimer, theirs),
            name="ulak-sender",
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._pipe = ours
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        loop.add_reader(ours.fileno(), self._read)

    def _read(self) -> None:
        pipe = self._pipe
        assert pipe is not None
        try:
            while pipe.poll():
                answer = pipe.recv()
                if answer == "ready":
                    assert self._started is not None
                    self._started.set_result(None)
                elif (done := self._waiting.pop(answer, None)) is not None:
                    done.set_result(None)
        except (EOFError, OSError):
            self._gone()

    def _gone(self) -> None:
        """The process ended: its deliveries in flight are abandoned (their claims come
        back to the next sender, counted as possible duplicates)."""
        if self._pipe is not None:
            asyncio.get_running_loop().remove_reader(self._pipe.fileno())
            self._pipe.close()
            self._pipe = None
        waiting, self._waiting = self._waiting, {}
        for done in waiting.values():
            if not done.done():
                done.set_result(None)
        if self._started is not None and not self._started.done():
            self._started.set_exception(RuntimeError("the sender process exited at start"))

    async def deliver(self, message: Claimed) -> None:
        if self._pipe is None:
            # The process it was claimed for is gone (a new one has a new id): the claim
            # comes back, once this delivery has let go of it (`Sender._taken_back`).
            return
        done = asyncio.get_running_loop().create_future()
        self._waiting[message.id, message.attempts] = done
        try:
            content = _sms(message) if message.channel == "sms" else _email(message)
            self._pipe.send(Handover(message.id, message.attempts, content))
        except OSError:
            self._gone()
        await done

    async def close(self, grace: float) -> None:
        if self._process is None:
            return
        if self._pipe is not None:
            # The end of the pipe tells it to finish what it has and exit.
            asyncio.get_running_loop().remove_reader(self._pipe.fileno())
            self._pipe.close()
            self._pipe = None
        process = self._process
        await asyncio.to_thread(process.join, grace)
        if process.is_alive():
            log.warning("the sender process did not stop in time; killing it")
            process.kill()
            await asyncio.to_thread(process.join)
        self._process = None


@dataclass(frozen=True)
class Handover:
    """A claimed message, as the worker hands it to the sender process."""

    message: int
    attempt: int
    mail: OutgoingEmail | SmsOut


def run_sender_process(settings: Settings, claimer: int, pipe: Connection) -> None:
    """The sender process's main function."""
    # Ctrl-C in a terminal reaches the whole group; the worker decides when this ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_send_until_closed(settings, claimer, pipe))


async def _send_until_closed(settings: Settings, claimer: int, pipe: Connection) -> None:
    from ulak.channels.service import email_transport
    from ulak.clock import SystemClock

    database = Database(settings.database_url, lock_timeout=settings.lock_timeout_seconds)
    clock = SystemClock()
    outcomes = Outcomes(database, max_attempts=settings.send_max_attempts)
    # The MIME is built and signed here, between conversations. It used to be built in
    # the worker's helper process, where it waited behind the step runner's renders: a
    # delivery slot spent 40 ms waiting for it at capacity (`bench/pipeline.py`, 2 cores
    # shared), against ~0.5 ms to build it here. A reply that arrives meanwhile waits that
    # long for its record.
    email = EmailChannel(
        email_transport(settings, database, clock), DkimSigner.from_settings(settings), Offload(0)
    )
    # A store without an SMS provider keeps its SMS in the dev SMS inbox: on SQLite this
    # process then writes the main file beside the worker (waiting for its lock), which
    # only a development setup with SMTP and without an SMS provider does.
    sms = SmsChannel(database, settings, clock)
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()
    deliveries: set[asyncio.Task[None]] = set()
    with sender_lock(database):
        alive = None if database.is_sqlite else await hold_claimer_lock(database, claimer)
        outcomes.connection = alive

        async def deliver(handover: Handover) -> None:
            if isinstance(handover.mail, SmsOut):
                outcome = await sms.deliver(handover.mail)
            else:
                outcome = await email.deliver(handover.mail)
            await record(handover.message, handover.attempt, outcome, outcomes, clock)
            with contextlib.suppress(OSError):
                pipe.send((handover.message, handover.attempt))
            if alive is not None and alive.closed:
                # Without its lock others take its claims: stop, and be replaced.
                log.error("the sender process lost its database connection; stopping")
                closed.set()

        def read() -> None:
            try:
                while pipe.poll():
                    task = loop.create_task(deliver(pipe.recv()))
                    deliveries.add(task)
                    task.add_done_callback(deliveries.discard)
            except (EOFError, OSError):
                loop.remove_reader(pipe.fileno())
                closed.set()

        pipe.send("ready")
        loop.add_reader(pipe.fileno(), read)
        await closed.wait()
        if deliveries:
            await asyncio.wait(deliveries, timeout=settings.smtp_timeout_seconds)
        await outcomes.wait()
        outcomes.close()
        await email.close()
        await sms.close()
        if alive is not None:
            await alive.close()
    await database.dispose()


@contextlib.contextmanager
def sender_lock(database: Database) -> Iterator[None]:
    """SQLite: hold `<file>-sender.lock` while sending. A sender that starts while an
    earlier one still finishes its deliveries (its worker died; it saw the pipe close)
    waits here, so no claim it holds is taken back while it may still be delivered."""
    if not database.is_sqlite:
        yield
        return
    fd = os.open(f"{database.path}-sender.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Sender:
    """This worker's deliveries: at most `slots` in flight (the SMTP pool's connections),
    each outcome recorded as soon as it is known, in this process (`LocalDeliveries`) or in
    a sender process (`SenderProcess`)."""

    def __init__(
        self,
        email: EmailChannel,
        database: Database,
        settings: Settings,
        clock: Clock,
        *,
        own_process: bool,
    ) -> None:
        self.email = email
        self.database = database
        self.settings = settings
        self.clock = clock
        self.slots = settings.smtp_pool_size
        self.outcomes = Outcomes(database, max_attempts=settings.send_max_attempts)
        self.deliveries: Deliveries = (
            SenderProcess(settings)
            if own_process
            else LocalDeliveries(email, SmsChannel(database, settings, clock), self.outcomes, clock)
        )
        self._in_flight: set[asyncio.Task[None]] = set()
        # The message each delivery in flight holds.
        self._holding: dict[asyncio.Task[None], int] = {}
        self._ended = 0
        # PostgreSQL: when (monotonic()) and under which id this sender last asked
        # which senders are gone.
        self._gone_checked_at = -DEAD_SENDER_CHECK_SECONDS
        self._gone_checked_as = 0

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def send_due(self, session: AsyncSession, *, limit: int) -> list[Claimed]:
        """Claim up to `limit` due messages (no more than the free slots) in the caller's
        transaction; deliver them once it has committed (`start`)."""
        await self.deliveries.ready()
        now = self.clock.now()
        claimed = await claim_due(
            session,
            now=now,
            limit=min(limit, self.slots - self.in_flight),
            lease=timedelta(seconds=self.settings.lease_seconds),
            base_url=self.settings.base_url,
            max_attempts=self.settings.send_max_attempts,
            claimer=self.deliveries.claimer,
            taken_back=await self._taken_back(session, now),
        )
        if domain := self.settings.bounce_domain:
            # VERP: the receiving server's DSN names the message it returns.
            return [replace(c, return_path=return_path(c.tag, domain)) for c in claimed]
        return claimed

    def start(self, claimed: Sequence[Claimed]) -> None:
        for message in claimed:
            task = asyncio.create_task(self.deliveries.deliver(message))
            self._in_flight.add(task)
            self._holding[task] = message.id
            task.add_done_callback(self._end)

    async def free_slot(self) -> None:
        """Until a slot is free. (Claiming half a pool at a time instead, for fewer claim
        transactions, measured no different.)"""
        while self.in_flight >= self.slots:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)

    async def ended(self, within: float) -> int:
        """How many deliveries ended since the last call; if none did and some are in
        flight, wait up to `within` seconds for one."""
        if not self._ended and self._in_flight:
            await asyncio.wait(self._in_flight, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        ended, self._ended = self._ended, 0
        return ended

    def _end(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._holding.pop(task, None)
        self._ended += 1

    async def _taken_back(self, session: AsyncSession, now: datetime) -> ColumnElement[bool]:
        """Which `sending` messages no sender holds any more: those of a sender that is
        provably gone, at once; those this sender claimed and no longer has in flight (a
        claim lost between its commit and its start), and rows from before senders signed
        their claims, once the lease ran out.

        A live sender's claim is never taken, however long its delivery takes: with a
        5 s lease under a loaded machine, a second worker took claims still in flight and
        sent them again (10 duplicates over 10 crashes in `tests/test_soak.py`). A sender
        that hangs is ended by restarting its worker; its claims then come back at once.
        """
        mine = Message.claimed_by == self.deliveries.claimer
        holding = list(self._holding.values())
        lost = and_(
            Message.lease_until <= now,
            or_(Message.claimed_by.is_(None), mine),
        )
        # Never what this worker still has in flight, even under an id it no longer
        # has (its sender process or lock connection replaced meanwhile): that delivery
        # may still reach the customer.
        return and_(or_(await self._orphaned(session), lost), Message.id.not_in(holding))

    async def _orphaned(self, session: AsyncSession) -> ColumnElement[bool]:
        """Which `sending` messages belong to a sender that is provably gone."""
        me = self.deliveries.claimer
        if self.database.is_sqlite:
            # This process is the one writer, and its sender the only one running.
            return Message.claimed_by != me
        now = monotonic()
        if me == self._gone_checked_as and now - self._gone_checked_at < DEAD_SENDER_CHECK_SECONDS:
            # Asked a moment ago: a sender gone since then has its claims taken at the next
            # check. (A new id means this worker's own sender process was replaced: its
            # claims come back at once.)
            return or_(false())
        self._gone_checked_at, self._gone_checked_as = now, me
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
                {"me": me, "locks": SENDER_LOCKS},
            )
        ).scalars()
        ids = list(dead)
        return Message.claimed_by.in_(ids) if ids else or_(false())

    async def close(self, grace: float) -> None:
        """Let the deliveries in flight finish and record their outcomes (up to `grace`
        seconds), then close the channel."""
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=grace)
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self.deliveries.close(grace)
        self.outcomes.close()


def _new_claimer() -> int:
    # Positive and within 32 bits: PostgreSQL's two-key advisory locks take int4.
    return 1 + secrets.randbelow(2**31 - 2)


def _sms(message: Claimed) -> SmsOut:
    return SmsOut(
        message_id=message.id,
        store_id=message.store_id,
        to=message.to_address,
        text=message.text,
        commercial=message.commercial,
        recipient_type="merchant" if message.recipient_type == "merchant" else "individual",
    )


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
        list_unsubscribe_mailto=message.unsubscribe_mailto,
        auto_submitted=message.auto_submitted,
        tag=message.tag,
        return_path=message.return_path,
    )
