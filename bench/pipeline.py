"""End-to-end pipeline benchmark: events in over HTTP, order confirmations out over SMTP.

Prints figures as ratios to baselines measured in the same run, so they hold on a slower
or busier machine:

* sender baseline: a plain one-process sender (EmailMessage with a text and an HTML part,
  ~8 KB, like ulak's confirmation) over SMTP_POOL aiosmtplib connections to the same sink;
* acknowledgement baseline: a bare FastAPI endpoint that validates the same event body and
  answers 202 (bench/bare_app.py), under the same client;
* acknowledgements: single-event POSTs/s (ratio to the bare endpoint), batched events/s;
* capacity: order.placed to confirmation at the sink, saturated (ratio to the sender
  baseline), with `GET /v1/customers/{id}` timed meanwhile (reads during load);
* latency: at half the capacity just measured, p99 from POST to SMTP arrival, in --runs
  consecutive runs.

With --hog, a process spinning on one core runs beside everything (baselines included).

    .venv/bin/python bench/pipeline.py [--database-url URL] [--events N] [--runs R]
                                       [--duration S] [--workers W] [--hog]

SQLite in a fresh temporary file by default; with --database-url postgresql://... a fresh
database ulak_bench_<hex> is created on that server and dropped at the end. All traffic
stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import support

ULAK = Path(sys.executable).parent / "ulak"
HOST = "127.0.0.1"
ISTANBUL = timezone(timedelta(hours=3))
# Order numbers carry a phase prefix: B baseline, S single POSTs, M batched POSTs, R rate.
NUMBER = re.compile(r"#([BSMR]\d{6})\b")
HEADER_END = re.compile(rb"\r?\n\r?\n")
PHONE_BLOCK = {"S": 1, "M": 2, "R": 3}
SENDERS = 8
# Phase B: at most this many requests in flight.
RATE_CONNECTIONS = 100
BATCH = 100
SMTP_POOL = 10


# --- the SMTP sink -------------------------------------------------------------------


@dataclass
class Sink:
    """aiosmtpd handler: when each message arrived, keyed by the order number in its Subject.

    It runs in the Controller's own thread and event loop; the bench reads its dicts from
    the main thread (single writer, so plain dict and int updates are enough).
    """

    arrivals: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    unparsed: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = time.monotonic()
        raw = bytes(envelope.original_content)
        # The header block is enough for the Subject, and parsing a whole multipart body
        # would cost this process more CPU than the rest of the sink.
        head = HEADER_END.split(raw, maxsplit=1)[0]
        message = message_from_bytes(head, policy=policy.default)
        match = NUMBER.search(str(message["Subject"] or ""))
        if match is None:
            self.unparsed += 1
            return "250 OK"
        number = match.group(1)
        if number in self.arrivals:
            self.duplicates += 1
            return "250 OK"
        self.arrivals[number] = arrived
        prefix = number[0]
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        self.sizes[prefix] = self.sizes.get(prefix, 0) + len(raw)
        return "250 OK"

    def count(self, prefixes: str) -> int:
        return sum(self.counts.get(p, 0) for p in prefixes)

    def mean_size(self, prefixes: str) -> float:
        n = self.count(prefixes)
        return sum(self.sizes.get(p, 0) for p in prefixes) / n if n else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


async def wait_for_count(sink: Sink, prefixes: str, expected: int, cap: float) -> float:
    """Wait, at most `cap` seconds, until `expected` messages with these prefixes arrived.
    Returns when the last of them arrived (monotonic), or when the wait gave up."""
    deadline = time.monotonic() + cap
    for _ in range(int(cap / 0.05) + 1):
        if sink.count(prefixes) >= expected or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.05)
    arrived = [t for n, t in list(sink.arrivals.items()) if n[0] in prefixes]
    return max(arrived) if sink.count(prefixes) >= expected and arrived else time.monotonic()


# --- baseline: raw aiosmtplib into the same sink -------------------------------------


def baseline_message(i: int) -> EmailMessage:
    """Comparable to ulak's order confirmation: a text and an HTML part, ~8 KB in all."""
    number = f"#B{i:06d}"
    lines = [f"Seramik kupa {n} x 2 .......... 499,90 TL" for n in range(30)]
    message = EmailMessage()
    message["From"] = "Ayşe'nin Dükkanı <merhaba@aysenin-dukkani.example>"
    message["To"] = f"alici-{i}@example.com"
    message["Subject"] = f"Siparişiniz alındı – {number}"
    message["Message-ID"] = f"<b{i}.bench@aysenin-dukkani.example>"
    message.set_content(
        f"Merhaba Ayşe,\n\nSiparişiniz {number} alındı. Teşekkürler!\n\n"
        + "\n".join(lines)
        + "\n\nToplam: 1.249,90 TL\n"
    )
    rows = "".join(
        f'<tr><td style="padding:8px;border-bottom:1px solid #e5e7eb;font-family:Arial">'
        f'{line}</td><td style="padding:8px;text-align:right">499,90 TL</td></tr>'
        for line in lines
    )
    message.add_alternative(
        f'<!doctype html><html><body style="margin:0;background:#f3f4f6">'
        f'<table role="presentation" width="100%" style="max-width:600px;margin:0 auto">'
        f'<tr><td style="background:#1f6feb;color:#fff;padding:24px;font-size:20px">'
        f'Ayşe\'nin Dükkanı</td></tr><tr><td style="padding:24px;font-family:Arial">'
        f"<h1>Siparişiniz alındı</h1><p>Merhaba Ayşe, siparişiniz {number} alındı.</p>"
        f"<table>{rows}</table><p>Toplam: <strong>1.249,90 TL</strong></p>"
        f"</td></tr></table></body></html>",
        subtype="html",
    )
    return message


