"""The review widget and the public reviews API under load: `ulak serve --no-workers` on
SQLite (as a laptop runs it), one store with `--reviews` published reviews of a product
(10 with a photo), and `--connections` clients asking for the widget's iframe page, then
the JSON, for `--seconds` each (and /healthz first, the floor of this machine and these
clients at the moment). Prints requests/s and the p50/p99 latency of each.

The issue's target (with the tracking page, `bench/pages.py`): ≥ 500 requests/s, p99 <
50 ms on this 2-core machine.

    PYTHONPATH=<worktree>/src .venv/bin/python bench/review_widget.py [--reviews 200]
        [--connections 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from datetime import timedelta
from pathlib import Path

import httpx

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def populate(url: str, reviews: int) -> int:
    """A store and its reviews, written as an admin's tools write (in this process)."""
    import base64

    from ulak.clock import SystemClock
    from ulak.db import Database
    from ulak.reviews.models import Review, ReviewPhoto
    from ulak.reviews.photos import process
    from ulak.stores.schemas import StoreCreate
    from ulak.stores.service import create_store

    database = Database(url)
    clock = SystemClock()
    photo = process(_jpeg())
    try:
        async with database.transaction() as session:
            store, _ = await create_store(
                session,
                StoreCreate(name="Ayşe'nin Dükkanı", sender_email="merhaba@dukkan.example"),
                clock=clock,
            )
            now = clock.now()
            for i in range(reviews):
                at = now - timedelta(minutes=i)
                review = Review(
                    store_id=store.id,
                    order_id=f"o-{i}",
                    product_id="p-1",
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
                await session.flush()
                if i < 10:
                    session.add(
                        ReviewPhoto(
                            review_id=review.id,
                            store_id=store.id,
                            token=base64.urlsafe_b64encode(os.urandom(18)).decode(),
                            position=0,
                            content_type=photo.content_type,
                            width=photo.width,
                            height=photo.height,
                            data=photo.data,
                        )
                    )
            return store.id
    finally:
        await database.dispose()


def _jpeg() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (1200, 900), (180, 60, 40)).save(out, format="JPEG")
    return out.getvalue()


async def load(url: str, connections: int, seconds: float) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of `connections` clients asking for `url`."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        for _ in range(20):  # warm up
            (await client.get(url)).raise_for_status()
        end = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < end:
                start = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - began
    cuts = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviews", type=int, default=200)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite+aiosqlite:///{Path(folder) / 'ulak.db'}"
        port = free_port()
        env = {
            **os.environ,
            "ULAK_DATABASE_URL": database_url,
            "ULAK_HOST": HOST,
            "ULAK_PORT": str(port),
            "ULAK_LOG_LEVEL": "warning",
            "ULAK_SMTP_URL": "",
        }
        subprocess.run([sys.executable, "-m", "ulak", "migrate"], env=env, check=True)
        store_id = asyncio.run(populate(database_url, args.reviews))
        server = subprocess.Popen([sys.executable, "-m", "ulak", "serve", "--no-workers"], env=env)
        try:
            base = f"http://{HOST}:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with suppress(httpx.HTTPError):
                    httpx.get(f"{base}/healthz", timeout=1).raise_for_status()
                    break
                time.sleep(0.1)
            for name, path in (
                # The floor on this machine now: the app's cheapest route, same clients.
                ("healthz", "/healthz"),
                ("widget", f"/w/{store_id}/reviews?product_id=p-1"),
                ("json", f"/v1/stores/{store_id}/reviews?product_id=p-1"),
            ):
                rate, p50, p99 = asyncio.run(load(base + path, args.connections, args.seconds))
                print(f"{name}: {rate:.0f} requests/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
