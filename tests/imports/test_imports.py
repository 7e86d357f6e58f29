"""`ulak import`: each format, resumption after an interruption, a second run, bad rows, and
history that starts no journey."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from tests.journeys.test_engine import post
from tests.support import ULAK, StoreKey, dev_inbox, make_store, order_placed, ulak_cli
from ulak.catalog.models import Product
from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.errors import Invalid
from ulak.events.models import Event
from ulak.imports.models import ImportRun
from ulak.imports.readers import Place, Read, read
from ulak.imports.service import Bad, Observer, Summary, run_import
from ulak.journeys.models import Enrollment
from ulak.messages.models import Message
from ulak.orders.models import Order, OrderItem, OrderStatusChange
from ulak.timers.models import Timer
from ulak.worker import Workers

# Shopify's and WooCommerce's exports as they name their columns, a few rows each.
SAMPLES = Path(__file__).parent.parent / "samples" / "imports"
SHOPIFY_ORDERS = (SAMPLES / "shopify_orders.csv").read_text(encoding="utf-8")


@dataclass
class Watched(Observer):
    bad_rows: list[Bad] = field(default_factory=list)

    waits: list[str] = field(default_factory=list)

    def bad(self, bad: Bad) -> None:
        self.bad_rows.append(bad)

    def waiting(self, reason: str) -> None:
        self.waits.append(reason)


async def imported(
    db: Database, clock: FrozenClock, store: StoreKey, kind: str, path: Path, **kw: Any
) -> tuple[Summary, list[tuple[int, str]]]:
    watched = Watched()
    summary = await run_import(
        db, store_id=store.id, kind=kind, path=path, clock=clock, observer=watched, **kw
    )
    return summary, [(b.line, b.reason) for b in watched.bad_rows]


async def orders_of(db: Database, store: StoreKey) -> list[tuple[Any, ...]]:
    """Each order with its customer's email, items and status history, by order id."""
    async with db.read() as session:
        orders = (
            await session.execute(
                select(Order, Customer.email)
                .outerjoin(Customer, Customer.id == Order.customer_id)
                .where(Order.store_id == store.id)
                .order_by(Order.order_id)
            )
        ).all()
        out = []
        for order, email in orders:
            items = (
                await session.execute(
                    select(
                        OrderItem.product_id,
                        OrderItem.sku,
                        OrderItem.title,
                        OrderItem.quantity,
                        OrderItem.price,
                    )
                    .where(OrderItem.order_id == order.id)
                    .order_by(OrderItem.position)
                )
            ).all()
            history = (
                await session.execute(
                    select(OrderStatusChange.status, OrderStatusChange.occurred_at)
                    .where(OrderStatusChange.order_id == order.id)
                    .order_by(OrderStatusChange.occurred_at, OrderStatusChange.id)
                )
            ).all()
            out.append(
                (
                    order.order_id,
                    order.number,
                    email,
                    order.status,
                    order.total,
                    order.subtotal,
                    order.discount,
                    order.currency,
                    order.discount_codes,
                    order.payment_method,
                    order.placed_at,
                    [tuple(i) for i in items],
                    [tuple(h) for h in history],
                )
            )
        return out


async def customers_of(db: Database, store: StoreKey) -> list[tuple[Any, ...]]:
    async with db.read() as session:
        rows = await session.execute(
            select(
                Customer.external_id,
                Customer.email,
                Customer.phone,
                Customer.first_name,
                Customer.last_name,
                Customer.consent,
            )
            .where(Customer.store_id == store.id)
            .order_by(Customer.id)
        )
        return [tuple(r) for r in rows]


async def products_of(db: Database, store: StoreKey) -> list[tuple[Any, ...]]:
    async with db.read() as session:
        rows = await session.execute(
            select(
                Product.product_id,
                Product.variant_id,
                Product.title,
                Product.price,
                Product.inventory,
                Product.image_url,
                Product.tags,
            )
            .where(Product.store_id == store.id)
            .order_by(Product.product_id, Product.variant_id)
        )
        return [tuple(r) for r in rows]


async def nothing_started(db: Database) -> tuple[int, int, int, list[tuple[str, datetime]]]:
    """(events, enrollments, messages, timers' (kind, due)): what an import must not make."""
    async with db.read() as session:
        events = await session.scalar(select(func.count()).select_from(Event))
        enrollments = await session.scalar(select(func.count()).select_from(Enrollment))
        messages = await session.scalar(select(func.count()).select_from(Message))
        timers = [(t.kind, t.due_at) for t in (await session.execute(select(Timer))).scalars()]
    return events or 0, enrollments or 0, messages or 0, timers


