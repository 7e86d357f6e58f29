"""`ulak stores` and `ulak keys`: a store's settings and its API keys."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.config import Settings, get_settings
from ulak.errors import Invalid
from ulak.journeys.service import install_library
from ulak.migrate import upgrade
from ulak.stores.schemas import (
    CLEARABLE,
    ApiKeyOut,
    StoreCreate,
    StoreCreated,
    StoreOut,
    StoreUpdate,
)
from ulak.stores.service import (
    create_api_key,
    create_store,
    get_store,
    list_api_keys,
    list_stores,
    revoke_api_key,
    update_store,
)
from ulak.terminal import console, err, in_transaction, open_database, reading, run
from ulak.timers import special_days
from ulak.timers.service import (
    EARLIEST,
    install_default_special_days,
    remove_special_day,
    set_special_day,
    special_days_of,
)

stores_app = typer.Typer(help="Stores (tenants) and their settings.", no_args_is_help=True)
S = TypeVar("S", StoreCreate, StoreUpdate)
FACTOR_HELP = "A restock of N items tells at most N times this many waiting customers."
LIMIT_HELP = "Back-in-stock subscriptions one email (or customer) may make a day."
KEEP_EVENTS_HELP = (
    "Days applied events are kept (KVKK/GDPR: no longer than needed); older ones are deleted."
)
NEVER_BOUGHT_HELP = "Days after signing up, with no order, before win-back reaches a customer."
REORDER_HELP = (
    "One-click reorder link for replenishment reminders, e.g."
    " 'https://shop.example/cart/{variant_id}:{quantity},...' (see README)."
)
MERCHANT_HELP = (
    "Commercial messages go to merchant recipients without a recorded grant"
    " (they may still revoke)."
)
HOURS_HELP = (
    "Local hours (the recipient's zone) a commercial message may arrive, e.g. 09:00-20:00;"
    " --clear it for any hour."
)
CAP_HELP = "At most this many commercial messages per customer (0: no cap)."


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
    back_in_stock_factor: Annotated[int, typer.Option(help=FACTOR_HELP)] = 3,
    back_in_stock_daily_limit: Annotated[int, typer.Option(help=LIMIT_HELP)] = 10,
    abandoned_cart_minutes: Annotated[
        int, typer.Option(help="Minutes a cart stays idle, with no order, before it is abandoned.")
    ] = 60,
    lapsed_days: Annotated[
        int, typer.Option(help="Days without an order before a customer has lapsed.")
    ] = 90,
    never_bought_days: Annotated[int, typer.Option(help=NEVER_BOUGHT_HELP)] = 14,
    keep_events_days: Annotated[int, typer.Option(help=KEEP_EVENTS_HELP)] = 365,
    reorder_url: Annotated[str | None, typer.Option(help=REORDER_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a store with the shipped journeys switched on; prints its API key once."""
    data = _store_settings(StoreCreate, {k: v for k, v in locals().items() if k != "as_json"})
    created = run(create_store_with_key(get_settings(), data))
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


