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
import json
import logging
import secrets
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Insert,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ulak.clock import Clock
from ulak.db import Database, JSONType, UTCDateTime, insert_ignoring_conflicts, table_of
from ulak.events.models import LANES, Event, InboxCursor
from ulak.events.schemas import Accepted, EventIn, Problem

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
# After an erasure request, how often the API looks whether the worker has erased, and
# for how long, before it empties the inbox file of the customer's events.
SCRUB_POLL_SECONDS = 0.5
SCRUB_WAIT_SECONDS = 3600.0


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


def lane_of_customer(customer_id: int) -> int:
    """The lane of an event ulak writes about a customer it knows by row id (its pages, the
    sender's bounces): all of them share it, so they apply in the order they were written.
    Plain arithmetic, so SQL can compute it too (`inserting_events_about`)."""
    return customer_id % LANES


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
            "lane": lane_of_customer(customer_id) if customer_id is not None else lane_of(event),
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


def inserting_events_about(about: Select[Any], *, postgres: bool) -> Insert:
    """INSERT ... SELECT of one pending event per row of `about` (its store and customer
    ids, in that order), the rest bound by name (key, type, at, source, lane, customer,
    data), ignoring a key the store has: for a writer that knows an event's subject only
    by another feature's row (the sender knows a bounced message's id, not its store).
    The lane is the customer's (`lane_of_customer`), so the event applies in order with
    ulak's other events about them; the bound `lane` serves a row without a customer.
    Compiled, it also runs on a plain connection (`messages.sending`)."""
    from sqlalchemy.dialects import postgresql, sqlite

    # `about` keeps its WHERE, which SQLite needs before ON CONFLICT in an INSERT ... SELECT
    # (without one it reads ON as a join's).
    values = about.add_columns(
        bindparam("key", type_=String()),
        bindparam("type", type_=String()),
        bindparam("at", type_=UTCDateTime()),
        bindparam("at", type_=UTCDateTime()),
        bindparam("source", type_=String()),
        func.coalesce(about.selected_columns[1], bindparam("lane", type_=Integer()))
        % literal_column(str(LANES)),
        bindparam("customer", type_=JSONType),
        bindparam("data", type_=JSONType),
        # Written out, not bound: a plain connection passes only the named parameters.
        literal_column("'pending'"),
        literal_column("0"),
    )
    columns = [
        "store_id", "customer_id", "key", "type", "occurred_at", "received_at", "source",
        "lane", "customer", "data", "status", "attempts",
    ]  # fmt: skip
    dialect_insert: Any = postgresql.insert if postgres else sqlite.insert
    statement: Insert = (
        dialect_insert(table_of(Event)).from_select(columns, values).on_conflict_do_nothing()
    )
    return statement


