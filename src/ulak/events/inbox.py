"""Writing accepted events: the requests that arrive together share one transaction.

An API request may only answer 202 once its events are committed. Committing each request
on its own costs a transaction per request, and on SQLite (one writer) each waits its turn
behind the workers' transactions. Here a request hands its events over and waits: whatever
requests arrive while a commit is under way are written together by the next one (group
commit). Each request still gets its own answer, or its own error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ulak.clock import Clock
from ulak.db import Database
from ulak.events.schemas import Accepted, EventIn
from ulak.events.service import ingest

log = logging.getLogger(__name__)


@dataclass
class _Request:
    store_id: int
    events: Sequence[tuple[int, EventIn]]
    answer: asyncio.Future[list[Accepted]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Inbox:
    def __init__(self, database: Database, clock: Clock, on_commit: Callable[[], None]) -> None:
        self.database = database
        self.clock = clock
        self.on_commit = on_commit
        self._waiting: list[_Request] = []
        self._writing = 0
        self._writer: asyncio.Task[None] | None = None
        # Background work in other processes yields the lock sooner the more requests wait.
        database.lock_waiters.requests = lambda: self._writing + len(self._waiting)

    async def accept(self, store_id: int, events: Sequence[tuple[int, EventIn]]) -> list[Accepted]:
        """Store a request's valid events; returns once they are committed."""
        request = _Request(store_id, events)
        self._waiting.append(request)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        # A client that goes away does not cancel the write others share.
        return await asyncio.shield(request.answer)

    async def _write(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            self._writing = len(group)
            try:
                answers = await self._commit(group)
            except asyncio.CancelledError:
                for request in group + self._waiting:
                    request.answer.cancel()
                raise
            except Exception:
                # One request's failure must not fail the others: write them one by one.
                log.warning("a group of %d event requests failed; retrying each", len(group))
                for request in group:
                    try:
                        answer = (await self._commit([request]))[0]
                    except Exception as error:
                        request.answer.set_exception(error)
                    else:
                        request.answer.set_result(answer)
            else:
                for request, answer in zip(group, answers, strict=True):
                    request.answer.set_result(answer)
            self._writing = 0
            self.on_commit()

    async def _commit(self, group: list[_Request]) -> list[list[Accepted]]:
        async with self.database.transaction() as session:
            return [
                await ingest(
                    session,
                    store_id=request.store_id,
                    events=request.events,
                    source="api",
                    clock=self.clock,
                )
                for request in group
            ]
