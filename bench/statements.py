"""What the worker's per-event statements cost built per call against built once, and a
new session object by its constructor against its values put into its state.

CPU microseconds per call on a fresh SQLite database (the statements find nothing, so
this is SQLAlchemy's share): the figures behind the comments on `_DELETE_CARTS`,
`_REPLENISH_DAYS`, `_ORDER_TIMES` and `db.attach_row`.

    .venv/bin/python bench/statements.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, or_, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ulak.catalog.models import Product
from ulak.db import Database, attach, attach_row, table_of
from ulak.journeys.models import Enrollment
from ulak.migrate import upgrade
from ulak.timers.models import Timer


async def per_call(work: Callable[[], Awaitable[Any]], calls: int) -> float:
    for _ in range(100):
        await work()
    start = time.process_time()
    for _ in range(calls):
        await work()
    return (time.process_time() - start) / calls * 1e6


async def measure(url: str, calls: int) -> None:
    database = Database(url)
    products, timers = table_of(Product), table_of(Timer)
    replenish = (
        select(products.c.product_id, products.c.replenish_days)
        .where(
            products.c.store_id == bindparam("s"),
            products.c.product_id.in_(bindparam("ids", expanding=True)),
            products.c.replenish_days.is_not(None),
        )
        .order_by(products.c.variant_id.desc())
    )
    carts = delete(timers).where(
        timers.c.store_id == bindparam("s"),
        timers.c.kind == "cart.abandoned",
        or_(timers.c.customer_id == bindparam("c"), timers.c.subject == bindparam("cart")),
    )
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "store_id": 1, "journey_id": 1, "journey_version_id": 1, "customer_id": 1,
        "reentry_key": "", "trigger_event_id": 1, "event_id": 1, "order_id": "o",
        "cart_id": None, "shipment_id": None, "status": "active", "pc": 0,
        "next_run_at": now, "anchor_at": now, "waiting_for": None, "attempts": 0,
        "failure_reason": None, "exit_reason": None, "started_at": now, "finished_at": None,
    }  # fmt: skip
    async with database.transaction() as session:

        async def replenish_built() -> Any:
            return await session.execute(
                select(Product.product_id, Product.replenish_days)
                .where(
                    Product.store_id == 1,
                    Product.product_id.in_({"a", "b"}),
                    Product.replenish_days.is_not(None),
                )
                .order_by(Product.variant_id.desc())
            )

        async def carts_built() -> Any:
            either = or_(Timer.customer_id == 5, Timer.subject == "x")
            return await session.execute(
                delete(Timer).where(Timer.store_id == 1, Timer.kind == "cart.abandoned", either)
            )

        replenish_params = {"s": 1, "ids": ["a", "b"]}
        carts_params = {"s": 1, "c": 5, "cart": "x"}
        rows = [
            (
                "replenish days",
                await per_call(replenish_built, calls),
                await per_call(lambda: session.execute(replenish, replenish_params), calls),
            ),
            (
                "delete cart timers",
                await per_call(carts_built, calls),
                await per_call(lambda: session.execute(carts, carts_params), calls),
            ),
        ]
        ids = iter(range(1, 10**9))

        async def by_constructor() -> Any:
            return attach(session, Enrollment(id=next(ids), **values))

        async def by_state() -> Any:
            return attach_row(session, Enrollment, next(ids), values)

        rows.append(
            (
                "session object (enrollment)",
                await per_call(by_constructor, calls),
                await per_call(by_state, calls),
            )
        )
        session.expunge_all()
        await session.rollback()
    await database.dispose()
    print(f"{'':30} {'per call µs':>12} {'built once µs':>14} {'ratio':>6}")
    for name, before, after in rows:
        print(f"{name:30} {before:>12.1f} {after:>14.1f} {after / before:>6.2f}")
    print("(session object: constructor + attach, against attach_row)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ulak-statements-"))
    url = f"sqlite+aiosqlite:///{folder / 'ulak.db'}"
    upgrade(url)
    asyncio.run(measure(url, args.calls))


if __name__ == "__main__":
    main()
