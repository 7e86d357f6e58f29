"""The workers: apply events, run due enrollments, send due messages.

Each loop claims a batch of due rows, works, commits, and goes again at once while there is
work; when idle it sleeps until woken (a new event in this process) or `poll_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

from ulak.channels.email import DkimSigner, OutgoingEmail, SendError, build_mime
from ulak.channels.service import EmailTransport
from ulak.clock import Clock
from ulak.config import Settings
from ulak.db import Database
from ulak.events.service import apply_lane, pending_lanes
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
        # SQLite has one connection: short transactions let API requests in between them.
        self.batch = (
            min(settings.batch_size, SQLITE_BATCH) if database.is_sqlite else settings.batch_size
        )
        self._wake = {name: asyncio.Event() for name in ("events", "steps", "messages")}
        self._stopping = asyncio.Event()

    def wake(self, name: str = "events") -> None:
        self._wake[name].set()

    # One pass of each kind of work; each returns how many rows it handled.

    async def apply_events(self) -> int:
        async with self.database.transaction(background=True) as session:
            lanes = await pending_lanes(session, limit=LANE_SCAN)
        random.shuffle(lanes)
        done = 0
        for lane in lanes:
            done += await self._batch(
                partial(apply_lane, lane=lane, clock=self.clock, limit=self.batch)
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
            try:
                done = await work()
            except Exception:  # the database may be briefly away; keep going
                log.exception("%s worker failed; retrying", name)
                done = 0
                await asyncio.sleep(self.settings.poll_seconds)
            if done:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.settings.poll_seconds)


# How many lanes with pending events one pass looks at.
LANE_SCAN = 64
SQLITE_BATCH = 8
