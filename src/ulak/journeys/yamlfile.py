"""YAML files whose problems name the file, the line and the field: journey files
(`definition.py`) and simulation scenarios (`simulation.py`).

One parse gives both the marked node tree, which knows the lines, and the plain data built
from it, which pydantic validates; a validation error's location is walked down the tree to
the line it names.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ulak.errors import Invalid


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


class YamlFileError(Invalid):
    """A YAML file's problems, each with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(
            "\n".join(str(problem) for problem in problems),
            details=[dataclasses.asdict(problem) for problem in problems],
        )
        self.problems = problems


class _Loader(yaml.SafeLoader):
    pass


# YAML 1.1 reads `10:30` as the base-60 integer 630; these files only ever mean a time of day.
_Loader.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _digit in "0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_digit, []).insert(
        0, ("tag:yaml.org,2002:str", re.compile(r"^\d{1,2}:\d{2}$"))
    )

Loc = Sequence[str | int]


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML mapping: its data, and the node tree that knows where each part is."""

    filename: str
    root: yaml.Node
    data: dict[str, Any]

    def problem_at(self, loc: Loc, message: str, *, at_key: bool = False) -> Problem:
        """A problem of the part at `loc`, on its line; a part that is missing is named
        and pointed at in the mapping it belongs in. `at_key` points at the key's line
        rather than its value's (they differ for a value that starts on the next line)."""
        node, key_node, path = self.root, self.root, []
        for index, part in enumerate(loc):
            found = _child(node, part)
            if found is not None:
                key_node, node = found
                path.append(part)
            elif index == len(loc) - 1:
                path.append(part)
        return Problem(self.filename, _line(key_node if at_key else node), _format(path), message)

    def problems_of(
        self, error: ValidationError, *, prefix: Loc = (), skip: Collection[str] = ()
    ) -> list[Problem]:
        """Each of a validation error's problems on its line. The data validated is at
        `prefix` in the document; parts of a location in `skip` (discriminator tags) are
        not in the document."""
        problems = []
        for details in error.errors(include_url=False):
            loc = [*prefix, *(part for part in details["loc"] if part not in skip)]
            at_key = details["type"] == "extra_forbidden"
            problems.append(self.problem_at(loc, _message(details, loc), at_key=at_key))
        return problems

    def duplicate_keys(self) -> list[Problem]:
        return _duplicate_keys(self.root, self.filename)


def parse_mapping(
    text: str, filename: str, *, error: type[YamlFileError], needs: str
) -> YamlDocument:
    """Parse a YAML document that must be a mapping; `error` says what is wrong with its
    line (`needs`: what the file must be, for a document that is not a mapping)."""
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise error([_yaml_problem(exc, text, filename)]) from None
    if root is None or not isinstance(data, dict):
        line = _line(root) if root is not None else 1
        raise error([Problem(filename, line, "", needs)])
    return YamlDocument(filename, root, data)


def read_text(path: pathlib.Path, *, error: type[YamlFileError]) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error([Problem(str(path), 1, "", "the file is not UTF-8 text")]) from None


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


def _format(parts: Loc) -> str:
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


def _message(error: ErrorDetails, loc: Loc) -> str:
    kind, field = error["type"], str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        return f'unknown field "{field}"'
    if kind == "action_kind":
        given = error["input"].get("action") if isinstance(error["input"], dict) else None
        return f'unknown action "{given}": {error["msg"].removeprefix("unknown action: ")}'
    if kind == "too_short" and field == "split":
        return "a split needs at least two branches"
    if kind == "too_short":
        return "needs at least one step" if field in ("steps", "then") else "must not be empty"
    if kind == "string_pattern_mismatch" and field in _PATTERN_HINTS:
        return f'invalid {field} "{error["input"]}": {_PATTERN_HINTS[field]}'
    return _MESSAGES.get(kind) or re.sub(r"^(Input|String|List) should", "should", error["msg"])


def _duplicate_keys(node: yaml.Node, filename: str, path: str = "") -> list[Problem]:
    # PyYAML silently keeps the last of two equal keys; an author never means that.
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
