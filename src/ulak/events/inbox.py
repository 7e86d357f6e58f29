"""Accepted events: written by the API process, taken over by the worker.

An API request may only answer 202 once its events are committed. Requests that arrive
while a commit is under way are written together by the next one (group commit); each
request still gets its own answer, or its own error.

On SQLite each file has one writing process. The API process appends to an inbox file of
its own (`ulak-inbox.db` beside `ulak.db`); the worker, the only writer of the main
database, copies the rows past its cursor into `events` in the same transaction that moves
the cursor (`take_from_inbox`), so a crash anywhere copies each row exactly once. The API
deletes the rows behind the cursor as it goes. An idempotency key is looked up in the
inbox (the unique index) and, for rows already deleted from it, in `events`: a row leaves
the inbox only after its copy committed, so one of the two always has it.

On PostgreSQL, which has no single writer, the API inserts into `events` directly: a copy
would only double the writes, and a cursor over a sequence is unsafe where transactions
commit out of order. Everything after `events` is the same on both.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ulak.clock import Clock
from ulak.db import Database, UTCDateTime, insert_ignoring_conflicts, table_of
from ulak.events.models import LANES, Event, InboxCursor
from ulak.events.schemas import Accepted, EventIn

log = logging.getLogger(__name__)

# The inbox file's one table. It is not part of the main schema (Alembic does not manage
# it): it is created when a process first opens the file, and it only ever holds rows
# that are on their way into `events`.
inbox_metadata = MetaData()
inbox = Table(
    "inbox",
    inbox_metadata,
    Column("seq", Integer, primary_key=True),
    Column("store_id", Integer, nullable=False),
    Column("key", String(200), nullable=False),
    Column("type", String(100), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("source", String(32), nullable=False),
    Column("lane", Integer, nullable=False),
    Column("customer", JSON, nullable=False),
    Column("data", JSON, nullable=False),
    # Set by ulak's own pages, which know the customer already.
    Column("customer_id", Integer),
    UniqueConstraint("store_id", "key"),
    # AUTOINCREMENT: a sequence number is never reused, even after every row was deleted.
    sqlite_autoincrement=True,
)
# Which inbox file this is: a cursor only counts for the file it was taken in, so a new
# inbox file (deleted by hand, restored from a backup) is copied from its start.
inbox_file = Table("inbox_file", inbox_metadata, Column("generation", String(32), nullable=False))

# How often the API deletes the inbox rows the worker has copied.
PRUNE_SECONDS = 1.0


async def create_inbox(connection: AsyncConnection) -> None:
    await connection.run_sync(inbox_metadata.create_all)
    if (await connection.execute(select(inbox_file.c.generation))).first() is None:
        await connection.execute(inbox_file.insert().values(generation=secrets.token_hex(8)))


async def _generation(connection: AsyncConnection) -> str | None:
    """Which inbox file this is; None before the API wrote its first event."""
    try:
        return (await connection.execute(select(inbox_file.c.generation))).scalar()
    except OperationalError:  # no such table yet
        return None


def _copied_up_to(cursor: InboxCursor | None, generation: str) -> int:
    """The last sequence number of this inbox file that the worker copied (0: none)."""
    return cursor.seq if cursor is not None and cursor.generation == generation else 0


def lane_of(event: EventIn) -> int:
    """Events of one customer share a lane so they apply in order.

    The shop's id is preferred, then email, then phone: a customer named by different
    identifiers in different events may land in two lanes, which only matters when several
    workers apply at once (PostgreSQL).
    """
    if event.customer is not None:
        who = (
            event.customer.id
            or (event.customer.email or "").strip().lower()
            or event.customer.phone
        )
    else:
        who = str(event.data.get("product_id", ""))
    return zlib.crc32((who or "").encode()) % LANES


def event_rows(
    store_id: int,
    events: Sequence[EventIn],
    *,
    source: str,
    now: datetime,
    customer_id: int | None = None,
) -> list[dict[str, Any]]:
    """Rows for `events` (or the inbox), one per event, keyed by the shop's id or one of ours."""
    return [
        {
            "store_id": store_id,
            "key": event.id or f"ulak:{secrets.token_hex(12)}",
            "type": event.type,
            "occurred_at": event.occurred_at or now,
            "received_at": now,
            "source": source,
            "lane": zlib.crc32(str(customer_id).encode()) % LANES
            if customer_id is not None
            else lane_of(event),
            "customer": event.customer.model_dump(mode="json", exclude_none=True)
            if event.customer
            else {},
            "data": event.data,
            "customer_id": customer_id,
        }
        for event in events
    ]