async def create_store_with_key(settings: Settings, data: StoreCreate) -> StoreCreated:
    await asyncio.to_thread(upgrade, settings.database_url)
    database = open_database(settings)
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
    back_in_stock_factor: Annotated[int | None, typer.Option(help=FACTOR_HELP)] = None,
    back_in_stock_daily_limit: Annotated[int | None, typer.Option(help=LIMIT_HELP)] = None,
    abandoned_cart_minutes: Annotated[int | None, typer.Option()] = None,
    lapsed_days: Annotated[int | None, typer.Option()] = None,
    clear: Annotated[
        list[str] | None,
        typer.Option(
            "--clear",
            metavar="SETTING",
            help=f"Empty a setting (repeatable): {', '.join(CLEARABLE).replace('_', '-')}.",
        ),
    ] = None,
    never_bought_days: Annotated[int | None, typer.Option(help=NEVER_BOUGHT_HELP)] = None,
    keep_events_days: Annotated[int | None, typer.Option(help=KEEP_EVENTS_HELP)] = None,
    reorder_url: Annotated[str | None, typer.Option(help=REORDER_HELP)] = None,
    merchant_opt_out: Annotated[
        bool | None, typer.Option("--merchant-opt-out/--no-merchant-opt-out", help=MERCHANT_HELP)
    ] = None,
    sending_hours_email: Annotated[str | None, typer.Option(help=HOURS_HELP)] = None,
    sending_hours_sms: Annotated[str | None, typer.Option(help=HOURS_HELP)] = None,
    cap_email_day: Annotated[int | None, typer.Option(help=CAP_HELP)] = None,
    cap_email_week: Annotated[int | None, typer.Option(help=CAP_HELP)] = None,
    cap_sms_day: Annotated[int | None, typer.Option(help=CAP_HELP)] = None,
    cap_sms_week: Annotated[int | None, typer.Option(help=CAP_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Change a store's settings; those not given stay as they are."""
    given: dict[str, Any] = {
        k: v
        for k, v in locals().items()
        if k not in ("store", "clear", "as_json") and v is not None
    }
    for setting in clear or []:
        field = setting.removeprefix("--").replace("-", "_")
        if field not in CLEARABLE:
            shown = ", ".join(CLEARABLE).replace("_", "-")
            err.print(f"[red]--clear {setting}[/red]: only these may be empty: {shown}")
            raise typer.Exit(2)
        if field in given:
            err.print(f"[red]--clear {setting}[/red]: also given a value; give one or the other")
            raise typer.Exit(2)
        given[field] = None
    if not given:
        err.print("[red]error:[/red] nothing to change: give at least one setting")
        raise typer.Exit(2)
    data = _store_settings(StoreUpdate, given)

    async def main(session: AsyncSession) -> StoreOut:
        return StoreOut.model_validate(await update_store(session, store, data))

    updated = in_transaction(main)
    if as_json:
        sys.stdout.write(updated.model_dump_json() + "\n")
        return
    console.print(f"store [bold]{updated.id}[/bold] ({updated.name}) updated", markup=True)


@stores_app.command("list")
def stores_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the stores."""

    async def main(session: AsyncSession) -> list[StoreOut]:
        return [StoreOut.model_validate(s) for s in await list_stores(session)]

    stores = reading(main)
    if as_json:
        sys.stdout.write(json.dumps([s.model_dump() for s in stores], ensure_ascii=False) + "\n")
        return
    table = Table("id", "name", "locale", "time zone", "currency", "sender")
    for s in stores:
        table.add_row(str(s.id), s.name, s.locale, s.timezone, s.currency, s.sender_email)
    console.print(table)


days_app = typer.Typer(
    help="A store's special days: each greets its customers (the special-days journey).",
    no_args_is_help=True,
)
stores_app.add_typer(days_app, name="special-days")
DayStore = Annotated[int, typer.Option("--store", help="The store's id.")]


@days_app.command("list")
def days_list(store: DayStore, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List a store's special days: key, names, rule and when the next one starts."""

    async def main(session: AsyncSession) -> list[dict[str, Any]]:
        await get_store(session, store)
        return [
            {
                "key": d.key,
                "name_tr": d.name_tr,
                "name_en": d.name_en,
                "rule": d.rule,
                "next": _next_day(d.due_at),
            }
            for d in await special_days_of(session, store_id=store)
        ]

    days = reading(main)
    if as_json:
        sys.stdout.write(json.dumps(days, ensure_ascii=False) + "\n")
        return
    table = Table("key", "name (tr)", "name (en)", "rule", "next")
    for d in days:
        table.add_row(d["key"], d["name_tr"], d["name_en"], d["rule"], d["next"] or "")
    console.print(table)


def _next_day(due_at: datetime | None) -> str | None:
    """The date a special day's next occurrence falls on (its timer is 00:00 at UTC+14)."""
    return None if due_at is None else due_at.astimezone(EARLIEST).date().isoformat()


@days_app.command("add")
def days_add(
    key: Annotated[str, typer.Argument(help="A short key, like anneler-gunu.")],
    store: DayStore,
    rule: Annotated[str, typer.Option(help=f"When it falls: {special_days.HELP}.")],
    name_tr: Annotated[str, typer.Option(help="Its name in Turkish.")],
    name_en: Annotated[str, typer.Option(help="Its name in English.")],
) -> None:
    """Add a special day (or change the one with this key)."""

    async def main(session: AsyncSession) -> str | None:
        await get_store(session, store)
        try:
            day = await set_special_day(
                session,
                store_id=store,
                key=key,
                name_tr=name_tr,
                name_en=name_en,
                rule=rule,
                now=SystemClock().now(),
            )
        except ValueError as error:
            raise Invalid(str(error)) from error
        return _next_day(day.due_at)

    upcoming = in_transaction(main)
    when = f"next on {upcoming}" if upcoming else "no date to come"
    console.print(f"special day {key} of store {store} set ({when})", markup=False)


@days_app.command("defaults")
def days_defaults(store: DayStore) -> None:
    """Add the default special days the store does not have (a store made before ulak had
    them starts with none); those it has stay as they are."""

    async def main(session: AsyncSession) -> list[str]:
        await get_store(session, store)
        return await install_default_special_days(session, store_id=store, now=SystemClock().now())

    added = in_transaction(main)
    console.print(f"added: {', '.join(added) or 'none'}", markup=False)


@days_app.command("remove")
def days_remove(
    key: Annotated[str, typer.Argument(help="The day's key (see `list`).")], store: DayStore
) -> None:
    """Remove a special day, and the greetings of it not yet sent out."""

    async def main(session: AsyncSession) -> bool:
        await get_store(session, store)
        return await remove_special_day(session, store_id=store, key=key)

    if not in_transaction(main):
        err.print(f"[red]error:[/red] store {store} has no special day {key!r}")
        raise typer.Exit(1)
    console.print(f"special day {key} of store {store} removed", markup=False)


keys_app = typer.Typer(help="A store's API keys.", no_args_is_help=True)
StoreOption = Annotated[int, typer.Option("--store", help="The store's id.")]


@keys_app.command("create")
def keys_create(
    store: StoreOption, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Make a new API key for a store; it is printed once and kept only as a hash."""

    async def main(session: AsyncSession) -> tuple[int, str]:
        await get_store(session, store)
        return await create_api_key(session, store_id=store, clock=SystemClock())

    key_id, key = in_transaction(main)
    if as_json:
        sys.stdout.write(json.dumps({"id": key_id, "store_id": store, "api_key": key}) + "\n")
        return
    console.print(f"key [bold]{key_id}[/bold] of store {store} created")
    console.print(f"API key (shown only now): [bold]{key}[/bold]")


@keys_app.command("list")
def keys_list(store: StoreOption, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List a store's keys: their id, first characters, and whether they were revoked."""

    async def main(session: AsyncSession) -> list[ApiKeyOut]:
        keys = await list_api_keys(session, store_id=store)
        return [ApiKeyOut.model_validate(k) for k in keys]

    keys = reading(main)
    if as_json:
        sys.stdout.write(json.dumps([k.model_dump(mode="json") for k in keys]) + "\n")
        return
    table = Table("id", "starts with", "created", "revoked")
    for k in keys:
        revoked = f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else ""
        table.add_row(str(k.id), k.prefix + "…", f"{k.created_at:%Y-%m-%d %H:%M}", revoked)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id (see `ulak keys list`).")],
    store: StoreOption,
) -> None:
    """Revoke a key: the next request with it gets 401, on every running process."""

    async def main(session: AsyncSession) -> None:
        await revoke_api_key(session, store_id=store, key_id=key_id, clock=SystemClock())

    in_transaction(main)
    console.print(f"key {key_id} of store {store} revoked", markup=False)
