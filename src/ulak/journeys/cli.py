"""`ulak journeys`: a store's journey definitions."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.clock import SystemClock
from ulak.journeys.definition import JourneyFileError, load_journey_file
from ulak.journeys.service import apply_journey, list_journeys
from ulak.operations import retry_steps, set_journey_enabled
from ulak.stores.service import get_store
from ulak.terminal import console, err, in_transaction, reading, run_retry

journeys_app = typer.Typer(help="Journey definitions.", no_args_is_help=True)


@journeys_app.command("validate")
def journeys_validate(paths: list[Path]) -> None:
    """Check journey files; errors name the file, line and field."""
    failed = False
    for path in paths:
        try:
            definition = load_journey_file(path)
        except JourneyFileError as error:
            failed = True
            for problem in error.problems:
                err.print(str(problem), markup=False, highlight=False)
            continue
        except OSError as error:
            failed = True
            err.print(f"{path}: {error.strerror}", markup=False)
            continue
        console.print(f"{path}: ok ({definition.key}, {len(definition.steps)} steps)", markup=False)
    if failed:
        raise typer.Exit(1)


@journeys_app.command("apply")
def journeys_apply(
    paths: list[Path], store: Annotated[int, typer.Option(help="Store id.")]
) -> None:
    """Store journey files as new versions (running enrollments keep theirs)."""
    loaded = []
    for path in paths:
        try:
            loaded.append((load_journey_file(path), path.read_text(encoding="utf-8")))
        except JourneyFileError as error:
            for problem in error.problems:
                err.print(str(problem), markup=False, highlight=False)
            raise typer.Exit(1) from error

    async def main(session: AsyncSession) -> list[tuple[str, int, bool]]:
        await get_store(session, store)
        out = []
        for definition, source in loaded:
            journey, version, changed = await apply_journey(
                session,
                store_id=store,
                definition=definition,
                source=source,
                clock=SystemClock(),
            )
            out.append((journey.key, version, changed))
        return out

    for key, version, changed in in_transaction(main):
        state = "new version" if changed else "unchanged"
        console.print(f"{key}: version {version} ({state})", markup=False)


@journeys_app.command("list")
def journeys_list(
    store: Annotated[int, typer.Option(help="Store id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List a store's journeys with their versions and live enrollments."""

    async def main(session: AsyncSession) -> list[dict[str, Any]]:
        await get_store(session, store)
        return await list_journeys(session, store_id=store)

    rows = reading(main)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("key", "name", "trigger", "version", "enabled", "live")
    for r in rows:
        table.add_row(
            r["key"],
            r["name"],
            r["trigger"],
            str(r["version"]),
            "yes" if r["enabled"] else "no",
            str(r["live_enrollments"]),
        )
    console.print(table)


@journeys_app.command("disable")
def journeys_disable(key: str, store: Annotated[int, typer.Option(help="Store id.")]) -> None:
    """Switch a journey off: nothing more is sent from it, its live enrollments exit."""
    stopped = _set_enabled(key, store, enabled=False)
    console.print(
        f"{key}: disabled; {stopped} live enrollment(s) stopped, their queued messages skipped",
        markup=False,
    )


@journeys_app.command("enable")
def journeys_enable(key: str, store: Annotated[int, typer.Option(help="Store id.")]) -> None:
    """Switch a journey on again: new events start it."""
    _set_enabled(key, store, enabled=True)
    console.print(f"{key}: enabled", markup=False)


def _set_enabled(key: str, store: int, *, enabled: bool) -> int:
    async def main(session: AsyncSession) -> int:
        await get_store(session, store)
        return await set_journey_enabled(
            session, store_id=store, key=key, enabled=enabled, clock=SystemClock()
        )

    return in_transaction(main)


steps_app = typer.Typer(help="Journey steps that failed.", no_args_is_help=True)


@steps_app.command("retry")
def steps_retry(
    store: Annotated[int, typer.Option(help="Store id.")],
    enrollments: Annotated[
        list[int] | None, typer.Argument(help="Enrollment ids (see `ulak status`).")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Every failed enrollment of the store since then (UTC).")
    ] = None,
) -> None:
    """Run failed enrollments again from the step that failed, with fresh attempts."""
    retried = run_retry(retry_steps, store, enrollments, since)
    console.print(f"{len(retried)} enrollment(s) will run again: {_ids(retried)}", markup=False)


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) if ids else "none was failed"
