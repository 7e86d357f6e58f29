"""Timers across a crash: `ulak serve` killed with -9 while timers fall due fires each one
exactly once after it starts again, and each abandoned cart gets one reminder; anniversaries
that fell due while no worker ran get one email each."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select

from tests.support import (
    Server,
    SmtpSink,
    consent_updated,
    create_store_with_cli,
    ulak_cli,
    wait_until,
)
from ulak.db import Database
from ulak.events.models import Event
from ulak.timers.models import Timer
from ulak.timers.service import birthday_on

CARTS = 100


def counts(url: str) -> tuple[int, int]:
    """(timers waiting, cart.abandoned events derived)."""

    async def read() -> tuple[int, int]:
        database = Database(url)
        try:
            async with database.read() as session:
                timers = await session.scalar(select(func.count()).select_from(Timer))
                derived = await session.scalar(
                    select(func.count()).where(Event.type == "cart.abandoned")
                )
                return int(timers or 0), int(derived or 0)
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_timers_due_while_the_server_was_killed_fire_once_when_it_starts_again(
    server: Server, server_env: dict[str, str], smtp_sink: SmtpSink
) -> None:
    url = server_env["ULAK_DATABASE_URL"]
    store = create_store_with_cli(server_env)
    sid = str(store["id"])
    updated = ulak_cli("stores", "update", sid, "--abandoned-cart-minutes", "5", env=server_env)
    assert updated.returncode == 0, updated.stderr
    server.start()
    # Idle carts that fall due a little later (time for a loaded machine to apply them).
    due = datetime.now(UTC) + timedelta(seconds=20)
    carts = [
        {
            "id": f"cart-{n}",
            "type": "cart.updated",
            "occurred_at": (due - timedelta(minutes=5)).isoformat(),
            "customer": {"id": f"c-{n}", "email": f"buyer-{n}@example.com"},
            "data": {
                "cart_id": f"k{n}",
                "items": [{"title": "Seramik kupa", "quantity": 1, "price": "249.95"}],
                "recovery_url": f"https://dukkan.example/sepet/k{n}",
            },
        }
        for n in range(CARTS)
    ]
    # Each buyer agreed to commercial email at the checkout: the reminders may go.
    carts += [
        consent_updated(customer_id=f"c-{n}", email=f"buyer-{n}@example.com") for n in range(CARTS)
    ]
    auth = {"Authorization": f"Bearer {store['api_key']}"}
    response = httpx.post(f"{server.url}/v1/events", json={"events": carts}, headers=auth)
    assert response.status_code == 202
    wait_until(lambda: counts(url) == (CARTS, 0), 20, "every cart's timer")
    assert datetime.now(UTC) < due, "the timers fell due before the kill: nothing tested"

    server.kill()
    time.sleep(max((due - datetime.now(UTC)).total_seconds(), 0) + 0.5)
    assert counts(url) == (CARTS, 0)
    assert smtp_sink.received == []

    server.start()
    wait_until(lambda: len(smtp_sink.received) >= CARTS, 60, "every cart's reminder")
    time.sleep(1.5)  # a second firing of any timer would show now
    assert counts(url) == (0, CARTS)
    sent = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert sent == Counter({f"buyer-{n}@example.com": 1 for n in range(CARTS)})
    assert {r.message["Subject"] for r in smtp_sink.received} == {
        "Sepetinizde ürünler sizi bekliyor"
    }


CUSTOMERS = 60


def date_counts(url: str) -> tuple[int, int]:
    """(customer.date timers waiting, customer.date events derived)."""

    async def read() -> tuple[int, int]:
        database = Database(url)
        try:
            async with database.read() as session:
                timers = await session.scalar(
                    select(func.count()).where(Timer.kind == "customer.date")
                )
                derived = await session.scalar(
                    select(func.count()).where(Event.type == "customer.date")
                )
                return int(timers or 0), int(derived or 0)
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_anniversaries_that_fell_due_while_no_worker_ran_fire_once(
    server: Server, server_env: dict[str, str], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    url = server_env["ULAK_DATABASE_URL"]
    store = create_store_with_cli(server_env)
    sid = str(store["id"])
    server.start()
    # Each customer joined a year ago today (in Istanbul, the store's time zone).
    today = datetime.now(ZoneInfo("Europe/Istanbul")).date()
    joined = birthday_on(today, today.year - 1).isoformat()
    customers = [
        {
            "id": f"p-{n}",
            "type": "customer.updated",
            "customer": {
                "id": f"c-{n}",
                "email": f"member-{n}@example.com",
                "attributes": {"member_since": joined},
            },
        }
        for n in range(CUSTOMERS)
    ]
    customers += [
        consent_updated(customer_id=f"c-{n}", email=f"member-{n}@example.com")
        for n in range(CUSTOMERS)
    ]
    auth = {"Authorization": f"Bearer {store['api_key']}"}
    response = httpx.post(f"{server.url}/v1/events", json={"events": customers}, headers=auth)
    assert response.status_code == 202
    wait_until(lambda: counts(url)[0] == 0 and _applied(url) == 2 * CUSTOMERS, 20, "the profiles")
    server.kill()
    # The anniversary journey is applied while no worker runs: today's timers, due at the
    # start of today, are set then and wait.
    journey = tmp_path / "anniversary.yaml"
    journey.write_text(
        "key: anniversary\nname: Yıldönümü\nlegal_class: commercial\n"
        "trigger:\n  date: {attribute: member_since, yearly: true}\nreentry: always\n"
        "steps:\n  - send: email\n    template: birthday\n",
        encoding="utf-8",
    )
    applied = ulak_cli("journeys", "apply", str(journey), "--store", sid, env=server_env)
    assert applied.returncode == 0, applied.stderr
    assert date_counts(url) == (CUSTOMERS, 0)

    server.start()
    wait_until(lambda: len(smtp_sink.received) >= CUSTOMERS, 60, "every anniversary's email")
    time.sleep(1.5)  # a second firing of any timer would show now
    # Each fired once, and waits for next year's.
    assert date_counts(url) == (CUSTOMERS, CUSTOMERS)
    sent = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert sent == Counter({f"member-{n}@example.com": 1 for n in range(CUSTOMERS)})


def _applied(url: str) -> int:
    async def read() -> int:
        database = Database(url)
        try:
            async with database.read() as session:
                found = await session.scalar(
                    select(func.count()).where(
                        Event.type.in_(("customer.updated", "consent.updated")),
                        Event.status == "applied",
                    )
                )
                return int(found or 0)
        finally:
            await database.dispose()

    return asyncio.run(read())
