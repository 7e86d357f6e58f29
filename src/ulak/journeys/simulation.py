"""`ulak simulate`: the real engine on a scenario (`scenario.py`), on a throwaway database,
with the clock moved from one due moment to the next instead of sleeping.

Each event is accepted as `POST /v1/events` accepts it (the events inbox) at its moment,
together with the others of the same moment, and the worker's pipeline is drained; between
events, the clock jumps to the earliest moment something is due (an enrollment's
`next_run_at`, a queued message's `send_after`) and the pipeline is drained again. Mail
goes to the dev inbox, which keeps the moment each one was delivered; the timeline is read
back from the features' services.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ulak.channels.service import captured_mail
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.customers.service import references
from ulak.db import Database
from ulak.events.inbox import Inbox
from ulak.events.schemas import Accepted
from ulak.events.service import failed_events
from ulak.jobs import job_context, registered
from ulak.journeys.scenario import Scenario, ScenarioError
from ulak.journeys.service import (
    apply_journey,
    enrollments_of,
    install_library,
    listened_events,
)
from ulak.journeys.yamlfile import Problem
from ulak.messages import service as messages
from ulak.migrate import upgrade
from ulak.sms.service import captured_sms
from ulak.stores.service import create_store
from ulak.timers.service import KINDS
from ulak.timers.service import next_due as timers_due
from ulak.worker import Workers

# Periodic jobs whose work no timeline shows: deleting applied events past a store's
# retention (`events.forget_old`) changes no message, enrollment or failed event.
UNSEEN_BY_TIMELINES = frozenset({"events.forget_old"})
# Where links in the simulated messages point when the caller names no server.
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# A scenario without `run_until` runs until nothing is left to do, but not beyond this.
IDLE_LIMIT = timedelta(days=366)


@dataclass(frozen=True)
class Sent:
    """A message as it was delivered."""

    at: datetime
    # None: ulak's own alert to the shop about one of its templates.
    journey: str | None
    template: str
    channel: str
    to: str
    subject: str
    # The plain-text body.
    text: str
    # The shop's id for the customer (or their email); None for the shop's alert.
    customer: str | None


@dataclass(frozen=True)
class Unsent:
    """A message a journey made that was not delivered: skipped (no address, no consent),
    failed, or still queued when the run ended."""

    at: datetime
    journey: str | None
    template: str
    to: str
    customer: str | None
    status: str
    reason: str

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"{self.template} of {self.journey or 'ulak'} to {self.to or '?'} {self.status}{why}"


@dataclass(frozen=True)
class Ended:
    """An enrollment that exited (exit_when, a guard) or failed (a step that gave up)."""

    at: datetime
    journey: str
    customer: str
    status: str
    reason: str

    def describe(self) -> str:
        return f"enrollment of {self.journey} for {self.customer} {self.status}: {self.reason}"


@dataclass(frozen=True)
class Unfinished:
    """An enrollment still live when the run ended, and when it would go on."""

    journey: str
    customer: str
    next_run_at: datetime | None
    waiting_for: str | None
    # Why its last attempt failed, while it is being retried.
    failure: str | None

    def describe(self) -> str:
        what = f"waits for {self.waiting_for}" if self.waiting_for else "waits"
        retried = f" (retrying: {self.failure})" if self.failure else ""
        return f"enrollment of {self.journey} for {self.customer} {what}{retried}"


@dataclass(frozen=True)
class EventFailed:
    """An event that was accepted but could not be applied."""

    at: datetime
    # The scenario line that gives it; None for an event ulak derived from another.
    line: int | None
    type: str
    reason: str

    def describe(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"event {self.type}{where} could not be applied: {self.reason}"


@dataclass(frozen=True)
class Timeline:
    timezone: str
    start: datetime
    end: datetime
    messages: list[Sent]
    unsent: list[Unsent]
    endings: list[Ended]
    unfinished: list[Unfinished]
    failed_events: list[EventFailed]

    def local(self, at: datetime) -> datetime:
        """A moment in the store's time zone."""
        return at.astimezone(ZoneInfo(self.timezone))


def simulate(scenario: Scenario, *, base_url: str = DEFAULT_BASE_URL) -> Timeline:
    """Run the scenario on a throwaway database (removed afterwards) and return what
    happened when. Links in the messages point at `base_url`."""
    with tempfile.TemporaryDirectory(prefix="ulak-simulate-") as folder:
        path = Path(folder) / "ulak.db"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(_migrated())
        return asyncio.run(_simulate(scenario, f"sqlite+aiosqlite:///{path}", base_url))


@functools.cache
def _migrated() -> bytes:
    """An empty database at the newest schema: migrated once per process, kept in memory,
    and copied for each simulation (migrating took most of a short simulation's time)."""
    with tempfile.TemporaryDirectory(prefix="ulak-simulate-") as folder:
        path = Path(folder) / "ulak.db"
        upgrade(f"sqlite+aiosqlite:///{path}")
        # Migrating closes its connections, which moves the WAL into the file.
        assert not path.with_name("ulak.db-wal").exists()
        return path.read_bytes()


