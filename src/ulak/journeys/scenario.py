"""Simulation scenarios (`ulak simulate`): a store, its journeys, and events at moments.

```yaml
store: {locale: tr, timezone: Europe/Istanbul, currency: TRY}   # any `ulak stores create` setting
journeys: [order-confirmation, my-journey.yaml]   # shipped keys or files; default: a new store's
start: "2026-03-02T09:00:00+03:00"
events:
  - at: "+0s"                      # an ISO time with its offset, or + a duration after the last
    event: {type: order.placed, customer: {...}, data: {...}}      # as POST /v1/events takes it
run_until: "+10d"                  # after the last event; default: until nothing is left to do
```

Problems name the scenario's line, as a journey file's do (`yamlfile.py`); an event is
checked by the same validation as `POST /v1/events` (`events.schemas.validate_event`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from ulak.events.schemas import EARLIEST, LATEST, EventIn, validate_event
from ulak.journeys.definition import (
    JourneyDefinition,
    JourneyFileError,
    load_journey,
    load_journey_file,
    parse_duration,
)
from ulak.journeys.service import library
from ulak.journeys.yamlfile import (
    Problem,
    YamlDocument,
    YamlFileError,
    parse_mapping,
    read_text,
)
from ulak.stores.schemas import StoreCreate, StoreName


class ScenarioError(YamlFileError):
    """A scenario's problems, each with its line."""


_MOMENT_HINT = "use an ISO 8601 time with its offset, like 2026-03-02T09:00:00+03:00"


def _moment(value: Any) -> datetime:
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise PydanticCustomError(
                "moment", "invalid time {value}: {hint}", {"value": shown, "hint": _MOMENT_HINT}
            ) from None
    if not isinstance(value, datetime):
        kind = "a date without a time" if isinstance(value, date) else "not a time"
        raise PydanticCustomError(
            "moment",
            "{value} is {kind}: {hint}",
            {"value": shown, "kind": kind, "hint": _MOMENT_HINT},
        )
    if value.tzinfo is None:
        raise PydanticCustomError(
            "moment", "{value} has no offset: {hint}", {"value": shown, "hint": _MOMENT_HINT}
        )
    if not EARLIEST <= value < LATEST:
        raise PydanticCustomError(
            "moment", "must be between {first} and {last}",
            {"first": EARLIEST.year, "last": LATEST.year - 1},
        )  # fmt: skip
    return value


def _moment_or_offset(value: Any) -> datetime | timedelta:
    if isinstance(value, str) and value.strip().startswith("+"):
        try:
            return timedelta(seconds=parse_duration(value.strip()[1:], zero=True))
        except ValueError:
            raise PydanticCustomError(
                "offset",
                'invalid time "{value}": a + and a duration, like +0s, +2h or +1d12h, or {hint}',
                {"value": value, "hint": _MOMENT_HINT.removeprefix("use ")},
            ) from None
    return _moment(value)


Moment = Annotated[datetime, BeforeValidator(_moment)]
MomentOrOffset = Annotated[datetime | timedelta, BeforeValidator(_moment_or_offset)]


class ScenarioStore(StoreCreate):
    """The store's settings, those `ulak stores create` takes; a name is made up."""

    name: StoreName = "Simulated shop"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _TimedEvent(_Strict):
    at: MomentOrOffset = timedelta(0)
    # Checked as POST /v1/events checks it, once its line is known (`load_scenario`).
    event: dict[str, Any]


class _ScenarioFile(_Strict):
    store: ScenarioStore = Field(default_factory=ScenarioStore)
    journeys: list[str] | None = None
    start: Moment
    events: list[_TimedEvent] = Field(default_factory=list)
    run_until: MomentOrOffset | None = None


@dataclass(frozen=True)
class TimedEvent:
    at: datetime
    event: EventIn
    # Where the scenario gives it, for what the run finds wrong with it.
    line: int


@dataclass(frozen=True)
class Scenario:
    filename: str
    store: StoreCreate
    # (definition, its YAML) of each journey the store has on; None: a new store's.
    journeys: list[tuple[JourneyDefinition, str]] | None
    start: datetime
    events: list[TimedEvent]
    # None: until nothing is left to do.
    run_until: datetime | None


def load_scenario_file(path: Path) -> Scenario:
    """A scenario file; its journey files are found relative to it."""
    return load_scenario(read_text(path, error=ScenarioError), str(path), base=path.parent)


