"""`ulak stores iys`: a store's İYS account (`consent/iys.py`). The password is read from
a prompt that does not echo (or `--password`), and never shown: `show` says whether the
username and password are set, with how the queue of changes to push stands."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.consent.iys import AccountView, account_view, clear_account, set_account
from ulak.stores.service import get_store
from ulak.terminal import console, err, in_transaction, reading

iys_app = typer.Typer(
    help="A store's account at İYS, the Turkish consent registry: consent changes are "
    "registered there, and opt-outs made there are pulled every minute.",
    no_args_is_help=True,
)
Store = Annotated[int, typer.Option("--store", help="The store's id.")]


@iys_app.command("set")
def iys_set(
    store: Store,
    iys_code: Annotated[str | None, typer.Option(help="The company's İYS code.")] = None,
    brand_code: Annotated[str | None, typer.Option(help="The brand's code at İYS.")] = None,
    username: Annotated[str | None, typer.Option(help="The İYS API user.")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            help="The İYS API password; asked for without echo when a new account needs it."
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="İYS's address (default https://api.iys.org.tr).")
    ] = None,
) -> None:
    """Set a store's İYS account, or change some of its settings (the others stay)."""

    async def exists(session: AsyncSession) -> bool:
        await get_store(session, store)
        return await account_view(session, store_id=store) is not None

    if password is None and not reading(exists):
        password = typer.prompt("İYS password", hide_input=True)

    async def main(session: AsyncSession) -> None:
        await set_account(
            session, store_id=store, iys_code=iys_code, brand_code=brand_code,
            username=username, password=password, base_url=base_url, now=SystemClock().now(),
        )  # fmt: skip

    in_transaction(main)
    console.print(f"İYS account of store {store} set", markup=False)


@iys_app.command("show")
def iys_show(store: Store, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The store's İYS settings (whether the secrets are set, never their values) and its
    consent changes: pending, sent, skipped, failed (the last failures with İYS's code)."""

    async def main(session: AsyncSession) -> AccountView | None:
        await get_store(session, store)
        return await account_view(session, store_id=store)

    view = reading(main)
    if view is None:
        err.print(f"store {store} has no İYS account (`ulak stores iys set`)", markup=False)
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(asdict(view), ensure_ascii=False, default=str) + "\n")
        return
    table = Table("setting", "value")
    for name, value in (
        ("iys code", view.iys_code),
        ("brand code", view.brand_code),
        ("base url", view.base_url),
        ("username", "set" if view.username_set else "not set"),
        ("password", "set" if view.password_set else "not set"),
        ("pending", str(view.pending)),
        ("sent", str(view.sent)),
        ("skipped", str(view.skipped)),
        ("failed", str(view.failed)),
        ("last pull", f"{view.pulled_at:%Y-%m-%d %H:%M:%S} UTC" if view.pulled_at else "never"),
        ("last error", view.last_error or ""),
    ):
        table.add_row(name, value)
    console.print(table)
    if view.failures:
        failed = Table("change", "type", "status", "İYS code", "message", title="failed")
        for id_, type_, status, code, message in view.failures:
            failed.add_row(str(id_), type_, status, code or "", message or "")
        console.print(failed)


@iys_app.command("clear")
def iys_clear(store: Store) -> None:
    """Forget the store's İYS account: nothing more is pushed or pulled."""

    async def main(session: AsyncSession) -> bool:
        await get_store(session, store)
        return await clear_account(session, store_id=store)

    if not in_transaction(main):
        err.print(f"store {store} has no İYS account", markup=False)
        raise typer.Exit(1)
    console.print(f"İYS account of store {store} cleared", markup=False)
