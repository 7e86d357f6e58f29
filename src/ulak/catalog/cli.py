"""`ulak catalog`: what a store says about its products beyond `product.updated`, such as
its usage tip for every product of a tag."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.service import remove_tag_tip, set_tag_tip, tag_tips
from ulak.clock import SystemClock
from ulak.stores.service import get_store
from ulak.terminal import console, in_transaction, reading

catalog_app = typer.Typer(help="A store's catalogue content.", no_args_is_help=True)
tips_app = typer.Typer(
    help="Usage tips per product tag, for products that bring no tips of their own.",
    no_args_is_help=True,
)
catalog_app.add_typer(tips_app, name="tips")
StoreOption = Annotated[int, typer.Option("--store", help="The store's id.")]


@tips_app.command("set")
def tips_set(
    tag: Annotated[str, typer.Argument(help="The product tag, as product.updated sends it.")],
    text: Annotated[str, typer.Argument(help="The tip, in the store's language.")],
    store: StoreOption,
) -> None:
    """Set the tip shown for products with TAG (a product's own tips win)."""

    async def main(session: AsyncSession) -> None:
        await get_store(session, store)
        await set_tag_tip(session, store_id=store, tag=tag, text=text, now=SystemClock().now())

    in_transaction(main)
    console.print(f"tip for tag {tag.strip()} set", markup=False)


@tips_app.command("remove")
def tips_remove(tag: str, store: StoreOption) -> None:
    """Remove the tip of TAG."""

    async def main(session: AsyncSession) -> None:
        await get_store(session, store)
        await remove_tag_tip(session, store_id=store, tag=tag)

    in_transaction(main)
    console.print(f"tip for tag {tag} removed", markup=False)


@tips_app.command("list")
def tips_list(
    store: StoreOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The store's tips per tag."""

    async def main(session: AsyncSession) -> list[tuple[str, str]]:
        await get_store(session, store)
        return [(tip.tag, tip.text) for tip in await tag_tips(session, store_id=store)]

    rows = reading(main)
    if as_json:
        sys.stdout.write(
            json.dumps([{"tag": t, "text": x} for t, x in rows], ensure_ascii=False) + "\n"
        )
        return
    table = Table("tag", "tip")
    for tag, text in rows:
        table.add_row(tag, text)
    console.print(table)
