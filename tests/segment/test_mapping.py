"""The pure mapping of Segment messages to ulak events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ulak.events.schemas import validate_event
from ulak.segment.mapping import KEY_PREFIX, TRACKED, Skip, custom_type, money, to_event


def mapped(message: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    return to_event(message, kind=kind).event


def test_order_completed_becomes_order_placed_with_decimal_money() -> None:
    event = mapped(
        {
            "type": "track",
            "messageId": "m-1",
            "timestamp": "2026-11-23T10:04:00.000Z",
            "userId": "c-1042",
            "anonymousId": "a-7",
            "event": "Order Completed",
            "context": {"traits": {"email": "ayse@example.com"}, "locale": "tr-TR"},
            "properties": {
                "order_id": "1001",
                "total": 1249.9,
                "revenue": 1100,
                "shipping": 29.99,
                "tax": 120.01,
                "discount": 2.5,
                "coupon": "HOSGELDIN",
                "currency": "try",
                "affiliation": "web",
                "products": [
                    {
                        "product_id": "p-1",
                        "sku": "SKU-1",
                        "name": "Çay bardağı",
                        "price": 19.99,
                        "quantity": 2,
                        "url": "https://dukkan.example/p/1",
                        "image_url": "https://dukkan.example/p/1.jpg",
                    }
                ],
            },
        }
    )
    assert event == {
        "id": "segment:m-1",
        "occurred_at": "2026-11-23T10:04:00.000Z",
        "type": "order.placed",
        "customer": {
            "email": "ayse@example.com",
            "locale": "tr-TR",
            "id": "c-1042",
            "previous_ids": ["anonymous:a-7"],
        },
        "data": {
            # What the mapping does not read is kept, as ulak keeps unknown fields.
            "revenue": 1100,
            "coupon": "HOSGELDIN",
            "affiliation": "web",
            "order_id": "1001",
            "items": [
                {
                    "product_id": "p-1",
                    "sku": "SKU-1",
                    "title": "Çay bardağı",
                    "quantity": 2,
                    "price": "19.99",
                    "url": "https://dukkan.example/p/1",
                    "image_url": "https://dukkan.example/p/1.jpg",
                }
            ],
            "discount": "2.5",
            "shipping": "29.99",
            "tax": "120.01",
            "total": "1249.9",
            "currency": "TRY",
            "discount_codes": ["HOSGELDIN"],
            "cart_id": "segment-cart:a-7",
        },
    }
    valid, problems = validate_event(event, own_keys=KEY_PREFIX)
    assert problems == []
    assert valid is not None


def test_order_completed_subtotal_is_before_the_discount() -> None:
    # Segment's subtotal is after discounts and its total includes shipping and tax; ulak's
    # subtotal is before discounts: Subtotal - Discount + Shipping + Tax = Total.
    properties: dict[str, Any] = {
        "order_id": "1002",
        "subtotal": 900.5,
        "discount": 100,
        "shipping": 29.9,
        "tax": 180.1,
        "total": 1110.5,
        "products": [{"product_id": "p-1", "price": 500.25, "quantity": 2}],
    }
    message = {"type": "track", "messageId": "m-9", "userId": "c-1", "event": "Order Completed"}
    data = mapped({**message, "properties": properties})["data"]
    assert (data["subtotal"], data["discount"]) == ("1000.5", "100")
    assert Decimal(data["subtotal"]) - Decimal(data["discount"]) + Decimal(
        data["shipping"]
    ) + Decimal(data["tax"]) == Decimal(data["total"])
    # Without a discount the subtotal is as given; without a subtotal there is none.
    del properties["discount"]
    assert mapped({**message, "properties": properties})["data"]["subtotal"] == "900.5"
    del properties["subtotal"]
    assert "subtotal" not in mapped({**message, "properties": properties})["data"]


def test_identify_traits_become_the_profile_and_the_rest_attributes() -> None:
    event = mapped(
        {
            "userId": "c-1",
            "messageId": "m-2",
            "traits": {
                "email": "ayse@example.com",
                "phone": "0532 111 22 33",
                "name": "Ayşe Nur Yılmaz",
                "birthday": "1990-05-17T00:00:00.000Z",
                "address": {"city": "İzmir", "country": "TR"},
                "plan": "gold",
            },
            "context": {"timezone": "Europe/Istanbul"},
        },
        kind="identify",
    )
    assert event == {
        "id": "segment:m-2",
        "type": "customer.updated",
        "customer": {
            "id": "c-1",
            "email": "ayse@example.com",
            "phone": "0532 111 22 33",
            "first_name": "Ayşe",
            "last_name": "Nur Yılmaz",
            "birthday": "1990-05-17",
            "timezone": "Europe/Istanbul",
            "attributes": {"address": {"city": "İzmir", "country": "TR"}, "plan": "gold"},
        },
    }


def test_anonymous_messages_name_the_anonymous_profile_and_alias_merges_either() -> None:
    anonymous = mapped({"type": "page", "anonymousId": "a-7", "name": "Home"})
    assert anonymous == {
        "type": "page.viewed",
        "customer": {"id": "anonymous:a-7"},
        "data": {"name": "Home", "category": None},
    }
    alias = mapped({"type": "alias", "userId": "c-1", "previousId": "a-7", "messageId": "m"})
    assert alias == {
        "id": "segment:m",
        "type": "customer.updated",
        "customer": {"id": "c-1", "previous_ids": ["a-7", "anonymous:a-7"]},
    }


def test_product_added_is_a_line_put_in_the_persons_cart() -> None:
    event = mapped(
        {
            "type": "track",
            "anonymousId": "a-7",
            "event": "Product Added",
            "properties": {"product_id": "p-1", "name": "Çay", "price": "19.90", "quantity": 1},
        }
    )
    assert event["type"] == "cart.updated"
    assert event["data"] == {
        "cart_id": "segment-cart:a-7",
        "items": [{"product_id": "p-1", "title": "Çay", "quantity": 1, "price": "19.90"}],
        "change": "add",
    }


def test_custom_names_become_types_without_a_dot() -> None:
    assert custom_type("Signed Up") == "signed_up"
    assert custom_type("order.placed") == "order_placed"
    with pytest.raises(Skip, match="no letter or digit"):
        custom_type("!!!")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("x", "a message must be an object"),
        ({"type": "tracks"}, "type must be one of track, identify, page, screen, group, alias"),
        ({"type": "track", "event": "X"}, "a message needs a userId or an anonymousId"),
        ({"type": "track", "userId": "u"}, "a track message needs an event name"),
        ({"type": "track", "userId": ["u"], "event": "X"}, "userId must be a string"),
        (
            {"type": "track", "userId": "u", "event": "X", "properties": []},
            "properties must be an object",
        ),
        (
            {
                "type": "track",
                "userId": "u",
                "event": "Order Completed",
                "properties": {"order_id": "1", "total": [12]},
            },
            "properties.total must be a number",
        ),
        (
            {
                "type": "track",
                "userId": "u",
                "event": "Order Completed",
                "properties": {"order_id": "1", "total": 1, "products": {"a": 1}},
            },
            "properties.products must be a list",
        ),
        (
            {"type": "identify", "userId": "u", "traits": {"birthday": "17/05/1990"}},
            "traits.birthday must be an ISO date, not '17/05/1990'",
        ),
        ({"type": "alias", "userId": "u"}, "an alias needs a userId and a previousId"),
        ({"type": "track", "userId": "u", "event": "X", "timestamp": 5}, "timestamp must be"),
    ],
)
def test_messages_that_cannot_become_events_say_why(message: Any, reason: str) -> None:
    with pytest.raises(Skip) as raised:
        to_event(message)
    assert str(raised.value).startswith(reason)


def test_money_keeps_the_number_the_sdk_was_given() -> None:
    assert money(0.1, "x") == "0.1"
    assert money(1249.90, "x") == "1249.9"
    assert money(12, "x") == "12"
    assert money(None, "x") is None
    with pytest.raises(Skip, match="x must be a finite number"):
        money(float("nan"), "x")
    with pytest.raises(Skip, match="x must be a number"):
        money(True, "x")


def test_money_rounds_float_residue_past_four_places_half_up() -> None:
    assert money(0.1 + 0.2, "x") == "0.3000"  # 0.30000000000000004
    assert money(1.15 * 100, "x") == "115.0000"  # 114.99999999999999
    assert money(19.99 * 1.18, "x") == "23.5882"  # 23.588199999999997
    assert money(1.00005, "x") == "1.0001"  # half up, not to even
    assert money(0.00005, "x") == "0.0001"  # half up, not to even
    assert money(1.23456, "x") == "1.2346"
    assert money(1.2345, "x") == "1.2345"  # four places are kept as given


@pytest.mark.parametrize(
    ("sent", "birthday"),
    [
        ("1990-05-14T21:00:00.000Z", "1990-05-15"),  # Istanbul's midnight (UTC+3)
        ("1990-05-15T04:00:00.000Z", "1990-05-15"),  # New York's midnight (UTC-4)
        ("1990-05-15T00:00:00.000+03:00", "1990-05-15"),
        ("1990-05-15T00:00:00", "1990-05-15"),
        ("1990-05-15", "1990-05-15"),
    ],
)
def test_a_birthday_sent_as_a_date_and_time_is_the_day_of_the_nearest_midnight(
    sent: str, birthday: str
) -> None:
    event = mapped({"userId": "c-1", "messageId": "m", "traits": {"birthday": sent}}, "identify")
    assert event["customer"] == {"id": "c-1", "birthday": birthday}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
field_names = st.sampled_from(
    ["type", "userId", "anonymousId", "event", "properties", "traits", "context", "messageId",
     "timestamp", "previousId", "groupId", "name", "products", "order_id", "total", "price"]
)  # fmt: skip
messages = st.dictionaries(field_names, json_values, max_size=8) | st.fixed_dictionaries(
    {
        "type": st.sampled_from(["track", "identify", "page", "alias", "group"]),
        "userId": st.text(max_size=5),
        "event": st.sampled_from(list(TRACKED)),
        "properties": st.dictionaries(field_names, json_values, max_size=6),
        "traits": st.dictionaries(st.sampled_from(["email", "birthday", "name"]), json_values),
    }
)


@given(message=messages)
@settings(max_examples=400, deadline=None)
def test_any_message_maps_or_says_why_and_never_raises_otherwise(message: Any) -> None:
    reason = ""
    try:
        event = to_event(message).event
    except Skip as error:
        reason = str(error)
    if reason:
        return
    # The event's own validation answers the rest with problems, never an exception.
    validate_event(event, own_keys=KEY_PREFIX)