async def baseline(port: int, n: int, cap: float) -> tuple[int, float]:
    """Messages sent and seconds taken for up to n messages (at most `cap` seconds) over
    SMTP_POOL concurrent connections, each message built as it is sent: the issue's "plain
    sender that builds a comparable message and sends it". (Until 2026-11-30 all messages
    were built before the clock started, which left the building, ~2 ms of CPU a message,
    out of the baseline while ulak's figure includes its rendering and MIME.)"""
    numbers = iter(range(n))
    sent = 0
    deadline = time.monotonic() + cap

    async def connection() -> None:
        nonlocal sent
        smtp = aiosmtplib.SMTP(
            hostname=HOST, port=port, local_hostname="bench.localhost", start_tls=False
        )
        async with smtp:
            for i in numbers:
                await smtp.send_message(baseline_message(i))
                sent += 1
                if time.monotonic() > deadline:
                    break

    start = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(SMTP_POOL)))
    return sent, time.monotonic() - start


# --- the server -----------------------------------------------------------------------


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


def start_server(env: dict[str, str], log: Path, timeout: float = 60) -> Running:
    port = free_port()
    full = {**os.environ, **env, "ULAK_HOST": HOST, "ULAK_PORT": str(port)}
    with log.open("wb") as out:
        process = subprocess.Popen([str(ULAK), "serve"], env=full, stdout=out, stderr=out)
    running = Running(process, f"http://{HOST}:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ulak serve exited:\n{running.output()}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{running.url}/healthz", timeout=1).status_code == 200:
                return running
        time.sleep(0.1)
    raise RuntimeError(f"ulak serve did not become healthy:\n{running.output()}")


def stop_server(running: Running) -> None:
    if running.process.poll() is None:
        running.process.terminate()
        try:
            running.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait(timeout=15)


