"""Ten crashes under a mixed load: kill -9 of the whole server (API, workers, helpers and
sender processes) at random moments while a shop's client keeps sending good and bad
events, retrying what got no answer, as a real client does."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from tests.messages.test_rendering import OVERRIDE, SPINS
from tests.support import Server, SmtpSink, create_store_with_cli, order_placed, wait_until
from tests.test_end_to_end import CRASH_WINDOW_SECONDS
from ulak.db import Database
from ulak.journeys.models import Enrollment
from ulak.messages.models import TemplateOverride

ROUNDS = 10
GOOD_PER_BATCH = 8


def test_ten_crashes_under_good_and_bad_events_deliver_each_good_message_once(
    server: Server, server_env: dict[str, str], smtp_sink: SmtpSink
) -> None:
    """Good orders reach the customer once each (a second copy only for a message the
    SMTP server accepted in the last milliseconds before a crash, counted); bad events are
    refused with their reason or fail alone: an invalid event, a reused id with another
    body, and a store whose template spins (its shop is alerted once)."""
    if server_env["ULAK_DATABASE_URL"].startswith("postgresql"):
        server.env["ULAK_WORKER_PROCESSES"] = "2"
    shop = create_store_with_cli(server_env)
    broken = create_store_with_cli(server_env, name="Bozuk Dükkan")
    asyncio.run(_install(server_env["ULAK_DATABASE_URL"], broken["id"], SPINS))
    server.start()

    good: list[str] = []
    requests: list[tuple[dict[str, Any], str, int]] = []  # body, key, expected status
    for b in range(ROUNDS * 4):
        orders = [f"S{b:02d}{n}" for n in range(GOOD_PER_BATCH)]
        good += orders
        events: list[dict[str, Any]] = [
            order_placed(o, customer_id=f"c-{o}", email=f"buyer-{o}@example.com") for o in orders
        ]
        events.insert(3, {"type": "Bad Type"})  # refused in the batch, the rest accepted
        # Accepted with a warning; this SMTP server offers SMTPUTF8, so it is delivered.
        events.append(
            order_placed(f"U{b:02d}", customer_id=f"u-{b}", email=f"çağrı{b}@example.com")
        )
        good.append(f"U{b:02d}")
        requests.append(({"events": events}, shop["api_key"], 202))
        requests.append((order_placed(f"B{b:02d}", customer_id=f"b-{b}"), broken["api_key"], 202))
        if b % 5 == 4:  # a retry of an earlier batch, and an id reused for another order
            requests.append(({"events": events}, shop["api_key"], 202))
            requests.append((order_placed(orders[0], total="1.00"), shop["api_key"], 409))

    problems: list[str] = []

    def client_that_retries() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for body, key, expected in requests:
                while True:
                    try:
                        response = client.post(
                            "/v1/events", json=body, headers={"Authorization": f"Bearer {key}"}
                        )
                    except httpx.TransportError:  # the server is down: try again
                        time.sleep(0.05)
                        continue
                    if response.status_code == 503:
                        time.sleep(0.05)
                        continue
                    if response.status_code != expected:
                        problems.append(f"{response.status_code} {response.text[:200]}")
                    break
                time.sleep(0.02)  # a steady load, not one burst

    poster = threading.Thread(target=client_that_retries)
    poster.start()
    rng = random.Random(20261130)
    crashes: list[float] = []
    for _ in range(ROUNDS):
        time.sleep(rng.uniform(0.3, 1.5))
        crashes.append(time.monotonic())
        server.kill()
        assert len(smtp_sink.received) < len(good), "the load ended before this crash"
        server.start()
    poster.join(timeout=120)
    assert not poster.is_alive()
    assert problems == []

    def arrivals() -> Counter[str]:
        return Counter(r.message["Message-ID"] for r in smtp_sink.received)

    wait_until(lambda: len(arrivals()) > len(good), 120, "every good order's confirmation")
    time.sleep(1)  # any stray resend would arrive now
    # The broken store heard of its template once, however many workers and crashes.
    alerts = [r for r in smtp_sink.received if r.message["Subject"].startswith("ulak:")]
    assert [(a.rcpt_tos, a.message["Subject"]) for a in alerts] == [
        (
            [broken["contact_email"]],
            "ulak: order_confirmation şablonunuz e-postaları durdurdu",
        )
    ]
    by_order: dict[str, set[str]] = {}
    for r in smtp_sink.received:
        if r in alerts:
            continue
        number = r.message["Subject"].split("#")[1].split()[0].rstrip(")")
        by_order.setdefault(number, set()).add(r.message["Message-ID"])
    # Exactly the good orders, one message each, nothing of the broken store.
    assert sorted(by_order) == sorted(good)
    assert all(len(ids) == 1 for ids in by_order.values())

    first: dict[str, float] = {}
    for r in smtp_sink.received:
        first.setdefault(r.message["Message-ID"], r.at)
    twice = [first[m] for m, n in arrivals().items() if n > 1]
    before = [min((c - at for c in crashes if c >= at - 0.05), default=99.0) for at in twice]
    within = sorted(round(b * 1000, 1) for b in before)
    print(f"{len(twice)} duplicate(s) over {ROUNDS} crashes, {within} ms before one")
    assert all(b <= CRASH_WINDOW_SECONDS for b in before)

    spinning = asyncio.run(_failed_on_limits(server_env["ULAK_DATABASE_URL"], broken["id"]))
    assert spinning == ROUNDS * 4  # every order of the broken store failed on its template


async def _install(url: str, store_id: int, body: str) -> None:
    """A store's template as it could be saved before `ulak templates set` checked it."""
    database = Database(url)
    try:
        async with database.transaction() as session:
            session.add(
                TemplateOverride(
                    store_id=store_id,
                    name="order_confirmation",
                    locale="tr",
                    source=OVERRIDE.replace("<p>Toplam", body + "<p>Toplam"),
                    updated_at=_now(),
                )
            )
    finally:
        await database.dispose()


async def _failed_on_limits(url: str, store_id: int) -> int:
    """How many of the store's enrollments failed on a rendering bound."""
    database = Database(url)
    try:
        async with database.read() as session:
            reasons = await session.scalars(
                select(Enrollment.failure_reason).where(Enrollment.store_id == store_id)
            )
            return sum(
                1
                for r in reasons
                if r and ("took more than 2 s of CPU" in r or "not rendered again" in r)
            )
    finally:
        await database.dispose()


def _now() -> datetime:
    return datetime.now(UTC)
