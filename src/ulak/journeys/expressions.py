"""Sandboxed Jinja2 expressions used by journeys (trigger filters, guards, matches, branches).

Expressions are written by shop staff and run inside workers, so they get no I/O, no mutation of
the values they see, no dunder attributes and no unbounded arithmetic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from jinja2 import TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["ExpressionError", "check_expression", "evaluate", "names_in", "truthy"]

# Large enough for any sensible guard, small enough that `2 ** (10 ** 9)` or `'x' * 10 ** 10`
# cannot stall a worker or exhaust its memory.
_MAX_EXPONENT = 128
_MAX_BASE_BITS = 1024
_MAX_REPEAT_LENGTH = 100_000

# Jinja's wording assumes a template; these read better for a one-line expression.
_SYNTAX_MESSAGES = {
    "unexpected 'end of template'": "the expression ends too early",
    "chunk after expression": "unexpected text after the end of the expression",
}


class ExpressionError(ValueError):
    """An expression that does not parse or fails while it is evaluated."""


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"**", "*"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Jinja prefers Python attributes, so `cart.items` on a dict would be the bound method
        # dict.items rather than the cart's items. Our values are plain dicts: keys win.
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            # Bounding the base as well stops `(2 ** 128) ** 128 ** ...` chains.
            if isinstance(right, int | float | Decimal) and abs(Decimal(right)) > _MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is too large")
            if isinstance(left, int) and left.bit_length() > _MAX_BASE_BITS:
                raise SecurityError("number is too large to raise to a power")
            return left**right
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > _MAX_REPEAT_LENGTH
                ):
                    raise SecurityError("repeated value would be too long")
            return left * right
        return super().call_binop(context, operator, left, right)


_ENV = _Environment()
# Jinja's default globals (range, dict, cycler, joiner, namespace, lipsum) include classes and
# nothing a guard needs: expressions see only the values they are given.
_ENV.globals.clear()


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> Callable[..., Any]:
    try:
        return _ENV.compile_expression(source)
    except TemplateSyntaxError as exc:
        message = exc.message or "syntax error"
        reason = _SYNTAX_MESSAGES.get(message, message.replace("end of template", "end of input"))
        raise ExpressionError(f'syntax error in expression "{source}": {reason}') from None


@functools.lru_cache(maxsize=4096)
def names_in(source: str) -> frozenset[str]:
    """The values an expression reads (`tips` in `guard: tips`), so that the ones that cost a
    query are computed only for expressions that read them."""
    try:
        return frozenset(meta.find_undeclared_variables(_ENV.parse("{{ " + source + " }}")))
    except TemplateSyntaxError:
        return frozenset()  # evaluating it says what is wrong


def check_expression(source: str) -> None:
    """Raise ExpressionError when `source` is not a valid expression."""
    if not source.strip():
        raise ExpressionError("the expression is empty")
    _compile(source)


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate `source` over plain values; undefined results come back as None."""
    function = _compile(source)
    try:
        return function(dict(context))
    except Exception as exc:
        # Anything can go wrong inside shop-written code (type mismatches, missing attributes
        # of undefined values, sandbox refusals); callers handle one error type.
        raise ExpressionError(f'expression "{source}" failed: {exc}') from exc


def truthy(source: str, context: Mapping[str, Any]) -> bool:
    """Evaluate `source` and return its truth value (undefined counts as false)."""
    return bool(evaluate(source, context))
