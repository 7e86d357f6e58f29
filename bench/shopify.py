"""Shopify webhooks acknowledged at a steady 100/s: `ulak serve` on SQLite with its worker
running (confirmations rendered into the dev inbox), each webhook a new orders/create in
Shopify's format (tests/integrations/shopify/order.json with its own order, customer and
address), signed with the store's secret.

Per round, on the same machine and in the same run, once the worker has caught up with the
previous round (its pending events, inbox rows and queued messages all done):
- **acknowledgement at the rate**: webhooks at `--rate` per second, open loop (a slow
  answer does not delay the next), for `--seconds`; p50 and p99 from each webhook's
  scheduled time to its 200;
- **capacity**: webhooks posted by 8 concurrent senders as fast as answered, for up to
  CAPACITY_CAP seconds: to ulak, and to the bare endpoint (bench/shopify_bare.py: the same
  signature check, parsing and mapping, under uvicorn, storing nothing); their ratio.

    PYTHONPATH=<worktree>/src:<worktree> .venv/bin/python bench/shopify.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import hashlib
import hmac
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.pipeline import (
    HOST,
    ULAK,
    Running,
    cpu_seconds,
    create_store,
    free_port,
    percentile,
    start_server,
    stop_server,
)
from bench.shopify_bare import SECRET

from ulak.db import side_path

SAMPLE = Path(__file__).resolve().parent.parent / "tests/integrations/shopify/order.json"
SENDERS = 8
CAPACITY_CAP = 10.0
ANSWER_CAP = 10.0


def webhooks(count: int, run: str) -> list[bytes]:
    """Distinct orders/create bodies: each its own order, customer and email."""
    base = json.loads(SAMPLE.read_text())
    now = datetime.now(UTC).isoformat()
    out = []
    for i in range(count):
        order = copy.deepcopy(base)
        number = int(time.time() * 1000) % 10**9 * 1000 + i
        order.update(id=number, name=f"#{run}{i}", created_at=now, processed_at=now)
        order["customer"]["id"] = number
        order["customer"]["email"] = order["email"] = f"c{run}{i}@example.com"
        out.append(json.dumps(order, ensure_ascii=False).encode())
    return out


class Poster:
    """Signed webhook POSTs over keep-alive HTTP/1.1 connections, one request at a time on
    each (a lean client: httpx's CPU per request would be taken from the server)."""

    def __init__(self, url: str, path: str, connections: int) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.path = path
        self.slots = asyncio.Semaphore(connections)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open: list[asyncio.StreamWriter] = []

    async def post(self, content: bytes) -> int:
        async with self.slots:
            if self.idle:
                with suppress(OSError, asyncio.IncompleteReadError):
                    return await self._exchange(*self.idle.pop(), content)
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.open.append(writer)
            return await self._exchange(reader, writer, content)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, content: bytes
    ) -> int:
        signature = base64.b64encode(
            hmac.new(SECRET.encode(), content, hashlib.sha256).digest()
        ).decode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\nX-Shopify-Topic: orders/create\r\n"
            f"X-Shopify-Hmac-Sha256: {signature}\r\nX-Shopify-Webhook-Id: {uuid.uuid4()}\r\n"
            "X-Shopify-Shop-Domain: aysenin-dukkani.myshopify.com\r\n"
            "X-Shopify-API-Version: 2025-01\r\n"
            f"Content-Length: {len(content)}\r\n\r\n"
        ).encode()
        writer.write(head + content)
        answer = await reader.readuntil(b"\r\n\r\n")
        status = int(answer[9:12])
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", answer)
        if length is None:
            raise OSError("a response without Content-Length")
        await reader.readexactly(int(length.group(1)))
        self.idle.append((reader, writer))
        return status

    async def close(self) -> None:
        for writer in self.open:
            writer.close()


