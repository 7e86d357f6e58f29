"""What every `ulak` command shares: where it prints, how it opens the database, how a
domain error or a busy database ends it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.config import Settings, get_settings
from ulak.db import Database, sync_url
from ulak.errors import UlakError
from ulak.migrate import current_revision
from ulak.operations import Selection
from ulak.sqlite import DatabaseLocked
from ulak.stores.service import get_store

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's work; a domain error exits 2 with its message, a database locked
    past the wait exits 3."""
    try:
        return asyncio.run(coro)
    except UlakError as error:
        err.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(2) from error
    except OperationalError as error:
        if not isinstance(error.orig, DatabaseLocked):
            raise
        err.print(
            f"[red]error:[/red] the database is busy: {error.orig}. Nothing was changed; "
            "try again in a moment."
        )
        raise typer.Exit(3) from error


def open_database(settings: Settings) -> Database:
    """The database `settings` name, which must hold ulak's schema: a command run from
    another directory would otherwise create an empty `ulak.db` there and fail on it."""
    url = settings.database_url
    where = url
    if settings.is_sqlite:
        path = Path(make_url(sync_url(url)).database or "").resolve()
        where = str(path)
        if not path.exists():
            err.print(
                f"[red]error:[/red] there is no ulak database at {where}. Run `ulak migrate` "
                "to create one here, or set ULAK_DATABASE_URL to the server's database.",
                markup=True,
                highlight=False,
            )
            raise typer.Exit(2)
    if current_revision(url) is None:
        err.print(
            f"[red]error:[/red] the database at {where} has no ulak schema. Run `ulak "
            "migrate` first, or set ULAK_DATABASE_URL to the server's database.",
            highlight=False,
        )
        raise typer.Exit(2)
    return Database(url, lock_timeout=settings.lock_timeout_seconds)


def in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """A command's work in one write transaction on the configured database."""
    return run(_on_database(work, write=True))


def reading(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """A command's reads, in one snapshot of the configured database."""
    return run(_on_database(work, write=False))


async def _on_database(work: Callable[[AsyncSession], Awaitable[T]], *, write: bool) -> T:
    database = open_database(get_settings())
    try:
        async with database.transaction() if write else database.read() as session:
            return await work(session)
    finally:
        await database.dispose()


def run_retry(
    retry: Callable[..., Awaitable[list[int]]],
    store: int,
    ids: list[int] | None,
    since: datetime | None,
) -> list[int]:
    """`messages retry` and `steps retry`: the failed rows of a store named by id, or all
    failed since a time (UTC when it names no zone)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)

    async def main(session: AsyncSession) -> list[int]:
        await get_store(session, store)
        which = Selection(store_id=store, ids=ids or (), since=since)
        return await retry(session, which, clock=SystemClock())

    return in_transaction(main)
