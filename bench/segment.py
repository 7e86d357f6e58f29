"""Segment `batch` ingestion against ulak's own `/v1/events` batches, in the same run.

`ulak serve` (the API process and its worker) runs on a fresh SQLite file; a store is
made with the CLI. Each run POSTs `--batches` batches of 100 messages (Order Completed and
identify, alternately, each with its own messageId) to `/v1/batch` with HTTP Basic auth,
as the Segment SDKs send them, over `--connections` keep-alive connections (the lean
raw-HTTP client of bench/pipeline.py), and counts the events acknowledged per second
(a 200 with nothing skipped). The baseline is the same events as ulak's own
(`order.placed` and `customer.updated`) in batches of 100 to `/v1/events`, posted the same
way in the same run; the two alternate which goes first, so the worker's backlog behind
them weighs on both alike.

    .venv/bin/python bench/segment.py [--batches N] [--connections C] [--runs R] [--gzip]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import Poster, create_store, start_server, stop_server

BATCH = 100


class PathPoster(Poster):
    """bench/pipeline.py's Poster to another path, with other headers."""

    def __init__(self, url: str, connections: int, path: str, headers: dict[str, str]) -> None:
        super().__init__(url, "", connections)
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {url.removeprefix('http://')}\r\n"
            f"Content-Type: application/json\r\n{lines}"
        ).encode()


def segment_message(run: str, i: int) -> dict[str, Any]:
    user = f"c-{i % 5000}"
    common = {
        "messageId": f"{run}-{i}",
        "timestamp": "2026-12-01T08:00:00.000Z",
        "userId": user,
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
    }
    if i % 2:
        return {
            **common,
            "type": "identify",
            "traits": {"email": f"{user}@example.com", "firstName": "Ayşe", "plan": "gold"},
        }
    return {
        **common,
        "type": "track",
        "event": "Order Completed",
        "properties": {
            "order_id": f"{run}-{i}",
            "total": 1249.9,
            "currency": "TRY",
            "products": [
                {"product_id": "p-1", "sku": "S-1", "name": "Çay", "price": 624.95, "quantity": 2}
            ],
        },
    }


def ulak_event(run: str, i: int) -> dict[str, Any]:
    user = f"c-{i % 5000}"
    if i % 2:
        return {
            "id": f"{run}-{i}",
            "type": "customer.updated",
            "occurred_at": "2026-12-01T08:00:00+00:00",
            "customer": {
                "id": user,
                "email": f"{user}@example.com",
                "first_name": "Ayşe",
                "attributes": {"plan": "gold"},
            },
        }
    return {
        "id": f"{run}-{i}",
        "type": "order.placed",
        "occurred_at": "2026-12-01T08:00:00+00:00",
        "customer": {"id": user},
        "data": {
            "order_id": f"{run}-{i}",
            "total": "1249.90",
            "currency": "TRY",
            "items": [
                {
                    "product_id": "p-1",
                    "sku": "S-1",
                    "title": "Çay",
                    "price": "624.95",
                    "quantity": 2,
                }
            ],
            "cart_id": f"cart-{user}",
        },
    }


def segment_bodies(run: str, batches: int, compress: bool) -> list[bytes]:
    out = []
    for b in range(batches):
        messages = [segment_message(run, b * BATCH + i) for i in range(BATCH)]
        raw = json.dumps({"batch": messages, "sentAt": "2026-12-01T08:00:01Z"}).encode()
        out.append(gzip.compress(raw) if compress else raw)
    return out


def ulak_bodies(run: str, batches: int) -> list[bytes]:
    return [
        json.dumps({"events": [ulak_event(run, b * BATCH + i) for i in range(BATCH)]}).encode()
        for b in range(batches)
    ]


async def post_all(poster: Poster, bodies: list[bytes], ok: int, senders: int) -> float:
    """Events acknowledged per second: POSTs from `senders` at once, each waiting for its
    answer; a request not answered `ok` with nothing skipped or rejected counts nothing."""
    queue = iter(bodies)
    acknowledged = 0

    async def sender() -> None:
        nonlocal acknowledged
        for content in queue:
            status, answer = await poster.post(content)
            parsed = json.loads(answer)
            if status == ok and not parsed.get("skipped") and not parsed.get("rejected"):
                acknowledged += BATCH
            else:
                print(f"  not acknowledged: {status} {answer[:300]!r}", flush=True)

    start = time.monotonic()
    await asyncio.gather(*(sender() for _ in range(senders)))
    await poster.close()
    return acknowledged / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=100, help="batches of 100 per run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gzip", action="store_true", help="gzip the Segment bodies")
    args = parser.parse_args()
    machine = (
        f"{len(os.sched_getaffinity(0))} cores (nproc), Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, SQLite, load average "
        f"{os.getloadavg()[0]:.1f} at the start"
    )
    print(f"machine: {machine}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="ulak-bench-segment-"))
    env = {
        "ULAK_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'segment.db'}",
        "ULAK_SMTP_URL": "",
        "ULAK_LOG_LEVEL": "warning",
    }
    server = start_server(env, workdir / "serve.log")
    rows: list[tuple[str, float, float]] = []
    try:
        _, key = create_store(env)
        basic = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        segment_headers = {"Authorization": basic}
        if args.gzip:
            segment_headers["Content-Encoding"] = "gzip"

        async def segment(run: str) -> float:
            poster = PathPoster(server.url, args.connections, "/v1/batch", segment_headers)
            bodies = segment_bodies(run, args.batches, args.gzip)
            return await post_all(poster, bodies, 200, args.connections)

        async def events(run: str) -> float:
            poster = PathPoster(
                server.url, args.connections, "/v1/events", {"Authorization": f"Bearer {key}"}
            )
            return await post_all(poster, ulak_bodies(run, args.batches), 202, args.connections)

        asyncio.run(segment("warm-s"))
        asyncio.run(events("warm-e"))
        for n in range(1, args.runs + 1):
            if n % 2:
                seg = asyncio.run(segment(f"s{n}"))
                base = asyncio.run(events(f"e{n}"))
            else:
                base = asyncio.run(events(f"e{n}"))
                seg = asyncio.run(segment(f"s{n}"))
            rows.append((str(n), seg, base))
            print(
                f"  run {n}: /v1/batch {seg:.0f} events/s, /v1/events {base:.0f} events/s,"
                f" ratio {seg / base:.2f}, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    except BaseException:
        print(f"--- ulak serve output ---\n{server.output()}", file=sys.stderr)
        raise
    finally:
        stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    gz = ", gzip" if args.gzip else ""
    print(
        f"ulak segment bench: {args.batches} x {BATCH} a run, {args.connections} connections"
        f"{gz} - {machine}"
    )
    print("| run | /v1/batch events/s | /v1/events events/s (baseline) | ratio |")
    print("| --- | --- | --- | --- |")
    for run, seg, base in rows:
        print(f"| {run} | {seg:.0f} | {base:.0f} | {seg / base:.2f} |")
    ratios = [seg / base for _, seg, base in rows]
    rates = [seg for _, seg, _ in rows]
    print(
        f"\n/v1/batch: {min(rates):.0f}-{max(rates):.0f} events/s (median"
        f" {statistics.median(rates):.0f}); ratio to /v1/events {min(ratios):.2f}-"
        f"{max(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
