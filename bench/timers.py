"""Timers and waiting enrollments at scale: what a tick reads when nothing is due, how late
10,000 timers fire when they fall due together, and the worker's memory.

Builds a SQLite file with the real migrations and one store (its shipped journeys), then
bulk-inserts N customers with birthdays spread over the year and their birthday timers
(`customer.birthday`), and N enrollments of the shipped `birthday` journey waiting at its
`wait: {until: "10:00"}` (next run spread over the next 30 days). Then each run, in a fresh
process (so that the setup's memory is not counted):

* idle tick: `timers.fire_due` and `journeys.run_due` with their `due` queries, nothing due;
* busy timers: 10,000 timers' `due_at` set to one moment 2 s ahead in one UPDATE, the real
  worker (`Workers.run`, all four jobs, one helper process) running until they have fired
  and their derived events are applied;
* busy enrollments: the same for 10,000 enrollments (each issues a birthday coupon, renders
  the email and sends it, to a transport that only counts it, as `bench/stages.py` does);
* RSS: the high-water mark (VmHWM) of the process running the jobs, and of its helper.

What "rows read" means here: SQLite counts, per prepared statement of the worker's writer
connection, the virtual-machine steps it ran (`nstep`) and the rows it stepped through in
full scans of a table or index (`nscan`), read from the `sqlite_stmt` table
(SQLITE_ENABLE_STMTVTAB) before and after. A full-scan step is a row read whether or not it
is due; an index range search costs a few VM steps per row it returns.

    PYTHONPATH=src .venv/bin/python bench/timers.py [--customers 1000000] [--due 10000]
                                                    [--runs 3] [--keep] [--reuse]

The database goes to /tmp/bench-timers/ and is deleted at the end (unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, event, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import make_store
from ulak.clock import FrozenClock, SystemClock
from ulak.config import Settings
from ulak.customers.models import Customer
from ulak.db import Database, sync_url, table_of
from ulak.jobs import job_context
from ulak.journeys.models import Enrollment, Journey, JourneyVersion
from ulak.migrate import upgrade
from ulak.stores.models import Store
from ulak.timers.models import Timer
from ulak.timers.service import BIRTHDAY, next_birthday
from ulak.worker import Workers

FOLDER = Path("/tmp/bench-timers")  # noqa: S108 (one fixed place, removed at the end)
CHUNK = 50_000
ZONE = "Europe/Istanbul"
# Fires this long after the UPDATE that makes the rows due, so the worker is asleep
# waiting for the moment, as it is before a real midnight.
AHEAD = timedelta(seconds=2)
IDLE_TICKS = 20


# --- setup ---------------------------------------------------------------------------


def build(path: Path, customers: int) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    started = time.perf_counter()
    upgrade(url)  # the `ulak migrate` code path
    now = datetime.now(UTC)
    database = Database(url)

    async def store() -> None:
        await make_store(database, FrozenClock(now), name="Bench")
        await database.dispose()

    asyncio.run(store())
    engine = create_engine(sync_url(url))
    with engine.begin() as connection:
        store_id = connection.scalar(select(table_of(Store).c.id))
        journey_id, version_id = connection.execute(
            select(table_of(Journey).c.id, table_of(JourneyVersion).c.id)
            .join(
                table_of(Journey), table_of(Journey).c.id == table_of(JourneyVersion).c.journey_id
            )
            .where(table_of(Journey).c.key == "birthday")
        ).one()
    zone = ZoneInfo(ZONE)
    today = now.astimezone(zone).date()
    rng = random.Random(7)
    print(f"setup: {customers:,} customers, timers and enrollments into {path}", flush=True)
    for start in range(0, customers, CHUNK):
        ids = range(start + 1, min(start + CHUNK, customers) + 1)
        people, timers, enrollments = [], [], []
        for i in ids:
            birthday = date(1970 + i % 40, 1, 1) + timedelta(days=rng.randrange(365))
            people.append(
                {
                    "id": i,
                    "store_id": store_id,
                    "external_id": f"c-{i}",
                    "email": f"musteri{i}@example.com",
                    "first_name": "Ayşe",
                    "locale": "tr",
                    "birthday": birthday,
                    "attributes": {},
                    "tags": [],
                    "created_at": now,
                    "updated_at": now,
                }
            )
            day, due = next_birthday(birthday, from_day=today + timedelta(days=1), zone=zone)
            timers.append(
                {
                    "id": i,
                    "store_id": store_id,
                    "kind": BIRTHDAY,
                    "subject": str(i),
                    "customer_id": i,
                    "due_at": due,
                    "data": {
                        "birthday": birthday.isoformat(),
                        "date": day.isoformat(),
                        "timezone": ZONE,
                        "age": day.year - birthday.year,
                    },
                }
            )
            # Waiting at the journey's `wait` (pc 1 is its coupon, then the email).
            run_at = now + timedelta(days=1, seconds=rng.randrange(30 * 86400))
            enrollments.append(
                {
                    "id": i,
                    "store_id": store_id,
                    "journey_id": journey_id,
                    "journey_version_id": version_id,
                    "customer_id": i,
                    "reentry_key": f"bench-{i}",
                    "trigger_event_id": 0,
                    "status": "active",
                    "pc": 1,
                    "next_run_at": run_at,
                    "anchor_at": run_at,
                    "attempts": 0,
                    "started_at": now,
                }
            )
        with engine.begin() as connection:
            connection.execute(table_of(Customer).insert(), people)
            connection.execute(table_of(Timer).insert(), timers)
            connection.execute(table_of(Enrollment).insert(), enrollments)
        done = ids[-1]
        print(f"  {done:>9,} / {customers:,}  {time.perf_counter() - started:6.0f} s", flush=True)
    # No ANALYZE: ulak never runs it, so the planner sees what it sees in a shop's file.
    engine.dispose()
    size = sum(f.stat().st_size for f in path.parent.iterdir()) / 2**20
    print(f"setup done in {time.perf_counter() - started:.0f} s, {size:,.0f} MiB on disk")


# --- measuring (in a process of its own) ----------------------------------------------


@dataclass
class Figures:
    idle_ms: list[float] = field(default_factory=list)
    idle_steps: int = 0  # VM steps per idle tick
    idle_scan: int = 0  # full-scan steps per idle tick
    idle_statements: int = 0
    timers_drain_s: float = 0.0
    timers_first_s: float = 0.0  # the first timer's: how promptly the worker woke
    timers_p50_s: float = 0.0
    timers_p99_s: float = 0.0
    timers_max_s: float = 0.0
    timers_applied_p99_s: float = 0.0
    timers_scan: int = 0
    timers_cpu_ms: float = 0.0  # the worker process's CPU per timer, firing and applying
    timers_steps: int = 0
    enrollments_drain_s: float = 0.0
    enrollments_p50_s: float = 0.0
    enrollments_p99_s: float = 0.0
    enrollments_scan: int = 0
    enrollments_cpu_ms: float = 0.0  # the worker process's CPU per enrollment, to sent
    customers: int = 0
    enrollments_steps: int = 0
    rss_mb: float = 0.0
    helper_rss_mb: float = 0.0


class CountingTransport:
    def __init__(self) -> None:
        self.messages = 0

    async def send(self, *, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        self.messages += 1

    async def close(self) -> None:
        pass


def raw_of(connection: Any) -> Any:
    """The sqlite3 connection under ulak's driver (ulak/sqlite.py)."""
    return connection.driver_connection._connection