@dataclass
class Submission:
    """One request's valid events (with their index in the request)."""

    store_id: int
    events: Sequence[tuple[int, EventIn]]
    source: str = "api"
    customer_id: int | None = None
    answer: asyncio.Future[list[Accepted | Conflicting]] = field(
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
        self._scrubs: set[asyncio.Task[None]] = set()

    async def accept(
        self,
        store_id: int,
        events: Sequence[tuple[int, EventIn]],
        *,
        source: str = "api",
        customer_id: int | None = None,
    ) -> list[Accepted | Conflicting]:
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
            except OperationalError as error:
                # The database is locked past the wait or unreachable: one by one would only
                # wait again for each request.
                for submission in group:
                    submission.answer.set_exception(error)
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

    async def _commit(self, group: list[Submission]) -> list[list[Accepted | Conflicting]]:
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
                stored = [
                    await _stored_bodies(await session.connection(), table_of(Event), r, n)
                    for r, n in zip(rows, new, strict=True)
                ]
                # Wakes the workers listening, on whichever machine, once this commits.
                await session.execute(text("NOTIFY ulak_events"))
        else:
            new, stored = await self._append_to_file(rows)
        return [_answers(s, r, n, b) for s, r, n, b in zip(group, rows, new, stored, strict=True)]

    async def _append_to_file(
        self, groups: list[list[dict[str, Any]]]
    ) -> tuple[list[set[str]], list[dict[str, StoredBody]]]:
        async with self.database.inbox_engine.begin() as connection:
            if not self._created:
                await create_inbox(connection)
                self._created = True
            await self._prune(connection)
            new: list[set[str]] = []
            stored: list[dict[str, StoredBody]] = []
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
                new.append(fresh := {key for key in inserted.values() if key not in copied})
                bodies = await _stored_bodies(connection, inbox, rows, fresh)
                if missing := _duplicate_keys(rows, fresh) - bodies.keys():
                    bodies |= self._bodies_in_events(rows[0]["store_id"], missing)
                stored.append(bodies)
            return new, stored

    def _keys_in_events(self, store_id: int, keys: set[str]) -> set[str]:
        """Which of these keys `events` has: one indexed read of the main database."""
        marks = ",".join("?" * len(keys))
        found = self.database.lookup(
            f"SELECT key FROM events WHERE store_id = ? AND key IN ({marks})",  # noqa: S608
            (store_id, *keys),
        )
        return {key for (key,) in found}

    def _bodies_in_events(self, store_id: int, keys: set[str]) -> dict[str, StoredBody]:
        """The stored bodies of keys already copied into `events`."""
        marks = ",".join("?" * len(keys))
        found = self.database.lookup(
            "SELECT key, type, occurred_at, customer, data FROM events"  # noqa: S608
            f" WHERE store_id = ? AND key IN ({marks})",
            (store_id, *keys),
        )
        return {
            key: StoredBody(
                type=type_,
                occurred_at=datetime.fromisoformat(occurred_at).replace(tzinfo=UTC),
                customer=json.loads(customer),
                data=json.loads(data),
            )
            for key, type_, occurred_at, customer, data in found
        }

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

    def scrub_after(self, store_id: int, key: str) -> None:
        """SQLite: once the event `key` (an erasure request) is applied, empty this file of
        what the worker has copied (the erased customer's events among it) and of its WAL.
        The API process is the file's one writer, so it does this itself."""
        if not self.database.is_sqlite:
            return
        task = asyncio.create_task(self._scrub_when_applied(store_id, key))
        self._scrubs.add(task)
        task.add_done_callback(self._scrubs.discard)

    async def _scrub_when_applied(self, store_id: int, key: str) -> None:
        deadline = time.monotonic() + SCRUB_WAIT_SECONDS
        while time.monotonic() < deadline:
            found = self.database.lookup(
                "SELECT status FROM events WHERE store_id = ? AND key = ?", (store_id, key)
            )
            if found and found[0][0] != "pending":
                await self.scrub()
                return
            await asyncio.sleep(SCRUB_POLL_SECONDS)
        log.warning("erasure %s was not applied within an hour; the inbox keeps its rows", key)

    async def scrub(self) -> None:
        """Delete the rows the worker has copied now (secure_delete zeroes them), then
        checkpoint and empty the WAL."""
        async with self.database.inbox_engine.begin() as connection:
            self._pruned_at = 0.0
            await self._prune(connection)
        if not await self.database.checkpoint("inbox"):
            log.warning("the inbox file's WAL could not be emptied after an erasure")

    async def scrubbed(self) -> None:
        """Until the scrubs under way are done."""
        await asyncio.gather(*self._scrubs)

    async def close(self) -> None:
        """A server that stops: scrub once more rather than wait for erasures to apply (the
        rows they leave are deleted, zeroed, by the next prune: the first write after a
        start)."""
        if not self._scrubs:
            return
        for task in list(self._scrubs):
            task.cancel()
        await asyncio.gather(*self._scrubs, return_exceptions=True)
        await self.scrub()


@dataclass(frozen=True)
class StoredBody:
    """What an event said, to tell a retry from a different event under the same id."""

    type: str
    occurred_at: datetime | None
    customer: dict[str, Any]
    data: dict[str, Any]

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> StoredBody:
        # Through JSON, as the stored copy went, so a retry compares equal to it.
        return cls(
            type=row["type"],
            occurred_at=row["occurred_at"],
            customer=json.loads(json.dumps(row["customer"])),
            data=json.loads(json.dumps(row["data"])),
        )

    def repeated_by(self, retry: StoredBody, *, occurred_at_given: bool) -> bool:
        # An event sent without `occurred_at` is stamped with its arrival, which differs
        # on every retry: only a time the shop gave is compared.
        return (
            self.type == retry.type
            and self.customer == retry.customer
            and self.data == retry.data
            and (not occurred_at_given or self.occurred_at == retry.occurred_at)
        )


def _duplicate_keys(rows: list[dict[str, Any]], new: set[str]) -> set[str]:
    return {row["key"] for row in rows if row["key"] not in new}


async def _stored_bodies(
    connection: AsyncConnection, table: Table, rows: list[dict[str, Any]], new: set[str]
) -> dict[str, StoredBody]:
    """The stored bodies of this request's duplicate keys that `table` holds. Duplicates
    are rare, so this read is paid only when there are some."""
    if not (keys := _duplicate_keys(rows, new)):
        return {}
    query = select(
        table.c.key, table.c.type, table.c.occurred_at, table.c.customer, table.c.data
    ).where(table.c.store_id == rows[0]["store_id"], table.c.key.in_(keys))
    return {row["key"]: StoredBody.of(row) for row in (await connection.execute(query)).mappings()}


def _answers(
    submission: Submission,
    rows: list[dict[str, Any]],
    new: set[str],
    stored: dict[str, StoredBody],
) -> list[Accepted | Conflicting]:
    """Each event's answer. A key stored before, or earlier in this request, is a
    duplicate when the body is the same and a conflict when it is not (Stripe's rule for
    idempotency keys): a shop that reuses an id for another event must hear of it."""
    first: dict[str, StoredBody] = {}
    answers: list[Accepted | Conflicting] = []
    # A body is compared only for a key named twice in the request or stored before: the
    # usual new key needs none, and its two JSON round trips were a tenth of accepting a
    # Segment batch (cProfile).
    named = Counter(row["key"] for row in rows)
    for (index, event), row in zip(submission.events, rows, strict=True):
        key = row["key"]
        if key in new and named[key] == 1:
            answers.append(Accepted(index=index, key=key, duplicate=False))
            continue
        body = StoredBody.of(row)
        earlier = first.get(key) or (stored.get(key) if key not in new else None)
        if earlier is not None and not earlier.repeated_by(
            body, occurred_at_given=event.occurred_at is not None
        ):
            answers.append(Conflicting(index=index, key=key))
            continue
        answers.append(
            Accepted(index=index, key=key, duplicate=earlier is not None or (key not in new))
        )
        first.setdefault(key, body)
    return answers


@dataclass(frozen=True)
class Conflicting:
    """An event whose id the store already has, with a different body: nothing stored."""

    index: int
    key: str

    def problem(self, prefix: str) -> Problem:
        return Problem(
            path=f"{prefix}.id" if prefix else "id",
            message=f"an event with id {self.key!r} was already accepted with a different body;"
            " send a new id for a new event",
        )


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
