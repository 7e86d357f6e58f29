"""`ulak integrations`: connect a store to its Shopify or WooCommerce shop."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.config import get_settings
from ulak.integrations.service import (
    PLATFORMS,
    IntegrationShown,
    integrations_of,
    remove_integration,
    set_integration,
)
from ulak.terminal import console, in_transaction, reading

integrations_app = typer.Typer(
    help="Connect a store to its shop platform, whose webhooks then feed ulak.",
    no_args_is_help=True,
)
Store = Annotated[int, typer.Option("--store", help="The store's id.")]
Platform = Annotated[str, typer.Argument(help=f"One of: {', '.join(PLATFORMS)}.")]


def webhook_url(platform: str, store_id: int) -> str:
    return f"{get_settings().base_url}/v1/integrations/{platform}/{store_id}"


def _rows(shown: list[IntegrationShown]) -> list[dict[str, object]]:
    return [
        {
            "store_id": s.store_id,
            "platform": s.platform,
            "webhook_url": webhook_url(s.platform, s.store_id),
            "secret": "set",
            "updated_at": s.updated_at.isoformat(),
        }
        for s in shown
    ]


def _print(shown: list[IntegrationShown], as_json: bool) -> None:
    rows = _rows(shown)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    if not rows:
        console.print("no integrations")
    for row in rows:
        console.print(
            f"{row['platform']}: webhooks to {row['webhook_url']} (secret: set, "
            f"updated {row['updated_at']})",
            markup=False,
        )


@integrations_app.command("set")
def integrations_set(
    platform: Platform,
    store: Store,
    secret: Annotated[
        str | None,
        typer.Option(
            help="The webhook signing secret the platform shows. Lands in shell history: "
            "prefer --secret-stdin."
        ),
    ] = None,
    secret_stdin: Annotated[
        bool, typer.Option(help="Read the secret from standard input.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Connect a store to a platform (or replace its secret), and print the webhook URL
    to give the platform."""
    if secret_stdin:
        secret = sys.stdin.readline()
    if secret is None:
        raise typer.BadParameter("give the secret with --secret or --secret-stdin")
    given = secret

    async def main(session: AsyncSession) -> list[IntegrationShown]:
        return [
            await set_integration(
                session, store_id=store, platform=platform, secret=given, clock=SystemClock()
            )
        ]

    _print(in_transaction(main), as_json)


@integrations_app.command("show")
def integrations_show(
    store: Store, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """A store's integrations and their webhook URLs; never a secret."""

    async def main(session: AsyncSession) -> list[IntegrationShown]:
        return await integrations_of(session, store_id=store)

    _print(reading(main), as_json)


@integrations_app.command("remove")
def integrations_remove(platform: Platform, store: Store) -> None:
    """Disconnect a store from a platform: its webhooks are refused (401) from then on."""

    async def main(session: AsyncSession) -> None:
        await remove_integration(session, store_id=store, platform=platform)

    in_transaction(main)
    console.print(f"{platform} disconnected from store {store}", markup=False)