def tr(text: str) -> datetime:
    """A Turkish local time (UTC+3) as aware UTC."""
    return datetime.fromisoformat(text + "+03:00").astimezone(UTC)


async def test_shopify_orders_go_in_with_items_and_history_and_a_second_run_adds_nothing(
    db: Database, clock: FrozenClock, store: StoreKey, tmp_path: Path
) -> None:
    path = tmp_path / "orders_export.csv"
    path.write_text(SHOPIFY_ORDERS, encoding="utf-8")

    summary, bad = await imported(db, clock, store, "orders", path)

    assert bad == [
        (4, "placed_at: 'not a date' is no date and time"),
        (6, "total: must not be negative"),
    ]
    assert (summary.records, summary.read, summary.added, summary.skipped) == (5, 2, 2, 2)
    assert (summary.customers_added, summary.timers_set, summary.finished) == (1, 0, True)
    kupa = ("KUPA-1", "KUPA-1", "Seramik kupa", 2, Decimal("249.95"))
    cay = ("CAY-1", "CAY-1", "Bakır çaydanlık", 1, Decimal("249.95"))
    expected = [
        ("5551001", "#1001", "ayse@example.com", "shipped", Decimal("749.85"),
         Decimal("749.85"), Decimal("0.00"), "TRY", [], "Kredi kartı", tr("2019-05-14T10:23:45"),
         [kupa, cay],
         [("placed", tr("2019-05-14T10:23:45")), ("paid", tr("2019-05-14T10:30:00")),
          ("shipped", tr("2019-05-15T09:00:00"))]),
        ("5551003", "#1003", "ayse@example.com", "cancelled", Decimal("50.00"),
         Decimal("50.00"), Decimal("5.00"), "TRY", ["HOSGELDIN"], None,
         tr("2020-01-02T09:00:00"),
         [("KUPA-1", "KUPA-1", "Kupa", 1, Decimal("50.00"))],
         [("placed", tr("2020-01-02T09:00:00")), ("cancelled", tr("2020-01-03T09:00:00"))]),
    ]  # fmt: skip
    assert await orders_of(db, store) == expected
    assert await customers_of(db, store) == [
        (None, "ayse@example.com", "+905321112233", None, None, {})
    ]
    assert await nothing_started(db) == (0, 0, 0, [])

    again, bad_again = await imported(db, clock, store, "orders", path)

    assert bad_again == bad
    assert (again.read, again.added, again.skipped, again.customers_added) == (2, 0, 2, 0)
    assert again.run_id != summary.run_id
    assert await orders_of(db, store) == expected
    assert await customers_of(db, store) == [
        (None, "ayse@example.com", "+905321112233", None, None, {})
    ]
    assert await nothing_started(db) == (0, 0, 0, [])


SHOPIFY_CUSTOMERS = (SAMPLES / "shopify_customers.csv").read_text(encoding="utf-8")


async def test_shopify_customers_keep_known_profiles_and_leave_consent_out(
    db: Database, clock: FrozenClock, store: StoreKey, tmp_path: Path
) -> None:
    path = tmp_path / "customers_export.csv"
    path.write_text(SHOPIFY_CUSTOMERS, encoding="utf-8")
    async with db.transaction() as session:  # a customer the shop's events made already
        session.add(Customer(store_id=store.id, email="ayse@example.com", first_name="Ayşe H.",
                             attributes={}, tags=[], consent={}, created_at=clock.now(),
                             updated_at=clock.now()))  # fmt: skip

    summary, bad = await imported(db, clock, store, "customers", path)

    assert bad == [
        (3, "email: 'mehmet@example' is no email address"),
        (5, "a customer needs at least one of id, email or phone"),
    ]  # fmt: skip
    assert (summary.read, summary.added, summary.skipped) == (2, 1, 2)
    assert await customers_of(db, store) == [
        (None, "ayse@example.com", None, "Ayşe H.", None, {}),
        ("7003", None, "+905321112244", "Zeynep", "Demir", {}),
    ]
    assert await nothing_started(db) == (0, 0, 0, [])


SHOPIFY_PRODUCTS = (SAMPLES / "shopify_products.csv").read_text(encoding="utf-8")

