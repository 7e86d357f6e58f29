"""`ulak`: serve, run workers, migrate, and manage stores and journeys."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError

from ulak.clock import SystemClock
from ulak.config import Settings, get_settings
from ulak.db import Database, sync_url
from ulak.errors import UlakError
from ulak.journeys.definition import JourneyFileError, load_journey_file
from ulak.journeys.service import apply_journey, install_library, list_journeys
from ulak.migrate import current_revision, upgrade
from ulak.sqlite import DatabaseLocked
from ulak.stores.schemas import StoreCreate, StoreCreated, StoreOut, StoreUpdate
from ulak.stores.service import create_store, get_store, list_stores, update_store

app = typer.Typer(help="ulak: events in, customer journeys, email out.", no_args_is_help=True)
stores_app = typer.Typer(help="Stores (tenants) and their API keys.", no_args_is_help=True)
journeys_app = typer.Typer(help="Journey definitions.", no_args_is_help=True)
app.add_typer(stores_app, name="stores")
app.add_typer(journeys_app, name="journeys")

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
S = TypeVar("S", StoreCreate, StoreUpdate)


def _run(coro: Coroutine[Any, Any, T]) -> T:
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


def _database(settings: Settings) -> Database:
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


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    upgrade(get_settings().database_url)
    console.print("database is up to date")


@app.command()
def serve(
    workers: Annotated[
        bool,
        typer.Option(
            help="Run the workers too: in ULAK_WORKER_PROCESSES processes of their own "
            "(default 1), or in this process when it is 0."
        ),
    ] = True,
    host: Annotated[str | None, typer.Option(help="Overrides ULAK_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides ULAK_PORT.")] = None,
) -> None:
    """Serve the API, pages and dev inbox, and (by default) start the workers with it."""
    import uvicorn

    from ulak.app import create_app

    settings = get_settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    _logging(settings)
    upgrade(settings.database_url)
    application = create_app(settings, run_workers=workers)
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )


@app.command()
def worker(
    wake_fd: Annotated[
        int | None,
        typer.Option(hidden=True, help="A pipe from `ulak serve`: wakes, and ends with it."),
    ] = None,
) -> None:
    """Run only the workers (scale out beside `ulak serve --no-workers` on PostgreSQL)."""
    from ulak.jobs import job_context
    from ulak.worker import AnotherWorker, Workers, listen_for_events

    settings = get_settings()
    _logging(settings)

    async def main() -> None:
        database = _database(settings)
        ctx = job_context(
            settings, database, SystemClock(), helper_processes=settings.helper_processes
        )
        workers = Workers(ctx)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, workers.stop)
        if wake_fd is None:
            loop.add_signal_handler(signal.SIGINT, workers.stop)
        else:
            # Ctrl-C in a terminal reaches `ulak serve` too, which then closes the pipe.
            signal.signal(signal.SIGINT, signal.SIG_IGN)

            def woken() -> None:
                if os.read(wake_fd, 4096):
                    workers.wake()
                else:
                    loop.remove_reader(wake_fd)
                    workers.stop()

            loop.add_reader(wake_fd, woken)
        listener = (
            None
            if database.is_sqlite
            else asyncio.create_task(listen_for_events(database.url, workers))
        )
        try:
            await workers.run()
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            await ctx.sender.close(grace=10)
            ctx.offload.close()
            await database.dispose()

    try:
        asyncio.run(main())
    except AnotherWorker as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error


@stores_app.command("create")
def stores_create(
    name: Annotated[str, typer.Option(help="The store's name, shown in every message.")],
    locale: Annotated[str, typer.Option()] = "tr",
    timezone: Annotated[str, typer.Option()] = "Europe/Istanbul",
    currency: Annotated[str, typer.Option()] = "TRY",
    sender_email: Annotated[
        str, typer.Option(help="From address of the store's email.")
    ] = "shop@example.com",
    sender_name: Annotated[str | None, typer.Option()] = None,
    reply_to: Annotated[str | None, typer.Option()] = None,
    contact_email: Annotated[str | None, typer.Option()] = None,
    contact_phone: Annotated[str | None, typer.Option()] = None,
    postal_address: Annotated[str | None, typer.Option()] = None,
    logo_url: Annotated[str | None, typer.Option()] = None,
    website_url: Annotated[str | None, typer.Option()] = None,
    brand_color: Annotated[str, typer.Option()] = "#1f6feb",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a store with the shipped journeys switched on; prints its API key once."""
    data = _store_settings(StoreCreate, {k: v for k, v in locals().items() if k != "as_json"})
    created = _run(_create_store(get_settings(), data))
    if as_json:
        sys.stdout.write(created.model_dump_json() + "\n")
        return
    console.print(f"store [bold]{created.id}[/bold] ({created.name}) created")
    console.print(f"API key (shown only now): [bold]{created.api_key}[/bold]")