def create_store(env: dict[str, str]) -> tuple[int, str]:
    result = subprocess.run(
        [
            str(ULAK), "stores", "create", "--name", "Ayşe'nin Dükkanı", "--locale", "tr",
            "--timezone", "Europe/Istanbul", "--currency", "TRY",
            "--sender-email", "merhaba@aysenin-dukkani.example", "--json",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"ulak stores create failed:\n{result.stderr}")
    created: dict[str, Any] = json.loads(result.stdout)
    return int(created["id"]), str(created["api_key"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its worker processes have used so far: its
    own, its running children's, and those of children that exited (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return float("nan")
    # utime, stime, cutime, cstime
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def cpu_by_process(pid: int) -> dict[str, float]:
    """Each running process of the tree (the server and its descendants) by role: its own
    user + system CPU seconds so far, so the capacity phase can say which one is busiest."""
    found: dict[str, float] = {}
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return found
    words = [part.decode(errors="replace") for part in command if part]
    if "worker" in words:
        role = "worker"
    elif any("spawn_main" in word for word in words):
        role = "helper/sender"
    else:
        role = "api" if "serve" in words else Path(words[0]).name if words else "?"
    found[f"{role}[{pid}]"] = sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")
    for child in children:
        found.update(cpu_by_process(int(child)))
    return found


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server admin_url points at, dropped afterwards."""
    import psycopg
    from psycopg import sql

    admin = admin_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"ulak_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def database_kind(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite {sqlite3.sqlite_version}"
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


# --- events ---------------------------------------------------------------------------


def order_placed(number: str, run: str) -> dict[str, Any]:
    """An order.placed from a Turkish customer of its own, two items, money as strings."""
    event = support.order_placed(
        number,
        customer_id=f"c-{number}",
        email=f"musteri-{number.lower()}@example.com",
        event_id=f"bench-{run}-{number}",
        occurred_at=datetime.now(UTC).astimezone(ISTANBUL).isoformat(timespec="seconds"),
    )
    # Distinct, like everything else that identifies a customer: a shared phone would make
    # ulak merge all these customers into one.
    event["customer"]["phone"] = (
        f"0{530 + PHONE_BLOCK[number[0]]} 1{number[1:3]} {number[3:5]} {number[5:]}"
    )
    return event


class Poster:
    """POSTs to /v1/events over keep-alive HTTP/1.1 connections, each used by one request
    at a time. A client of a few lines: httpx costs 1-3 ms of CPU per request, which on a
    2-core machine would be taken from the server being measured."""

    def __init__(self, url: str, key: str, connections: int) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.head = (
            f"POST /v1/events HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        ).encode()
        self.slots = asyncio.Semaphore(connections)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open: list[asyncio.StreamWriter] = []

    async def post(self, content: bytes) -> tuple[int, bytes]:
        """(status, body) of one POST; raises OSError or asyncio.IncompleteReadError."""
        async with self.slots:
            if self.idle:
                try:
                    return await self._exchange(*self.idle.pop(), content)
                except (OSError, asyncio.IncompleteReadError):
                    pass  # the server closed an idle connection: send it on a new one
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.open.append(writer)
            return await self._exchange(reader, writer, content)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, content: bytes
    ) -> tuple[int, bytes]:
        writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (self.head, len(content), content))
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if length is None:
            raise OSError("a response without Content-Length")
        answer = await reader.readexactly(int(length.group(1)))
        self.idle.append((reader, writer))
        return status, answer

    async def close(self) -> None:
        for writer in self.open:
            writer.close()
        self.open, self.idle = [], []


def body(events: list[dict[str, Any]]) -> bytes:
    payload: Any = events[0] if len(events) == 1 else {"events": events}
    return json.dumps(payload, ensure_ascii=False).encode()


@dataclass
class Posted:
    events: int = 0
    requests: int = 0
    failed_requests: int = 0
    rejected: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def post_all(poster: Poster, bodies: list[tuple[bytes, int]], cap: float) -> Posted:
    """POST the bodies as fast as SENDERS concurrent senders can, starting no request after
    `cap` seconds; counts acknowledged events."""
    posted = Posted()
    queue = iter(bodies)
    deadline = time.monotonic() + cap

    async def sender() -> None:
        for content, size in queue:
            if time.monotonic() > deadline:
                break
            try:
                status, answer = await poster.post(content)
            except (OSError, asyncio.IncompleteReadError):
                posted.failed_requests += 1
                continue
            if status != 202:
                posted.failed_requests += 1
                continue
            posted.requests += 1
            rejected = len(json.loads(answer).get("rejected", []))
            posted.rejected += rejected
            posted.events += size - rejected

    start = time.monotonic()
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    posted.seconds = time.monotonic() - start
    return posted


@dataclass
class RateRun:
    sent: dict[str, float] = field(default_factory=dict)
    ack_seconds: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    max_lag: float = 0.0
    seconds: float = 0.0


async def fixed_rate(
    poster: Poster, run: str, rate: float, duration: float, answer_cap: float, block: int = 0
) -> RateRun:
    """Open loop: each event is posted at its scheduled time whether or not earlier
    requests have been answered, so a slow server cannot lower the offered rate. Requests
    still unanswered `answer_cap` seconds after the last one was sent are abandoned."""
    total = int(rate * duration)
    numbers = [f"R{block % 10}{i:05d}" for i in range(total)]
    bodies = [(number, body([order_placed(number, run)])) for number in numbers]
    result = RateRun()

    async def post(number: str, content: bytes, due: float) -> None:
        # Latency counts from the scheduled time, so time an event spends waiting for the
        # client (a lagging loop, a full connection pool) is not left out of it.
        result.sent[number] = due
        try:
            status, _ = await poster.post(content)
        except (OSError, asyncio.IncompleteReadError) as error:
            result.failures[type(error).__name__] += 1
            return
        if status != 202:
            result.failures[f"HTTP {status}"] += 1
            return
        result.ack_seconds.append(time.monotonic() - due)

    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic() + 0.05
    for i, (number, content) in enumerate(bodies):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        result.max_lag = max(result.max_lag, time.monotonic() - due)
        tasks.append(asyncio.create_task(post(number, content, due)))
    result.seconds = time.monotonic() - start
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=answer_cap)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        result.unanswered = len(pending)
    return result


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of unsorted values (nan when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


# --- the run --------------------------------------------------------------------------

# Time caps that keep a default run within about three minutes even when the pipeline is
# slow: each phase reports what it managed within its cap.
BASELINE_CAP = 8.0
SINGLE_CAP = 8.0
BATCHED_CAP = 12.0
DRAIN_CAP = 60.0
CAPACITY_CAP = 90.0
STRAGGLERS_CAP = 30.0
# How often the reader asks for a customer's profile during the capacity phase.
READ_INTERVAL = 0.02


@dataclass
class Deployment:
    server: Running
    key: str


@contextmanager
def deployment(
    args: argparse.Namespace, workdir: Path, smtp_port: int, name: str
) -> Iterator[Deployment]:
    """A fresh database, `ulak serve` on it (workers included) and a store with its key."""
    with ExitStack() as stack:
        if args.database_url:
            url = stack.enter_context(postgres_database(args.database_url))
        else:
            url = f"sqlite+aiosqlite:///{workdir / f'{name}.db'}"
        env = {
            "ULAK_DATABASE_URL": url,
            "ULAK_SMTP_URL": f"smtp://{HOST}:{smtp_port}",
            "ULAK_LOG_LEVEL": "warning",
            "ULAK_WORKER_PROCESSES": str(args.workers),
        }
        server = start_server(env, workdir / f"serve-{name}.log")
        stack.callback(stop_server, server)
        try:
            _, key = create_store(env)
            yield Deployment(server, key)
        except BaseException:
            print(f"--- ulak serve output ---\n{server.output()}", file=sys.stderr)
            raise


@asynccontextmanager
async def poster_for(running: Deployment, connections: int) -> AsyncIterator[Poster]:
    poster = Poster(running.server.url, running.key, connections)
    try:
        yield poster
    finally:
        await poster.close()


@dataclass
class Figures:
    """The compact summary table, filled as the phases run."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    baseline: float = 0.0
    bare: float = 0.0
    capacity: float = 0.0
    drained: bool = False

    def add(self, name: str, value: str) -> None:
        self.rows.append((name, value))

    def table(self) -> str:
        width = max(len(name) for name, _ in self.rows)
        lines = [f"| {'figure'.ljust(width)} | value |", f"| {'-' * width} | --- |"]
        lines += [f"| {name.ljust(width)} | {value} |" for name, value in self.rows]
        return "\n".join(lines)


def detail(text: str) -> None:
    print(f"  {text}", flush=True)


async def run_baseline(n: int, smtp_port: int, figures: Figures) -> None:
    print(
        f"sender baseline: up to {n} messages (EmailMessage, text and HTML) over {SMTP_POOL} "
        "aiosmtplib connections "
        f"(cap {BASELINE_CAP:g} s)",
        flush=True,
    )
    sent, seconds = await baseline(smtp_port, n, BASELINE_CAP)
    figures.baseline = sent / seconds
    detail(f"{sent} messages in {seconds:.1f} s = {figures.baseline:.0f} msgs/s")
    figures.add(
        f"baseline: plain sender, {SMTP_POOL} connections", f"{figures.baseline:.0f} msgs/s"
    )


def start_bare(log: Path) -> Running:
    """The acknowledgement baseline (bench/bare_app.py) under uvicorn, as ulak serves."""
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", HOST,
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


async def run_bare(workdir: Path, n: int, figures: Figures) -> None:
    print(f"bare FastAPI endpoint: up to {n} single-event POSTs (cap {SINGLE_CAP:g} s)", flush=True)
    bare = start_bare(workdir / "bare.log")
    try:
        run = uuid.uuid4().hex[:6]
        singles = [(body([order_placed(f"S{i:06d}", run)]), 1) for i in range(n)]
        poster = Poster(bare.url, "none", SENDERS)
        try:
            posted = await post_all(poster, singles, SINGLE_CAP)
        finally:
            await poster.close()
    finally:
        stop_server(bare)
    figures.bare = posted.rate
    detail(f"{posted.events} acked in {posted.seconds:.1f} s = {posted.rate:.0f} events/s")
    figures.add("baseline: bare FastAPI endpoint, single events", f"{posted.rate:.0f} events/s")


class Reader:
    """GET /v1/customers/{id} every READ_INTERVAL on one keep-alive connection, timed."""

    def __init__(self, url: str, key: str, refs: list[str]) -> None:
        self.url, self.key, self.refs = url, key, refs
        self.seconds: list[float] = []
        self.failures = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        host, _, port = self.url.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            i = 0
            while not self._stop.is_set():
                ref = self.refs[i % len(self.refs)]
                i += 1
                started = time.monotonic()
                writer.write(
                    f"GET /v1/customers/{ref} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {self.key}\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                if head[9:12] == b"200":
                    self.seconds.append(time.monotonic() - started)
                else:
                    self.failures += 1
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), READ_INTERVAL)
        finally:
            writer.close()

    def stop(self) -> None:
        self._stop.set()


async def phase_a(
    args: argparse.Namespace, sink: Sink, running: Deployment, figures: Figures
) -> None:
    """Acknowledgements (single and batched POSTs), then capacity with reads meanwhile."""
    n = args.events
    run = uuid.uuid4().hex[:6]
    singles = [(body([order_placed(f"S{i:06d}", run)]), 1) for i in range(n)]
    print(f"acknowledgements: up to {n} single-event POSTs (cap {SINGLE_CAP:g} s)", flush=True)
    async with poster_for(running, SENDERS) as poster:
        single = await post_all(poster, singles, SINGLE_CAP)
    detail(
        f"single: {single.events} events acked in {single.seconds:.1f} s = "
        f"{single.rate:.0f} events/s ({single.failed_requests} failed requests)"
    )
    figures.add(
        "single-event POSTs, acknowledged",
        f"{single.rate:.0f} events/s = {single.rate / figures.bare:.2f}x bare endpoint",
    )
    await wait_for_count(sink, "S", single.events, DRAIN_CAP)
    if sink.count("S") < single.events:
        detail(f"only {sink.count('S')}/{single.events} of their emails within {DRAIN_CAP:g} s")

    # Capacity: a backlog posted in batches as fast as ulak takes it, then drained.
    batches = [
        (
            body([order_placed(f"M{j:06d}", run) for j in range(i, min(i + BATCH, n))]),
            min(BATCH, n - i),
        )
        for i in range(0, n, BATCH)
    ]
    pid = running.server.process.pid
    print(f"capacity: {n} orders in batches of {BATCH}, drained to the sink", flush=True)
    reader = Reader(running.server.url, running.key, [f"c-S{i:06d}" for i in range(0, 200, 7)])
    reading = asyncio.create_task(reader.run())
    async with poster_for(running, SENDERS) as poster:
        cpu0, start = cpu_seconds(pid), time.monotonic()
        by_process0 = cpu_by_process(pid)
        batched = await post_all(poster, batches, BATCHED_CAP)
    detail(
        f"batched: {batched.events} events in {batched.requests} requests acked in "
        f"{batched.seconds:.1f} s = {batched.rate:.0f} events/s"
    )
    last = await wait_for_count(sink, "M", batched.events, CAPACITY_CAP)
    reader.stop()
    await reading
    arrived = sink.count("M")
    cpu, wall = cpu_seconds(pid) - cpu0, last - start
    by_process = cpu_by_process(pid)
    figures.capacity = arrived / wall
    figures.drained = arrived >= batched.events
    detail(
        f"{arrived}/{batched.events} emails in {wall:.1f} s = {figures.capacity:.0f} emails/s; "
        f"server CPU (its processes together) {100 * cpu / wall:.0f}% of one core; "
        f"mean message {sink.mean_size('M') / 1024:.1f} KiB "
        f"(baseline {sink.mean_size('B') / 1024:.1f} KiB)"
    )
    busy = {name: (spent - by_process0.get(name, 0.0)) / wall for name, spent in by_process.items()}
    detail(
        "CPU by process (share of one core): "
        + ", ".join(f"{name} {100 * share:.0f}%" for name, share in sorted(busy.items()))
        + f"; per email {1000 * cpu / max(arrived, 1):.1f} ms in all"
    )
    detail(
        f"reads meanwhile: {len(reader.seconds)} profiles, p50 / p99 / max "
        f"{seconds(percentile(reader.seconds, 50))} / {seconds(percentile(reader.seconds, 99))}"
        f" / {seconds(percentile(reader.seconds, 100))} ({reader.failures} failed)"
    )
    figures.add(f"batched POSTs ({BATCH}/request), acknowledged", f"{batched.rate:.0f} events/s")
    note = "" if figures.drained else f", only {arrived}/{batched.events} within the cap"
    figures.add(
        "capacity: order.placed to email, saturated",
        f"{figures.capacity:.0f} emails/s = {figures.capacity / figures.baseline:.2f}x "
        f"sender baseline{note}",
    )
    figures.add(
        "reads during load: GET /v1/customers p99",
        f"{seconds(percentile(reader.seconds, 99))} ({len(reader.seconds)} reads)",
    )


def seconds(value: float, missing_after: float = math.nan) -> str:
    """A duration for people; infinity (an email that never arrived) shows as the least
    it must be, `missing_after`."""
    if not math.isfinite(value):
        return f"> {missing_after:.0f} s (not arrived)"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


async def phase_b(
    args: argparse.Namespace, sink: Sink, running: Deployment, figures: Figures
) -> None:
    """Latency at half the capacity just measured, in consecutive runs on one server."""
    rate = max(1.0, figures.capacity / 2)
    print(
        f"latency: {args.runs} runs of {rate:.0f} single-event POSTs/s (half the capacity) "
        f"for {args.duration:g} s each, open loop",
        flush=True,
    )
    p99s = []
    for number in range(args.runs):
        prefix = "R"
        before = dict(sink.arrivals)
        async with poster_for(running, RATE_CONNECTIONS) as poster:
            start = time.monotonic()
            rated = await fixed_rate(
                poster, uuid.uuid4().hex[:6], rate, args.duration, STRAGGLERS_CAP, number
            )
        waited = time.monotonic() - start - rated.seconds
        expected = len(rated.sent) - rated.failures.total() - rated.unanswered
        await wait_for_count(
            sink, prefix, sink.count(prefix) + expected - _new(sink, before, prefix),
            max(0.0, STRAGGLERS_CAP - waited),
        )  # fmt: skip
        floor = time.monotonic() - max(rated.sent.values(), default=start)
        latencies = [sink.arrivals.get(n, math.inf) - sent for n, sent in rated.sent.items()]
        arrived = sum(math.isfinite(v) for v in latencies)
        p99 = percentile(latencies, 99)
        p99s.append(p99)
        detail(
            f"run {number + 1}: offered {len(rated.sent) / rated.seconds:.0f}/s; email latency "
            "p50 / p95 / p99 / max: "
            + " / ".join(seconds(percentile(latencies, p), floor) for p in (50, 95, 99, 100))
            + f"; {arrived}/{len(rated.sent)} arrived; POST p99 "
            f"{seconds(percentile(rated.ack_seconds, 99))}"
        )
    figures.add(
        f"latency at half capacity ({rate:.0f}/s), p99 per run",
        " / ".join(seconds(p) for p in p99s),
    )


def _new(sink: Sink, before: dict[str, float], prefix: str) -> int:
    return sum(1 for n in sink.arrivals if n[0] == prefix and n not in before)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--events", type=int, default=3000, help="events per phase")
    parser.add_argument("--runs", type=int, default=5, help="latency runs")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per latency run")
    parser.add_argument("--workers", type=int, default=1, help="ULAK_WORKER_PROCESSES")
    parser.add_argument("--hog", action="store_true", help="keep one core busy throughout")
    args = parser.parse_args()

    started = time.monotonic()
    kind = database_kind(args.database_url or "sqlite")
    machine = (
        f"{len(os.sched_getaffinity(0))} cores (nproc), Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, database {kind}, "
        f"{args.workers} worker process(es){', one core hogged' if args.hog else ''}"
    )
    print(f"machine: {machine}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="ulak-bench-"))
    sink = Sink()
    smtp_port = free_port()
    controller = Controller(sink, hostname=HOST, port=smtp_port, server_hostname="sink.localhost")
    controller.start()
    figures = Figures()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    try:
        asyncio.run(run_baseline(args.events, smtp_port, figures))
        asyncio.run(run_bare(workdir, args.events, figures))
        with deployment(args, workdir, smtp_port, "a") as running:
            asyncio.run(phase_a(args, sink, running, figures))
            if figures.drained:
                asyncio.run(phase_b(args, sink, running, figures))
        if not figures.drained:
            print("the capacity phase left a backlog: latency on a fresh server", flush=True)
            with deployment(args, workdir, smtp_port, "b") as running:
                asyncio.run(phase_b(args, sink, running, figures))
    finally:
        if hog is not None:
            hog.kill()
        controller.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"ulak pipeline bench - {machine}")
    print(figures.table())
    print(f"(whole run {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
