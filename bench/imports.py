"""`ulak import orders` on SQLite: orders a second, and the projection for 1,000,000.

Generates `--orders` orders of 2 line items each (a customer per 3 orders, spread over
2019-2024) as a Shopify orders export (one row per line item) and as JSON lines in ulak's
own shape. Each run, for each format, in this order:

- **read**: the baseline, the same file read and checked (`imports.readers.read`: CSV or
  JSON parsing, the events' pydantic schemas, email and phone normalisation, dates) with
  nothing written: what the database adds is the ratio to it;
- **import**: `run_import` into a fresh copy of a SQLite file migrated once, with its
  store (the shipped journeys on), as `ulak import` runs it (batches of ~0.2 s, the run's
  cursor in each batch's transaction).

Prints each figure per run, then min / median / max of the runs: orders a second of wall
time, and per second of this process's CPU (SQLite runs in this process, so that is the
import's whole cost; on a shared machine the wall figure is whatever share of a core the
process got).

    PYTHONPATH=src .venv/bin/python bench/imports.py [--orders 50000] [--runs 3]
        [--formats csv,jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ulak.clock import FrozenClock
from ulak.db import Database
from ulak.imports.readers import Place, read
from ulak.imports.service import run_import
from ulak.journeys.service import install_library
from ulak.migrate import upgrade
from ulak.stores.schemas import StoreCreate
from ulak.stores.service import create_store

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
START = datetime(2019, 1, 1, tzinfo=UTC)
HEADER = [
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
    "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code", "Discount Amount",
    "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem sku",
    "Billing Phone", "Cancelled at", "Payment Method", "Id",
]  # fmt: skip


def generate(directory: Path, orders: int) -> dict[str, Path]:
    csv_path = directory / "orders_export.csv"
    jsonl_path = directory / "orders.jsonl"
    step = timedelta(days=6 * 365) / orders
    with (
        csv_path.open("w", encoding="utf-8", newline="") as csv_file,
        jsonl_path.open("w", encoding="utf-8") as jsonl_file,
    ):
        writer = csv.writer(csv_file)
        writer.writerow(HEADER)
        for n in range(orders):
            placed = START + step * n
            shopify_time = placed.astimezone(ZoneInfo("Europe/Istanbul")).strftime(
                "%Y-%m-%d %H:%M:%S %z"
            )
            email = f"musteri{n // 3}@example.com"
            phone = f"+90532{n // 3:07d}"
            a, b = f"SKU-{n % 500}", f"SKU-{(n * 7) % 500}"
            writer.writerow(
                [f"#{n}", email, "paid", shopify_time, "fulfilled", shopify_time, "TRY",
                 "349.85", "0.00", "0.00", "349.85", "", "0.00", shopify_time, "2",
                 f"Ürün {a}", "99.95", a, phone, "", "Kredi kartı", str(1_000_000 + n)]
            )  # fmt: skip
            writer.writerow(
                [f"#{n}", "", "", "", "", "", "", "", "", "", "", "", "", "", "1",
                 f"Ürün {b}", "149.95", b, "", "", "", ""]
            )  # fmt: skip
            jsonl_file.write(
                json.dumps(
                    {
                        "order_id": str(1_000_000 + n),
                        "number": f"#{n}",
                        "total": "349.85",
                        "currency": "TRY",
                        "items": [
                            {
                                "product_id": a,
                                "title": f"Ürün {a}",
                                "quantity": 2,
                                "price": "99.95",
                            },
                            {"product_id": b, "title": f"Ürün {b}", "price": "149.95"},
                        ],
                        "customer": {"email": email, "phone": phone},
                        "occurred_at": placed.isoformat(),
                        "statuses": [{"status": "paid", "occurred_at": placed.isoformat()}],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return {"csv": csv_path, "jsonl": jsonl_path}


def read_only(path: Path) -> tuple[float, float, int]:
    place = Place(ZoneInfo("Europe/Istanbul"), "TR", "TRY")
    began, cpu = time.perf_counter(), time.process_time()
    records = 0
    with path.open("rb") as raw:
        _, reads = read(raw, "orders", place=place, columns=None)
        for record in reads:
            assert record.error is None, record.error
            records += 1
    return time.perf_counter() - began, time.process_time() - cpu, records


async def template(path: Path) -> Path:
    db = Database(f"sqlite:///{path}")
    clock = FrozenClock(NOW)
    async with db.transaction() as session:
        store, _ = await create_store(session, StoreCreate(name="Bench"), clock=clock)
        await install_library(session, store_id=store.id, clock=clock)
    await db.dispose()
    return path


async def import_once(directory: Path, base: Path, path: Path, n: int) -> tuple[float, float, int]:
    copy = directory / f"run{n}.db"
    shutil.copy(base, copy)
    db = Database(f"sqlite:///{copy}")
    try:
        began, cpu = time.perf_counter(), time.process_time()
        summary = await run_import(db, store_id=1, kind="orders", path=path, clock=FrozenClock(NOW))
        took, took_cpu = time.perf_counter() - began, time.process_time() - cpu
    finally:
        await db.dispose()
    return took, took_cpu, summary.added


def spread(values: list[float]) -> str:
    return (
        f"min {min(values):,.0f}  median {statistics.median(values):,.0f}  max {max(values):,.0f}"
    )


async def main(directory: Path, base: Path, args: argparse.Namespace) -> None:
    files = generate(directory, args.orders)
    await template(base)
    for fmt in args.formats.split(","):
        size = files[fmt].stat().st_size
        print(f"{fmt}: {args.orders:,} orders, 2 items each, {size / 2**20:.1f} MiB")
        wall: dict[str, list[float]] = {"read": [], "import": []}
        cpu: dict[str, list[float]] = {"read": [], "import": []}
        for n in range(args.runs):
            read_s, read_cpu, records = read_only(files[fmt])
            assert records == args.orders
            import_s, import_cpu, added = await import_once(directory, base, files[fmt], n)
            for suffix in ("", "-wal", "-shm"):
                (directory / f"run{n}.db{suffix}").unlink(missing_ok=True)
            assert added == args.orders, added
            wall["read"].append(args.orders / read_s)
            wall["import"].append(args.orders / import_s)
            cpu["read"].append(args.orders / read_cpu)
            cpu["import"].append(args.orders / import_cpu)
            print(
                f"  run {n + 1}: orders/s (wall; per CPU second) read "
                f"{args.orders / read_s:,.0f}; {args.orders / read_cpu:,.0f}, import "
                f"{args.orders / import_s:,.0f}; {args.orders / import_cpu:,.0f} "
                f"({import_s / read_s:.2f}x the read's wall time)"
            )
        for what in ("read", "import"):
            print(f"  {what} orders/s wall: {spread(wall[what])}; CPU: {spread(cpu[what])}")
        ratios = [r / i for r, i in zip(wall["read"], wall["import"], strict=True)]
        print(f"  import / read (wall): {min(ratios):.2f}x-{max(ratios):.2f}x")
        print(
            f"  1,000,000 orders projected: wall {1_000_000 / max(wall['import']):,.0f}-"
            f"{1_000_000 / min(wall['import']):,.0f} s; with a core of its own (CPU) "
            f"{1_000_000 / max(cpu['import']):,.0f}-{1_000_000 / min(cpu['import']):,.0f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--formats", default="csv,jsonl")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ulak-bench-imports-") as name:
        base = Path(name) / "template.db"
        upgrade(f"sqlite:///{base}")
        asyncio.run(main(Path(name), base, arguments))