async def insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert pending events into the main database; returns the keys that were new.
    A key the store already has stores nothing."""
    if not rows:
        return set()
    table = table_of(Event)
    statement = insert_ignoring_conflicts(session, table).returning(table.c.key)
    result = await session.execute(statement, [{**row, "status": "pending"} for row in rows])
    return {key for (key,) in result.all()}


@dataclass
class Submission:
    """One request's valid events (with their index in the request)."""

    store_id: int
    events: Sequence[tuple[int, EventIn]]
    source: str = "api"
    customer_id: int | None = None
    answer: asyncio.Future[list[Accepted]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Inbox:
    def __init__(self, database: Database, clock: Clock, on_commit: Callable[[], None]) -> None:
        self.database = database
        self.clock = clock
        self.on_commit = on_commit
        self._waiting: list[Submission] = []
        self._writer: asyncio.Task[None] | None = None
        self._pruned_at = 0.0
        self._created = False
        self._main: sqlite3.Connection | None = None

    async def accept(
        self,
        store_id: int,
        events: Sequence[tuple[int, EventIn]],
        *,
        source: str = "api",
        customer_id: int | None = None,
    ) -> list[Accepted]:
        """Store a request's valid events; returns once they are committed."""
        submission = Submission(store_id, events, source, customer_id)
        self._waiting.append(submission)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        # A client that goes away does not cancel the write others share.
        return await asyncio.shield(submission.answer)

    async def _write(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                answers = await self._commit(group)
            except asyncio.CancelledError:
                for submission in group + self._waiting:
                    submission.answer.cancel()
                raise
            except Exception:
                # One request's failure must not fail the others: write them one by one.
                log.warning("a group of %d event requests failed; retrying each", len(group))
                for submission in group:
                    try:
                        answer = (await self._commit([submission]))[0]
                    except Exception as error:
                        submission.answer.set_exception(error)
                    else:
                        submission.answer.set_result(answer)
            else:
                for submission, answer in zip(group, answers, strict=True):
                    submission.answer.set_result(answer)
            self.on_commit()

    async def _commit(self, group: list[Submission]) -> list[list[Accepted]]:
        now = self.clock.now()
        rows = [
            event_rows(
                s.store_id,
                [event for _, event in s.events],
                source=s.source,
                now=now,
                customer_id=s.customer_id,
            )
            for s in group
        ]
        if not self.database.is_sqlite:
            async with self.database.transaction() as session:
                new = [await insert_events(session, r) for r in rows]
                # Wakes the workers listening, on whichever machine, once this commits.
                await session.execute(text("NOTIFY ulak_events"))
        else:
            new = await self._append_to_file(rows)
        return [_answers(s, r, n) for s, r, n in zip(group, rows, new, strict=True)]

    async def _append_to_file(self, groups: list[list[dict[str, Any]]]) -> list[set[str]]:
        async with self.database.inbox_engine.begin() as connection:
            if not self._created:
                await create_inbox(connection)
                self._created = True
            await self._prune(connection)
            new: list[set[str]] = []
            for rows in groups:
                statement = (
                    sqlite_insert(inbox)
                    .on_conflict_do_nothing()
                    .returning(inbox.c.seq, inbox.c.key)
                )
                inserted: dict[int, str] = (
                    {seq: key for seq, key in (await connection.execute(statement, rows)).all()}
                    if rows
                    else {}
                )
                # Keys the inbox no longer holds may have been copied into `events` already.
                # Keys ulak made up are new by construction.
                keys = {key for key in inserted.values() if not key.startswith("ulak:")}
                copied = self._keys_in_events(rows[0]["store_id"], keys) if keys else set()
                if copied:
                    again = [seq for seq, key in inserted.items() if key in copied]
                    await connection.execute(delete(inbox).where(inbox.c.seq.in_(again)))
                new.append({key for key in inserted.values() if key not in copied})
            return new

    def close(self) -> None:
        if self._main is not None:
            self._main.close()
            self._main = None

    def _keys_in_events(self, store_id: int, keys: set[str]) -> set[str]:
        """Which of these keys `events` has: one indexed read of the main database, on a
        plain read-only connection of its own (measured: the ORM session that did this
        took a sixth of the API's CPU under single-event POSTs)."""
        if self._main is None:
            self._main = sqlite3.connect(
                f"file:{self.database.path}?mode=ro", uri=True, check_same_thread=False
            )
        marks = ",".join("?" * len(keys))
        found = self._main.execute(
            f"SELECT key FROM events WHERE store_id = ? AND key IN ({marks})",  # noqa: S608
            (store_id, *keys),
        )
        return {key for (key,) in found}

    async def _prune(self, connection: AsyncConnection) -> None:
        """Delete the rows the worker has copied, at most once every PRUNE_SECONDS."""
        if time.monotonic() - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = time.monotonic()
        generation = await _generation(connection)
        async with self.database.read() as session:
            cursor = await session.get(InboxCursor, 1)
        if generation is not None and (copied := _copied_up_to(cursor, generation)):
            await connection.execute(delete(inbox).where(inbox.c.seq <= copied))


def _answers(submission: Submission, rows: list[dict[str, Any]], new: set[str]) -> list[Accepted]:
    seen: set[str] = set()
    accepted = []
    for (index, _), row in zip(submission.events, rows, strict=True):
        key = row["key"]
        accepted.append(Accepted(index=index, key=key, duplicate=key not in new or key in seen))
        seen.add(key)
    return accepted


async def take_from_inbox(session: AsyncSession, database: Database, *, limit: int) -> int:
    """SQLite: copy up to `limit` inbox rows past the cursor into `events` and move the
    cursor, in the caller's transaction (the worker's, the main database's one writer)."""
    async with database.inbox_reader.connect() as connection:
        generation = await _generation(connection)
        if generation is None:
            return 0
        cursor = await session.get(InboxCursor, 1)
        after = _copied_up_to(cursor, generation)
        rows = (
            (
                await connection.execute(
                    select(inbox).where(inbox.c.seq > after).order_by(inbox.c.seq).limit(limit)
                )
            )
            .mappings()
            .all()
        )
    if not rows:
        return 0
    await insert_events(session, [{k: v for k, v in row.items() if k != "seq"} for row in rows])
    if cursor is None:
        session.add(InboxCursor(id=1, generation=generation, seq=rows[-1]["seq"]))
    else:
        cursor.generation, cursor.seq = generation, rows[-1]["seq"]
    await session.flush()
    return len(rows)


async def inbox_backlog(database: Database, *, store_id: int | None) -> int:
    """SQLite: how many accepted events the worker has not copied yet (of one store)."""
    async with database.read() as session:
        cursor = await session.get(InboxCursor, 1)
    async with database.inbox_reader.connect() as connection:
        generation = await _generation(connection)
        if generation is None:  # no inbox yet: nothing accepted
            return 0
        after = _copied_up_to(cursor, generation)
        query = select(func.count()).select_from(inbox).where(inbox.c.seq > after)
        if store_id is not None:
            query = query.where(inbox.c.store_id == store_id)
        return int((await connection.execute(query)).scalar_one())
