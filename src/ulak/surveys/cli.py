"""`ulak surveys`: a store's survey settings and its scores."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.errors import Invalid
from ulak.stores.service import get_store
from ulak.surveys.service import (
    Period,
    SurveySetup,
    check_day,
    scores,
    set_survey_setup,
    survey_setup,
)
from ulak.terminal import console, in_transaction, reading

surveys_app = typer.Typer(
    help="Satisfaction surveys (CSAT or NPS) after delivery: settings and scores.",
    no_args_is_help=True,
)
Store = Annotated[int, typer.Option("--store", help="The store's id.")]


def _print_setup(setup: SurveySetup, as_json: bool) -> None:
    shown = {
        "store_id": setup.store_id,
        "kind": setup.kind,
        "delay_days": setup.delay_days,
        "make_good": setup.make_good,
    }
    if as_json:
        sys.stdout.write(json.dumps(shown) + "\n")
        return
    for key, value in shown.items():
        console.print(f"{key}: {value}", markup=False)


@surveys_app.command("settings")
def settings(
    store: Store,
    kind: Annotated[str | None, typer.Option(help="csat (1-5, the default) or nps (0-10).")] = None,
    delay_days: Annotated[
        int | None, typer.Option(help="Days after delivery to ask (default 2).")
    ] = None,
    make_good: Annotated[
        bool | None,
        typer.Option(
            "--make-good/--no-make-good",
            help="Send detractors a code of the store's `make-good` coupon template.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a store's survey settings; change what is given."""

    async def main(session: AsyncSession) -> SurveySetup:
        if kind is None and delay_days is None and make_good is None:
            await get_store(session, store)
            return await survey_setup(session, store_id=store)
        return await set_survey_setup(
            session,
            store_id=store,
            clock=SystemClock(),
            kind=kind,
            delay_days=delay_days,
            make_good=make_good,
        )

    _print_setup(in_transaction(main), as_json)


@surveys_app.command("scores")
def scores_command(
    store: Store,
    start: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First day (default: 30 days ago)."),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last day, included (default: today)."),
    ] = None,
    by: Annotated[str, typer.Option(help="day, week or month.")] = "week",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """NPS and CSAT between two days, per day, week or month."""
    if by not in ("day", "week", "month"):
        raise typer.BadParameter("day, week or month", param_hint="--by")
    period: Period = by  # type: ignore[assignment]
    try:
        # Checked before the default start is counted back from the end.
        last = check_day(end.date(), "--to") if end else SystemClock().now().date()
        first = check_day(start.date(), "--from") if start else last - timedelta(days=29)
    except Invalid as error:
        raise typer.BadParameter(error.message) from error

    async def main(session: AsyncSession) -> dict[str, Any]:
        return await scores(
            session, store=await get_store(session, store), start=first, end=last, by=period
        )

    result = reading(main)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    _print_scores(result, first, last)


def _print_scores(result: dict[str, Any], first: date, last: date) -> None:
    console.print(f"{first} – {last} ({result['timezone']})", markup=False)
    nps = result["nps"]
    if nps["answers"]:
        table = Table("from", "answers", "promoters", "passives", "detractors", "NPS")
        for row in [*nps["periods"], {"start": "total", **nps}]:
            table.add_row(
                row["start"],
                str(row["answers"]),
                str(row["promoters"]),
                str(row["passives"]),
                str(row["detractors"]),
                f"{row['nps']:+.1f}",
            )
        console.print(table)
    csat = result["csat"]
    if csat["answers"]:
        table = Table("from", "answers", "average", "satisfied (4-5)")
        for row in [*csat["periods"], {"start": "total", **csat}]:
            table.add_row(
                row["start"],
                str(row["answers"]),
                f"{row['average']:.2f}",
                f"{row['satisfied']} ({row['satisfied_percent']:.1f} %)",
            )
        console.print(table)
    if not nps["answers"] and not csat["answers"]:
        console.print("no answers in this time", markup=False)
