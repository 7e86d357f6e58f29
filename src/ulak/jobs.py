"""Jobs, declared by the feature that owns them (`<feature>/jobs.py`) and run by the worker.

    @job("messages.send_due")
    async def send_due(ctx: JobContext) -> int: ...

A job does one batch of its work and returns how many rows it handled; the worker runs it
again at once while it finds work, and otherwise sleeps until another job or a new event
wakes it (`wakes`, `on_events`), `poll_seconds` pass, or the moment its `due` function names
(the earliest of its rows' due times) comes, whichever is first. A periodic job (`every=`)
runs once per tick across all workers: the tick is claimed as a row (`job_ticks`), so on
PostgreSQL with many workers exactly one of them runs it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ulak.channels.service import email_channel
from ulak.clock import Clock
from ulak.config import Settings
from ulak.db import Base, BigId, Database, UTCDateTime, insert_ignoring_conflicts, table_of
from ulak.messages.sending import Sender
from ulak.offload import Offload

# The features whose `jobs.py` declares jobs; importing one registers its jobs.
FEATURES = (
    "ulak.consent.jobs",
    "ulak.events.jobs",
    "ulak.journeys.jobs",
    "ulak.messages.jobs",
    "ulak.sms.jobs",
    "ulak.timers.jobs",
    "ulak.webhooks.jobs",
)


@dataclass(frozen=True)
class JobContext:
    """What every job is given: nothing else reaches it."""

    database: Database
    settings: Settings
    clock: Clock
    # Delivers messages over the email channel; one per worker process.
    sender: Sender
    # Rows one batch takes (`ULAK_BATCH_SIZE`).
    batch_size: int
    # Rendering and MIME, in a helper process (or inline).
    offload: Offload
    # The running job's place in the pipeline: later stages write first (see
    # `Database.transaction`); set by the worker for each job.
    priority: int = 0

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self.database.transaction(priority=self.priority)


def job_context(
    settings: Settings, database: Database, clock: Clock, *, helper_processes: int = 0
) -> JobContext:
    """The context of a worker configured by `settings`, with this many helper processes
    for rendering and MIME (0: inline)."""
    offload = Offload(helper_processes)
    return JobContext(
        database=database,
        settings=settings,
        clock=clock,
        sender=Sender(
            email_channel(settings, database, clock, offload),
            database,
            settings,
            clock,
            # With SMTP configured and helper processes allowed, a sender process delivers.
            own_process=bool(settings.smtp_url) and helper_processes > 0,
        ),
        batch_size=settings.batch_size,
        offload=offload,
    )


Work = Callable[[JobContext], Awaitable[int]]
# When a job next has work (its earliest due row), read from its index; None: none.
Due = Callable[[AsyncSession], Awaitable[datetime | None]]


@dataclass(frozen=True)
class Job:
    name: str
    run: Work
    # Jobs to wake when this one did some work (the next stage of the pipeline).
    wakes: tuple[str, ...] = ()
    # Periodic: runs once per tick of this length across all workers.
    every: timedelta | None = None
    # When it next has work, for the worker's sleep and a simulation's clock.
    due: Due | None = None
    # Woken when new events are accepted (the job that applies them).
    on_events: bool = False


_jobs: dict[str, Job] = {}


def job(
    name: str,
    *,
    wakes: tuple[str, ...] = (),
    every: timedelta | None = None,
    due: Due | None = None,
    on_events: bool = False,
) -> Callable[[Work], Work]:
    """Declare a job; the name is `feature.verb` and stays stable (ticks are kept by it)."""

    def register(work: Work) -> Work:
        if name in _jobs and _jobs[name].run is not work:
            raise ValueError(f"a job named {name!r} is declared twice")
        _jobs[name] = Job(name, work, wakes, every, due, on_events)
        return work

    return register


def registered() -> dict[str, Job]:
    """Every declared job (`Workers` puts them in pipeline order)."""
    for module in FEATURES:
        importlib.import_module(module)
    return dict(_jobs)


class JobTick(Base):
    """A periodic job's tick that some worker has taken: one row per job and tick."""

    __tablename__ = "job_ticks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    # The tick's number: its start in seconds since the epoch, divided by its length.
    tick: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)


def tick_of(at: datetime, every: timedelta) -> int:
    return math.floor(at.timestamp() / every.total_seconds())


async def take_tick(session: AsyncSession, *, name: str, tick: int, now: datetime) -> bool:
    """Claim a periodic job's tick; False when another worker has it already."""
    table = table_of(JobTick)
    statement = (
        insert_ignoring_conflicts(session, table)
        .values(name=name, tick=tick, taken_at=now)
        .returning(table.c.tick)
    )
    if (await session.execute(statement)).first() is None:
        return False
    # The ticks before the last are of no more use: one row per job stays.
    await session.execute(delete(table).where(table.c.name == name, table.c.tick < tick - 1))
    return True


async def in_batch(ctx: JobContext, work: Callable[[AsyncSession, bool], Awaitable[int]]) -> int:
    """Run one batch in one transaction. If anything in it fails, roll back and run it
    again with each row in a savepoint (`isolate=True`), where the failure is recorded on
    its row and the others go on."""
    try:
        async with ctx.transaction() as session:
            return await work(session, False)
    except Exception:
        async with ctx.transaction() as session:
            return await work(session, True)
