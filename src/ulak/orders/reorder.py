"""The shop's one-click reorder link: a pattern over the items a customer bought before.

A store sets `reorder_url` to a pattern such as

    https://shop.example/cart/{variant_id}:{quantity},...

- It is an `http://` or `https://` address of at most 2000 characters.
- The placeholders are `{product_id}`, `{variant_id}` and `{quantity}`; no other text in
  braces. The item part must name `{product_id}` or `{variant_id}`.
- The item part runs from the first `{` to the last `}`, and is written once per item.
- `...` follows it once; the text between the last `}` and `...` (here `,`) goes between
  two items and must not be empty. The text after `...` ends the link as it is.

So the pattern above, for variant 111 × 2 and variant 222 × 1, gives
`https://shop.example/cart/111:2,222:1`, and `https://shop.example/reorder?items=
{product_id}x{quantity}|...&utm_source=ulak` gives `...?items=p1x2|p2x1&utm_source=ulak`.

Each id is percent-encoded (only RFC 3986's unreserved characters stay as they are), so an
id from the shop can add neither a path, a query nor another item. An item without the id
the pattern needs has no link: the reminder then links each product's page instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from ulak.fields import web_address

PLACEHOLDERS = ("product_id", "variant_id", "quantity")
MAX_LENGTH = 2000
_BRACES = re.compile(r"\{([^{}]*)\}")
REPEAT = "..."


@dataclass(frozen=True)
class ReorderItem:
    """One line of the link: what was bought, and how many."""

    product_id: str | None
    variant_id: str | None
    quantity: int


@dataclass(frozen=True)
class ReorderPattern:
    before: str
    item: str
    separator: str
    after: str

    @classmethod
    def parse(cls, pattern: str) -> ReorderPattern:
        """The pattern, or ValueError saying what is wrong with it (shown to the shop)."""
        if len(pattern) > MAX_LENGTH:
            raise ValueError(f"must be at most {MAX_LENGTH} characters")
        web_address(pattern)
        names = _BRACES.findall(pattern)
        unknown = [name for name in names if name not in PLACEHOLDERS]
        if unknown:
            known = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}: use {known}")
        if "product_id" not in names and "variant_id" not in names:
            raise ValueError(
                "must name each item by {variant_id} or {product_id}, e.g."
                " https://shop.example/cart/{variant_id}:{quantity},..."
            )
        if pattern.count(REPEAT) != 1:
            raise ValueError(
                "must say once, with '...' after the item and its separator, that the item"
                " repeats, e.g. https://shop.example/cart/{variant_id}:{quantity},..."
            )
        first, last = pattern.index("{"), pattern.rindex("}") + 1
        repeat = pattern.index(REPEAT)
        if repeat < last:
            raise ValueError("'...' must come after the last placeholder")
        separator = pattern[last:repeat]
        if not separator:
            raise ValueError(
                "needs a separator between the last placeholder and '...', e.g. ',' in"
                " {variant_id}:{quantity},..."
            )
        after = pattern[repeat + len(REPEAT) :]
        if "{" in separator + after or "}" in separator + after:
            raise ValueError("braces are only for the placeholders")
        return cls(pattern[:first], pattern[first:last], separator, after)

    def link(self, items: Sequence[ReorderItem]) -> str | None:
        """The link for these items; None when there are none, or one lacks an id the
        pattern needs (the caller falls back to the products' pages)."""
        if not items:
            return None
        parts = []
        for item in items:
            values = {
                "product_id": item.product_id,
                "variant_id": item.variant_id,
                "quantity": str(item.quantity),
            }

            def fill(match: re.Match[str], values: dict[str, str | None] = values) -> str:
                value = values[match.group(1)]
                if not value:
                    raise _Missing
                return quote(value, safe="")

            try:
                parts.append(_BRACES.sub(fill, self.item))
            except _Missing:
                return None
        return self.before + self.separator.join(parts) + self.after


class _Missing(Exception):
    """An item lacks an id its pattern names."""


def check_pattern(pattern: str) -> str:
    """A pydantic validator: the pattern as given, when it parses."""
    ReorderPattern.parse(pattern)
    return pattern