async def statement_stats(database: Database) -> dict[str, tuple[int, int]]:
    """VM steps and full-scan steps of each statement prepared on the writer connection."""
    async with database.transaction() as session:
        raw = raw_of(await (await session.connection()).get_raw_connection())
        rows = raw.execute("SELECT sql, nstep, nscan FROM sqlite_stmt").fetchall()
    return {sql: (steps, scans) for sql, steps, scans in rows if "sqlite_stmt" not in sql}


def difference(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    changed = {}
    for sql, (steps, scans) in after.items():
        old_steps, old_scans = before.get(sql, (0, 0))
        if (steps, scans) != (old_steps, old_scans):
            changed[sql] = (steps - old_steps, scans - old_scans)
    return changed


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def high_water_mb(pid: int | str = "self") -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children() -> Iterator[int]:
    for task in Path("/proc/self/task").iterdir():
        yield from (int(pid) for pid in (task / "children").read_text().split())


async def measure(path: Path, due: int, run: int, explain: bool) -> Figures:
    url = f"sqlite+aiosqlite:///{path}"
    database = Database(url)
    settings = Settings(database_url=url, public_url="http://ulak.test")
    ctx = job_context(settings, database, SystemClock(), helper_processes=1)
    workers = Workers(ctx)
    # Mail goes to a transport that only counts it: without SMTP the worker would store it
    # in the dev inbox, whose parsing of each message (~4 ms) no shop runs.
    transport = CountingTransport()
    ctx.sender.email.transport = transport
    figures = Figures()
    seen: dict[str, Any] = {}

    @event.listens_for(database.engine.sync_engine, "before_cursor_execute")
    def _note(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.setdefault(statement, parameters)

    # --- idle tick: the jobs that read due rows, and the queries that say when next
    jobs = [workers.jobs["timers.fire_due"], workers.jobs["journeys.run_due"]]

    async def tick() -> None:
        for job in jobs:
            assert await workers.run_job(job) == 0, f"{job.name} found work in an idle tick"
            assert job.due is not None
            async with database.transaction() as session:
                await job.due(session)

    await tick()  # prepares the statements
    seen.clear()
    before = await statement_stats(database)
    for _ in range(IDLE_TICKS):
        started = time.perf_counter()
        await tick()
        figures.idle_ms.append((time.perf_counter() - started) * 1000)
    idle = difference(before, await statement_stats(database))
    figures.idle_steps = sum(s for s, _ in idle.values()) // IDLE_TICKS
    figures.idle_scan = sum(s for _, s in idle.values()) // IDLE_TICKS
    figures.idle_statements = len(seen)
    if explain:
        print("idle tick: each statement, its SQLite plan, VM steps and full-scan steps per tick")
        plans(path, seen, idle)

    async with database.read() as session:
        figures.customers = await session.scalar(text("SELECT count(*) FROM customers")) or 0

    # --- busy: the real worker
    task = asyncio.create_task(workers.run())
    await asyncio.sleep(1)  # started and asleep

    # Timers: `due` of them at one moment, as many birthdays are at one midnight.
    moment = datetime.now(UTC) + AHEAD
    async with database.transaction() as session:
        changed = await session.execute(
            text(
                "UPDATE timers SET due_at = :at WHERE id IN"
                " (SELECT id FROM timers WHERE due_at > :at ORDER BY random() LIMIT :due)"
            ),
            {"at": moment.replace(tzinfo=None), "due": due},
        )
    assert changed.rowcount == due  # type: ignore[attr-defined]
    workers.wake("timers.fire_due")  # it sleeps until its next due moment, now `moment`
    before = await statement_stats(database)
    cpu = time.process_time()
    while True:
        await asyncio.sleep(0.05)
        async with database.read() as session:
            left = await session.scalar(
                text(
                    "SELECT (SELECT count(*) FROM timers WHERE due_at <= :at)"
                    " + (SELECT count(*) FROM events WHERE status = 'pending')"
                ),
                {"at": moment.replace(tzinfo=None)},
            )
        if not left:
            break
    figures.timers_drain_s = (datetime.now(UTC) - moment).total_seconds()
    figures.timers_cpu_ms = (time.process_time() - cpu) * 1000 / due
    busy = difference(before, await statement_stats(database))
    if explain:
        scanned("busy timers", busy, path, seen)
    figures.timers_steps = sum(s for s, _ in busy.values())
    figures.timers_scan = sum(s for _, s in busy.values())
    async with database.read() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT received_at, applied_at FROM events"
                    " WHERE source = 'derived' AND occurred_at = :at"
                ),
                {"at": moment.replace(tzinfo=None)},
            )
        ).all()
    assert len(rows) == due, f"{len(rows)} derived events, expected {due}"
    fired = [(_parse(r[0]) - moment).total_seconds() for r in rows]
    applied = [(_parse(r[1]) - moment).total_seconds() for r in rows]
    figures.timers_first_s = min(fired)
    figures.timers_p50_s = percentile(fired, 50)
    figures.timers_p99_s = percentile(fired, 99)
    figures.timers_max_s = max(fired)
    figures.timers_applied_p99_s = percentile(applied, 99)

    # Enrollments: `due` of them at one moment.
    moment = datetime.now(UTC) + AHEAD
    naive = moment.replace(tzinfo=None)
    async with database.transaction() as session:
        changed = await session.execute(
            text(
                "UPDATE enrollments SET next_run_at = :at, anchor_at = :at WHERE id IN"
                " (SELECT id FROM enrollments WHERE status IN ('active', 'waiting')"
                " AND next_run_at > :at ORDER BY random() LIMIT :due)"
            ),
            {"at": naive, "due": due},
        )
    assert changed.rowcount == due  # type: ignore[attr-defined]
    workers.wake("journeys.run_due")
    before = await statement_stats(database)
    cpu = time.process_time()
    while True:
        await asyncio.sleep(0.1)
        async with database.read() as session:
            left = await session.scalar(
                text(
                    "SELECT (SELECT count(*) FROM enrollments WHERE next_run_at <= :at"
                    " AND status IN ('active', 'waiting'))"
                    " + (SELECT count(*) FROM messages WHERE status IN ('queued', 'sending'))"
                ),
                {"at": naive},
            )
        if not left:
            break
    figures.enrollments_drain_s = (datetime.now(UTC) - moment).total_seconds()
    figures.enrollments_cpu_ms = (time.process_time() - cpu) * 1000 / due
    busy = difference(before, await statement_stats(database))
    if explain:
        scanned("busy enrollments", busy, path, seen)
    figures.enrollments_steps = sum(s for s, _ in busy.values())
    figures.enrollments_scan = sum(s for _, s in busy.values())
    async with database.read() as session:
        # The first step each ran after the wait: its coupon.
        stamps = (
            await session.scalars(
                text(
                    "SELECT min(s.at) FROM enrollment_steps s JOIN enrollments e"
                    " ON e.id = s.enrollment_id WHERE e.anchor_at = :at GROUP BY e.id"
                ),
                {"at": naive},
            )
        ).all()
    late = [(_parse(s) - moment).total_seconds() for s in stamps]
    assert len(late) == due, f"{len(late)} enrollments ran, expected {due}"
    assert transport.messages == due, f"{transport.messages} sent, expected {due}"
    figures.enrollments_p50_s = percentile(late, 50)
    figures.enrollments_p99_s = percentile(late, 99)

    helpers = [high_water_mb(pid) for pid in children()]
    figures.helper_rss_mb = max(helpers, default=0.0)
    workers.stop()
    await task
    await ctx.sender.close(grace=10)
    ctx.offload.close()
    await database.dispose()
    figures.rss_mb = high_water_mb()
    return figures