async def _simulate(scenario: Scenario, url: str, base_url: str) -> Timeline:
    jobs = registered().values()
    periodic = [
        job.name
        for job in jobs
        if job.every is not None and job.due is None and job.name not in UNSEEN_BY_TIMELINES
    ]
    if periodic:
        # `drain` skips them, and the clock only stops where something is due: such a job
        # must report when it next has work (`_next_due`) before a simulation can be trusted.
        # (İYS's pull reports none: a simulation's store has no İYS account.)
        raise NotImplementedError(f"simulating periodic jobs ({', '.join(periodic)})")
    clock = FrozenClock(scenario.start)
    settings = Settings(
        database_url=url,
        smtp_url="",  # the dev inbox
        public_url=base_url,
        dkim_selector="",
        dkim_private_key_path=None,
        helper_processes=0,
        worker_processes=0,
    )
    database = Database(url)
    ctx = job_context(settings, database, clock)
    workers = Workers(ctx)
    inbox = Inbox(database, clock, on_commit=lambda: None)
    try:
        async with database.transaction() as session:
            store, _ = await create_store(session, scenario.store, clock=clock)
            if scenario.journeys is None:
                await install_library(session, store_id=store.id, clock=clock)
            for definition, source in scenario.journeys or []:
                await apply_journey(
                    session, store_id=store.id, definition=definition, source=source, clock=clock
                )
        lines: dict[str, int] = {}
        # Events of one moment arrive together, before the worker takes them (as a batch
        # of events that came in at once): a cancellation can overtake a send step.
        for at, together in itertools.groupby(scenario.events, key=lambda timed: timed.at):
            await _run_until(at, workers, database, clock)
            clock.set(at)
            for timed in together:
                (answer,) = await inbox.accept(store.id, [(0, timed.event)])
                if not isinstance(answer, Accepted):
                    problem = Problem(
                        scenario.filename, timed.line, "event.id", answer.problem("").message
                    )
                    raise ScenarioError([problem])
                lines.setdefault(answer.key, timed.line)
            await workers.drain()
        if scenario.run_until is not None:
            await _run_until(scenario.run_until, workers, database, clock)
        else:
            # Until nothing is left to do: a timer no journey listens to (a lapse date, a
            # birthday) is no work left, though it would fire.
            async with database.read() as session:
                listened = await listened_events(session, store_id=store.id)
            await _run_until(
                clock.now() + IDLE_LIMIT, workers, database, clock, timers=listened & set(KINDS)
            )
        if scenario.run_until is not None:
            clock.set(scenario.run_until)
        return await _timeline(database, scenario, store.id, lines, clock.now())
    finally:
        await ctx.sender.close(grace=10)
        await database.dispose()


async def _run_until(
    end: datetime,
    workers: Workers,
    database: Database,
    clock: FrozenClock,
    *,
    timers: set[str] | None = None,
) -> None:
    """Run what is due now, then move the clock to each next due moment up to `end`
    (of timers, only those of these kinds, when given)."""
    await workers.drain()
    while (due := await _next_due(database, timers)) is not None and due <= end:
        if due <= clock.now():
            # Drained, yet due: the loop would never end.
            raise RuntimeError(f"work due at {due.isoformat()} was left after the pipeline drained")
        clock.set(due)
        await workers.drain()


async def _next_due(database: Database, timers: set[str] | None = None) -> datetime | None:
    """The earliest moment any job has work: each says when (`Job.due`)."""
    async with database.read() as session:
        moments = [
            await job.due(session)
            for job in registered().values()
            if job.due and (timers is None or job.due is not timers_due)
        ]
        if timers is not None:
            moments.append(await timers_due(session, kinds=timers))
    return min((m for m in moments if m is not None), default=None)


async def _timeline(
    database: Database, scenario: Scenario, store_id: int, lines: dict[str, int], end: datetime
) -> Timeline:
    async with database.read() as session:
        mail = await captured_mail(session)
        texts = await captured_sms(session)
        outbox = await messages.outbox_of(session, store_id=store_id)
        enrollments = await enrollments_of(session, store_id=store_id)
        failed = await failed_events(session, store_id=store_id)
        customers = {e.customer_id for e in enrollments}
        customers |= {m.customer_id for m in outbox if m.customer_id is not None}
        names = await references(session, ids=customers)
    journey_of = {e.id: e.journey for e in enrollments}
    made = {m.message_id_header: m for m in outbox}
    sent = []
    for captured in mail:
        message = made[captured.message_id]
        sent.append(
            Sent(
                at=captured.received_at,
                journey=journey_of.get(message.enrollment_id or 0),
                template=message.template,
                channel=message.channel,
                to=captured.to,
                subject=captured.subject,
                text=captured.text,
                customer=names.get(message.customer_id or 0),
            )
        )
    by_id = {m.id: m for m in outbox}
    for sms in texts:
        message = by_id[sms.message_id]
        sent.append(
            Sent(
                at=sms.received_at,
                journey=journey_of.get(message.enrollment_id or 0),
                template=message.template,
                channel="sms",
                to=sms.to,
                subject="",
                text=sms.text,
                customer=names.get(message.customer_id or 0),
            )
        )
    sent.sort(key=lambda m: m.at)  # stable: an email and its SMS of one moment keep order
    return Timeline(
        timezone=scenario.store.timezone,
        start=scenario.start,
        end=end,
        messages=sent,
        unsent=[
            Unsent(
                at=m.created_at,
                journey=journey_of.get(m.enrollment_id or 0),
                template=m.template,
                to=m.to,
                customer=names.get(m.customer_id or 0),
                status=m.status,
                reason=m.last_error or "",
            )
            for m in outbox
            if m.status not in ("sent", "delivered")
        ],
        endings=[
            Ended(
                at=e.finished_at or end,
                journey=e.journey,
                customer=names[e.customer_id],
                status=e.status,
                reason=e.reason or "",
            )
            for e in enrollments
            if e.status in ("exited", "failed")
        ],
        unfinished=[
            Unfinished(
                journey=e.journey,
                customer=names[e.customer_id],
                next_run_at=e.next_run_at,
                waiting_for=e.waiting_for,
                failure=e.reason,
            )
            for e in enrollments
            if e.status in ("active", "waiting")
        ],
        failed_events=[
            EventFailed(at=f.received_at, line=lines.get(f.key), type=f.type, reason=f.error)
            for f in failed
        ],
    )
