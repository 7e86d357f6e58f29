"""`ulak stores sms`: a store's SMS provider, credentials (write-only), sender header,
segment limit and price."""

from __future__ import annotations

import json
import sys
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.channels.gateways import PROVIDERS
from ulak.clock import SystemClock
from ulak.config import get_settings
from ulak.errors import Invalid
from ulak.messages.cli import messages_app
from ulak.messages.reports import SmsEntry, recent_sms
from ulak.sms.length import sms_length
from ulak.sms.service import SmsSetup, cost, set_sms, sms_setup
from ulak.terminal import console, in_transaction, reading

sms_app = typer.Typer(
    help="A store's SMS provider: without one, SMS go to the dev SMS inbox (/dev/sms).",
    no_args_is_help=True,
)
Store = Annotated[int, typer.Option("--store", help="The store's id.")]


def _shown(setup: SmsSetup) -> dict[str, Any]:
    """What may be shown of a setup: credentials by name, never their values."""
    return {
        "store_id": setup.store_id,
        "provider": setup.provider,
        "sender": setup.sender,
        "credentials_set": list(setup.credentials_set),
        "segment_limit": setup.segment_limit,
        "price_per_segment": (
            # PostgreSQL keeps 4 decimals: 0.3500 is shown as given, 0.35.
            format(setup.price_per_segment.normalize(), "f")
            if setup.price_per_segment is not None
            else None
        ),
        "currency": setup.currency,
        "report_url": (
            f"{get_settings().base_url}/v1/sms/reports/{setup.provider}/{setup.report_token}"
            if setup.provider and setup.report_token
            else None
        ),
    }


def _print(setup: SmsSetup, as_json: bool) -> None:
    shown = _shown(setup)
    if as_json:
        sys.stdout.write(json.dumps(shown, ensure_ascii=False) + "\n")
        return
    for key, value in shown.items():
        if key == "credentials_set":
            value = ", ".join(f"{name}: set" for name in value) or "none"
        console.print(f"{key}: {value if value is not None else '-'}", markup=False)


def _pairs(lines: list[str]) -> dict[str, str]:
    pairs = {}
    for line in lines:
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise Invalid("a credential is given as name=value")
        pairs[name.strip()] = value.strip()
    return pairs


@sms_app.command("set")
def sms_set(
    store: Store,
    provider: Annotated[
        str | None, typer.Option(help=f"One of: {', '.join(PROVIDERS)}; 'none' for the dev inbox.")
    ] = None,
    credential: Annotated[
        list[str] | None,
        typer.Option(
            help="name=value (repeat). Lands in shell history: prefer --credentials-stdin."
        ),
    ] = None,
    credentials_stdin: Annotated[
        bool, typer.Option(help="Read name=value lines from standard input.")
    ] = False,
    sender: Annotated[
        str | None, typer.Option(help="The approved sender header: 3-11 letters, no Turkish ones.")
    ] = None,
    segment_limit: Annotated[
        int | None, typer.Option(help="`journeys validate` warns past this many segments.")
    ] = None,
    price_per_segment: Annotated[
        str | None, typer.Option(help="What one segment costs, in the store's currency.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Set a store's SMS provider and what goes with it; what is not given stays."""
    given = _pairs(list(credential or []))
    if credentials_stdin:
        given |= _pairs(sys.stdin.read().splitlines())
    price = None
    if price_per_segment is not None:
        try:
            price = Decimal(price_per_segment)
        except InvalidOperation as error:
            raise typer.BadParameter(f"not a price: {price_per_segment!r}") from error

    async def main(session: AsyncSession) -> SmsSetup:
        return await set_sms(
            session,
            store_id=store,
            clock=SystemClock(),
            provider=None if provider == "none" else provider,
            clear_provider=provider == "none",
            credentials=given,
            sender=sender,
            segment_limit=segment_limit,
            price_per_segment=price,
        )

    _print(in_transaction(main), as_json)


@sms_app.command("show")
def sms_show(store: Store, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A store's SMS setup: which credentials are set, never their values."""

    async def main(session: AsyncSession) -> SmsSetup:
        return await sms_setup(session, store_id=store)

    _print(reading(main), as_json)


@messages_app.command("sms")
def messages_sms(
    store: Store,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A store's latest SMS: status, segments and what they cost."""

    async def main(session: AsyncSession) -> tuple[SmsSetup, list[SmsEntry]]:
        setup = await sms_setup(session, store_id=store)
        return setup, await recent_sms(session, store_id=store, limit=limit)

    setup, entries = reading(main)
    rows: list[dict[str, Any]] = []
    for entry in entries:
        length = sms_length(entry.text)
        price = cost(length.segments, setup)
        rows.append(
            {
                "id": entry.id,
                "created_at": entry.created_at.isoformat(),
                "to": entry.to,
                "template": entry.template,
                "status": entry.status,
                "segments": length.segments,
                "encoding": length.encoding,
                "cost": format(price.normalize(), "f") if price is not None else None,
                "currency": setup.currency,
                "reason": entry.reason,
                "text": entry.text,
            }
        )
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("id", "created (UTC)", "to", "template", "status", "segments", "cost", "reason")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["created_at"][:19],
            row["to"],
            row["template"],
            row["status"],
            f"{row['segments']} ({row['encoding']})",
            f"{row['cost']} {row['currency']}" if row["cost"] is not None else "-",
            row["reason"] or "",
        )
    console.print(table)