async def capacity(poster: Poster, bodies: list[bytes]) -> tuple[float, int, int]:
    """Webhooks answered 200 per second by SENDERS senders, the count of others, and of
    those answered."""
    queue = iter(bodies)
    deadline = time.monotonic() + CAPACITY_CAP
    ok = failed = 0

    async def sender() -> None:
        nonlocal ok, failed
        for content in queue:
            if time.monotonic() > deadline:
                break
            try:
                status = await poster.post(content)
            except (OSError, asyncio.IncompleteReadError):
                failed += 1
                continue
            if status == 200:
                ok += 1
            else:
                failed += 1

    start = time.monotonic()
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return ok / (time.monotonic() - start), failed, ok


@dataclass
class RateRun:
    acks: list[float] = field(default_factory=list)
    failed: int = 0
    unanswered: int = 0
    max_lag: float = 0.0


async def at_rate(poster: Poster, bodies: list[bytes], rate: float) -> RateRun:
    """Open loop: each webhook at its scheduled time; latency from that time."""
    result = RateRun()

    async def post(content: bytes, due: float) -> None:
        try:
            status = await poster.post(content)
        except (OSError, asyncio.IncompleteReadError):
            result.failed += 1
            return
        if status != 200:
            result.failed += 1
            return
        result.acks.append(time.monotonic() - due)

    tasks = []
    start = time.monotonic() + 0.05
    for i, content in enumerate(bodies):
        due = start + i / rate
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        result.max_lag = max(result.max_lag, time.monotonic() - due)
        tasks.append(asyncio.create_task(post(content, due)))
    _, pending = await asyncio.wait(tasks, timeout=ANSWER_CAP)
    for task in pending:
        task.cancel()
    result.unanswered = len(pending)
    return result


