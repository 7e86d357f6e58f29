"""`ulak preferences`: the KVKK/GDPR requests customers made from the preference page."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.preferences.service import RequestRow, privacy_requests
from ulak.stores.service import get_store
from ulak.terminal import console, reading

preferences_app = typer.Typer(
    help="The preference centre: customers' KVKK/GDPR requests from its page.",
    no_args_is_help=True,
)
StoreOption = Annotated[int, typer.Option("--store", help="The store's id.")]


@preferences_app.command("requests")
def requests_list(
    store: StoreOption,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The requests to export or erase data customers made on the preference page, newest
    first. Answer one with `ulak customers export` or `ulak customers erase`."""

    async def main(session: AsyncSession) -> list[RequestRow]:
        await get_store(session, store)
        return await privacy_requests(session, store_id=store, limit=limit)

    rows = reading(main)
    if as_json:
        document = [
            {
                "id": r.id,
                "customer": r.customer,
                "customer_id": r.customer_id,
                "kind": r.kind,
                "source": r.source,
                "requested_at": r.requested_at.isoformat(),
            }
            for r in rows
        ]
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return
    if not rows:
        console.print("no requests", markup=False)
        return
    table = Table("id", "requested at", "kind", "customer", "source")
    for r in rows:
        table.add_row(
            str(r.id),
            r.requested_at.strftime("%Y-%m-%d %H:%M"),
            r.kind,
            r.customer or f"(ulak id {r.customer_id}, erased)",
            r.source,
        )
    console.print(table)