def scanned(
    phase: str, stats: dict[str, tuple[int, int]], path: Path, seen: dict[str, Any]
) -> None:
    """The statements of a phase that stepped through a whole table or index, with plans."""
    import sqlite3

    connection = sqlite3.connect(path)
    scans = {sql: v for sql, v in stats.items() if v[1]}
    print(f"{phase}: statements with full-scan steps ({len(stats)} statements ran)")
    for sql, (steps, scans_) in sorted(scans.items(), key=lambda item: -item[1][1]):
        print(f"  {scans_:>9,} full-scan, {steps:>11,} VM steps: {' '.join(sql.split())[:150]}")
        parameters = next((p for s, p in seen.items() if s.strip() == sql.strip()), None)
        if isinstance(parameters, list):  # executemany
            parameters = parameters[0]
        if parameters is not None:
            for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall():
                print(f"      {row[-1]}")
    connection.close()


def _parse(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC)


def plans(path: Path, statements: dict[str, Any], stats: dict[str, tuple[int, int]]) -> None:
    import sqlite3

    connection = sqlite3.connect(path)
    for statement, parameters in statements.items():
        steps, scans = next(
            (v for sql, v in stats.items() if " ".join(sql.split()) == " ".join(statement.split())),
            (0, 0),
        )
        plan = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
        print("  " + " ".join(statement.split())[:160])
        print(f"    {steps // IDLE_TICKS} VM steps, {scans // IDLE_TICKS} full-scan steps per tick")
        for row in plan:
            print(f"    {row[-1]}")
    connection.close()


