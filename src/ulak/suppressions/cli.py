"""`ulak suppressions`: a store's suppression list; `ulak inbound`: the bounce domain's
SMTP server."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.config import get_settings
from ulak.stores.service import get_store
from ulak.suppressions.service import (
    Suppressed,
    list_suppressions,
    suppress,
    unsuppress,
)
from ulak.terminal import console, err, in_transaction, open_database, reading

suppressions_app = typer.Typer(
    help="Addresses a store no longer sends to (bounces, complaints, by hand).",
    no_args_is_help=True,
)
StoreOption = Annotated[int, typer.Option("--store", help="The store's id.")]
ChannelOption = Annotated[str, typer.Option("--channel", help="The channel.")]


@suppressions_app.command("list")
def suppressions_list(
    store: StoreOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The store's suppressed addresses, with why and since when."""

    async def main(session: AsyncSession) -> list[Suppressed]:
        await get_store(session, store)
        return await list_suppressions(session, store_id=store)

    found = reading(main)
    if as_json:
        rows = [asdict(s) | {"at": s.at.isoformat()} for s in found]
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table("channel", "address", "reason", "detail", "message", "since")
    for s in found:
        table.add_row(
            s.channel,
            s.address,
            s.reason,
            s.detail,
            str(s.message_id or ""),
            s.at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@suppressions_app.command("add")
def suppressions_add(
    store: StoreOption,
    address: Annotated[str, typer.Argument(help="The address to stop sending to.")],
    note: Annotated[str, typer.Option("--note", help="Why, for whoever reads the list.")] = "",
    channel: ChannelOption = "email",
) -> None:
    """Stop every email to an address (a customer asked by phone, a known trap)."""

    async def main(session: AsyncSession) -> Suppressed:
        await get_store(session, store)
        return await suppress(
            session,
            store_id=store,
            channel=channel,
            address=address,
            reason="manual",
            detail=note,
            message_id=None,
            now=SystemClock().now(),
        )

    added = in_transaction(main)
    console.print(f"{added.address}: suppressed ({added.reason})")


@suppressions_app.command("remove")
def suppressions_remove(
    store: StoreOption,
    address: Annotated[str, typer.Argument(help="The address to send to again.")],
    channel: ChannelOption = "email",
) -> None:
    """Send to an address again (the mailbox works again; the customer asked)."""

    async def main(session: AsyncSession) -> None:
        await get_store(session, store)
        await unsuppress(session, store_id=store, channel=channel, address=address)

    in_transaction(main)
    console.print(f"{address.strip().lower()}: no longer suppressed")


def inbound_command(
    listen: Annotated[
        str, typer.Option("--listen", help="host:port to receive on, e.g. 0.0.0.0:2525.")
    ] = "127.0.0.1:2525",
) -> None:
    """Receive bounces and abuse reports for ULAK_BOUNCE_DOMAIN over SMTP (point the
    domain's MX here, or forward to it)."""
    from ulak.events.inbox import Inbox
    from ulak.suppressions.listener import ReportHandler, listener

    settings = get_settings()
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        err.print("[red]error:[/red] --listen takes host:port")
        raise typer.Exit(2)
    if not settings.bounce_domain:
        err.print("[red]error:[/red] set ULAK_BOUNCE_DOMAIN, the domain this server receives for")
        raise typer.Exit(2)

    async def main() -> None:
        database = open_database(settings)
        inbox = Inbox(database, SystemClock(), lambda: None)
        server = listener(
            ReportHandler(database, inbox, settings.bounce_domain), host=host, port=int(port)
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server.start()
        console.print(f"receiving reports for {settings.bounce_domain} on {host}:{port}")
        try:
            await stop.wait()
        finally:
            server.stop()
            await database.dispose()

    asyncio.run(main())
