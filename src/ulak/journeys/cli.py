"""`ulak journeys`: a store's journey definitions; `ulak simulate`: a scenario run on them."""

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
from ulak.config import get_settings
from ulak.errors import Invalid
from ulak.journeys.definition import (
    PROMOTIONS,
    JourneyDefinition,
    JourneyFileError,
    load_journey_file,
    promotion_problems,
    template_names,
)
from ulak.journeys.scenario import load_scenario_file
from ulak.journeys.service import apply_journey, list_journeys
from ulak.journeys.simulation import Timeline, simulate
from ulak.journeys.yamlfile import YamlFileError
from ulak.messages.rendering import shipped_reads
from ulak.messages.service import missing_templates, templates_reading
from ulak.operations import retry_steps, set_journey_enabled
from ulak.stores.service import get_store
from ulak.terminal import console, err, in_transaction, reading, run_retry

journeys_app = typer.Typer(help="Journey definitions.", no_args_is_help=True)


@journeys_app.command("validate")
def journeys_validate(
    paths: list[Path],
    store: Annotated[
        int | None, typer.Option(help="Also check the templates against this store's own.")
    ] = None,
) -> None:
    """Check journey files; errors name the file, line and field. Every template a journey
    sends must be shipped or, with --store, one of the store's own."""
    failed = False
    loaded: list[tuple[Path, JourneyDefinition]] = []
    sources: dict[Path, str] = {}
    for path in paths:
        try:
            loaded.append((path, load_journey_file(path)))
            sources[path] = path.read_text(encoding="utf-8")
        except JourneyFileError as error:
            failed = True
            for problem in error.problems:
                err.print(str(problem), markup=False, highlight=False)
        except OSError as error:
            failed = True
            err.print(f"{path}: {error.strerror}", markup=False)
    missing = _missing_templates([definition for _, definition in loaded], store)
    promotional = _promotional_templates([definition for _, definition in loaded], store)
    for path, definition in loaded:
        problems = missing.get(definition.key, [])
        for name in problems:
            failed = True
            where = (
                f"store {store}" if store is not None else "the shipped templates (or pass --store)"
            )
            err.print(f"{path}: template {name!r} is not among {where}", markup=False)
        promotions = promotion_problems(definition, sources[path], str(path), promotional)
        for problem in promotions:
            failed = True
            err.print(str(problem), markup=False, highlight=False)
        if not problems and not promotions:
            console.print(
                f"{path}: ok ({definition.key}, {len(definition.steps)} steps)", markup=False
            )
    for warning in _sms_warnings([definition for _, definition in loaded], store):
        err.print(f"warning: {warning}", markup=False)
    if failed:
        raise typer.Exit(1)


def _sms_warnings(definitions: list[JourneyDefinition], store: int | None) -> list[str]:
    """SMS templates whose sample takes more segments than the store's limit (the default
    limit and the shipped templates without a store)."""
    from ulak.config import get_settings
    from ulak.messages.service import brand_of, store_sms_sources
    from ulak.messages.sms import SAMPLE_BRAND, length_warnings
    from ulak.sms.service import DEFAULT_SEGMENT_LIMIT, sms_setup

    names = {name for d in definitions for name in template_names(d)}
    commercial = {
        name for d in definitions if d.legal_class == "commercial" for name in template_names(d)
    }
    base_url = get_settings().base_url
    if store is None:
        return length_warnings(
            names,
            brand=SAMPLE_BRAND,
            overrides={},
            limit=DEFAULT_SEGMENT_LIMIT,
            base_url=base_url,
            commercial=commercial,
        )

    async def main(session: AsyncSession) -> list[str]:
        found = await get_store(session, store)
        setup = await sms_setup(session, store_id=store)
        return length_warnings(
            names,
            brand=brand_of(found),
            overrides=await store_sms_sources(session, store_id=store, names=names),
            limit=setup.segment_limit,
            base_url=base_url,
            commercial=commercial,
        )

    return reading(main)


def _missing_templates(
    definitions: list[JourneyDefinition], store: int | None
) -> dict[str, list[str]]:
    """Each journey's templates that its store could not send (shipped ones only, without
    a store)."""
    from ulak.messages.rendering import shipped_templates
    from ulak.messages.sms import shipped_sms_templates

    named = {d.key: sorted(template_names(d)) for d in definitions}
    if store is None:
        shipped = {*shipped_templates(), *shipped_sms_templates()}
        return {key: [n for n in names if n not in shipped] for key, names in named.items()}

    async def main(session: AsyncSession) -> dict[str, list[str]]:
        await get_store(session, store)
        return {
            key: await missing_templates(session, store_id=store, names=names)
            for key, names in named.items()
        }

    return reading(main)


