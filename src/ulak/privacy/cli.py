"""`ulak customers`: answer a customer's KVKK/GDPR request from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.config import get_settings
from ulak.customers.service import find_customer
from ulak.events.inbox import Inbox
from ulak.privacy.service import Erased, erase_customer, export_customer
from ulak.stores.service import get_store
from ulak.terminal import console, err, open_database, reading, run

customers_app = typer.Typer(
    help="A customer's KVKK/GDPR requests: export what ulak holds, or erase it.",
    no_args_is_help=True,
)
StoreOption = Annotated[int, typer.Option("--store", help="The store's id.")]
CustomerArgument = Annotated[str, typer.Argument(help="The shop's customer id or an email.")]


@customers_app.command("export")
def customers_export(
    store: StoreOption,
    customer: CustomerArgument,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON here instead of printing it.")
    ] = None,
) -> None:
    """Everything ulak holds on a customer, as one JSON document."""

    async def main(session: AsyncSession) -> dict[str, Any]:
        await get_store(session, store)
        found = await find_customer(session, store_id=store, ref=customer)
        data = await export_customer(session, store_id=store, customer_id=found.id)
        assert data is not None
        return data.as_json()

    document = json.dumps(reading(main), ensure_ascii=False, indent=2) + "\n"
    if out is None:
        sys.stdout.write(document)
        return
    # Only its owner may read it: it holds the customer's data.
    out.touch(mode=0o600)
    out.write_text(document, encoding="utf-8")
    err.print(f"written to {out}", highlight=False)


@customers_app.command("erase")
def customers_erase(store: StoreOption, customer: CustomerArgument) -> None:
    """Erase a customer now: personal data removed or emptied everywhere ulak keeps it,
    consent proof kept as digests, orders kept anonymous, pending messages skipped."""
    erased = run(_erase(store, customer))
    console.print(
        f"customer {erased.customer_id} erased: {erased.profiles} profile(s), "
        f"{erased.orders} order(s) kept anonymous, {erased.carts} cart(s) deleted, "
        f"{erased.events} event(s) emptied, {erased.messages} message(s) emptied "
        f"({erased.cancelled_messages} cancelled), {erased.enrollments} enrollment(s), "
        f"{erased.consent_changes} consent change(s) kept as proof, "
        f"{erased.back_in_stock} back-in-stock subscription(s), {erased.timers} timer(s), "
        f"{erased.reviews} review(s) and {erased.topic_preferences} topic choice(s) deleted, "
        f"{erased.returns} return(s) and {erased.survey_comments} survey comment(s) emptied",
        highlight=False,
    )


async def _erase(store: int, customer: str) -> Erased:
    database = open_database(get_settings())
    clock = SystemClock()
    try:
        async with database.transaction() as session:
            await get_store(session, store)
            found = await find_customer(session, store_id=store, ref=customer)
            erased = await erase_customer(session, customer=found, now=clock.now())
        if database.is_sqlite:
            # Like the worker and the API after an erasure: empty the WALs, and the inbox
            # of the events the worker has copied (deleting those is safe from any process).
            await database.checkpoint()
            await database.checkpoint("outcomes")
            await Inbox(database, clock, on_commit=lambda: None).scrub()
        return erased
    finally:
        await database.dispose()
