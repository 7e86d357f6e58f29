"""The one-click reorder link's pattern: what it accepts, what it refuses and why, and the
links it builds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ulak.orders.reorder import ReorderItem, ReorderPattern
from ulak.stores.schemas import StoreCreate, StoreUpdate

SHOPIFY = "https://shop.example/cart/{variant_id}:{quantity},..."


def test_each_item_is_written_once_with_the_separator_between() -> None:
    pattern = ReorderPattern.parse(SHOPIFY)
    items = [ReorderItem("p-1", "111", 2), ReorderItem("p-2", "222", 1)]
    assert pattern.link(items) == "https://shop.example/cart/111:2,222:1"
    assert pattern.link(items[:1]) == "https://shop.example/cart/111:2"


def test_text_after_the_repeat_ends_the_link() -> None:
    pattern = ReorderPattern.parse(
        "https://shop.example/reorder?items={product_id}x{quantity}|...&utm_source=ulak"
    )
    items = [ReorderItem("p1", None, 2), ReorderItem("p2", None, 1)]
    assert pattern.link(items) == "https://shop.example/reorder?items=p1x2|p2x1&utm_source=ulak"


def test_ids_are_percent_encoded_so_they_cannot_add_a_path_a_query_or_an_item() -> None:
    pattern = ReorderPattern.parse(SHOPIFY)
    tricky = [ReorderItem("p", "a/../b?x=1&y,2:3 ü#", 1)]
    assert pattern.link(tricky) == (
        "https://shop.example/cart/a%2F..%2Fb%3Fx%3D1%26y%2C2%3A3%20%C3%BC%23:1"
    )


def test_an_item_without_the_id_the_pattern_needs_gives_no_link() -> None:
    pattern = ReorderPattern.parse(SHOPIFY)
    assert pattern.link([ReorderItem("p-1", "111", 1), ReorderItem("p-2", None, 1)]) is None
    assert pattern.link([]) is None


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("javascript:alert(1)//{variant_id},...", "must be an http:// or https:// address"),
        ("https://shop.example/cart/{sku}:{quantity},...", "unknown placeholder {sku}"),
        ("https://shop.example/cart/{quantity},...", "must name each item by {variant_id}"),
        ("https://shop.example/cart/{variant_id}:{quantity}", "with '...' after the item"),
        ("https://shop.example/cart/{variant_id}...", "needs a separator"),
        ("https://shop.example/.../{variant_id},", "'...' must come after the last placeholder"),
        ("https://shop.example/cart/{variant_id},...{", "braces are only for the placeholders"),
        ("https://shop.example/" + "a" * 2000 + "{variant_id},...", "at most 2000 characters"),
    ],
)
def test_a_pattern_that_cannot_build_a_link_is_refused_saying_why(
    pattern: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason.replace("{", r"\{").replace("}", r"\}")):
        ReorderPattern.parse(pattern)
    with pytest.raises(ValidationError, match="reorder_url"):
        StoreCreate(name="Dükkan", reorder_url=pattern)
    with pytest.raises(ValidationError, match="reorder_url"):
        StoreUpdate(reorder_url=pattern)


def test_a_store_sets_and_clears_its_pattern() -> None:
    assert StoreCreate(name="Dükkan", reorder_url=SHOPIFY).reorder_url == SHOPIFY
    assert StoreCreate(name="Dükkan").reorder_url is None
    # An update given None clears it (`ulak stores update --clear reorder-url`); a name
    # that may not be empty cannot be cleared so.
    cleared = StoreUpdate(reorder_url=None)
    assert (cleared.reorder_url, cleared.model_fields_set) == (None, {"reorder_url"})
    with pytest.raises(ValidationError, match="name cannot be cleared: it needs a value"):
        StoreUpdate(name=None)
