"""`ulak reviews`: a store's review settings and moderation from the terminal (an admin's
writes, made at once)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.reviews.service import list_reviews, moderate, set_settings, settings_of
from ulak.stores.service import get_store
from ulak.terminal import console, in_transaction, reading

reviews_app = typer.Typer(help="Reviews: settings and moderation.", no_args_is_help=True)
StoreOption = Annotated[int, typer.Option("--store", help="The store's id.")]


def _settings_view(settings: Any) -> dict[str, Any]:
    return {
        "moderate": settings.moderate,
        "delay_days": settings.delay_days,
        "tag_delays": dict(settings.tag_delays),
    }


@reviews_app.command("settings")
def settings_command(
    store: StoreOption,
    moderate_: Annotated[
        bool | None,
        typer.Option(
            "--moderate/--no-moderate", help="Hold new reviews until approved (default: off)."
        ),
    ] = None,
    delay_days: Annotated[
        int | None,
        typer.Option("--delay-days", help="Days after delivery before asking (default 7)."),
    ] = None,
    tag_delay: Annotated[
        list[str] | None,
        typer.Option(
            "--tag-delay",
            help="TAG=DAYS: ask this many days after delivery for products with TAG (the "
            "order's longest wins); TAG= removes it. Repeatable.",
        ),
    ] = None,
) -> None:
    """Show the store's review settings, changing those given."""
    tags: dict[str, int | None] = {}
    for pair in tag_delay or []:
        tag, sep, days = pair.partition("=")
        if not sep or not tag.strip() or (days.strip() and not days.strip().isdigit()):
            raise typer.BadParameter(f"{pair!r}: write TAG=DAYS", param_hint="--tag-delay")
        tags[tag.strip()] = int(days) if days.strip() else None

    async def main(session: AsyncSession) -> dict[str, Any]:
        await get_store(session, store)
        if moderate_ is None and delay_days is None and not tags:
            return _settings_view(await settings_of(session, store_id=store))
        changed = await set_settings(
            session,
            store_id=store,
            now=SystemClock().now(),
            moderate=moderate_,
            delay_days=delay_days,
            tag_delays=tags,
        )
        return _settings_view(changed)

    sys.stdout.write(json.dumps(in_transaction(main), ensure_ascii=False) + "\n")


@reviews_app.command("list")
def list_command(
    store: StoreOption,
    status: Annotated[
        str | None,
        typer.Option("--status", help="pending, published or rejected (default: all)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The store's reviews, newest first (at most 100)."""

    async def main(session: AsyncSession) -> list[dict[str, Any]]:
        await get_store(session, store)
        return [
            {
                "id": r.id,
                "status": r.status,
                "rating": r.rating,
                "product_id": r.product_id,
                "order_id": r.order_id,
                "name": r.display_name,
                "title": r.title,
                "body": r.body,
                "reason": r.reason,
                "reply": r.reply,
                "submitted_at": r.submitted_at.isoformat(),
            }
            for r in await list_reviews(session, store_id=store, status=status)
        ]

    rows = reading(main)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("id", "status", "stars", "product", "name", "title", "text")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["status"],
            str(r["rating"]),
            r["product_id"],
            r["name"],
            r["title"],
            r["body"][:80],
        )
    console.print(table)


def _moderate(store: int, review_id: int, action: str, **extra: str | None) -> None:
    async def main(session: AsyncSession) -> str:
        await get_store(session, store)
        review = await moderate(
            session,
            store_id=store,
            review_id=review_id,
            action=action,
            now=SystemClock().now(),
            **extra,
        )
        return review.status

    status = in_transaction(main)
    console.print(f"review {review_id}: {action} done ({status})", markup=False)


@reviews_app.command("approve")
def approve_command(review_id: int, store: StoreOption) -> None:
    """Publish a review."""
    _moderate(store, review_id, "approve")


@reviews_app.command("reject")
def reject_command(
    review_id: int,
    store: StoreOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the review).")],
) -> None:
    """Reject a review, with the reason."""
    _moderate(store, review_id, "reject", reason=reason)


@reviews_app.command("reply")
def reply_command(
    review_id: int,
    text: Annotated[str, typer.Argument(help="The shop's public reply ('' removes it).")],
    store: StoreOption,
) -> None:
    """Reply to a review in public."""
    _moderate(store, review_id, "reply", reply=text)
