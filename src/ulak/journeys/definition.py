"""Journey files: the schema, a YAML loader whose errors name file, line and field, and a
compiler to a flat program of ops that the engine steps through with a program counter.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationError,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from ulak.errors import Invalid
from ulak.journeys.expressions import ExpressionError, check_expression

# ---------------------------------------------------------------------------------------------
# Field types

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_duration(text: str) -> int:
    """Seconds in a duration like "2h", "1d12h", "30m" or "45s"; ValueError when invalid."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        shown = f'"{text}"' if isinstance(text, str) else repr(text)
        raise ValueError(
            f"invalid duration {shown}: use a number followed by d, h, m or s, like 2h or 1d12h"
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError(f'duration "{text}" must be longer than zero')
    return total


def _duration(value: Any) -> Any:
    try:
        parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None
    return value.strip()


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


def _wait_kind(value: Any) -> str:
    return "wait:until" if isinstance(value, dict | WaitUntil) else "wait:duration"


class WaitStep(_Model):
    wait: Annotated[
        Annotated[Duration, Tag("wait:duration")] | Annotated[WaitUntil, Tag("wait:until")],
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
    send: Literal["email"]
    template: TemplateName
    guard: Expression | None = None


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
    {"wait:duration", "wait:until"}
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


class Trigger(_Model):
    event: EventType
    where: Expression | None = None


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
    steps: list[Step] = Field(min_length=1)


WaitForStep.model_rebuild()
IfStep.model_rebuild()
SplitBranch.model_rebuild()
SplitStep.model_rebuild()
JourneyDefinition.model_rebuild()


# ---------------------------------------------------------------------------------------------
# Loading with errors that point at lines


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        if self.path:
            return f"{self.file}:{self.line}: {self.path}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class JourneyFileError(Invalid):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(
            "\n".join(str(problem) for problem in problems),
            details=[dataclasses.asdict(problem) for problem in problems],
        )
        self.problems = problems


class _Loader(yaml.SafeLoader):
    pass


# YAML 1.1 reads `10:30` as the base-60 integer 630; a journey only ever means a time of day.
_Loader.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _digit in "0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_digit, []).insert(
        0, ("tag:yaml.org,2002:str", re.compile(r"^\d{1,2}:\d{2}$"))
    )


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key node, value node) that `part` selects in `node`, if it exists."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            # Scalar nodes hold the source text, so a YAML key `1` is found by pydantic's 1 too.
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        return node.value[part], node.value[part]
    return None


def _problem(root: yaml.Node, error: ErrorDetails, filename: str) -> Problem:
    loc = [part for part in error["loc"] if part not in _TAGS]
    node, key_node, path = root, root, []
    for index, part in enumerate(loc):
        found = _child(node, part)
        if found is not None:
            key_node, node = found
            path.append(part)
        elif index == len(loc) - 1:
            # A missing field: name it, but point at the mapping it belongs in.
            path.append(part)
    line = _line(key_node if error["type"] == "extra_forbidden" else node)
    return Problem(filename, line, _format_path(path), _message(error, loc))


def _format_path(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


_MESSAGES = {
    "missing": "field required",
    "string_type": "expected text",
    "list_type": "expected a list",
    "model_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}
_PATTERN_HINTS = {
    "key": "use lowercase letters, digits and dashes, like order-shipped",
    "event": "use lowercase words joined by dots, like order.shipped",
    "template": "use lowercase letters, digits and underscores, like order_shipped",
    "coupon": "use lowercase letters, digits, dashes and underscores, like welcome",
    "tag": "use a word without spaces, like vip",
    "attribute": "use letters, digits and underscores, like last_campaign",
}


def _message(error: ErrorDetails, loc: list[str | int]) -> str:
    kind, field = error["type"], str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        return f'unknown field "{field}"'
    if kind == "action_kind":
        given = error["input"].get("action") if isinstance(error["input"], dict) else None
        return f'unknown action "{given}": use one of {", ".join(_ACTIONS)}'
    if kind == "too_short" and field == "split":
        return "a split needs at least two branches"
    if kind == "too_short":
        return "needs at least one step" if field in ("steps", "then") else "must not be empty"
    if kind == "string_pattern_mismatch" and field in _PATTERN_HINTS:
        return f'invalid {field} "{error["input"]}": {_PATTERN_HINTS[field]}'
    return _MESSAGES.get(kind) or re.sub(r"^(Input|String|List) should", "should", error["msg"])


def _duplicate_keys(node: yaml.Node, filename: str, path: str = "") -> list[Problem]:
    # PyYAML silently keeps the last of two equal keys; a journey author never means that.
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            child = f"{path}.{name}" if path else name
            if name in seen:
                problems.append(Problem(filename, _line(key), child, f'duplicate key "{name}"'))
            seen.add(name)
            problems += _duplicate_keys(value, filename, child)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, filename, f"{path}[{index}]")
    return problems


def _yaml_problem(exc: yaml.YAMLError, text: str, filename: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return Problem(filename, line, "", f"unacceptable character #x{exc.character:04x}")
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem(filename, 1, "", str(exc))
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return Problem(filename, mark.line + 1 if mark is not None else 1, "", message)


def load_journey(text: str, filename: str = "<journey>") -> JourneyDefinition:
    """Parse and validate a journey; JourneyFileError lists every problem with its line."""
    try:
        loader = _Loader(text)
        try:
            # One parse gives both the marked node tree and the plain data built from it.
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise JourneyFileError([_yaml_problem(exc, text, filename)]) from None
    if root is None or not isinstance(data, dict):
        line = _line(root) if root is not None else 1
        message = "a journey file must be a mapping with key, name, trigger and steps"
        raise JourneyFileError([Problem(filename, line, "", message)])
    problems = _duplicate_keys(root, filename)
    definition: JourneyDefinition | None = None
    try:
        definition = JourneyDefinition.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(root, error, filename) for error in exc.errors(include_url=False)]
    if problems or definition is None:
        raise JourneyFileError(sorted(problems, key=lambda problem: problem.line))
    return definition


def load_journey_file(path: pathlib.Path) -> JourneyDefinition:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise JourneyFileError([Problem(str(path), 1, "", "the file is not UTF-8 text")]) from None
    return load_journey(text, str(path))


# ---------------------------------------------------------------------------------------------
# The compiled program


@dataclass(frozen=True)
class WaitOp:
    seconds: int | None
    until: time | None
    weekdays: frozenset[int] | None  # 0 = Monday, like date.weekday()


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


def _wait_op(wait: str | WaitUntil) -> WaitOp:
    if isinstance(wait, str):
        return WaitOp(seconds=parse_duration(wait), until=None, weekdays=None)
    hour, minute = (int(part) for part in wait.until.split(":"))
    days = frozenset(WEEKDAYS.index(day) for day in wait.weekdays) if wait.weekdays else None
    return WaitOp(seconds=None, until=time(hour, minute), weekdays=days)


def next_wait_time(op: WaitOp, now: datetime, tz: ZoneInfo) -> datetime:
    """When a wait that starts at `now` ends, as an aware UTC datetime."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if op.seconds is not None:
        return now.astimezone(UTC) + timedelta(seconds=op.seconds)
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