WOO_PRODUCTS = (SAMPLES / "woocommerce_products.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "expected", "bad_rows"),
    [
        (
            SHOPIFY_PRODUCTS,
            [
                ("seramik-kupa", "KUPA-K", "Seramik kupa", Decimal("259.95"), 0, None, []),
                (
                    "seramik-kupa",
                    "KUPA-M",
                    "Seramik kupa",
                    Decimal("249.95"),
                    3,
                    "https://cdn.example/kupa.jpg",
                    ["kupa", "seramik"],
                ),
            ],
            [(5, "price: Input should be a valid decimal")],
        ),
        (
            WOO_PRODUCTS,
            [
                ("10", "", "Seramik kupa", None, None, "https://cdn.example/kupa.jpg", ["kupa"]),
                ("10", "11", "Seramik kupa - Mavi", Decimal("249.95"), 3, None, []),
                ("12", "", "Bakır çaydanlık", Decimal("750"), 5, None, []),
            ],
            [],
        ),
    ],
    ids=["shopify", "woocommerce"],
)
async def test_product_exports(
    db: Database,
    clock: FrozenClock,
    store: StoreKey,
    tmp_path: Path,
    text: str,
    expected: list[tuple[Any, ...]],
    bad_rows: list[tuple[int, str]],
) -> None:
    path = tmp_path / "products.csv"
    path.write_text(text, encoding="utf-8")
    summary, bad = await imported(db, clock, store, "products", path)
    assert bad == bad_rows
    assert await products_of(db, store) == expected
    assert summary.added == len(expected)


@pytest.mark.parametrize("start", [1, 2, 3, 4])
def test_a_resume_inside_a_shopify_product_reads_the_titles_of_a_whole_run(start: int) -> None:
    # Shopify writes a product's title on its first row only; a resume starting after that
    # row must still give its variants the title.
    place = Place(zone=ZoneInfo("Europe/Istanbul"), phone_region="TR", currency="TRY")

    def records(start: int) -> list[Read]:
        raw = io.BufferedReader(io.BytesIO(SHOPIFY_PRODUCTS.encode()))
        _, reads = read(raw, "products", place=place, columns=None, start=start)
        return list(reads)

    whole = records(0)
    assert [r.end for r in whole] == [1, 2, 3, 4]
    assert records(start) == whole[start:]


WOO_ORDERS = (SAMPLES / "woocommerce_orders.csv").read_text(encoding="utf-8")


async def test_woocommerce_orders(
    db: Database, clock: FrozenClock, store: StoreKey, tmp_path: Path
) -> None:
    path = tmp_path / "woo.csv"
    path.write_text(WOO_ORDERS, encoding="utf-8")
    summary, bad = await imported(db, clock, store, "orders", path)
    assert (bad, summary.added) == ([], 1)
    assert await orders_of(db, store) == [
        ("501", "501", "ayse@example.com", "delivered", Decimal("510.00"), Decimal("500.00"),
         Decimal("0.00"), "TRY", [], "cod", tr("2021-03-04T12:00:00"),
         [("10", "KUPA-M", "Seramik kupa", 2, Decimal("250.00"))],
         [("placed", tr("2021-03-04T12:00:00")), ("paid", tr("2021-03-04T12:05:00")),
          ("delivered", tr("2021-03-04T12:05:00"))]),
    ]  # fmt: skip
    assert await customers_of(db, store) == [
        (None, "ayse@example.com", "+905321112233", "Ayşe", "Yılmaz", {})
    ]


async def test_a_column_map_reads_any_csv(
    db: Database, clock: FrozenClock, store: StoreKey, tmp_path: Path
) -> None:
    path = tmp_path / "müşteriler.csv"
    path.write_text("No,E-posta,Ad\nm-1,ali@example.com,Ali\n", encoding="utf-8")
    columns = {"id": "No", "email": "E-posta", "first_name": "Ad"}
    summary, bad = await imported(db, clock, store, "customers", path, columns=columns)
    assert (summary.added, bad) == (1, [])
    assert await customers_of(db, store) == [("m-1", "ali@example.com", None, "Ali", None, {})]


