"""`ulak import customers|products|orders FILE --store ID`."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ulak.clock import SystemClock
from ulak.config import get_settings
from ulak.errors import UlakError
from ulak.imports.columns import load_columns
from ulak.imports.service import KINDS, Bad, Observer, Summary, run_import
from ulak.terminal import console, err, open_database, run

# Seconds an import waits for the write lock before it says so (and goes on waiting).
LOCK_NOTICE_SECONDS = 5.0


class _Shown(Observer):
    def __init__(self, progress: Progress | None, task: TaskID | None, errors: IO[str] | None):
        self.progress_bar = progress
        self.task = task
        self.errors = csv.writer(errors) if errors is not None else None
        self.bad_rows = 0

    def bad(self, bad: Bad) -> None:
        self.bad_rows += 1
        err.print(f"line {bad.line}: {bad.reason}", markup=False, highlight=False)
        if self.errors is not None:
            self.errors.writerow([bad.line, bad.reason])

    def progress(self, consumed_bytes: int, records: int) -> None:
        if self.progress_bar is not None and self.task is not None:
            self.progress_bar.update(self.task, completed=consumed_bytes, records=records)

    def waiting(self, reason: str) -> None:
        err.print(
            f"waiting for the database: {reason} (a busy worker); the import goes on when "
            "it is free",
            markup=False,
            highlight=False,
        )


class _Rate(ProgressColumn):
    """The records this run read, and how many a second."""

    def render(self, task: Task) -> Text:
        records = int(task.fields.get("records", 0))
        rate = records / task.elapsed if task.elapsed else 0.0
        return Text(f"{records:,} rows  {rate:,.0f} rows/s")


def import_command(
    kind: Annotated[str, typer.Argument(help=f"What the file holds: {', '.join(KINDS)}.")],
    file: Annotated[Path, typer.Argument(help="A CSV export or JSON lines.")],
    store: Annotated[int, typer.Option(help="The store's id.")],
    columns: Annotated[
        Path | None,
        typer.Option(
            help='A column map for a CSV of other columns: JSON {"field": "Column"} or '
            "lines `field = Column` (fields in the README's tables)."
        ),
    ] = None,
    errors: Annotated[
        Path | None,
        typer.Option(help="Also write the bad rows to this CSV file (line, reason)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON, without a progress bar.")
    ] = False,
) -> None:
    """Backfill history from a file: customers, products or orders, without starting any
    journey. Resumes where an interrupted run of the same file stopped; a second run adds
    nothing. Bad rows are reported with their line and skipped."""
    try:
        given = load_columns(columns) if columns is not None else None
    except (UlakError, OSError) as error:
        message = error.message if isinstance(error, UlakError) else f"{columns}: {error.strerror}"
        err.print(f"[red]error:[/red] {message}", highlight=False)
        raise typer.Exit(2) from error
    settings = get_settings()
    settings.lock_timeout_seconds = LOCK_NOTICE_SECONDS
    error_file = errors.open("w", encoding="utf-8", newline="") if errors is not None else None
    try:
        summary = _run(kind, file, store, given, error_file, as_json)
    finally:
        if error_file is not None:
            error_file.close()
    if as_json:
        console.print_json(json.dumps({**asdict(summary), "already_there": summary.already_there}))
    else:
        resumed = f" (resumed at record {summary.resumed_from:,})" if summary.resumed_from else ""
        console.print(
            f"import #{summary.run_id} of {summary.kind}{resumed}: {summary.read:,} read, "
            f"{summary.added:,} added, {summary.already_there:,} already there, "
            f"{summary.skipped:,} bad rows skipped; {summary.customers_added:,} new "
            f"customers, {summary.timers_set:,} lapse timers set, in {summary.seconds:.1f} s",
            markup=False,
            highlight=False,
        )
    if summary.read == 0:
        # Nothing could be read: the wrong file, or a map that matches no row.
        raise typer.Exit(1)


def _run(
    kind: str,
    file: Path,
    store: int,
    given: dict[str, str] | None,
    error_file: IO[str] | None,
    as_json: bool,
) -> Summary:
    async def main(progress: Progress | None, task: TaskID | None) -> Summary:
        database = open_database(get_settings())
        try:
            return await run_import(
                database,
                store_id=store,
                kind=kind,
                path=file,
                clock=SystemClock(),
                columns=given,
                observer=_Shown(progress, task, error_file),
            )
        finally:
            await database.dispose()

    if as_json:
        return run(main(None, None))
    progress = Progress(
        TextColumn(f"importing {kind}"),
        BarColumn(),
        DownloadColumn(),
        _Rate(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    with progress:
        task = progress.add_task(kind, total=file.stat().st_size, records=0)
        return run(main(progress, task))
