"""What the sending policy's checks cost the sender's claim, per message.

A store with `--customers` customers (email consent granted, some with a commercial email
let go in the last week, every fifth with a time zone of their own) and one queued email
each, half commercial, half informational. Each round claims them all (`claim_due` in
batches of `--batch`, as the sender does), once with the policy (consent, relay address,
caps over `ix_messages_released` with priority across the batch's edge, quiet hours) and
once with it replaced by "send everything" (the baseline: the claim without the policy),
alternately, on the same database; between runs every message is put back in the queue.
Prints the wall time and this process's CPU per message of each: the policy's cost is the
difference, and the target is < 0.5 ms. (PostgreSQL's own CPU is not in the CPU figure.)

    PYTHONPATH=src .venv/bin/python bench/policy.py [--customers 2000] [--batch 100]
        [--rounds 3] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import false, text, update

from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.messages import policing
from ulak.messages.models import Message
from ulak.messages.service import claim_due
from ulak.migrate import upgrade
from ulak.policy.service import SEND
from ulak.stores.schemas import StoreCreate
from ulak.stores.service import create_store

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
GRANTED = {"email": {"status": "granted", "source": "checkout", "at": "2026-01-01T00:00:00+00:00"}}


async def fill(db: Database, customers: int) -> None:
    async with db.transaction() as session:
        store, _ = await create_store(
            session,
            StoreCreate(name="Bench", sending_hours_email="08:00-22:00"),
            clock=FrozenClock(NOW),
        )
        people = [
            Customer(
                store_id=store.id,
                external_id=f"c-{i}",
                email=f"c{i}@example.com",
                timezone="Asia/Tokyo" if i % 5 == 0 else None,
                attributes={},
                consent=GRANTED,
                created_at=NOW,
                updated_at=NOW,
            )
            for i in range(customers)
        ]
        session.add_all(people)
        await session.flush()
        for i, person in enumerate(people):
            for released in ([NOW - timedelta(days=3)] if i % 3 == 0 else []) + [None]:
                session.add(
                    Message(
                        store_id=store.id,
                        customer_id=person.id,
                        channel="email",
                        template="order_delivered",
                        locale="tr",
                        legal_class="commercial" if i % 2 == 0 or released else "informational",
                        to_address=person.email or "",
                        subject="Bench",
                        html="<p>bench</p>",
                        text="bench",
                        message_id_header=f"<{uuid.uuid4().hex}@bench>",
                        status="sent" if released else "queued",
                        send_after=NOW - timedelta(minutes=1),
                        released_at=released,
                        attempts=0,
                        created_at=NOW,
                    )
                )


async def reset(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Message)
            .where(Message.status != "sent")
            .values(
                status="queued",
                send_after=NOW - timedelta(minutes=1),
                released_at=None,
                held_reason=None,
                held_until=None,
                lease_until=None,
                claimed_by=None,
                attempts=0,
            )
        )


async def everything_goes(
    session: Any, rows: Sequence[Any], *, ranks: Any, now: datetime
) -> tuple[dict[int, Any], list[Any]]:
    return {m.id: SEND for m, _, _ in rows}, []


async def claim_all(db: Database, batch: int) -> tuple[float, float, int]:
    """Seconds (wall, and this process's CPU) to take every due message off the queue in
    claims of `batch` (sent, or held back by the policy), and how many were claimed for
    delivery."""
    started, cpu, claimed = time.perf_counter(), time.process_time(), 0
    due = text("SELECT count(*) FROM messages WHERE status = 'queued' AND send_after <= :now")
    while True:
        async with db.transaction() as session:
            claimed += len(
                await claim_due(
                    session,
                    now=NOW,
                    limit=batch,
                    lease=timedelta(minutes=5),
                    base_url="http://bench",
                    max_attempts=5,
                    claimer=1,
                    taken_back=false(),
                )
            )
            left = await session.scalar(due, {"now": NOW})
        if not left:
            return time.perf_counter() - started, time.process_time() - cpu, claimed


async def run(url: str, customers: int, batch: int, rounds: int) -> None:
    db = Database(url)
    try:
        await fill(db, customers)
        real = policing.decisions
        queued = customers  # one queued message each
        for round_ in range(rounds):
            for name, decide in (("baseline", everything_goes), ("policy", real)):
                await reset(db)
                policing.decisions = decide  # type: ignore[assignment]
                try:
                    seconds, cpu, sent = await claim_all(db, batch)
                finally:
                    policing.decisions = real  # type: ignore[assignment]
                print(
                    f"round {round_ + 1} {name:8} {seconds * 1000 / queued:.3f} ms/message,"
                    f" CPU {cpu * 1000 / queued:.3f} ms ({sent} claimed of {queued})"
                )
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL server's URL: a database of its own")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        print("SQLite")
        upgrade(url)
        asyncio.run(run(url, args.customers, args.batch, args.rounds))
    if args.postgres:
        import psycopg

        name = f"ulak_bench_{uuid.uuid4().hex[:8]}"
        admin = args.postgres.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        try:
            print("PostgreSQL")
            url = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            url += f"/{name}"
            upgrade(url)
            asyncio.run(
                run(
                    url,
                    args.customers,
                    args.batch,
                    args.rounds,
                )
            )
        finally:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