def jsonl_orders(count: int, *, start: int = 0) -> str:
    lines = []
    for n in range(start, start + count):
        lines.append(
            json.dumps(
                {
                    "order_id": f"o-{n}",
                    "number": f"#{n}",
                    "items": [
                        {
                            "product_id": f"p-{n % 7}",
                            "title": "Kupa",
                            "quantity": 1 + n % 3,
                            "price": "10.50",
                        },
                        {"product_id": "p-x", "title": "Çaydanlık", "price": "99.00"},
                    ],
                    "total": "120.00",
                    "currency": "TRY",
                    "customer": {"id": f"c-{n % 40}", "email": f"c{n % 40}@example.com"},
                    "occurred_at": (
                        datetime(2019, 1, 1, tzinfo=UTC) + timedelta(hours=n)
                    ).isoformat(),
                    "statuses": [{"status": "paid", "occurred_at": "2019-06-01T00:00:00Z"}],
                }
            )
        )
    return "\n".join(lines) + "\n"


async def test_json_lines_of_each_kind(
    db: Database, clock: FrozenClock, store: StoreKey, tmp_path: Path
) -> None:
    customers = tmp_path / "customers.jsonl"
    customers.write_text(
        '{"id": "c-1", "email": "ayse@example.com", "first_name": "Ayşe", "birthday": '
        '"1990-05-17"}\n[1]\n{"email": "no"}\n',
        encoding="utf-8",
    )
    products = tmp_path / "products.jsonl"
    products.write_text(
        '{"product_id": "p-1", "title": "Kupa", "price": "10.00", "replenish_days": 30}\n'
        '{"product_id": "p-2", "price": 10.5}\n',
        encoding="utf-8",
    )
    orders = tmp_path / "orders.jsonl"
    orders.write_text(jsonl_orders(1) + '{"order_id": "x", "total": "1"}\n', encoding="utf-8")

    _, bad_customers = await imported(db, clock, store, "customers", customers)
    _, bad_products = await imported(db, clock, store, "products", products)
    _, bad_orders = await imported(db, clock, store, "orders", orders)

    assert bad_customers == [
        (2, "a line is one JSON object"),
        (3, "email: 'no' is no email address"),
    ]
    assert bad_products == [
        (2, 'price: money must be a decimal string like "1249.90", not a JSON number')
    ]
    assert bad_orders == [(2, "occurred_at: an order needs the moment it was placed")]
    assert await customers_of(db, store) == [
        ("c-1", "ayse@example.com", None, "Ayşe", None, {}),
        ("c-0", "c0@example.com", None, None, None, {}),  # the order's
    ]
    assert await products_of(db, store) == [("p-1", "", "Kupa", Decimal("10.00"), None, None, [])]
    assert [(o[0], o[2], o[3], len(o[11])) for o in await orders_of(db, store)] == [
        ("o-0", "c0@example.com", "paid", 2)
    ]