def load_scenario(text: str, filename: str = "<scenario>", *, base: Path | None = None) -> Scenario:
    """Parse and check a scenario; ScenarioError lists every problem with its line.
    Journey files are read from `base` (the current directory by default)."""
    document = parse_mapping(
        text,
        filename,
        error=ScenarioError,
        needs="a scenario must be a mapping with start and events (and store, journeys, run_until)",
    )
    problems = document.duplicate_keys()
    try:
        parsed = _ScenarioFile.model_validate(document.data)
    except ValidationError as exc:
        problems += document.problems_of(exc)
        # And what is wrong with each event that could be read.
        entries = document.data.get("events")
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict) and isinstance(entry.get("event"), dict):
                _event(document, index, entry["event"], problems)
        raise ScenarioError(_in_order(problems, filename)) from None
    events: list[TimedEvent] = []
    moment = parsed.start
    for index, timed in enumerate(parsed.events):
        where = ("events", index)
        at = moment + timed.at if isinstance(timed.at, timedelta) else timed.at
        if at < moment:
            earlier = "the start" if index == 0 else "the event before it"
            problems.append(
                document.problem_at(
                    (*where, "at"), f"{at.isoformat()} is before {earlier} ({moment.isoformat()})"
                )
            )
        moment = max(at, moment)
        event = _event(document, index, timed.event, problems)
        if event is not None:
            line = document.problem_at(where, "").line
            events.append(TimedEvent(at.astimezone(UTC), event, line))
    run_until = parsed.run_until
    if isinstance(run_until, timedelta):
        run_until = moment + run_until
    elif run_until is not None and run_until < moment:
        problems.append(
            document.problem_at(
                ("run_until",),
                f"{run_until.isoformat()} is before the last event ({moment.isoformat()})",
            )
        )
    journeys = None
    if parsed.journeys is not None:
        journeys = _journeys(document, parsed.journeys, base or Path(), problems)
    if problems:
        raise ScenarioError(_in_order(problems, filename))
    return Scenario(
        filename=filename,
        store=parsed.store,
        journeys=journeys,
        start=parsed.start.astimezone(UTC),
        events=events,
        run_until=run_until.astimezone(UTC) if run_until is not None else None,
    )


def _journeys(
    document: YamlDocument, names: list[str], base: Path, problems: list[Problem]
) -> list[tuple[JourneyDefinition, str]]:
    """Each journey the scenario names: a shipped one by its key, or a file. A journey is
    simulated switched on, whatever its file says: it is tried before it is switched on."""
    shipped = {}
    for name, source in library():
        definition = load_journey(source, name)
        shipped[definition.key] = (definition, source)
    out: list[tuple[JourneyDefinition, str]] = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        where = ("journeys", index)
        if name.endswith((".yaml", ".yml")) or "/" in name:
            path = base / name
            try:
                loaded = (load_journey_file(path), path.read_text(encoding="utf-8"))
            except JourneyFileError as error:
                problems += error.problems
                continue
            except OSError as error:
                problems.append(document.problem_at(where, f"{path}: {error.strerror}"))
                continue
        elif name in shipped:
            loaded = shipped[name]
        else:
            known = ", ".join(sorted(shipped))
            message = f'unknown journey "{name}": the shipped ones are {known}, or give a file'
            problems.append(document.problem_at(where, message))
            continue
        definition, source = loaded
        if definition.key in seen:
            problems.append(
                document.problem_at(where, f'journey "{definition.key}" is given twice')
            )
            continue
        seen.add(definition.key)
        out.append((definition.model_copy(update={"enabled": True}), source))
    return out


def _event(
    document: YamlDocument, index: int, raw: dict[str, Any], problems: list[Problem]
) -> EventIn | None:
    """The event of `events[index]`, checked as POST /v1/events checks it."""
    event, found = validate_event(_as_json(raw))
    for problem in found:
        loc = ("events", index, "event", *_loc(problem.path))
        message = problem.message.removeprefix("Value error, ")
        if message == "Extra inputs are not permitted":
            message = f'unknown field "{loc[-1]}"'
        problems.append(document.problem_at(loc, message, at_key=message.startswith("unknown")))
    return event


def _as_json(value: Any) -> Any:
    """A YAML value as the API would receive it in JSON: YAML reads an unquoted time as a
    datetime and a key `1` as a number, which JSON spells as strings."""
    if isinstance(value, dict):
        return {str(key): _as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return value


_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _loc(path: str) -> list[str | int]:
    """The parts of a path `validate_event` names, like `data.items[0].price`."""
    if path == "(body)":
        return []
    return [int(index) if index else name for name, index in _PART.findall(path)]


def _in_order(problems: list[Problem], filename: str) -> list[Problem]:
    """The scenario's own problems by line, then those of the journey files it names."""
    return sorted(problems, key=lambda problem: (problem.file != filename, problem.line))