def start_bare(log: Path) -> Running:
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "bench.shopify_bare:app", "--host", HOST,
                "--port", str(port), "--log-level", "warning",
            ],
            cwd=root, stdout=out, stderr=out,
        )  # fmt: skip
    running = Running(process, f"http://{HOST}:{port}", log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with suppress(OSError):
            socket.create_connection((HOST, port), timeout=1).close()
            return running
        time.sleep(0.1)
    raise RuntimeError(f"the bare endpoint did not start:\n{running.output()}")


def connected_store(env: dict[str, str]) -> int:
    """A new store, connected to Shopify with the bench's secret, as its owner does it."""
    store_id, _ = create_store(env)
    subprocess.run(
        [str(ULAK), "integrations", "set", "shopify", "--store", str(store_id), "--secret-stdin"],
        input=SECRET + "\n",
        env={**os.environ, **env},
        text=True,
        check=True,
        capture_output=True,
    )
    return store_id


def backlog(database: Path) -> int:
    """Work the worker has not done: webhooks' events not yet applied (in the inbox file
    past the worker's cursor, or pending) and messages not yet sent."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as main:
        cursor = main.execute("SELECT coalesce(max(seq), 0) FROM inbox_cursor").fetchone()[0]
        pending = main.execute(
            "SELECT (SELECT count(*) FROM events WHERE status = 'pending')"
            " + (SELECT count(*) FROM messages WHERE status IN ('queued', 'sending'))"
        ).fetchone()[0]
    inbox = Path(side_path(str(database), "inbox"))
    waiting = 0
    if inbox.exists():
        with (
            contextlib.closing(sqlite3.connect(f"file:{inbox}?mode=ro", uri=True)) as side,
            contextlib.suppress(sqlite3.OperationalError),  # no inbox table before an event
        ):
            waiting = side.execute(
                "SELECT count(*) FROM inbox WHERE seq > ?", (cursor,)
            ).fetchone()[0]
    return int(pending) + int(waiting)


async def drained(database: Path, cap: float) -> float:
    """Seconds until the worker has caught up (at most `cap`), so a round starts quiet."""
    start = time.monotonic()
    while time.monotonic() - start < cap:
        if await asyncio.to_thread(backlog, database) == 0:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - start


def own_cpu(pid: int) -> float:
    """User + system CPU seconds of this one process (not its children): the API's, since
    `ulak serve` serves in its own process and runs its worker in children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cpu:
    """CPU seconds used during a phase: the API process, the rest of ulak's tree (the
    worker and its helpers), and the bare endpoint."""

    api: float = 0.0
    worker: float = 0.0
    bare: float = 0.0


def cpu_now(server: Running, bare: Running) -> Cpu:
    api = own_cpu(server.process.pid)
    return Cpu(api, cpu_seconds(server.process.pid) - api, own_cpu(bare.process.pid))


def cpu_since(before: Cpu, server: Running, bare: Running) -> Cpu:
    now = cpu_now(server, bare)
    return Cpu(now.api - before.api, now.worker - before.worker, now.bare - before.bare)


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ulak-bench-shopify-"))
    env = {
        "ULAK_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'ulak.db'}",
        "ULAK_SMTP_URL": "",
        "ULAK_LOG_LEVEL": "warning",
    }
    server = start_server(env, workdir / "serve.log")
    bare = start_bare(workdir / "bare.log")
    try:
        store_id = await asyncio.to_thread(connected_store, env)
        path = f"/v1/integrations/shopify/{store_id}"
        ulak = Poster(server.url, path, SENDERS)
        baseline = Poster(bare.url, path, SENDERS)
        rows: list[tuple[float, float, float, float, float, int, int]] = []
        for round_ in range(args.rounds):
            waited = await drained(workdir / "ulak.db", args.drain_cap)
            run = f"{round_}{uuid.uuid4().hex[:4]}"
            # The steady rate first, on a worker that has caught up: the capacity phases
            # leave it a backlog of thousands of orders.
            steady = webhooks(int(args.rate * args.seconds), "r" + run)
            before = cpu_now(server, bare)
            result = await at_rate(ulak, steady, args.rate)
            used = cpu_since(before, server, bare)
            p50, p99 = percentile(result.acks, 50), percentile(result.acks, 99)
            before = cpu_now(server, bare)
            bare_rate, bare_failed, bare_n = await capacity(baseline, webhooks(3000, "b" + run))
            bare_cpu = cpu_since(before, server, bare).bare / max(bare_n, 1)
            before = cpu_now(server, bare)
            ulak_rate, ulak_failed, ulak_n = await capacity(ulak, webhooks(3000, "c" + run))
            api_cpu = cpu_since(before, server, bare).api / max(ulak_n, 1)
            print(
                f"  CPU per webhook: API {ms(api_cpu)}, bare {ms(bare_cpu)}"
                f" ({api_cpu / bare_cpu:.2f}x) at capacity; at {args.rate:g}/s the API used"
                f" {used.api / args.seconds:.2f} of a core, the worker"
                f" {used.worker / args.seconds:.2f}",
                flush=True,
            )
            print(
                f"round {round_ + 1} (worker caught up in {waited:.0f} s):"
                f" at {args.rate:g}/s for {args.seconds:g} s: p50 {ms(p50)}, p99 {ms(p99)},"
                f" failed {result.failed}, unanswered {result.unanswered},"
                f" client lag max {ms(result.max_lag)};"
                f" capacity bare {bare_rate:.0f}/s, ulak {ulak_rate:.0f}/s"
                f" ({ulak_rate / bare_rate:.2f}x; failed {bare_failed}/{ulak_failed})",
                flush=True,
            )
            rows.append(
                (bare_rate, ulak_rate, ulak_rate / bare_rate, p50, p99, result.failed,
                 result.unanswered)
            )  # fmt: skip
        await ulak.close()
        await baseline.close()
    finally:
        stop_server(bare)
        stop_server(server)
    ratios = [r[2] for r in rows]
    p99s = [r[4] for r in rows]
    p50s = [r[3] for r in rows]
    print(
        f"\ncapacity ulak / bare: median {statistics.median(ratios):.2f}x"
        f" (range {min(ratios):.2f}-{max(ratios):.2f}x) over {len(rows)} rounds"
    )
    print(
        f"acknowledgement at {args.rate:g}/s: p50 median {ms(statistics.median(p50s))}"
        f" (range {ms(min(p50s))}-{ms(max(p50s))}), p99 median {ms(statistics.median(p99s))}"
        f" (range {ms(min(p99s))}-{ms(max(p99s))})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--drain-cap",
        type=float,
        default=180.0,
        help="seconds a round waits at most for the worker to catch up with the last",
    )
    asyncio.run(main(parser.parse_args()))