def _store_settings(schema: type[S], options: dict[str, Any]) -> S:
    """A store's settings from command-line options; exits naming each option that is
    wrong, and why."""
    try:
        return schema(**options)
    except ValidationError as error:
        for problem in error.errors(include_url=False):
            err.print(f"[red]--{str(problem['loc'][0]).replace('_', '-')}[/red]: {problem['msg']}")
        raise typer.Exit(2) from error


async def _create_store(settings: Settings, data: StoreCreate) -> StoreCreated:
    await asyncio.to_thread(upgrade, settings.database_url)
    database = _database(settings)
    try:
        async with database.transaction() as session:
            clock = SystemClock()
            store, key = await create_store(session, data, clock=clock)
            await install_library(session, store_id=store.id, clock=clock)
            return StoreCreated(**StoreOut.model_validate(store).model_dump(), api_key=key)
    finally:
        await database.dispose()


@stores_app.command("update")
def stores_update(
    store: Annotated[int, typer.Argument(help="The store's id.")],
    name: Annotated[str | None, typer.Option()] = None,
    locale: Annotated[str | None, typer.Option()] = None,
    timezone: Annotated[str | None, typer.Option()] = None,
    currency: Annotated[str | None, typer.Option()] = None,
    sender_email: Annotated[str | None, typer.Option()] = None,
    sender_name: Annotated[str | None, typer.Option()] = None,
    reply_to: Annotated[str | None, typer.Option()] = None,
    contact_email: Annotated[str | None, typer.Option()] = None,
    contact_phone: Annotated[str | None, typer.Option()] = None,
    postal_address: Annotated[str | None, typer.Option()] = None,
    logo_url: Annotated[str | None, typer.Option()] = None,
    website_url: Annotated[str | None, typer.Option()] = None,
    brand_color: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Change a store's settings; those not given stay as they are."""
    given = {k: v for k, v in locals().items() if k not in ("store", "as_json") and v is not None}
    if not given:
        err.print("[red]error:[/red] nothing to change: give at least one setting")
        raise typer.Exit(2)
    data = _store_settings(StoreUpdate, given)

    async def main() -> StoreOut:
        database = _database(get_settings())
        try:
            async with database.transaction() as session:
                return StoreOut.model_validate(await update_store(session, store, data))
        finally:
            await database.dispose()

    updated = _run(main())
    if as_json:
        sys.stdout.write(updated.model_dump_json() + "\n")
        return
    console.print(f"store [bold]{updated.id}[/bold] ({updated.name}) updated", markup=True)


@stores_app.command("list")
def stores_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the stores."""

    async def main() -> list[StoreOut]:
        database = _database(get_settings())
        try:
            async with database.read() as session:
                return [StoreOut.model_validate(s) for s in await list_stores(session)]
        finally:
            await database.dispose()

    stores = _run(main())
    if as_json:
        sys.stdout.write(json.dumps([s.model_dump() for s in stores], ensure_ascii=False) + "\n")
        return
    table = Table("id", "name", "locale", "time zone", "currency", "sender")
    for s in stores:
        table.add_row(str(s.id), s.name, s.locale, s.timezone, s.currency, s.sender_email)
    console.print(table)


@journeys_app.command("validate")
def journeys_validate(paths: list[Path]) -> None:
    """Check journey files; errors name the file, line and field."""
    failed = False
    for path in paths:
        try:
            definition = load_journey_file(path)
        except JourneyFileError as error:
            failed = True
            for problem in error.problems:
                err.print(str(problem), markup=False, highlight=False)
            continue
        except OSError as error:
            failed = True
            err.print(f"{path}: {error.strerror}", markup=False)
            continue
        console.print(f"{path}: ok ({definition.key}, {len(definition.steps)} steps)", markup=False)
    if failed:
        raise typer.Exit(1)


@journeys_app.command("apply")
def journeys_apply(
    paths: list[Path], store: Annotated[int, typer.Option(help="Store id.")]
) -> None:
    """Store journey files as new versions (running enrollments keep theirs)."""
    loaded = []
    for path in paths:
        try:
            loaded.append((load_journey_file(path), path.read_text(encoding="utf-8")))
        except JourneyFileError as error:
            for problem in error.problems:
                err.print(str(problem), markup=False, highlight=False)
            raise typer.Exit(1) from error

    async def main() -> list[tuple[str, int, bool]]:
        database = _database(get_settings())
        try:
            async with database.transaction() as session:
                await get_store(session, store)
                out = []
                for definition, source in loaded:
                    journey, version, changed = await apply_journey(
                        session,
                        store_id=store,
                        definition=definition,
                        source=source,
                        clock=SystemClock(),
                    )
                    out.append((journey.key, version, changed))
                return out
        finally:
            await database.dispose()

    for key, version, changed in _run(main()):
        state = "new version" if changed else "unchanged"
        console.print(f"{key}: version {version} ({state})", markup=False)


@journeys_app.command("list")
def journeys_list(
    store: Annotated[int, typer.Option(help="Store id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List a store's journeys with their versions and live enrollments."""

    async def main() -> list[dict[str, Any]]:
        database = _database(get_settings())
        try:
            async with database.read() as session:
                await get_store(session, store)
                return await list_journeys(session, store_id=store)
        finally:
            await database.dispose()

    rows = _run(main())
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("key", "name", "trigger", "version", "enabled", "live")
    for r in rows:
        table.add_row(
            r["key"],
            r["name"],
            r["trigger"],
            str(r["version"]),
            "yes" if r["enabled"] else "no",
            str(r["live_enrollments"]),
        )
    console.print(table)


DEMO_FILE = Path(".ulak-demo.json")


@app.command()
def demo() -> None:
    """Create a demo store once (kept in .ulak-demo.json) and print how to use it."""
    settings = get_settings()

    async def existing(store_id: int) -> bool:
        database = _database(settings)
        try:
            async with database.read() as session:
                return any(s.id == store_id for s in await list_stores(session))
        finally:
            await database.dispose()

    saved: dict[str, Any] | None = None
    if DEMO_FILE.exists():
        saved = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
        if saved is None or not _run(existing(int(saved["id"]))):
            saved = None
    if saved is None:
        created = _run(
            _create_store(
                settings,
                StoreCreate(
                    name="Ayşe'nin Dükkanı",
                    sender_email="merhaba@aysenin-dukkani.example",
                    contact_email="destek@aysenin-dukkani.example",
                    contact_phone="+90 212 555 01 23",
                    postal_address="Moda Cad. 12, 34710 Kadıköy / İstanbul",
                    website_url="https://aysenin-dukkani.example",
                ),
            )
        )
        saved = {"id": created.id, "name": created.name, "api_key": created.api_key}
        DEMO_FILE.write_text(json.dumps(saved, ensure_ascii=False), encoding="utf-8")
        DEMO_FILE.chmod(0o600)
    base = settings.base_url
    console.print(f"demo store [bold]{saved['id']}[/bold] ({saved['name']})")
    console.print(f"API key:   [bold]{saved['api_key']}[/bold]  (kept in {DEMO_FILE})")
    console.print(f"API docs:  {base}/docs")
    if not settings.smtp_url:
        console.print(f"dev inbox: {base}/dev/inbox")
    console.print(
        "try:\n"
        f"  curl -X POST {base}/v1/events -H 'Authorization: Bearer {saved['api_key']}' "
        "-H 'Content-Type: application/json' -d @examples/order-placed.json",
        markup=False,
        soft_wrap=True,
    )


templates_app = typer.Typer(help="Email templates and a store's own versions of them.")
app.add_typer(templates_app, name="templates")


@templates_app.command("list")
def templates_list() -> None:
    """The shipped templates (and `layout`, the frame around every email)."""
    from ulak.messages.rendering import shipped_templates

    for name in [*shipped_templates(), "layout"]:
        console.print(name, markup=False)


@templates_app.command("show")
def templates_show(name: str, locale: Annotated[str, typer.Option(help="tr or en")] = "tr") -> None:
    """Print a shipped template: the starting point for a store's own version."""
    from ulak.messages.rendering import shipped_source

    try:
        sys.stdout.write(shipped_source(name, locale))
    except UlakError as error:
        err.print(f"error: {error.message}", markup=False)
        raise typer.Exit(2) from error


@templates_app.command("set")
def templates_set(
    name: str,
    path: Path,
    store: Annotated[int, typer.Option(help="Store id.")],
    locale: Annotated[str, typer.Option(help="tr or en")] = "tr",
) -> None:
    """Use the store's own version of a template (checked before it is saved)."""
    from ulak.messages.rendering import resolve_locale, shipped_templates
    from ulak.messages.service import set_template_override

    if name not in [*shipped_templates(), "layout"]:
        err.print(f"error: unknown template {name!r} (see `ulak templates list`)", markup=False)
        raise typer.Exit(2)
    source = path.read_text(encoding="utf-8")

    async def main() -> None:
        database = _database(get_settings())
        try:
            async with database.transaction() as session:
                await get_store(session, store)
                await set_template_override(
                    session,
                    store_id=store,
                    name=name,
                    locale=resolve_locale(locale, locale),
                    source=source,
                    clock=SystemClock(),
                )
        finally:
            await database.dispose()

    _run(main())
    console.print(f"store {store} now uses its own {name} ({locale})", markup=False)


@app.command()
def status(
    store: Annotated[int | None, typer.Option(help="Only this store.")] = None,
    failures: Annotated[int, typer.Option(help="How many recent failures to list.")] = 10,
) -> None:
    """What is waiting and what failed: events, enrollments and messages, with reasons."""
    from ulak.events.inbox import inbox_backlog
    from ulak.operations import failures_report

    async def main() -> dict[str, Any]:
        database = _database(get_settings())
        try:
            async with database.read() as session:
                report = await failures_report(session, store_id=store, limit=failures)
            if database.is_sqlite:
                # Accepted by the API, not yet taken over by the worker.
                waiting = await inbox_backlog(database, store_id=store)
                if waiting:
                    report["counts"].setdefault("events", {})["accepted"] = waiting
            return report
        finally:
            await database.dispose()

    report = _run(main())
    table = Table("rows", "status", "count")
    for kind, counts in report["counts"].items():
        for state, count in sorted(counts.items()):
            table.add_row(kind, state, str(count))
    console.print(table)
    if report["failures"]:
        failed = Table("kind", "id", "store", "when", "reason")
        for f in report["failures"]:
            failed.add_row(f["kind"], str(f["id"]), str(f["store_id"]), f["at"], f["reason"])
        console.print(failed)
    if report["resent"]:
        # A delivery cut short by a crash may have reached the customer before it went again.
        resent = Table(
            "message", "store", "created", "to", "status", title="may have arrived twice"
        )
        for r in report["resent"]:
            resent.add_row(str(r["id"]), str(r["store_id"]), r["at"], r["to"], r["status"])
        console.print(resent)
