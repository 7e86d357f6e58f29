"""`ulak returns`: a store's return policy (`settings`) and its return requests (`list`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.returns.service import (
    STATUSES,
    Policy,
    find_return,
    list_returns,
    parse_reason,
    policy_of,
    return_view,
    set_policy,
)
from ulak.stores.service import get_store
from ulak.terminal import console, in_transaction, reading

returns_app = typer.Typer(
    help="Returns and exchanges: a store's return policy and its customers' requests.",
    no_args_is_help=True,
)
Store = Annotated[int, typer.Option("--store", help="The store's id.")]


def _print_policy(policy: Policy, as_json: bool) -> None:
    shown = policy.as_dict()
    if as_json:
        sys.stdout.write(json.dumps(shown, ensure_ascii=False) + "\n")
        return
    console.print(f"window_days: {policy.window_days}", markup=False)
    console.print(f"resolutions: {', '.join(policy.resolutions)}", markup=False)
    console.print(f"credit_bonus_percent: {policy.credit_bonus_percent}", markup=False)
    for language, text in sorted(policy.policy.items()):
        console.print(f"policy ({language}): {text}", markup=False)
    for reason in policy.reasons:
        console.print(
            f"reason {reason['code']}: {reason.get('tr')} | {reason.get('en')}", markup=False
        )


@returns_app.command("settings")
def returns_settings(
    store: Store,
    window_days: Annotated[
        int | None, typer.Option(help="Days after delivery a return is taken (default 14).")
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="The policy text for every language ('' removes it).")
    ] = None,
    policy_tr: Annotated[str | None, typer.Option(help="The policy text in Turkish.")] = None,
    policy_en: Annotated[str | None, typer.Option(help="The policy text in English.")] = None,
    exchange: Annotated[
        bool | None, typer.Option("--exchange/--no-exchange", help="Offer exchanges.")
    ] = None,
    store_credit: Annotated[
        bool | None,
        typer.Option("--store-credit/--no-store-credit", help="Offer store credit."),
    ] = None,
    credit_bonus: Annotated[
        int | None, typer.Option(help="Percent added to store credit (0-100).")
    ] = None,
    reason: Annotated[
        list[str] | None,
        typer.Option(
            help="code=Türkçe|English (repeat; replaces the list). --default-reasons restores."
        ),
    ] = None,
    default_reasons: Annotated[bool, typer.Option(help="Go back to the default reasons.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a store's return policy, or change what is given (the rest stays). A refund is
    always offered."""
    texts: dict[str, str | None] = {}
    for language, text in (("*", policy), ("tr", policy_tr), ("en", policy_en)):
        if text is not None:
            texts[language] = text or None
    reasons: list[dict[str, str]] | None = [] if default_reasons else None
    if reason:
        reasons = [parse_reason(r) for r in reason]
    changing = (
        texts
        or reasons is not None
        or any(v is not None for v in (window_days, exchange, store_credit, credit_bonus))
    )

    async def main(session: AsyncSession) -> Policy:
        await get_store(session, store)
        if not changing:
            return await policy_of(session, store_id=store)
        return await set_policy(
            session,
            store_id=store,
            now=SystemClock().now(),
            window_days=window_days,
            policy=texts or None,
            offer_exchange=exchange,
            offer_store_credit=store_credit,
            credit_bonus_percent=credit_bonus,
            reasons=reasons,
        )

    _print_policy(in_transaction(main) if changing else reading(main), as_json)


@returns_app.command("list")
def returns_list(
    store: Store,
    status: Annotated[
        str | None, typer.Option(help=f"Only returns in this status: {', '.join(STATUSES)}.")
    ] = None,
    order: Annotated[str | None, typer.Option(help="Only this order's returns.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A store's return requests, newest first."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"a status is one of {', '.join(STATUSES)}")

    async def main(session: AsyncSession) -> list[dict[str, Any]]:
        shop = await get_store(session, store)
        policy = await policy_of(session, store_id=store)
        rows = await list_returns(
            session, store_id=store, status=status, order_id=order, limit=limit
        )
        return [return_view(row, policy=policy, locale=shop.locale) for row in rows]

    views = reading(main)
    if as_json:
        sys.stdout.write(json.dumps(views, ensure_ascii=False) + "\n")
        return
    table = Table("reference", "created (UTC)", "order", "status", "resolution", "items", "amount")
    for view in views:
        table.add_row(
            view["reference"],
            view["created_at"][:19],
            view["order_id"],
            view["status"],
            view["resolution"],
            ", ".join(f"{i['quantity']} × {i['title']}" for i in view["items"]),
            f"{view['amount']} {view['currency']}",
        )
    console.print(table)


@returns_app.command("show")
def returns_show(
    store: Store, reference: Annotated[str, typer.Argument(help="Like R-7KQ2-9XMD.")]
) -> None:
    """One return request, as JSON."""

    async def main(session: AsyncSession) -> dict[str, Any]:
        shop = await get_store(session, store)
        policy = await policy_of(session, store_id=store)
        row = await find_return(session, store_id=store, reference=reference.upper())
        return return_view(row, policy=policy, locale=shop.locale)

    sys.stdout.write(json.dumps(reading(main), ensure_ascii=False, indent=2) + "\n")