# --- the runs and their spread ---------------------------------------------------------


def spread(values: list[float], unit: str, digits: int = 2) -> str:
    low, high, mid = min(values), max(values), statistics.median(values)
    return f"{mid:.{digits}f} {unit} (min {low:.{digits}f}, max {high:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="use the database a --keep left")
    parser.add_argument("--measure", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = FOLDER / "ulak.db"
    if args.measure >= 0:
        figures = asyncio.run(measure(path, args.due, args.measure, explain=args.measure == 0))
        print("FIGURES " + json.dumps(asdict(figures)), flush=True)
        return
    if not (args.reuse and path.exists()):
        shutil.rmtree(FOLDER, ignore_errors=True)
        FOLDER.mkdir(parents=True)
        build(path, args.customers)
    if args.runs == 0:  # only build (with --keep, for runs later with --reuse)
        return
    results: list[Figures] = []
    try:
        for run in range(args.runs):
            print(f"\nrun {run + 1}/{args.runs}", flush=True)
            child = subprocess.run(
                [sys.executable, __file__, "--measure", str(run), "--due", str(args.due)],
                capture_output=True,
                text=True,
                env=os.environ,
                check=False,
            )
            lines = child.stdout.splitlines()
            for line in lines:
                if not line.startswith("FIGURES "):
                    print(line)
            if child.returncode != 0:
                print(child.stderr[-3000:])
                raise SystemExit(f"run {run + 1} failed")
            data = json.loads(next(x for x in lines if x.startswith("FIGURES "))[8:])
            figures = Figures(**data)
            results.append(figures)
            report(figures)
    finally:
        if not args.keep:
            shutil.rmtree(FOLDER, ignore_errors=True)
    customers = results[0].customers
    print(f"\n{args.runs} runs, {customers:,} customers, {args.due:,} due at once")
    print(
        "  idle tick:            " + spread([statistics.median(r.idle_ms) for r in results], "ms")
    )
    print(f"    VM steps / tick:    {[r.idle_steps for r in results]}")
    print(f"    full-scan steps:    {[r.idle_scan for r in results]}")
    print("  timers drained in    " + spread([r.timers_drain_s for r in results], "s"))
    print("    first fired after  " + spread([r.timers_first_s for r in results], "s", 3))
    print("    lateness p50       " + spread([r.timers_p50_s for r in results], "s", 3))
    print("    lateness p99       " + spread([r.timers_p99_s for r in results], "s", 3))
    print("    applied p99        " + spread([r.timers_applied_p99_s for r in results], "s", 3))
    print("    CPU per timer      " + spread([r.timers_cpu_ms for r in results], "ms"))
    print(f"    full-scan steps:   {[r.timers_scan for r in results]}")
    print("  enrollments drained  " + spread([r.enrollments_drain_s for r in results], "s"))
    print("    lateness p50       " + spread([r.enrollments_p50_s for r in results], "s", 3))
    print("    lateness p99       " + spread([r.enrollments_p99_s for r in results], "s", 3))
    print("    CPU per enrollment " + spread([r.enrollments_cpu_ms for r in results], "ms"))
    print(f"    full-scan steps:   {[r.enrollments_scan for r in results]}")
    print("  worker RSS (VmHWM)   " + spread([r.rss_mb for r in results], "MiB", 0))
    print("  helper RSS (VmHWM)   " + spread([r.helper_rss_mb for r in results], "MiB", 0))


def report(f: Figures) -> None:
    print(
        f"idle tick {statistics.median(f.idle_ms):.2f} ms (median of {IDLE_TICKS};"
        f" max {max(f.idle_ms):.2f}), {f.idle_statements} statements,"
        f" {f.idle_steps} VM steps, {f.idle_scan} full-scan steps"
    )
    print(
        f"timers: drained {f.timers_drain_s:.2f} s after the moment; fired late: first"
        f" {f.timers_first_s:.3f} s, p50"
        f" {f.timers_p50_s:.3f} s, p99 {f.timers_p99_s:.3f} s, max {f.timers_max_s:.3f} s;"
        f" applied p99 {f.timers_applied_p99_s:.3f} s; worker CPU {f.timers_cpu_ms:.2f} ms"
        f" a timer; {f.timers_steps:,} VM steps,"
        f" {f.timers_scan:,} full-scan steps"
    )
    print(
        f"enrollments: drained {f.enrollments_drain_s:.2f} s; first step late p50"
        f" {f.enrollments_p50_s:.3f} s, p99 {f.enrollments_p99_s:.3f} s; worker CPU"
        f" {f.enrollments_cpu_ms:.2f} ms an enrollment;"
        f" {f.enrollments_steps:,} VM steps, {f.enrollments_scan:,} full-scan steps"
    )
    print(f"RSS (VmHWM): worker {f.rss_mb:.0f} MiB, helper {f.helper_rss_mb:.0f} MiB")


if __name__ == "__main__":
    main()
