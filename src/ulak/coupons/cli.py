"""`ulak coupons`: a store's coupon templates, its pools of codes, and one code."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.coupons.schemas import CouponOut, ImportReport, Kind, Source, TemplateChange, TemplateOut
from ulak.coupons.service import find_coupon, import_pool, list_templates, set_template
from ulak.stores.service import get_store
from ulak.terminal import console, err, in_transaction, reading

coupons_app = typer.Typer(
    help="Coupon templates, pools of codes the shop made, and the codes issued.",
    no_args_is_help=True,
)
StoreOption = Annotated[int, typer.Option("--store", help="The store's id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _value(template: TemplateOut) -> str:
    if template.kind == "percent":
        return f"{template.amount.normalize():f} %"
    return str(template.amount)


def _print_templates(templates: list[TemplateOut]) -> None:
    table = Table("key", "kind", "value", "minimum order", "valid days", "prefix", "source", "left")
    for t in templates:
        minimum = str(t.minimum_order) if t.minimum_order is not None else ""
        # A pool runs dry; made codes never do.
        left = str(t.available) if t.source == "pool" else ""
        table.add_row(
            t.key, t.kind, _value(t), minimum, str(t.validity_days), t.prefix, t.source, left
        )
    console.print(table)


@coupons_app.command("templates")
def coupons_templates(store: StoreOption, as_json: JsonOption = False) -> None:
    """List a store's coupon templates; a pool's says how many codes it has left."""

    async def main(session: AsyncSession) -> list[TemplateOut]:
        await get_store(session, store)
        return await list_templates(session, store_id=store)

    templates = reading(main)
    if as_json:
        sys.stdout.write(json.dumps([t.model_dump(mode="json") for t in templates]) + "\n")
        return
    _print_templates(templates)


@coupons_app.command("set-template")
def coupons_set_template(
    key: Annotated[str, typer.Argument(help="The template's key, as journeys name it.")],
    store: StoreOption,
    kind: Annotated[Kind | None, typer.Option(help="percent or fixed.")] = None,
    amount: Annotated[
        Decimal | None, typer.Option(help="Percent off, or the amount off in the store currency.")
    ] = None,
    minimum_order: Annotated[
        Decimal | None, typer.Option(help="The least order total it applies to; 0 for none.")
    ] = None,
    valid_days: Annotated[
        int | None, typer.Option(help="How many days a code is valid after it is issued.")
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help="The start of each code ulak makes, like HOSGELDIN.")
    ] = None,
    source: Annotated[
        Source | None,
        typer.Option(help="generated: ulak makes the codes; pool: codes you import."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a coupon template, or change the settings given (the others stay). Codes
    already issued keep the value they were issued with."""
    options: dict[str, Any] = {
        "kind": kind,
        "amount": amount,
        "minimum_order": minimum_order,
        "validity_days": valid_days,
        "prefix": prefix,
        "source": source,
    }
    try:
        change = TemplateChange(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as error:
        for problem in error.errors(include_url=False):
            option = {"validity_days": "valid_days"}.get(str(problem["loc"][0]), problem["loc"][0])
            err.print(f"[red]--{str(option).replace('_', '-')}[/red]: {problem['msg']}")
        raise typer.Exit(2) from error

    async def main(session: AsyncSession) -> TemplateOut:
        await get_store(session, store)
        return await set_template(
            session, store_id=store, key=key, change=change, now=SystemClock().now()
        )

    template = in_transaction(main)
    if as_json:
        sys.stdout.write(template.model_dump_json() + "\n")
        return
    _print_templates([template])


@coupons_app.command("import")
def coupons_import(
    path: Annotated[Path, typer.Argument(help="One code a line, or CSV with a code column.")],
    store: StoreOption,
    template: Annotated[str, typer.Option(help="The pool template the codes are for.")],
) -> None:
    """Add codes your shop created to a template's pool: journeys issue them oldest first,
    each once. A file with a bad or repeated line imports nothing; codes the pool already
    has are passed over, so importing a file again is harmless."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        err.print(f"error: {path}: {error}", markup=False)
        raise typer.Exit(2) from error

    async def main(session: AsyncSession) -> ImportReport:
        await get_store(session, store)
        return await import_pool(
            session, store_id=store, template_key=template, text=text, now=SystemClock().now()
        )

    report = in_transaction(main)
    if report.problems:
        for line, problem in report.problems:
            err.print(f"{path}:{line}: {problem}", markup=False, highlight=False)
        err.print(f"nothing was imported: fix the {len(report.problems)} line(s) above")
        raise typer.Exit(1)
    console.print(
        f"{report.added} code(s) added to the pool of {template}"
        + (f", {report.already} already there" if report.already else ""),
        markup=False,
    )


@coupons_app.command("show")
def coupons_show(
    code: Annotated[str, typer.Argument(help="The code, in any case.")],
    store: StoreOption,
    as_json: JsonOption = False,
) -> None:
    """One code: its value, expiry, customer, the journey that issued it, its order."""

    async def main(session: AsyncSession) -> CouponOut:
        await get_store(session, store)
        return await find_coupon(session, store_id=store, code=code, now=SystemClock().now())

    coupon = reading(main)
    if as_json:
        sys.stdout.write(coupon.model_dump_json() + "\n")
        return
    for field, value in coupon.model_dump().items():
        if value is not None:
            console.print(f"{field}: {value}", markup=False, highlight=False)
