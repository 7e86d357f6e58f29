"""`ulak`: serve, run workers, migrate, and the commands each feature brings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.cli import catalog_app
from ulak.clock import SystemClock
from ulak.config import Settings, get_settings
from ulak.consent.cli import iys_app
from ulak.coupons.cli import coupons_app
from ulak.imports.cli import import_command
from ulak.integrations.cli import integrations_app
from ulak.journeys.cli import journeys_app, simulate_command, steps_app
from ulak.messages.cli import messages_app, templates_app
from ulak.migrate import upgrade
from ulak.preferences.cli import preferences_app
from ulak.privacy.cli import customers_app
from ulak.returns.cli import returns_app
from ulak.reviews.cli import reviews_app
from ulak.sms.cli import sms_app
from ulak.stores.cli import create_store_with_key, keys_app, stores_app
from ulak.stores.schemas import StoreCreate
from ulak.stores.service import list_stores
from ulak.suppressions.cli import inbound_command, suppressions_app
from ulak.surveys.cli import surveys_app
from ulak.terminal import console, err, in_transaction, open_database, run
from ulak.webhooks.cli import webhooks_app

app = typer.Typer(help="ulak: events in, customer journeys, email out.", no_args_is_help=True)
app.add_typer(stores_app, name="stores")
stores_app.add_typer(sms_app, name="sms")
stores_app.add_typer(iys_app, name="iys")
app.add_typer(keys_app, name="keys")
app.add_typer(journeys_app, name="journeys")
app.add_typer(steps_app, name="steps")
app.add_typer(templates_app, name="templates")
app.add_typer(messages_app, name="messages")
app.command("simulate")(simulate_command)
app.add_typer(coupons_app, name="coupons")
app.add_typer(catalog_app, name="catalog")
app.add_typer(suppressions_app, name="suppressions")
app.add_typer(surveys_app, name="surveys")
app.command("inbound")(inbound_command)
app.add_typer(customers_app, name="customers")
app.add_typer(preferences_app, name="preferences")
app.add_typer(returns_app, name="returns")
app.add_typer(reviews_app, name="reviews")
app.add_typer(integrations_app, name="integrations")
app.add_typer(webhooks_app, name="webhooks")
app.command("import")(import_command)


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Said at the start of `serve` and `worker`, the processes whose links reach customers.
    if (warning := settings.public_url_warning()) is not None:
        logging.getLogger("ulak").warning("%s", warning)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date, and give each store the journeys shipped since
    it was made (each on or off as shipped; never over one the store has)."""
    from ulak.operations import offer_shipped_journeys

    upgrade(get_settings().database_url)

    async def offer(session: AsyncSession) -> dict[int, list[str]]:
        return await offer_shipped_journeys(session, clock=SystemClock())

    for store, keys in in_transaction(offer).items():
        console.print(f"store {store}: added the shipped journeys {', '.join(keys)}", markup=False)
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
        database = open_database(settings)
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


DEMO_FILE = Path(".ulak-demo.json")


@app.command()
def demo() -> None:
    """Create a demo store once (kept in .ulak-demo.json) and print how to use it."""
    settings = get_settings()

    async def existing(store_id: int) -> bool:
        database = open_database(settings)
        try:
            async with database.read() as session:
                return any(s.id == store_id for s in await list_stores(session))
        finally:
            await database.dispose()

    saved: dict[str, Any] | None = None
    if DEMO_FILE.exists():
        saved = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
        if saved is None or not run(existing(int(saved["id"]))):
            saved = None
    if saved is None:
        created = run(
            create_store_with_key(
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
    # The demo store has no SMS provider: its SMS (birthdays, special days) are kept here.
    console.print(f"dev SMS:   {base}/dev/sms")
    console.print(
        "try:\n"
        f"  curl -X POST {base}/v1/events -H 'Authorization: Bearer {saved['api_key']}' "
        "-H 'Content-Type: application/json' -d @examples/order-placed.json",
        markup=False,
        soft_wrap=True,
    )


@app.command()
def status(
    store: Annotated[int | None, typer.Option(help="Only this store.")] = None,
    failures: Annotated[int, typer.Option(help="How many recent failures to list.")] = 10,
) -> None:
    """What is waiting and what failed: events, enrollments and messages, with reasons."""
    from ulak.events.inbox import inbox_backlog
    from ulak.operations import failures_report

    async def main() -> dict[str, Any]:
        database = open_database(get_settings())
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

    report = run(main())
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
    if report["held"]:
        # "Why didn't she get it?": what the sending policy and consent held back.
        held = Table("store", "status", "reason", "count", title="not sent, and why")
        for h in report["held"]:
            held.add_row(str(h["store_id"]), h["status"], h["reason"], str(h["count"]))
        console.print(held)
    if report["resent"]:
        # A delivery cut short by a crash may have reached the customer before it went again.
        resent = Table(
            "message", "store", "created", "to", "status", title="may have arrived twice"
        )
        for r in report["resent"]:
            resent.add_row(str(r["id"]), str(r["store_id"]), r["at"], r["to"], r["status"])
        console.print(resent)
