"""Journey files: the schema, a YAML loader whose errors name file, line and field
(`yamlfile.py`), and a compiler to a flat program of ops that the engine steps through with
a program counter.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ulak.journeys.expressions import ExpressionError, check_expression
from ulak.journeys.yamlfile import Loc, YamlFileError, parse_mapping, read_text
from ulak.journeys.yamlfile import Problem as Problem  # what JourneyFileError.problems holds
from ulak.preferences.topics import Topic, topic_of

# ---------------------------------------------------------------------------------------------
# Field types

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_duration(text: str, *, zero: bool = False) -> int:
    """Seconds in a duration like "2h", "1d12h", "30m" or "45s" (and "0s" when `zero` is
    allowed); ValueError when invalid."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        shown = f'"{text}"' if isinstance(text, str) else repr(text)
        raise ValueError(
            f"invalid duration {shown}: use a number followed by d, h, m or s, like 2h or 1d12h"
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0 and not zero:
        raise ValueError(f'duration "{text}" must be longer than zero')
    return total


def _duration(value: Any) -> Any:
    try:
        parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None
    return value.strip()


_DAY_OFFSET = re.compile(r"^([+-]?)(\d{1,5})d$")


def parse_day_offset(text: str) -> int:
    """Days in an offset like "-3d", "+7d" or "0d"; ValueError when invalid."""
    match = _DAY_OFFSET.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        shown = f'"{text}"' if isinstance(text, str) else repr(text)
        raise ValueError(
            f"invalid offset {shown}: use whole days, before (-) or after the date, like -3d or 7d"
        )
    return -int(match[2]) if match[1] == "-" else int(match[2])


def _day_offset(value: Any) -> Any:
    try:
        days = parse_day_offset(value)
    except ValueError as exc:
        raise PydanticCustomError("day_offset", "{reason}", {"reason": str(exc)}) from None
    return f"{days:+d}d" if days else "0d"


def _expression(value: str) -> str:
    try:
        check_expression(value)
    except ExpressionError as exc:
        raise PydanticCustomError("expression", "{reason}", {"reason": str(exc)}) from None
    return value


def _time_of_day(value: Any) -> Any:
    match = _TIME_OF_DAY.match(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "time_of_day",
            "invalid time of day {value}: use 24-hour HH:MM, like 09:00 or 18:30",
            {"value": f'"{value}"' if isinstance(value, str) else repr(value)},
        )
    return f"{int(match[1]):02d}:{match[2]}"


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise PydanticCustomError("scalar", "expected text, a number, true or false, or null")


Duration = Annotated[str, BeforeValidator(_duration)]
DayOffset = Annotated[str, BeforeValidator(_day_offset)]
Scalar = Annotated[str | int | float | bool | None, PlainValidator(_scalar)]
Expression = Annotated[str, AfterValidator(_expression)]
TimeOfDay = Annotated[str, BeforeValidator(_time_of_day)]
JourneyKey = Annotated[str, Field(max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
EventType = Annotated[str, Field(max_length=100, pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")]
TemplateName = Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
CouponKey = Annotated[str, Field(max_length=50, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
TagName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\s]+$")]
AttributeName = Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------------------------------------
# The schema


class WaitUntil(_Model):
    until: TimeOfDay
    weekdays: list[Weekday] | None = Field(default=None, min_length=1)


class WaitWithin(_Model):
    """A wait of `for` whose end, when it falls outside [not_before, not_after) local time,
    moves to the next not_before: "3 hours later, but not at night". The hours may span
    midnight (`not_before: "22:00"`, `not_after: "06:00"`)."""

    for_: Duration = Field(alias="for")
    not_before: TimeOfDay
    not_after: TimeOfDay

    @model_validator(mode="after")
    def _hours_differ(self) -> WaitWithin:
        if self.not_before == self.not_after:
            raise PydanticCustomError(
                "empty_hours", "not_before and not_after must differ: the hours would be empty"
            )
        return self


class DateRef(_Model):
    """A date attribute of the customer, moved by whole days: `{attribute: member_since,
    offset: -3d}`."""

    attribute: AttributeName
    offset: DayOffset = "0d"


class WaitUntilDate(_Model):
    """Until the start of a day relative to a date attribute (or `at` a time of it), in the
    customer's time zone. A date already past goes on at once (the send window then decides
    whether a send is still worth it); a customer without such a date exits the journey."""

    until_date: DateRef
    at: TimeOfDay | None = None


def _wait_kind(value: Any) -> str:
    if isinstance(value, WaitWithin) or (isinstance(value, dict) and "for" in value):
        return "wait:within"
    if isinstance(value, WaitUntilDate) or (isinstance(value, dict) and "until_date" in value):
        return "wait:until_date"
    return "wait:until" if isinstance(value, dict | WaitUntil) else "wait:duration"


class WaitStep(_Model):
    wait: Annotated[
        Annotated[Duration, Tag("wait:duration")]
        | Annotated[WaitUntil, Tag("wait:until")]
        | Annotated[WaitWithin, Tag("wait:within")]
        | Annotated[WaitUntilDate, Tag("wait:until_date")],
        Discriminator(_wait_kind),
    ]


class WaitFor(_Model):
    event: EventType
    match: Expression | None = None
    timeout: Duration


class WaitForStep(_Model):
    wait_for: WaitFor
    on_timeout: list[Step] = Field(default_factory=list)


class IfStep(_Model):
    if_: Expression = Field(alias="if")
    then: list[Step] = Field(min_length=1)
    else_: list[Step] | None = Field(default=None, alias="else")


class SendStep(_Model):
    send: Literal["email", "sms"]
    template: TemplateName
    guard: Expression | None = None

    @model_validator(mode="after")
    def _channel_of_template(self) -> SendStep:
        # SMS templates share the namespace of emails; the suffix says which is which.
        if (self.send == "sms") != self.template.endswith("_sms"):
            raise PydanticCustomError(
                "template",
                "an SMS step names a template ending in _sms, an email step one that does not",
            )
        return self


class IssueCouponAction(_Model):
    """A unique code from the store's coupon template `coupon`, for this customer; later
    sends of the journey show it as `coupon`."""

    action: Literal["issue_coupon"]
    coupon: CouponKey


class TagAction(_Model):
    action: Literal["tag", "untag"]
    tag: TagName


class SetAttributeAction(_Model):
    action: Literal["set_attribute"]
    attribute: AttributeName
    value: Scalar


class AlertShopAction(_Model):
    """An email to the store's contact address naming the customer and the reason."""

    action: Literal["alert_shop"]
    reason: str = Field(min_length=1, max_length=500)


_ACTIONS: dict[str, tuple[str, type[BaseModel]]] = {
    "issue_coupon": ("action:issue_coupon", IssueCouponAction),
    "tag": ("action:tag", TagAction),
    "untag": ("action:tag", TagAction),
    "set_attribute": ("action:set_attribute", SetAttributeAction),
    "alert_shop": ("action:alert_shop", AlertShopAction),
}


def _action_kind(value: Any) -> str | None:
    for tag, model in _ACTIONS.values():
        if isinstance(value, model):
            return tag
    if isinstance(value, dict) and isinstance(value.get("action"), str):
        found = _ACTIONS.get(value["action"])
        return found[0] if found else None
    return None


ActionStep = Annotated[
    Annotated[IssueCouponAction, Tag("action:issue_coupon")]
    | Annotated[TagAction, Tag("action:tag")]
    | Annotated[SetAttributeAction, Tag("action:set_attribute")]
    | Annotated[AlertShopAction, Tag("action:alert_shop")],
    Discriminator(
        _action_kind,
        custom_error_type="action_kind",
        custom_error_message=f"unknown action: use one of {', '.join(_ACTIONS)}",
    ),
]


class SplitBranch(_Model):
    """One branch of a split; a branch without steps is a holdout: its customers go on
    after the split having done nothing."""

    weight: int = Field(ge=1, le=1_000_000)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    steps: list[Step] = Field(default_factory=list)


class SplitStep(_Model):
    split: list[SplitBranch] = Field(min_length=2)


_STEP_KINDS: dict[str, tuple[str, Any]] = {
    "wait": ("step:wait", WaitStep),
    "wait_for": ("step:wait_for", WaitForStep),
    "if": ("step:if", IfStep),
    "send": ("step:send", SendStep),
    "action": ("step:action", tuple(model for _, model in _ACTIONS.values())),
    "split": ("step:split", SplitStep),
}
_TAGS = frozenset(
    {"wait:duration", "wait:until", "wait:within", "wait:until_date"}
    | {tag for tag, _ in _STEP_KINDS.values()}
    | {tag for tag, _ in _ACTIONS.values()}
)


def _step_kind(value: Any) -> str | None:
    for tag, model in _STEP_KINDS.values():
        if isinstance(value, model):
            return tag
    if not isinstance(value, dict):
        return None
    # Exactly one kind key, so `{wait: 1h, send: email}` is an error rather than half a step.
    kinds = [key for key in _STEP_KINDS if key in value]
    return _STEP_KINDS[kinds[0]][0] if len(kinds) == 1 else None


Step = Annotated[
    Annotated[WaitStep, Tag("step:wait")]
    | Annotated[WaitForStep, Tag("step:wait_for")]
    | Annotated[IfStep, Tag("step:if")]
    | Annotated[SendStep, Tag("step:send")]
    | Annotated[ActionStep, Tag("step:action")]
    | Annotated[SplitStep, Tag("step:split")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message=(
            "a step needs exactly one of the keys wait, wait_for, if, send, action or split"
        ),
    ),
]


# The event type of every date trigger (`timers.service.DATE`); which journey it starts is
# decided by the trigger's rule, which the event's data names.
DATE_EVENT = "customer.date"


class DateTrigger(DateRef):
    """`trigger: {date: {attribute: member_since, offset: 0d, yearly: true}}`: the start of
    that local day, once, or (`yearly`) on each anniversary of the date."""

    yearly: bool = False


class Trigger(_Model):
    # Filled in as `customer.date` for a date trigger.
    event: EventType = ""
    date: DateTrigger | None = None
    where: Expression | None = None

    @model_validator(mode="after")
    def _event_or_date(self) -> Trigger:
        if self.date is not None:
            if self.event not in ("", DATE_EVENT):
                raise PydanticCustomError("trigger", "a trigger has an event or a date, not both")
            self.event = DATE_EVENT
        elif not self.event:
            raise PydanticCustomError(
                "trigger", "a trigger needs an event, or a date: {attribute: ..., offset: ...}"
            )
        elif self.event == DATE_EVENT:
            raise PydanticCustomError(
                "trigger",
                f"{DATE_EVENT} is started by a date trigger, like "
                "date: {attribute: member_since, offset: 0d, yearly: true}",
            )
        return self

    @model_serializer(mode="wrap")
    def _without_empty_date(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Versions stored before date triggers have no `date`: an unchanged journey applied
        # again must compare equal to them rather than make a new version.
        dumped: dict[str, Any] = handler(self)
        if dumped.get("date") is None:
            dumped.pop("date", None)
        return dumped


class ExitWhen(_Model):
    event: EventType
    match: Expression | None = None


class JourneyDefinition(_Model):
    key: JourneyKey
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    legal_class: Literal["informational", "commercial"]
    enabled: bool = True
    trigger: Trigger
    reentry: Literal["once", "once_per_order", "once_per_cart", "once_per_shipment", "always"] = (
        "once"
    )
    guard: Expression | None = None
    exit_when: list[ExitWhen] = Field(default_factory=list)
    # A send whose moment passed longer ago than this is skipped rather than sent late
    # (default: 24h for informational journeys, 72h for commercial ones).
    send_within: Duration | None = None
    # The sending policy (`policy/`): when several of a customer's commercial messages wait
    # for one frequency-cap slot, the journey of higher priority goes first; over the cap
    # a message waits for the next allowed moment (postpone) or is dropped (skip).
    priority: int = Field(default=50, ge=0, le=100)
    over_cap: Literal["postpone", "skip"] = "postpone"
    # What its messages are about (`preferences/topics.py`): a customer who turned the
    # topic off on a channel gets none of them there. None: "offers" for a commercial
    # journey, the order's own news (never stopped) for an informational one.
    topic: Topic | None = None
    steps: list[Step] = Field(min_length=1)

    @model_serializer(mode="wrap")
    def _without_empty_topic(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Versions stored before topics have none: unchanged, a journey keeps its version.
        dumped: dict[str, Any] = handler(self)
        if dumped.get("topic") is None:
            dumped.pop("topic", None)
        return dumped

    def message_topic(self) -> str | None:
        return topic_of(topic=self.topic, legal_class=self.legal_class)

    def send_window(self) -> timedelta:
        if self.send_within is not None:
            return timedelta(seconds=parse_duration(self.send_within))
        return SEND_WITHIN[self.legal_class]


# How late a send may still go, by legal class, when a journey does not say.
SEND_WITHIN = {"informational": timedelta(hours=24), "commercial": timedelta(hours=72)}


WaitForStep.model_rebuild()
IfStep.model_rebuild()
SplitBranch.model_rebuild()
SplitStep.model_rebuild()
JourneyDefinition.model_rebuild()


# ---------------------------------------------------------------------------------------------
# Loading with errors that point at lines


class JourneyFileError(YamlFileError):
    """A journey file's problems, each with its line."""


def load_journey(text: str, filename: str = "<journey>") -> JourneyDefinition:
    """Parse and validate a journey; JourneyFileError lists every problem with its line."""
    document = parse_mapping(
        text,
        filename,
        error=JourneyFileError,
        needs="a journey file must be a mapping with key, name, trigger and steps",
    )
    problems = document.duplicate_keys()
    definition: JourneyDefinition | None = None
    try:
        definition = JourneyDefinition.model_validate(document.data)
    except ValidationError as exc:
        problems += document.problems_of(exc, skip=_TAGS)
    if problems or definition is None:
        raise JourneyFileError(sorted(problems, key=lambda problem: problem.line))
    return definition


def load_journey_file(path: pathlib.Path) -> JourneyDefinition:
    return load_journey(read_text(path, error=JourneyFileError), str(path))


# ---------------------------------------------------------------------------------------------
# The compiled program


@dataclass(frozen=True)
class WaitOp:
    seconds: int | None
    until: time | None
    weekdays: frozenset[int] | None  # 0 = Monday, like date.weekday()
    # (not_before, not_after): the local hours a wait of `seconds` may end in.
    hours: tuple[time, time] | None = None
    # Until a date attribute + offset_days (at `until`, else the start of that day).
    date_attribute: str | None = None
    offset_days: int = 0


@dataclass(frozen=True)
class WaitForOp:
    event: str
    match: str | None
    timeout_seconds: int
    # On timeout the engine continues at pc + 1 (the inlined on_timeout block); on the event it
    # jumps here, past that block.
    resume_pc: int


@dataclass(frozen=True)
class BranchOp:
    condition: str
    else_pc: int  # true continues at pc + 1


@dataclass(frozen=True)
class JumpOp:
    target: int


@dataclass(frozen=True)
class SendOp:
    channel: str
    template: str
    guard: str | None


@dataclass(frozen=True)
class SplitOp:
    # Which split of the journey this is (0 for its first), so that two splits of one
    # journey choose independently.
    ordinal: int
    weights: tuple[int, ...]
    # Where each branch starts; an empty branch (a holdout) starts where the split ends.
    targets: tuple[int, ...]
    names: tuple[str | None, ...]
    # A branch without steps: its customers are the holdout that measures the others.
    holdouts: tuple[bool, ...]


@dataclass(frozen=True)
class IssueCouponOp:
    coupon: str


@dataclass(frozen=True)
class TagOp:
    tag: str
    present: bool  # tag, or untag


@dataclass(frozen=True)
class SetAttributeOp:
    attribute: str
    value: str | int | float | bool | None


@dataclass(frozen=True)
class AlertShopOp:
    reason: str


ActionOp = IssueCouponOp | TagOp | SetAttributeOp | AlertShopOp
Op = WaitOp | WaitForOp | BranchOp | JumpOp | SendOp | SplitOp | ActionOp


@dataclass(frozen=True)
class Program:
    ops: tuple[Op, ...]  # running past the last op completes the journey

    @functools.cached_property
    def issues_coupons(self) -> bool:
        """Whether its sends may show a coupon (the step runner then looks one up)."""
        return any(isinstance(op, IssueCouponOp) for op in self.ops)


def compile_program(definition: JourneyDefinition) -> Program:
    ops: list[Op] = []
    _emit(definition.steps, ops)
    return Program(tuple(ops))


def template_names(definition: JourneyDefinition) -> set[str]:
    """Every template the journey may send."""
    return {op.template for op in compile_program(definition).ops if isinstance(op, SendOp)}


def _emit(steps: list[Step], ops: list[Op]) -> None:
    for step in steps:
        if isinstance(step, WaitStep):
            ops.append(_wait_op(step.wait))
        elif isinstance(step, SendStep):
            ops.append(SendOp(step.send, step.template, step.guard))
        elif isinstance(step, WaitForStep):
            spec, at = step.wait_for, len(ops)
            wait_for = WaitForOp(spec.event, spec.match, parse_duration(spec.timeout), -1)
            ops.append(wait_for)
            _emit(step.on_timeout, ops)
            ops[at] = dataclasses.replace(wait_for, resume_pc=len(ops))
        elif isinstance(step, IfStep):
            branch_at = len(ops)
            ops.append(BranchOp(step.if_, -1))
            _emit(step.then, ops)
            if step.else_:
                jump_at = len(ops)
                ops.append(JumpOp(-1))
                else_pc = len(ops)
                _emit(step.else_, ops)
                ops[jump_at] = JumpOp(len(ops))
            else:
                else_pc = len(ops)
            ops[branch_at] = BranchOp(step.if_, else_pc)
        elif isinstance(step, SplitStep):
            _emit_split(step, ops)
        else:
            ops.append(_action_op(step))


def _emit_split(step: SplitStep, ops: list[Op]) -> None:
    ordinal = sum(isinstance(op, SplitOp) for op in ops)
    split_at = len(ops)
    ops.append(SplitOp(ordinal, (), (), (), ()))
    targets, jumps = [], []
    for index, branch in enumerate(step.split):
        targets.append(len(ops))
        _emit(branch.steps, ops)
        if index < len(step.split) - 1:
            jumps.append(len(ops))
            ops.append(JumpOp(-1))
    for at in jumps:
        ops[at] = JumpOp(len(ops))
    ops[split_at] = SplitOp(
        ordinal,
        tuple(branch.weight for branch in step.split),
        tuple(targets),
        tuple(branch.name for branch in step.split),
        tuple(not branch.steps for branch in step.split),
    )


def _action_op(
    step: IssueCouponAction | TagAction | SetAttributeAction | AlertShopAction,
) -> ActionOp:
    if isinstance(step, IssueCouponAction):
        return IssueCouponOp(step.coupon)
    if isinstance(step, TagAction):
        return TagOp(step.tag, present=step.action == "tag")
    if isinstance(step, SetAttributeAction):
        return SetAttributeOp(step.attribute, step.value)
    return AlertShopOp(step.reason)


def coupon_keys(steps: list[Step]) -> set[str]:
    """The coupon templates a journey's steps issue from, however deeply nested."""
    keys: set[str] = set()
    for step in steps:
        if isinstance(step, IssueCouponAction):
            keys.add(step.coupon)
        elif isinstance(step, WaitForStep):
            keys |= coupon_keys(step.on_timeout)
        elif isinstance(step, IfStep):
            keys |= coupon_keys(step.then) | coupon_keys(step.else_ or [])
        elif isinstance(step, SplitStep):
            for branch in step.split:
                keys |= coupon_keys(branch.steps)
    return keys


def split_branch(op: SplitOp, *, journey: str, customer_id: int) -> int:
    """The branch a customer takes at a split: a point in [0, total weight) from a hash of
    the journey, the split and the customer, so the same customer always lands in the same
    branch (in every version of the journey and on every re-entry)."""
    digest = hashlib.sha256(f"{journey}/{op.ordinal}/{customer_id}".encode()).digest()
    # 64 bits: the bias of the modulo is below 1e-12 for any weights a journey may have.
    point = int.from_bytes(digest[:8], "big") % sum(op.weights)
    for index, weight in enumerate(op.weights):
        if point < weight:
            return index
        point -= weight
    raise AssertionError("unreachable: the point is below the total weight")


def _time(text: str) -> time:
    hour, minute = (int(part) for part in text.split(":"))
    return time(hour, minute)


def _wait_op(wait: str | WaitUntil | WaitWithin | WaitUntilDate) -> WaitOp:
    if isinstance(wait, str):
        return WaitOp(seconds=parse_duration(wait), until=None, weekdays=None)
    if isinstance(wait, WaitWithin):
        hours = (_time(wait.not_before), _time(wait.not_after))
        return WaitOp(seconds=parse_duration(wait.for_), until=None, weekdays=None, hours=hours)
    if isinstance(wait, WaitUntilDate):
        return WaitOp(
            seconds=None,
            until=_time(wait.at) if wait.at else time(0),
            weekdays=None,
            date_attribute=wait.until_date.attribute,
            offset_days=parse_day_offset(wait.until_date.offset),
        )
    days = frozenset(WEEKDAYS.index(day) for day in wait.weekdays) if wait.weekdays else None
    return WaitOp(seconds=None, until=_time(wait.until), weekdays=days)


def next_wait_time(op: WaitOp, now: datetime, tz: ZoneInfo) -> datetime:
    """When a wait that starts at `now` ends, as an aware UTC datetime."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if op.seconds is not None:
        end = now.astimezone(UTC) + timedelta(seconds=op.seconds)
        return end if op.hours is None else _within(end, op.hours, tz)
    if op.date_attribute is not None:
        raise ValueError("a wait until a date needs the customer's date: see date_wait_time")
    if op.until is None:
        raise ValueError("a wait needs seconds or a time of day")
    if op.weekdays is not None and not op.weekdays:
        raise ValueError("a wait on weekdays needs at least one weekday")
    today: date = now.astimezone(tz).date()
    # Wall-clock times built with ZoneInfo follow DST. With fold=0 a time skipped by the spring
    # jump lands one gap later (02:30 -> 03:30) and a repeated autumn time on its first pass.
    for offset in range(8):
        day = today + timedelta(days=offset)
        if op.weekdays is not None and day.weekday() not in op.weekdays:
            continue
        candidate = datetime.combine(day, op.until, tzinfo=tz).astimezone(UTC)
        if candidate > now:
            return candidate
    raise AssertionError("unreachable: a week always holds an allowed day")


def _within(moment: datetime, hours: tuple[time, time], tz: ZoneInfo) -> datetime:
    """`moment` when its local time is within [not_before, not_after), else the next
    not_before (the same night's morning)."""
    not_before, not_after = hours
    local = moment.astimezone(tz)
    at = local.time().replace(tzinfo=None)
    if not_before < not_after:
        inside = not_before <= at < not_after
    else:  # the hours span midnight
        inside = at >= not_before or at < not_after
    if inside:
        return moment
    for offset in range(2):
        candidate = datetime.combine(local.date() + timedelta(days=offset), not_before, tzinfo=tz)
        if candidate.astimezone(UTC) > moment:
            return candidate.astimezone(UTC)
    raise AssertionError("unreachable: a not_before comes within a day")


# ---------------------------------------------------------------------------------------------
# No promotions in informational journeys

# What makes a message a promotion: a coupon, or products to buy.
PROMOTIONS = frozenset({"coupon", "recommendations"})


def promotion_problems(
    definition: JourneyDefinition,
    source: str,
    filename: str,
    promotional: Mapping[str, Collection[str]],
) -> list[Problem]:
    """An informational journey (sent without marketing consent) may carry no promotion:
    each step that issues a coupon, or sends a template that shows one (`promotional`: the
    templates that read PROMOTIONS, and which they read), on its line in `source`."""
    if definition.legal_class != "informational":
        return []
    document = parse_mapping(source, filename, error=JourneyFileError, needs="a journey file")
    fix = "informational journeys carry no promotions; make it legal_class: commercial"
    problems = []
    for loc, step in _steps_at(definition.steps, ("steps",)):
        if isinstance(step, IssueCouponAction):
            message = f"issues a coupon ({step.coupon}): {fix}"
            problems.append(document.problem_at(loc, message))
        elif isinstance(step, SendStep) and (shows := promotional.get(step.template)):
            message = f"template {step.template} shows {', '.join(sorted(shows))}: {fix}"
            problems.append(document.problem_at(loc, message))
    return problems


def _steps_at(steps: list[Step], at: Loc) -> Iterator[tuple[Loc, Step]]:
    """Every step, however deeply nested, with where it is in the file."""
    for index, step in enumerate(steps):
        loc = (*at, index)
        yield loc, step
        if isinstance(step, WaitForStep):
            yield from _steps_at(step.on_timeout, (*loc, "on_timeout"))
        elif isinstance(step, IfStep):
            yield from _steps_at(step.then, (*loc, "then"))
            yield from _steps_at(step.else_ or [], (*loc, "else"))
        elif isinstance(step, SplitStep):
            for number, branch in enumerate(step.split):
                yield from _steps_at(branch.steps, (*loc, "split", number, "steps"))


def date_wait_time(op: WaitOp, day: date, tz: ZoneInfo) -> datetime:
    """When a wait until a date attribute (holding `day`) ends, as an aware UTC datetime."""
    if op.date_attribute is None or op.until is None:
        raise ValueError("not a wait until a date")
    return datetime.combine(day + timedelta(days=op.offset_days), op.until, tzinfo=tz).astimezone(
        UTC
    )