def _promotional_templates(
    definitions: list[JourneyDefinition], store: int | None
) -> dict[str, frozenset[str]]:
    """The templates these journeys send that show a promotion (shipped, and with a store
    its own versions), for the informational ones' check."""
    names = {name for d in definitions for name in template_names(d)}

    async def main(session: AsyncSession) -> dict[str, frozenset[str]]:
        if store is not None:
            await get_store(session, store)
        return await templates_reading(session, store_id=store, templates=names, names=PROMOTIONS)

    if store is None:
        return {n: r for n in sorted(names) if (r := shipped_reads(n, PROMOTIONS))}
    return reading(main)


@journeys_app.command("apply")
def journeys_apply(
    paths: list[Path], store: Annotated[int, typer.Option(help="Store id.")]
) -> None:
    """Store journey files as new versions (running enrollments keep theirs)."""
    loaded = []
    for path in paths:
        try:
            loaded.append((load_journey_file(path), path.read_text(encoding="utf-8"), path))
        except JourneyFileError as error:
            for problem in error.problems:
                err.print(str(problem), markup=False, highlight=False)
            raise typer.Exit(1) from error

    async def main(session: AsyncSession) -> list[tuple[str, int, bool]]:
        await get_store(session, store)
        out = []
        for definition, source, path in loaded:
            names = template_names(definition)
            if missing := await missing_templates(session, store_id=store, names=names):
                raise Invalid(
                    f"journey {definition.key}: template(s) {', '.join(missing)} not found for "
                    f"store {store}; add them with `ulak templates set NAME FILE --store {store}`"
                )
            journey, version, changed = await apply_journey(
                session,
                store_id=store,
                definition=definition,
                source=source,
                clock=SystemClock(),
                filename=str(path),
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


def simulate_command(
    scenario: Annotated[Path, typer.Argument(help="The scenario file (YAML).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the messages, as a JSON list.")
    ] = False,
) -> None:
    """Run the journeys on a scenario's events on a throwaway database, the clock moved
    from event to event, and print which message went to whom when, and which
    enrollments ended early and why."""
    try:
        timeline = simulate(load_scenario_file(scenario), base_url=get_settings().base_url)
    except YamlFileError as error:
        for problem in error.problems:
            err.print(str(problem), markup=False, highlight=False)
        raise typer.Exit(1) from error
    except OSError as error:
        err.print(f"{scenario}: {error.strerror}", markup=False, highlight=False)
        raise typer.Exit(1) from error
    if as_json:
        sys.stdout.write(json.dumps(_messages_json(timeline), ensure_ascii=False, indent=2) + "\n")
        # Not messages: on stderr, so stdout stays the list.
        for line in _other_lines(timeline):
            err.print(line, markup=False, highlight=False)
        return
    table = Table(title=f"{scenario}: {len(timeline.messages)} message(s), {timeline.timezone}")
    # On a narrow terminal every column stays, folded onto more lines.
    table.add_column("when", no_wrap=True)
    for column in ("journey", "template", "channel", "to"):
        table.add_column(column, overflow="fold")
    table.add_column("subject", min_width=12)
    for message in timeline.messages:
        table.add_row(
            _when(timeline, message.at),
            message.journey or "(ulak)",
            message.template,
            message.channel,
            message.to,
            message.subject,
        )
    console.print(table)
    for line in _other_lines(timeline):
        console.print(line, markup=False, highlight=False)
    console.print(
        f"simulated from {_when(timeline, timeline.start)} to {_when(timeline, timeline.end)}",
        markup=False,
        highlight=False,
    )


def _when(timeline: Timeline, at: datetime) -> str:
    return timeline.local(at).strftime("%a %Y-%m-%d %H:%M:%S")


def _messages_json(timeline: Timeline) -> list[dict[str, Any]]:
    return [
        {
            "at": timeline.local(m.at).isoformat(),
            "journey": m.journey,
            "template": m.template,
            "channel": m.channel,
            "to": m.to,
            "customer": m.customer,
            "subject": m.subject,
            "text": m.text,
        }
        for m in timeline.messages
    ]


def _other_lines(timeline: Timeline) -> list[str]:
    """What else happened, by time: messages not delivered, enrollments that ended early,
    events that failed; then what was still waiting at the end."""
    happened = [(u.at, u.describe()) for u in timeline.unsent]
    happened += [(e.at, e.describe()) for e in timeline.endings]
    happened += [(f.at, f.describe()) for f in timeline.failed_events]
    lines = [f"{_when(timeline, at)}  {text}" for at, text in sorted(happened, key=lambda h: h[0])]
    for unfinished in timeline.unfinished:
        until = unfinished.next_run_at
        later = f" until {_when(timeline, until)}" if until is not None else ""
        lines.append(f"at the end: {unfinished.describe()}{later}")
    return lines
