"""Customer page benchmark: many different shoppers opening their pages at once.

`ulak serve` (the API process and its worker) runs on a fresh SQLite file as a user runs
it; a store is created with the CLI and seeded through the API with orders, shipments and
carrier checkpoints (events, then waits until the worker has applied them and sent their
mail), so the pages read what real traffic leaves behind. Then N concurrent keep-alive
clients (a lean raw-HTTP client: httpx would take 1-3 ms of CPU per request from the
server it measures, on the same 2 cores) GET the page of a random order each time, for a
few seconds per run, and the bench prints requests/s and p50/p99 latency per run.

    .venv/bin/python bench/pages.py [--page tracking|widget] [--orders N] [--clients C]
                                    [--duration S] [--runs R]

`--page` picks what is measured: `tracking` (an order's tracking page, `--orders` orders
with parcels and checkpoints) or `widget` (a product's review widget, as shop pages embed
it: `--orders` reviews over `--orders / 5` products). Each is an entry of PAGES: a function
that seeds what it needs and returns the paths to request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import cpu_by_process, create_store, percentile, start_server, stop_server

HOST = "127.0.0.1"


@dataclass
class Seeded:
    """A running server on a fresh database, with a store and its API key."""

    url: str
    database: Path
    store_id: int
    key: str


# --- seeding ----------------------------------------------------------------------------


def events_for_order(n: int) -> list[dict[str, Any]]:
    """An order's life so far: placed, shipped with a carrier that sent no tracking link,
    and three carrier checkpoints (a customer with a few orders: n // 3)."""
    order, customer, day = f"B{n:06d}", f"c-{n // 3}", 1 + n % 20
    at = f"2026-11-{day:02d}T"
    checkpoints = [
        ("info_received", "10:05", "Kadıköy Şube"),
        ("in_transit", "19:40", "İstanbul Anadolu Aktarma"),
        ("in_transit", "23:55", "Ankara Aktarma"),
    ]
    return [
        {
            "id": f"placed-{order}",
            "type": "order.placed",
            "occurred_at": f"{at}07:30:00Z",
            "customer": {
                "id": customer,
                "email": f"shopper{n // 3}@example.com",
                "first_name": "Ayşe",
                "locale": "tr",
            },
            "data": {
                "order_id": order,
                "number": f"#{order}",
                "items": [
                    {
                        "product_id": "p-1",
                        "title": "Seramik kupa",
                        "quantity": 2,
                        "price": "249.95",
                        "image_url": "https://cdn.example/kupa.jpg",
                    },
                    {"product_id": "p-2", "title": "Bakır çaydanlık", "quantity": 1,
                     "price": "750.00"},
                ],
                "total": "1249.90",
                "currency": "TRY",
            },
        },
        {
            "id": f"shipped-{order}",
            "type": "order.shipped",
            "occurred_at": f"{at}09:00:00Z",
            "customer": {"id": customer},
            "data": {
                "order_id": order,
                "shipment_id": f"shp-{order}",
                "carrier": "Yurtiçi Kargo",
                "tracking_number": f"YK{n:010d}",
                "estimated_delivery": "2026-12-03",
            },
        },
    ] + [
        {
            "id": f"cp-{order}-{i}",
            "type": "shipment.updated",
            "occurred_at": f"{at}{time_}:00Z",
            "customer": {"id": customer},
            "data": {"shipment_id": f"shp-{order}", "status": status, "location": place},
        }
        for i, (status, time_, place) in enumerate(checkpoints)
    ]  # fmt: skip


async def post_events(seeded: Seeded, events: list[dict[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {seeded.key}"}
    async with httpx.AsyncClient(base_url=seeded.url, headers=headers, timeout=60) as client:
        for start in range(0, len(events), 100):
            batch = {"events": events[start : start + 100]}
            response = await client.post("/v1/events", content=json.dumps(batch))
            response.raise_for_status()
            rejected = response.json()["rejected"]
            if rejected:
                raise RuntimeError(f"events rejected: {rejected[:3]}")


def wait_until_quiet(seeded: Seeded, events: int, cap: float = 600) -> float:
    """Until every event is applied and the mail they made is sent (or stays queued, as
    a message held for later would), so nothing of the seed runs beside the measurement."""
    started = time.monotonic()
    last, still = -1, 0
    while time.monotonic() - started < cap:
        with sqlite3.connect(f"file:{seeded.database}?mode=ro", uri=True) as db:
            (done,) = db.execute("SELECT count(*) FROM events WHERE status != 'pending'").fetchone()
            (waiting,) = db.execute(
                "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')"
            ).fetchone()
        if done >= events:
            still = still + 1 if waiting == last else 0
            if waiting == 0 or still >= 6:
                return time.monotonic() - started
        last = waiting
        time.sleep(0.5)
    raise RuntimeError(f"the seed was not applied within {cap:g} s")


# --- the pages --------------------------------------------------------------------------


async def tracking_pages(seeded: Seeded, orders: int) -> list[str]:
    """Seed `orders` orders with their parcels and checkpoints; the tracking page of each."""
    events = [e for n in range(orders) for e in events_for_order(n)]
    await post_events(seeded, events)
    took = wait_until_quiet(seeded, len(events))
    print(f"  seeded {orders} orders ({len(events)} events) in {took:.0f} s", flush=True)
    from ulak.web.links import PageLinks

    with sqlite3.connect(f"file:{seeded.database}?mode=ro", uri=True) as db:
        (secret,) = db.execute(
            "SELECT link_secret FROM stores WHERE id = ?", (seeded.store_id,)
        ).fetchone()
        rows = db.execute(
            "SELECT customer_id, order_id FROM orders WHERE store_id = ?", (seeded.store_id,)
        ).fetchall()
    stamp = int(time.time())
    paths = []
    for customer_id, order_id in rows:
        links = PageLinks("", seeded.store_id, secret, customer_id, order_id, stamp)
        assert links.tracking is not None
        paths.append(links.tracking)
    return paths


async def widget_pages(seeded: Seeded, orders: int) -> list[str]:
    """Seed `orders` published reviews over `orders // 5` products (every tenth with a
    photo), written straight into the database as the worker's applier would leave them
    (a review comes only from a verified buyer's form, not the events API); the review
    widget of each product, as a shop's product pages embed it."""
    import base64
    import io
    from datetime import timedelta

    from PIL import Image

    from ulak.clock import SystemClock
    from ulak.db import Database
    from ulak.reviews.models import Review, ReviewPhoto
    from ulak.reviews.photos import process

    picture = io.BytesIO()
    Image.new("RGB", (1200, 900), (180, 60, 40)).save(picture, format="JPEG")
    photo = process(picture.getvalue())
    products = max(orders // 5, 1)
    database = Database(f"sqlite+aiosqlite:///{seeded.database}")
    now = SystemClock().now()
    try:
        async with database.transaction() as session:
            for i in range(orders):
                at = now - timedelta(minutes=i)
                review = Review(
                    store_id=seeded.store_id,
                    order_id=f"R{i:06d}",
                    product_id=f"p-{i % products}",
                    product_title="Seramik kupa",
                    rating=5 - i % 3,
                    title=f"Güzel kupa #{i}",
                    body="Çayım uzun süre sıcak kalıyor, paketleme özenliydi. " * 3,
                    display_name="Ayşe Y.",
                    quote_ok=True,
                    status="published",
                    submitted_at=at,
                    published_at=at,
                )
                session.add(review)
                if i % 10 == 0:
                    await session.flush()
                    session.add(
                        ReviewPhoto(
                            review_id=review.id,
                            store_id=seeded.store_id,
                            token=base64.urlsafe_b64encode(os.urandom(18)).decode(),
                            position=0,
                            content_type=photo.content_type,
                            width=photo.width,
                            height=photo.height,
                            data=photo.data,
                        )
                    )
    finally:
        await database.dispose()
    print(f"  seeded {orders} reviews of {products} products", flush=True)
    return [f"/w/{seeded.store_id}/reviews?product_id=p-{k}" for k in range(products)]


PAGES: dict[str, Callable[[Seeded, int], Awaitable[list[str]]]] = {
    "tracking": tracking_pages,
    "widget": widget_pages,
}


# --- the load ---------------------------------------------------------------------------


@dataclass
class Run:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int


async def client(
    url: str, paths: list[str], until: float, latencies: list[float], errors: list[int]
) -> None:
    """One keep-alive connection, one request at a time, a random page each time."""
    host, _, port = url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"Host: {host}:{port}\r\nAccept: text/html\r\n\r\n".encode()
    pick = random.Random(port + str(id(latencies))).choice
    try:
        while time.perf_counter() < until:
            path = pick(paths)
            started = time.perf_counter()
            writer.write(b"GET %s HTTP/1.1\r\n%s" % (path.encode(), head))
            answer = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", answer)
            if length is None:
                raise OSError("a response without Content-Length")
            await reader.readexactly(int(length.group(1)))
            latencies.append(time.perf_counter() - started)
            if answer[9:12] != b"200":
                errors.append(int(answer[9:12]))
    finally:
        writer.close()


async def load(url: str, paths: list[str], clients: int, seconds: float) -> Run:
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(client(url, paths, until, latencies, errors) for _ in range(clients)))
    return Run(len(latencies), time.perf_counter() - started, latencies, len(errors))


def api_cpu(pid: int) -> float:
    """CPU seconds of the API process alone (`ulak serve`'s own; not its worker's): what
    one request costs the process that answers it, whatever else the machine runs."""
    return sum(v for k, v in cpu_by_process(pid).items() if k.startswith("api["))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--page", choices=sorted(PAGES), default="tracking")
    parser.add_argument("--orders", type=int, default=1000, help="orders seeded")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    machine = (
        f"{len(os.sched_getaffinity(0))} cores (nproc), Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, SQLite"
    )
    print(f"machine: {machine}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="ulak-bench-pages-"))
    database = workdir / "pages.db"
    env = {
        "ULAK_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        # No SMTP: the seed's mail goes to the dev inbox.
        "ULAK_SMTP_URL": "",
        "ULAK_LOG_LEVEL": "warning",
    }
    server = start_server(env, workdir / "serve.log")
    try:
        store_id, key = create_store(env)
        seeded = Seeded(server.url, database, store_id, key)
        print(f"seeding the {args.page} page", flush=True)
        paths = asyncio.run(PAGES[args.page](seeded, args.orders))
        print(f"{len(paths)} different pages", flush=True)
        asyncio.run(load(server.url, paths, args.clients, 1.0))  # warm-up
        rows = []
        # The baseline, as busy as the machine is now: `GET /healthz` (the framework, the
        # HTTP server and one `SELECT 1`) under the same clients.
        for run in ["healthz"] + [str(n) for n in range(1, args.runs + 1)]:
            targets = ["/healthz"] if run == "healthz" else paths
            before = api_cpu(server.process.pid)
            result = asyncio.run(load(server.url, targets, args.clients, args.duration))
            cpu_ms = (api_cpu(server.process.pid) - before) / max(result.requests, 1) * 1000
            rate = result.requests / result.seconds
            p50 = percentile(result.latencies, 50) * 1000
            p99 = percentile(result.latencies, 99) * 1000
            rows.append((run, rate, p50, p99, cpu_ms, result.errors))
            print(
                f"  run {run}: {result.requests} requests in {result.seconds:.1f} s ="
                f" {rate:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms,"
                f" API process CPU {cpu_ms:.2f} ms a request, {result.errors} not 200,"
                f" load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    except BaseException:
        print(f"--- ulak serve output ---\n{server.output()}", file=sys.stderr)
        raise
    finally:
        stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"ulak pages bench: {args.page}, {args.clients} clients - {machine}")
    print("| run | requests/s | p50 | p99 | API CPU a request | not 200 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for run, rate, p50, p99, cpu_ms, errors in rows:
        print(f"| {run} | {rate:.0f} | {p50:.1f} ms | {p99:.1f} ms | {cpu_ms:.2f} ms | {errors} |")


if __name__ == "__main__":
    main()
