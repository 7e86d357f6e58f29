"""`ulak import`: a file's records written in short batches, each batch and the run's cursor
in one transaction, so a run cut short goes on where its last commit stopped and a second
run of the same file adds nothing.

What an import writes is history: customers, products, orders with their items and status
history. It writes no event, so no journey starts and nobody is mailed about an old order;
the only timer it moves is a customer's lapse date, and only to a moment still ahead
(`timers.bulk.orders_imported`).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.bulk import ImportedProduct, import_products
from ulak.clock import Clock
from ulak.customers.bulk import Profile, import_profiles
from ulak.db import Database
from ulak.errors import Invalid
from ulak.imports.models import ImportRun
from ulak.imports.readers import Place, Read, read
from ulak.orders.bulk import ImportedOrder, import_orders
from ulak.sqlite import DatabaseLocked
from ulak.stores.models import Store
from ulak.stores.service import get_store
from ulak.timers.bulk import orders_imported

T = TypeVar("T")
KINDS = ("customers", "products", "orders")
# How much of the file names it, beside its size: a file grown or rewritten in place is
# another file (its head or size differs), and hashing 1 MiB takes ~2 ms.
HEAD_BYTES = 1 << 20
# A batch's transaction holds SQLite's one write lock: short enough that a running worker
# waits at most about this long between its own transactions.
BATCH_SECONDS = 0.2
FIRST_BATCH = 200
# On SQLite, the pause after each commit: the worker's BEGIN retries every 5 ms
# (`sqlite.BUSY_RETRY_SECONDS`), so a waiting worker gets its turn between two batches.
YIELD_SECONDS = 0.01


@dataclass(frozen=True)
class FileId:
    path: str
    size: int
    sha256: str


def identify(path: Path) -> FileId:
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
    return FileId(str(path.resolve()), path.stat().st_size, hashlib.sha256(head).hexdigest())


@dataclass
class Summary:
    run_id: int
    kind: str
    path: str
    # The record the run started from (0, or where an interrupted run stopped).
    resumed_from: int
    # The records reached (every one, at the end of a finished run).
    records: int
    # Over every run of the file that this one continues:
    read: int
    added: int
    skipped: int
    customers_added: int
    timers_set: int
    seconds: float
    finished: bool

    @property
    def already_there(self) -> int:
        return self.read - self.added


@dataclass(frozen=True)
class Bad:
    line: int
    reason: str


class Observer:
    """What a run tells whoever watches it (the CLI's progress bar and error list)."""

    def bad(self, bad: Bad) -> None:
        pass

    def progress(self, consumed_bytes: int, records: int) -> None:
        """The bytes of the file read so far, and the records this run wrote or skipped."""

    def waiting(self, reason: str) -> None:
        pass


async def run_import(
    database: Database,
    *,
    store_id: int,
    kind: str,
    path: Path,
    clock: Clock,
    columns: Mapping[str, str] | None = None,
    observer: Observer | None = None,
    batch_seconds: float = BATCH_SECONDS,
    before_commit: Callable[[int], None] | None = None,
) -> Summary:
    """Import `path` into the store; a run of the same file that was cut short is continued.
    `before_commit(n)` is called inside the n-th batch's transaction (tests interrupt there)."""
    if kind not in KINDS:
        raise Invalid(f"an import is of {', '.join(KINDS)}, not {kind!r}")
    watch = observer or Observer()
    try:
        file = identify(path)
    except OSError as error:
        raise Invalid(f"cannot read {path}: {error.strerror}") from error
    started = time.monotonic()

    async def begin(session: AsyncSession) -> tuple[Store, ImportRun]:
        store = await get_store(session, store_id)
        return store, await _run_for(session, store_id=store_id, kind=kind, file=file, clock=clock)

    store, found = await _patiently(database, begin, watch)
    run = Cursor(found.id, kind, found.line, found.rows_in, found.rows_added,
                 found.rows_skipped, finished=False)  # fmt: skip
    place = Place(ZoneInfo(store.timezone), store.phone_region, store.currency)
    resumed_from = run.line
    customers_added = timers_set = 0
    batch: list[Read] = []
    size = FIRST_BATCH
    batches = 0

    async def write(final: bool) -> None:
        nonlocal run, customers_added, timers_set, size, batches
        batches += 1
        began = time.monotonic()

        async def work(session: AsyncSession) -> tuple[Cursor, int, int]:
            written = await _write(session, store, run, batch, final, clock)
            if before_commit is not None:
                before_commit(batches)
            return written

        after, customers, timers = await _patiently(database, work, watch)
        run = after
        customers_added += customers
        timers_set += timers
        took = max(time.monotonic() - began, 1e-3)
        # Toward `batch_seconds` a batch, by halves: one slow batch (a checkpoint, the
        # worker's turn) must not shrink the next to nothing.
        size = max(20, min(20_000, int((size + size * batch_seconds / took) / 2)))
        batch.clear()
        if database.is_sqlite:
            await asyncio.sleep(YIELD_SECONDS)

    with path.open("rb") as raw:
        counted, records = read(raw, kind, place=place, columns=columns, start=run.line)
        try:
            for record in records:
                if record.error is not None:
                    watch.bad(Bad(record.line, record.error))
                batch.append(record)
                if len(batch) >= size:
                    await write(final=False)
                    watch.progress(counted.consumed, run.line - resumed_from)
        except (UnicodeDecodeError, csv.Error) as error:
            # What was read before goes in; the run stays unfinished, to resume once fixed.
            await write(final=False)
            raise Invalid(
                f"{path} could not be read past record {run.line:,}: "
                + (
                    'it is not UTF-8 text (save it as UTF-8, "CSV UTF-8" in Excel)'
                    if isinstance(error, UnicodeDecodeError)
                    else f"not CSV ({error})"
                )
            ) from error
        await write(final=True)
        watch.progress(counted.consumed, run.line - resumed_from)
    return Summary(
        run_id=run.id,
        kind=kind,
        path=file.path,
        resumed_from=resumed_from,
        records=run.line,
        read=run.rows_in,
        added=run.rows_added,
        skipped=run.rows_skipped,
        customers_added=customers_added,
        timers_set=timers_set,
        seconds=time.monotonic() - started,
        finished=run.finished,
    )


async def _patiently(
    database: Database, work: Callable[[AsyncSession], Awaitable[T]], watch: Observer
) -> T:
    """`work` in a write transaction; while another process (a busy worker) holds SQLite's
    write lock past the database's `lock_timeout`, say so and wait on."""
    while True:
        try:
            async with database.transaction() as session:
                return await work(session)
        except OperationalError as error:
            if not isinstance(error.orig, DatabaseLocked):
                raise
            watch.waiting(str(error.orig))


async def _run_for(
    session: AsyncSession, *, store_id: int, kind: str, file: FileId, clock: Clock
) -> ImportRun:
    """The unfinished run of this file to continue, or a new one (ix_imports_file)."""
    unfinished = await session.scalar(
        select(ImportRun)
        .where(
            ImportRun.store_id == store_id,
            ImportRun.kind == kind,
            ImportRun.file_sha256 == file.sha256,
            ImportRun.file_size == file.size,
            ImportRun.finished_at.is_(None),
        )
        .order_by(ImportRun.id.desc())
        .limit(1)
    )
    if unfinished is not None:
        return unfinished
    now = clock.now()
    run = ImportRun(
        store_id=store_id,
        kind=kind,
        path=file.path,
        file_size=file.size,
        file_sha256=file.sha256,
        line=0,
        rows_in=0,
        rows_added=0,
        rows_skipped=0,
        started_at=now,
        updated_at=now,
    )
    session.add(run)
    await session.flush()
    return run


@dataclass(frozen=True)
class Cursor:
    """Where a run is, as last committed."""

    id: int
    kind: str
    line: int
    rows_in: int
    rows_added: int
    rows_skipped: int
    finished: bool


async def _write(
    session: AsyncSession,
    store: Store,
    run: Cursor,
    batch: list[Read],
    final: bool,
    clock: Clock,
) -> tuple[Cursor, int, int]:
    """One batch and the run's cursor: (the cursor after it, customers added, timers set)."""
    now = clock.now()
    good = [r.record for r in batch if r.record is not None]
    customers = timers = added = 0
    if run.kind == "customers":
        profiles = [r for r in good if isinstance(r, Profile)]
        resolved = await import_profiles(session, store_id=store.id, profiles=profiles, now=now)
        added = customers = resolved.created
    elif run.kind == "products":
        products = [r for r in good if isinstance(r, ImportedProduct)]
        added = await import_products(session, store_id=store.id, products=products, now=now)
    else:
        orders = [r for r in good if isinstance(r, ImportedOrder)]
        named = [(i, o.customer) for i, o in enumerate(orders) if o.customer is not None]
        resolved = await import_profiles(
            session, store_id=store.id, profiles=[p for _, p in named], now=now
        )
        customer_ids: list[int | None] = [None] * len(orders)
        for (index, _), id_ in zip(named, resolved.ids, strict=True):
            customer_ids[index] = id_
        customers = resolved.created
        written = await import_orders(
            session, store_id=store.id, orders=orders, customer_ids=customer_ids, now=now
        )
        added = len(written)
        pks = {o.order_id: c for o, c in zip(orders, customer_ids, strict=True)}
        touched = {c for o in written if (c := pks[o.order_id]) is not None}
        timers = await orders_imported(session, store=store, customer_ids=touched, now=now)
    after = Cursor(
        id=run.id,
        kind=run.kind,
        line=batch[-1].end if batch else run.line,
        rows_in=run.rows_in + len(good),
        rows_added=run.rows_added + added,
        rows_skipped=run.rows_skipped + sum(1 for r in batch if r.error is not None),
        finished=final,
    )
    await session.execute(
        update(ImportRun)
        .where(ImportRun.id == run.id)
        .values(
            line=after.line,
            rows_in=after.rows_in,
            rows_added=after.rows_added,
            rows_skipped=after.rows_skipped,
            updated_at=now,
            finished_at=now if final else None,
        )
    )
    return after, customers, timers
