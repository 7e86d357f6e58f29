"""The worker: runs every declared job (`ulak.jobs`) in a loop of its own.

A loop runs its job again at once while the job finds work; when idle it sleeps until woken
(by the job before it in the pipeline, by new events, or by PostgreSQL's NOTIFY), until its
next row is due (a timer due in 0.3 s fires then), or for `poll_seconds`. Batches grow with
the load by themselves: while one job's transaction runs, rows gather for the next.

`ulak serve` runs the worker in processes of its own (`WorkerProcesses`) on SQLite, the one
writer of the main database; with `ULAK_WORKER_PROCESSES=0` it runs in the API's process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace

from ulak.db import Database, listen
from ulak.jobs import Job, JobContext, registered, take_tick, tick_of

log = logging.getLogger(__name__)


class Workers:
    def __init__(self, ctx: JobContext, jobs: dict[str, Job] | None = None) -> None:
        self.ctx = ctx
        jobs = jobs if jobs is not None else registered()
        self.stages = pipeline_stages(jobs)
        # In pipeline order, so that `drain` runs each stage after the one that feeds it.
        self.jobs = dict(sorted(jobs.items(), key=lambda item: self.stages[item[0]]))
        self._contexts = {name: replace(ctx, priority=self.stages[name]) for name in self.jobs}
        self._wake = {name: asyncio.Event() for name in self.jobs}
        self._stopping = asyncio.Event()

    def wake(self, name: str | None = None) -> None:
        """Wake a job; by default the jobs that take new events in (new events came in)."""
        for job in self.jobs.values():
            if job.name == name or (name is None and job.on_events):
                self._wake[job.name].set()

    async def run_job(self, job: Job) -> int:
        """One batch of a job (one tick of a periodic one, if no other worker took it)."""
        if job.every is not None:
            now = self.ctx.clock.now()
            async with self.ctx.database.transaction() as session:
                if not await take_tick(
                    session, name=job.name, tick=tick_of(now, job.every), now=now
                ):
                    return 0
        done = await job.run(self._contexts[job.name])
        if done:
            for name in job.wakes:
                self.wake(name)
        return done

    async def once(self, name: str) -> int:
        """One batch of the job with this name."""
        return await self.run_job(self.jobs[name])

    async def drain(self) -> None:
        """Run the pipeline's jobs until nothing is due now (tests and the CLI use this)."""
        pipeline = [job for job in self.jobs.values() if job.every is None]
        while sum([await self.run_job(job) for job in pipeline]):
            pass

    async def run(self) -> None:
        with writer_lock(self.ctx.database):
            await asyncio.gather(*(self._loop(job) for job in self.jobs.values()))

    def stop(self) -> None:
        self._stopping.set()
        for event in self._wake.values():
            event.set()

    async def _loop(self, job: Job) -> None:
        wake = self._wake[job.name]
        while not self._stopping.is_set():
            wake.clear()
            try:
                done = await self.run_job(job)
            except Exception:  # the database may be briefly away; keep going
                log.exception("job %s failed; retrying", job.name)
                done = 0
            if done and job.every is None:
                continue  # there may be more: go on until a batch finds nothing
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=await self._idle(job))

    async def _idle(self, job: Job) -> float:
        poll = self.ctx.settings.poll_seconds
        if job.every is None:
            if job.due is None:
                return poll
            try:
                async with self.ctx.database.read() as session:
                    due = await job.due(session)
            except Exception:  # the database may be briefly away: poll
                log.exception("job %s could not tell when it is next due", job.name)
                return poll
            if due is None:
                return poll
            # Due already, yet the batch just found nothing (another worker holds the rows):
            # poll rather than spin.
            until = (due - self.ctx.clock.now()).total_seconds()
            return min(until, poll) if until > 0 else poll
        # Until the next tick begins.
        every = job.every.total_seconds()
        now = self.ctx.clock.now().timestamp()
        return max(every - now % every, 0.01)


def pipeline_stages(jobs: dict[str, Job]) -> dict[str, int]:
    """Each job's place in the pipeline: 0 for a job nothing wakes, one more than the
    latest job that wakes it (timers.fire_due 0, events.apply 1, journeys.run_due 2,
    messages.send_due 3)."""
    stages = dict.fromkeys(jobs, 0)
    for _ in jobs:  # longest paths in a graph without cycles settle within len(jobs) passes
        for job in jobs.values():
            for woken in job.wakes:
                if woken in stages:
                    stages[woken] = max(stages[woken], stages[job.name] + 1)
    return stages


class AnotherWorker(RuntimeError):
    """A worker already runs on this SQLite file, which must have one writing process."""


@contextlib.contextmanager
def writer_lock(database: Database) -> Iterator[None]:
    """SQLite: hold `<file>-worker.lock` while the worker runs, so a second worker (a
    mistaken `ulak worker` beside `ulak serve`) stops at once with a clear error instead of
    taking turns on the write lock. The kernel drops the lock with the process, however it
    ends. Nothing on PostgreSQL, where workers share the work."""
    if not database.is_sqlite:
        yield
        return
    path = f"{database.path}-worker.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AnotherWorker(
                f"another worker is running on {database.path} (it holds {path}); on SQLite "
                "one worker writes the database, and `ulak serve` starts it"
            ) from None
        yield
    finally:
        os.close(fd)


async def listen_for_events(url: str, workers: Workers) -> None:
    """PostgreSQL: wake the worker when any API process commits events (NOTIFY
    ulak_events), wherever it runs. Polling stays as the fallback while disconnected."""
    await listen(url, "ulak_events", heard=workers.wake)


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    wake: int  # write end of the pipe to it


class WorkerProcesses:
    """The worker processes of `ulak serve`, each with a pipe from the server.

    A worker process reads it: a byte means events were committed; the end of the file
    means the server is gone (stopped, or killed with -9), so it finishes the batch in hand
    and exits. A worker process that dies is started again.
    """

    def __init__(self, ctx: JobContext) -> None:
        settings = ctx.settings
        self.count = settings.worker_processes
        if ctx.database.is_sqlite and self.count > 1:
            # One process writes a SQLite file; more would only take turns on its lock.
            log.warning(
                "ULAK_WORKER_PROCESSES=%d: on SQLite one worker process runs (it is the "
                "database's one writer); use PostgreSQL for more",
                self.count,
            )
            self.count = 1
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
        self._children = [self._spawn() for _ in range(self.count)]
        pids = ", ".join(str(child.process.pid) for child in self._children)
        log.info("started %d worker process(es): %s", self.count, pids)
        self._watch = asyncio.create_task(self._restart_exited())

    def _spawn(self) -> _Child:
        # os.pipe() ends are not inherited: the child gets only the end passed here.
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        try:
            process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
                [sys.executable, "-m", "ulak", "worker", "--wake-fd", str(wake_read)],
                pass_fds=(wake_read,),
                env=self.env,
            )
        finally:
            os.close(wake_read)
        return _Child(process, wake_write)

    def wake(self) -> None:
        for child in self._children:
            # A full pipe already holds a wake-up; a closed one is a worker that exited.
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(child.wake, b"w")

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
                    os.close(child.wake)
                    self._children[i] = self._spawn()

    async def stop(self) -> None:
        """Close the pipes, which tells the workers to finish; kill those that take longer
        than STOP_SECONDS."""
        if self._watch is not None:
            self._watch.cancel()
        for child in self._children:
            os.close(child.wake)
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
