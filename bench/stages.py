"""Where the time of one order goes: each stage of the pipeline, measured in process.

Posts order.placed events through the ASGI app (no network), then runs each worker stage
alone until it is drained, and prints CPU milliseconds and SQL statements per order for
ingest (single-event POSTs), applying events, running steps and sending (to a transport
that only counts bytes, so SMTP is not measured here; `bench/pipeline.py` measures it).
"helper CPU" is the part a server runs in its helper process (rendering, MIME), inline
here; "worker CPU" the rest, the worker process's own (ingest's is the API's).

    .venv/bin/python bench/stages.py [--orders 400] [--database-url URL]
        [--webhook-endpoints N]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import make_store, order_placed
from ulak.app import create_app
from ulak.clock import FrozenClock
from ulak.config import Settings
from ulak.db import Base, Database
from ulak.migrate import upgrade
from ulak.webhooks.service import add_endpoint
from ulak.worker import Workers


class CountingTransport:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def send(self, *, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        self.messages += 1
        self.bytes += len(raw)

    async def close(self) -> None:
        pass


async def measure(args: argparse.Namespace, url: str) -> None:
    database = Database(url)
    if not database.is_sqlite:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with database.transaction() as session:
            await session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    statements = [0]
    seen: dict[str, Any] = {}

    @event.listens_for(database.engine.sync_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[0] += 1
        if args.explain and statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            seen.setdefault(statement, _[0])
        if args.show_sql:
            print("   ", " ".join(statement.split())[:150])

    clock = FrozenClock()
    settings = Settings(database_url=url, smtp_url=args.smtp_url, public_url="http://ulak.test")
    app = create_app(settings, database=database, clock=clock, run_workers=False)
    workers: Workers = app.state.workers
    transport = CountingTransport()
    if args.smtp_url:
        # Count what the real SMTP transport sends.
        smtp = workers.ctx.sender.email.transport

        async def send(*, mail_from: str, rcpt_to: str, raw: bytes) -> None:
            await smtp.send(mail_from=mail_from, rcpt_to=rcpt_to, raw=raw)
            await CountingTransport.send(transport, mail_from=mail_from, rcpt_to=rcpt_to, raw=raw)

        transport.send = send  # type: ignore[method-assign]
    workers.ctx.sender.email.transport = transport
    # What runs inline here but in the helper process in a server (`ulak.offload`: the
    # render, the MIME): counted apart, so the worker's own CPU per order shows.
    offload = workers.ctx.offload
    assert not offload.processes
    helper = [0.0]
    run_inline = offload.run

    async def run_counted(work: Callable[[], Any]) -> Any:
        start = time.process_time()
        try:
            return await run_inline(work)
        finally:
            helper[0] += time.process_time() - start

    offload.run = run_counted  # type: ignore[method-assign]
    store = await make_store(database, clock)
    if args.webhook_endpoints:
        # Endpoints subscribed to `message.sent` (nothing listens on port 9: only the cost
        # of queueing is measured, `webhooks.deliver` is not run here).
        async with database.transaction() as session:
            for _ in range(args.webhook_endpoints):
                await add_endpoint(
                    session,
                    store_id=store.id,
                    url="http://127.0.0.1:9/hook",
                    events=["message.sent"],
                    development=True,
                    clock=clock,
                )
    n = args.orders
    events = [
        order_placed(str(10000 + i), customer_id=f"c-{i}", email=f"musteri{i}@example.com")
        for i in range(n)
    ]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ulak.test"
    ) as client:

        async def ingest() -> int:
            for body in events:
                response = await client.post("/v1/events", json=body, headers=store.auth)
                assert response.status_code == 202, response.text

            return n

        async def drain(work: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
            async def run() -> int:
                total = 0
                while done := await work():
                    total += done
                return total

            return run

        async def together() -> int:
            # The three worker loops at once, as `ulak worker` runs them.
            task = asyncio.create_task(workers.run())
            while transport.messages < n:  # noqa: ASYNC110 (the transport has no event)
                await asyncio.sleep(0.01)
            workers.stop()
            await task
            return transport.messages

        stages: list[tuple[str, Callable[[], Awaitable[int]]]] = [("ingest (1 event/POST)", ingest)]
        if args.together:
            stages.append(("all workers together", together))
        else:
            stages += [
                ("apply events", await drain(partial(workers.once, "events.apply"))),
                ("run steps", await drain(partial(workers.once, "journeys.run_due"))),
                ("send messages", await drain(partial(workers.once, "messages.send_due"))),
            ]
        print(f"{n} orders, database {database.engine.dialect.name}")
        header = f"{'stage':24} {'rows':>6} {'CPU ms/order':>13} {'wall ms/order':>14}"
        print(f"{header} {'SQL/order':>10} {'helper CPU':>11} {'worker CPU':>11}")
        for name, work in stages:
            statements[0] = 0
            helper[0] = 0.0
            profiler = cProfile.Profile() if args.profile and args.profile in name else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            rows = await work()
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"{name:24} {rows:>6} {cpu * 1000 / n:>13.2f} {wall * 1000 / n:>14.2f}"
                f" {statements[0] / n:>10.1f} {helper[0] * 1000 / n:>11.2f}"
                f" {(cpu - helper[0]) * 1000 / n:>11.2f}"
            )
            if profiler:
                pstats.Stats(profiler).sort_stats(args.sort).print_stats(45)
    mean = transport.bytes / max(transport.messages, 1) / 1024
    print(f"sent {transport.messages} messages, mean {mean:.1f} KiB")
    if args.webhook_endpoints:
        async with database.read() as session:
            queued = await session.scalar(text("SELECT count(*) FROM webhook_deliveries"))
        print(f"queued {queued} webhook deliveries")
    await database.dispose()
    if args.explain:
        explain(url, seen)


def explain(url: str, statements: dict[str, Any]) -> None:
    """Print each distinct statement whose SQLite plan scans a table."""
    import sqlite3

    connection = sqlite3.connect(url.split("///", 1)[1])
    for statement, parameters in statements.items():
        if parameters and isinstance(parameters[0], tuple | list):  # executemany
            parameters = parameters[0]
        plan = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
        lines = [row[-1] for row in plan]
        # A partial index holds only due rows: scanning it is the point.
        if any(
            line.startswith("SCAN")
            and "_due" not in line
            and "_pending" not in line
            and "CONSTANT" not in line
            for line in lines
        ):
            print(" ".join(statement.split())[:300])
            print("    " + "\n    ".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--smtp-url", default="", help="send over SMTP to this server (default: only count)"
    )
    parser.add_argument("--show-sql", action="store_true", help="print each SQL statement")
    parser.add_argument("--explain", action="store_true", help="show plans that scan (SQLite)")
    parser.add_argument("--profile", default="", help="stage to profile with cProfile")
    parser.add_argument("--sort", default="cumulative", help="cProfile order: cumulative, tottime")
    parser.add_argument(
        "--webhook-endpoints",
        type=int,
        default=0,
        help="give the store this many webhook endpoints subscribed to message.sent",
    )
    parser.add_argument(
        "--together", action="store_true", help="run the worker loops at once, as in a server"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ulak-stages-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'ulak.db'}"
    upgrade(url)
    asyncio.run(measure(args, url))


if __name__ == "__main__":
    main()