async def test_an_interrupted_import_resumes_where_its_last_commit_stopped(
    db: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    interrupted = await make_store(db, clock, name="Kesilen")
    whole = await make_store(db, clock, name="Bütün")
    path = tmp_path / "orders.jsonl"
    path.write_text(jsonl_orders(500), encoding="utf-8")

    class Killed(Exception):
        pass

    def kill_in_third(batch: int) -> None:
        if batch == 3:
            raise Killed

    # Tiny batches (the size adapts to 1 ms a batch, never under 20 records).
    with pytest.raises(Killed):
        await imported(db, clock, interrupted, "orders", path, batch_seconds=0.001,
                       before_commit=kill_in_third)  # fmt: skip
    async with db.read() as session:
        run = (await session.execute(select(ImportRun))).scalar_one()
        written = await session.scalar(select(func.count()).select_from(Order))
    assert run.finished_at is None
    assert 0 < run.line < 500
    assert written == run.line == run.rows_in == run.rows_added  # the third batch rolled back

    resumed, _ = await imported(db, clock, interrupted, "orders", path)
    assert (resumed.run_id, resumed.resumed_from, resumed.records) == (run.id, run.line, 500)
    assert (resumed.read, resumed.added, resumed.finished) == (500, 500, True)

    await imported(db, clock, whole, "orders", path)
    assert await orders_of(db, interrupted) == await orders_of(db, whole)
    assert [c[:3] for c in await customers_of(db, interrupted)] == [
        c[:3] for c in await customers_of(db, whole)
    ]
    assert len(await orders_of(db, whole)) == 500


async def test_old_orders_start_nothing_and_a_live_order_sees_them(
    client: httpx.AsyncClient,
    db: Database,
    clock: FrozenClock,
    workers: Workers,
    store: StoreKey,
    tmp_path: Path,
) -> None:
    path = tmp_path / "orders.jsonl"
    lines = [
        {"order_id": f"old-{n}", "total": "100.00", "occurred_at": f"2019-0{n}-01T10:00:00Z",
         "customer": {"id": "c-1042", "email": "ayse@example.com"},
         "items": [{"product_id": "p-1", "title": "Kupa", "price": "100.00"}]}
        for n in (1, 2, 3)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")

    summary, _ = await imported(db, clock, store, "orders", path)
    await workers.drain()
    clock.travel(timedelta(days=400))
    await workers.drain()

    assert (summary.added, summary.timers_set) == (3, 0)
    assert await nothing_started(db) == (0, 0, 0, [])
    assert await dev_inbox(db) == []

    await post(client, store, order_placed("1001", occurred_at=clock.now().isoformat()))
    await workers.drain()

    mails = await dev_inbox(db)
    assert [(m["To"], "#1001" in m["Subject"]) for m in mails] == [("ayse@example.com", True)]
    profile = (await client.get("/v1/customers/c-1042", headers=store.auth)).json()
    assert [o["order_id"] for o in profile["orders"]] == ["1001", "old-3", "old-2", "old-1"]
    async with db.read() as session:
        lapse = (await session.execute(select(Timer))).scalar_one()
    assert (lapse.kind, lapse.data["orders"]) == ("customer.lapsed", 4)


async def test_recent_imported_orders_set_a_lapse_timer_ahead(
    db: Database, clock: FrozenClock, store: StoreKey, tmp_path: Path
) -> None:
    path = tmp_path / "orders.jsonl"
    placed = clock.now() - timedelta(days=10)
    path.write_text(
        json.dumps({"order_id": "r-1", "total": "5.00", "occurred_at": placed.isoformat(),
                    "customer": {"email": "ayse@example.com"}}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    summary, _ = await imported(db, clock, store, "orders", path)
    assert summary.timers_set == 1
    assert (await nothing_started(db))[3] == [("customer.lapsed", placed + timedelta(days=90))]


def test_the_command_reports_bad_rows_and_exits_non_zero_only_when_nothing_was_read(
    database_url: str, tmp_path: Path
) -> None:
    env = {"ULAK_DATABASE_URL": database_url}
    created = ulak_cli("stores", "create", "--name", "Dükkan", "--sender-email",
                       "a@dukkan.example", "--json", env=env)  # fmt: skip
    store = json.loads(created.stdout)["id"]
    path = tmp_path / "orders_export.csv"
    path.write_text(SHOPIFY_ORDERS, encoding="utf-8")
    errors = tmp_path / "errors.csv"

    result = ulak_cli("import", "orders", str(path), "--store", str(store), "--json",
                      "--errors", str(errors), env=env)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) | {"seconds": 0, "run_id": 0} == {
        "run_id": 0, "kind": "orders", "path": str(path.resolve()), "resumed_from": 0,
        "records": 5, "read": 2, "added": 2, "skipped": 2, "customers_added": 1,
        "timers_set": 0, "seconds": 0, "finished": True, "already_there": 0,
    }  # fmt: skip
    assert result.stderr.splitlines() == [
        "line 4: placed_at: 'not a date' is no date and time",
        "line 6: total: must not be negative",
    ]
    assert errors.read_text(encoding="utf-8").splitlines() == [
        "4,placed_at: 'not a date' is no date and time",
        "6,total: must not be negative",
    ]

    nothing = tmp_path / "nothing.jsonl"
    nothing.write_text('{"order_id": "x"}\n', encoding="utf-8")
    failed = ulak_cli("import", "orders", str(nothing), "--store", str(store), env=env)
    assert failed.returncode == 1
    assert "line 1: " in failed.stderr


async def test_an_import_killed_with_sigkill_resumes_and_ends_with_the_rows_of_a_whole_run(
    database_url: str, db: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    killed = await make_store(db, clock, name="Kesilen", library=False)
    whole = await make_store(db, clock, name="Bütün", library=False)
    path = tmp_path / "orders.jsonl"
    path.write_text(jsonl_orders(2000), encoding="utf-8")
    env = {**os.environ, "ULAK_DATABASE_URL": database_url}
    command = [str(ULAK), "import", "orders", str(path), "--store", str(killed.id), "--json"]

    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )

    async def line() -> int:
        async with db.read() as session:
            reached = await session.scalar(select(func.max(ImportRun.line)))
        return reached or 0

    try:
        for _ in range(3000):  # up to a minute: the first batch committed
            if await line():
                break
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        await process.wait()
    stopped_at = await line()
    assert 0 < stopped_at < 2000

    resumed = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await resumed.communicate()
    assert resumed.returncode == 0
    summary = json.loads(out)
    assert (summary["resumed_from"], summary["records"]) == (stopped_at, 2000)
    assert (summary["read"], summary["added"], summary["finished"]) == (2000, 2000, True)

    await imported(db, clock, whole, "orders", path)
    assert await orders_of(db, killed) == await orders_of(db, whole)


async def test_on_sqlite_an_import_waits_for_a_writer_holding_the_lock_and_says_so(
    sqlite_template: Path, clock: FrozenClock, tmp_path: Path
) -> None:
    """SQLite only: PostgreSQL has no database-wide write lock to wait for."""
    shutil.copy(sqlite_template, tmp_path / "ulak.db")
    db = Database(f"sqlite:///{tmp_path / 'ulak.db'}", lock_timeout=0.1)
    try:
        store = await make_store(db, clock, library=False)
        path = tmp_path / "orders.jsonl"
        path.write_text(jsonl_orders(30), encoding="utf-8")
        # Another process's write transaction (a busy worker's), held for 0.5 s.
        other = sqlite3.connect(tmp_path / "ulak.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        watched = Watched()
        importing = asyncio.create_task(
            run_import(
                db, store_id=store.id, kind="orders", path=path, clock=clock, observer=watched
            )
        )
        await asyncio.sleep(0.5)
        assert not importing.done()
        other.execute("COMMIT")
        other.close()
        summary = await importing
    finally:
        await db.dispose()
    assert (summary.added, summary.finished) == (30, True)
    # Said at each 0.1 s of waiting, about 5 times in the 0.5 s the other writer held it.
    assert set(watched.waits) == {"another process held the database's write lock for 0.1 s"}
    assert 2 <= len(watched.waits) <= 5


async def test_a_file_that_is_not_utf8_keeps_what_came_before_and_says_how_to_fix_it(
    db: Database, clock: FrozenClock, store: StoreKey, tmp_path: Path
) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(b"id,email\nc-1,a@example.com\n" + "c-2,şule@example.com\n".encode("cp1254"))
    with pytest.raises(Invalid) as raised:
        await imported(db, clock, store, "customers", path)
    assert raised.value.message == (
        f"{path} could not be read past record 1: it is not UTF-8 text (save it as UTF-8, "
        '"CSV UTF-8" in Excel)'
    )
    assert [c[:2] for c in await customers_of(db, store)] == [("c-1", "a@example.com")]


def test_the_command_takes_a_column_map_file_and_prints_a_summary(
    database_url: str, tmp_path: Path
) -> None:
    env = {"ULAK_DATABASE_URL": database_url}
    created = ulak_cli("stores", "create", "--name", "Dükkan", "--sender-email",
                       "a@dukkan.example", "--json", env=env)  # fmt: skip
    store = str(json.loads(created.stdout)["id"])
    path = tmp_path / "crm.csv"
    path.write_text("Müşteri No,E-posta,Ad\nm-1,ali@example.com,Ali\nm-2,,\n", encoding="utf-8")
    lines = tmp_path / "crm-columns.txt"
    lines.write_text("# ulak field = column\nid = Müşteri No\nemail = E-posta\n\nfirst_name = Ad\n")
    as_json = tmp_path / "crm-columns.json"
    as_json.write_text('{"id": "Müşteri No", "email": "Posta"}')
    broken = tmp_path / "broken.txt"
    broken.write_text("id: Müşteri No\n")

    result = ulak_cli("import", "customers", str(path), "--store", store, "--columns",
                      str(lines), env=env)  # fmt: skip
    missing = ulak_cli("import", "customers", str(path), "--store", store, "--columns",
                       str(as_json), env=env)  # fmt: skip
    unreadable = ulak_cli("import", "customers", str(path), "--store", store, "--columns",
                          str(broken), env=env)  # fmt: skip

    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip()
    assert summary.startswith(
        "import #1 of customers: 2 read, 2 added, 0 already there, 0 bad rows skipped; 2 new "
        "customers, 0 lapse timers set, in "
    ), summary
    # (the progress bar, on stderr too, is left as it stopped)
    assert (missing.returncode, missing.stderr.splitlines()[0]) == (
        2,
        "error: the file has no column 'Posta'",
    )
    assert (unreadable.returncode, unreadable.stderr.strip()) == (
        2, f"error: {broken}, line 1: expected `field = Column`"
    )  # fmt: skip
