"""The workers: apply events, run due enrollments, send due messages.

Each loop claims a batch of due rows, works, commits, and goes again at once while there is
work; when idle it sleeps until woken (new events committed) or `poll_seconds`.

`ulak serve` runs them in worker processes of their own (`WorkerProcesses`), so the API and
the workers each have a core; with `ULAK_WORKER_PROCESSES=0` they share the API's process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from ulak.channels.email import DkimSigner, OutgoingEmail, SendError, build_mime
from ulak.channels.service import EmailTransport
from ulak.clock import Clock
from ulak.config import Settings
from ulak.db import Database
from ulak.events.service import apply_pending
from ulak.journeys.jobs import run_due_enrollments
from ulak.messages.service import Claimed, claim_due, record_outcome

log = logging.getLogger(__name__)


class Workers:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        clock: Clock,
        transport: EmailTransport,
    ) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock
        self.transport = transport
        self.dkim = DkimSigner.from_settings(settings)
        # SQLite has one writer: smaller batches commit sooner, so the next stage (in this
        # process's other loops) sees their rows sooner.
        self.batch = (
            min(settings.batch_size, SQLITE_BATCH) if database.is_sqlite else settings.batch_size
        )
        self._wake = {name: asyncio.Event() for name in ("events", "steps", "messages")}
        self._stopping = asyncio.Event()
        self._stopped_early: set[str] = set()

    def wake(self, name: str = "events") -> None:
        self._wake[name].set()

    def _stop_early(self, name: str) -> bool:
        """Whether a batch should end now because a request waits for the database; a loop
        whose batch ended so goes on at once rather than letting more rows gather."""
        if self.database.lock_wanted():
            self._stopped_early.add(name)
            return True
        return False

    # One pass of each kind of work; each returns how many rows it handled.

    async def apply_events(self) -> int:
        done = await self._batch(
            partial(
                apply_pending,
                clock=self.clock,
                limit=self.batch,
                stop_early=partial(self._stop_early, "events"),
            )
        )
        if done:
            self.wake("steps")
        return done

    async def run_steps(self) -> int:
        done = await self._batch(
            partial(
                run_due_enrollments,
                clock=self.clock,
                limit=self.batch,
                max_attempts=self.settings.step_max_attempts,
                base_url=self.settings.base_url,
                stop_early=partial(self._stop_early, "steps"),
            )
        )
        if done:
            self.wake("messages")
        return done

    async def _batch(self, work: Callable[..., Awaitable[int]]) -> int:
        """Run one batch in one transaction. If anything in it fails, roll back and run it
        again with each row in a savepoint (`isolate`), where the failure is recorded on
        its row and the others go on."""
        try:
            async with self.database.transaction(background=True) as session:
                return await work(session, isolate=False)
        except Exception:
            async with self.database.transaction(background=True) as session:
                return await work(session, isolate=True)

    async def send_messages(self) -> int:
        async with self.database.transaction(background=True) as session:
            claimed = await claim_due(
                session,
                now=self.clock.now(),
                limit=self.settings.batch_size,
                lease=timedelta(seconds=self.settings.lease_seconds),
                base_url=self.settings.base_url,
                max_attempts=self.settings.send_max_attempts,
            )
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._deliver(message) for message in claimed))
        async with self.database.transaction(background=True) as session:
            now = self.clock.now()
            for message, (error, permanent) in zip(claimed, outcomes, strict=True):
                await record_outcome(
                    session,
                    message_id=message.id,
                    attempt=message.attempts,
                    error=error,
                    permanent=permanent,
                    max_attempts=self.settings.send_max_attempts,
                    now=now,
                )
        return len(claimed)

    async def _deliver(self, message: Claimed) -> tuple[str | None, bool]:
        mail = OutgoingEmail(
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
        try:
            raw = build_mime(mail, dkim=self.dkim)
            await self.transport.send(
                mail_from=message.from_address, rcpt_to=message.to_address, raw=raw
            )
        except SendError as error:
            return str(error), error.permanent
        except Exception as error:  # an unexpected failure is retried like a temporary one
            log.exception("message %s could not be sent", message.id)
            return f"{type(error).__name__}: {error}", False
        return None, False

    async def drain(self) -> None:
        """Run every kind of work until nothing is due now (tests and the CLI use this)."""
        while sum([await self.apply_events(), await self.run_steps(), await self.send_messages()]):
            pass

    async def run(self) -> None:
        await asyncio.gather(
            self._loop("events", self.apply_events),
            self._loop("steps", self.run_steps),
            self._loop("messages", self.send_messages),
        )

    def stop(self) -> None:
        self._stopping.set()
        for event in self._wake.values():
            event.set()

    async def _loop(self, name: str, work: Callable[[], Awaitable[int]]) -> None:
        wake = self._wake[name]
        while not self._stopping.is_set():
            wake.clear()
            self._stopped_early.discard(name)
            try:
                done = await work()
            except Exception:  # the database may be briefly away; keep going
                log.exception("%s worker failed; retrying", name)
                done = 0
                await asyncio.sleep(self.settings.poll_seconds)
            if done >= self.batch or name in self._stopped_early:
                continue  # a backlog: go on at once
            if done:
                # A trickle: let a batch gather, since each transaction has a fixed cost
                # that one-row transactions would pay for every row.
                await asyncio.sleep(GATHER_SECONDS)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.settings.poll_seconds)


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    wake: int  # write end of the pipe to it
    released: int  # read end of the pipe from it


class WorkerProcesses:
    """The worker processes of `ulak serve`, each with two pipes to the server.

    A worker process reads the first: a byte means events were committed; the end of the
    file means the server is gone (stopped, or killed with -9), so it finishes the batch in
    hand and exits. On SQLite it writes to the second when it let the write lock go while
    the server waited for it, so the server's waiting BEGIN tries at once. A worker process
    that dies is started again.
    """

    def __init__(self, settings: Settings, database: Database) -> None:
        self.count = settings.worker_processes
        self.database = database
        # The workers get exactly these settings, command-line overrides included.
        self.env = {
            **os.environ,
            **{
                f"ULAK_{name.upper()}": str(value)
                for name, value in settings.model_dump().items()
                if value is not None
            },
        }
        self._children: list[_Child] = []
        self._watch: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.database.lock_waiters.released = asyncio.Event()
        self._children = [self._spawn() for _ in range(self.count)]
        pids = ", ".join(str(child.process.pid) for child in self._children)
        log.info("started %d worker process(es): %s", self.count, pids)
        self._watch = asyncio.create_task(self._restart_exited())

    def _spawn(self) -> _Child:
        # os.pipe() ends are not inherited: each child gets only the two ends passed here.
        wake_read, wake_write = os.pipe()
        released_read, released_write = os.pipe()
        os.set_blocking(wake_write, False)
        os.set_blocking(released_write, False)
        passed = (wake_read, released_write)
        try:
            process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
                [
                    sys.executable, "-m", "ulak", "worker",
                    "--wake-fd", str(wake_read), "--released-fd", str(released_write),
                ],
                pass_fds=passed,
                env=self.env,
            )  # fmt: skip
        finally:
            for fd in passed:
                os.close(fd)
        asyncio.get_running_loop().add_reader(released_read, self._released, released_read)
        return _Child(process, wake_write, released_read)

    def _released(self, pipe: int) -> None:
        with contextlib.suppress(OSError):
            os.read(pipe, 4096)
        if self.database.lock_waiters.released is not None:
            self.database.lock_waiters.released.set()

    def wake(self, name: str = "events") -> None:
        for child in self._children:
            # A full pipe already holds a wake-up; a closed one is a worker that exited.
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(child.wake, b"w")

    def _close(self, child: _Child) -> None:
        os.close(child.wake)
        asyncio.get_running_loop().remove_reader(child.released)
        os.close(child.released)

    async def _restart_exited(self) -> None:
        while True:
            await asyncio.sleep(1)
            for i, child in enumerate(self._children):
                if child.process.poll() is not None:
                    log.error(
                        "worker process %d exited with status %s; starting another",
                        child.process.pid,
                        child.process.returncode,
                    )
                    self._close(child)
                    self._children[i] = self._spawn()

    async def stop(self) -> None:
        """Close the pipes, which tells the workers to finish; kill those that take longer
        than STOP_SECONDS."""
        if self._watch is not None:
            self._watch.cancel()
        for child in self._children:
            self._close(child)
        for child in self._children:
            try:
                await asyncio.to_thread(child.process.wait, STOP_SECONDS)
            except subprocess.TimeoutExpired:
                log.warning("worker process %d did not stop in time; killing it", child.process.pid)
                child.process.kill()
                child.process.wait()
        self._children = []


# How long a worker process may take to finish its batch when the server stops.
STOP_SECONDS = 15
SQLITE_BATCH = 32
# How long a loop that found only a few rows waits for more before it looks again.
GATHER_SECONDS = 0.025
