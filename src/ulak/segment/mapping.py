"""Segment messages (track, identify, page, screen, group, alias) as ulak events: a pure
function of the message, so the API, the tests and the README's table agree.

A message becomes one event keyed `segment:<messageId>`, so an SDK's retry of a batch is a
duplicate, never a second order. What it becomes:

- `track` of a Segment e-commerce v2 event: the ulak event of `TRACKED` (Order Completed →
  order.placed, ...); any other name: a custom event of its own type (`Signed Up` →
  `signed_up`, no dot, so it never takes one of ulak's types), usable as a journey trigger.
- `identify`: `customer.updated` with the traits as the profile.
- `alias`: `customer.updated` naming the user and, as `previous_ids`, the old id.
- `page`, `screen`, `group`: `page.viewed`, `screen.viewed`, `group.identified`.

`timestamp` (else `originalTimestamp`) is taken as it is, without Segment's correction by
`sentAt` for a device's clock: a retry carries a new `sentAt`, and a corrected moment would
make the same message a conflict instead of a duplicate.

Whoever the message names: `userId` is the customer's `id`; a message with only an
`anonymousId` names the profile `anonymous:<anonymousId>`; one with both names the user and
lists the anonymous profile in `previous_ids`, which the event applier merges into the user.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ulak.events.schemas import DATA_MODELS

KEY_PREFIX = "segment:"
ANONYMOUS = "anonymous:"
# Segment's own limits (HTTP Tracking API): 32 KB a message, 500 KB a batch.
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024

# ulak's `Money` holds at most 4 decimal places (events.schemas).
MONEY_PLACES = 4

TYPES = ("track", "identify", "page", "screen", "group", "alias")


class Skip(ValueError):
    """The message cannot become an event; the reason is for the developer who sent it."""


@dataclass(frozen=True)
class Mapped:
    """One message as the raw ulak event (validated afterwards like any other)."""

    event: dict[str, Any]


def _text(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is int:  # Segment's ids may be numbers
        return str(value)
    raise Skip(f"{name} must be a string")


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Skip(f"{name} must be an object")
    return value


def money(value: Any, name: str) -> str | None:
    """Segment's amounts are JSON numbers; ulak's are decimal strings. A float's shortest
    repr is the number the SDK was given (19.99 → "19.99"), never its binary neighbour.
    A float with more than ulak's 4 decimal places is the residue of the shop's float
    arithmetic (0.1 + 0.2 = 0.30000000000000004, 1.15 * 100 = 114.99999999999999), which
    `Money` would refuse and so drop the whole order: rounded half up to 4 places.
    A string is passed on as it is: the event's validation reads it as a decimal, or says
    why not."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise Skip(f"{name} must be a finite number")
        text = repr(value)
        amount = Decimal(text)
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -MONEY_PLACES:
            return str(amount.quantize(Decimal(1).scaleb(-MONEY_PLACES), ROUND_HALF_UP))
        return text
    if kind is int or kind is str:
        return str(value) if value != "" else None
    if value is None:
        return None
    raise Skip(f"{name} must be a number")


def _quantity(value: Any, name: str) -> int:
    if value is None:
        return 1
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Skip(f"{name} must be a whole number")
    return value


def _item(raw: Any, name: str) -> dict[str, Any]:
    product = _object(raw, name)
    product_id = _text(product.get("product_id") or product.get("id"), f"{name}.product_id")
    sku = _text(product.get("sku"), f"{name}.sku")
    item: dict[str, Any] = {
        "product_id": product_id,
        "variant_id": _text(product.get("variant_id"), f"{name}.variant_id"),
        "sku": sku,
        "title": _text(product.get("name"), f"{name}.name") or sku or product_id,
        "quantity": _quantity(product.get("quantity"), f"{name}.quantity"),
        "price": money(product.get("price"), f"{name}.price"),
        "url": product.get("url"),
        "image_url": product.get("image_url"),
    }
    if item["title"] is None:
        raise Skip(f"{name} needs a name, sku or product_id")
    return {k: v for k, v in item.items() if v is not None}


def _items(properties: dict[str, Any]) -> list[dict[str, Any]]:
    products = properties.get("products")
    if products is None:
        return []
    if not isinstance(products, list):
        raise Skip("properties.products must be a list")
    return [_item(p, f"properties.products[{i}]") for i, p in enumerate(products)]


def _total(properties: dict[str, Any]) -> str | None:
    # Segment: `total` includes shipping and tax; `revenue` does not; `value` is a checkout's.
    for name in ("total", "revenue", "value"):
        if properties.get(name) is not None:
            return money(properties[name], f"properties.{name}")
    return None


def _currency(properties: dict[str, Any]) -> str | None:
    currency = _text(properties.get("currency"), "properties.currency")
    return currency.upper() if currency else None


def _extras(properties: dict[str, Any], ulak_type: str) -> dict[str, Any]:
    """What the shop sent beyond what is mapped, kept as ulak keeps unknown fields; a name
    the ulak type declares (Segment's `discount` is a float) is left to the mapping."""
    model = DATA_MODELS.get(ulak_type)
    declared = model.model_fields if model is not None else {}
    return {k: v for k, v in properties.items() if k not in declared and k != "products"}


def _cart_id(properties: dict[str, Any], person: str) -> str:
    # analytics.js sends no cart_id unless the shop adds one: a person's one open cart.
    return _text(properties.get("cart_id"), "properties.cart_id") or f"segment-cart:{person}"


def _subtotal(p: dict[str, Any]) -> str | None:
    """Segment's `subtotal` is after discounts; ulak's is before them (the confirmation
    prints Subtotal, -Discount, Shipping, Total), so the discount is added back."""
    # Imported here, not at the top, so this change stays within the subtotal's lines.
    from decimal import Decimal, InvalidOperation

    subtotal = money(p.get("subtotal"), "properties.subtotal")
    discount = money(p.get("discount"), "properties.discount")
    if subtotal is None or discount is None:
        return subtotal
    try:
        return str(Decimal(subtotal) + Decimal(discount))
    except InvalidOperation:
        return subtotal  # not a decimal: the event's validation says why


def _order_placed(p: dict[str, Any], person: str) -> dict[str, Any]:
    coupon = _text(p.get("coupon"), "properties.coupon")
    return {
        "order_id": _text(p.get("order_id"), "properties.order_id"),
        "items": _items(p),
        "subtotal": _subtotal(p),
        "discount": money(p.get("discount"), "properties.discount"),
        "shipping": money(p.get("shipping"), "properties.shipping"),
        "tax": money(p.get("tax"), "properties.tax"),
        "total": _total(p),
        "currency": _currency(p),
        "discount_codes": [coupon] if coupon else [],
        "cart_id": _cart_id(p, person),
    }


def _order_change(p: dict[str, Any], person: str) -> dict[str, Any]:
    return {
        "order_id": _text(p.get("order_id"), "properties.order_id"),
        "amount": _total(p),
        "reason": _text(p.get("reason"), "properties.reason"),
    }


def _order_updated(p: dict[str, Any], person: str) -> dict[str, Any]:
    return {
        "order_id": _text(p.get("order_id"), "properties.order_id"),
        "items": _items(p),
        "total": _total(p),
        "currency": _currency(p),
    }


def _cart(change: str) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    def mapped(p: dict[str, Any], person: str) -> dict[str, Any]:
        # Product Added / Removed: the product is the properties themselves.
        items = _items(p) if change == "replace" else [_item(p, "properties")]
        return {
            "cart_id": _cart_id(p, person),
            "items": items,
            "total": _total(p) if change == "replace" else None,
            "currency": _currency(p),
            "change": change,
        }

    return mapped


def _product(p: dict[str, Any], person: str) -> dict[str, Any]:
    return {
        "product_id": _text(p.get("product_id"), "properties.product_id")
        or _text(p.get("sku"), "properties.sku"),
        "variant_id": _text(p.get("variant_id"), "properties.variant_id"),
    }


# The Segment e-commerce v2 events ulak understands, and what each becomes.
TRACKED: dict[str, tuple[str, Callable[[dict[str, Any], str], dict[str, Any]]]] = {
    "Order Completed": ("order.placed", _order_placed),
    "Order Updated": ("order.updated", _order_updated),
    "Order Cancelled": ("order.cancelled", _order_change),
    "Order Refunded": ("order.refunded", _order_change),
    "Checkout Started": ("checkout.started", _cart("replace")),
    "Cart Viewed": ("cart.updated", _cart("replace")),
    "Product Added": ("cart.updated", _cart("add")),
    "Product Removed": ("cart.updated", _cart("remove")),
    "Product Viewed": ("product.viewed", _product),
    "Back In Stock Requested": ("back_in_stock.requested", _product),
    "Back In Stock Cancelled": ("back_in_stock.cancelled", _product),
}


def custom_type(name: str) -> str:
    """A custom track event's ulak type: "Signed Up" → "signed_up"."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:100]
    if not slug:
        raise Skip(f"event {name[:60]!r} has no letter or digit to name a type by")
    return slug


def _birthday(value: Any) -> str | None:
    text = _text(value, "traits.birthday")
    if text is None:
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        # A date and time: analytics.js sends a JS Date, the person's local midnight in
        # UTC (Istanbul's 1990-05-15 is 1990-05-14T21:00:00.000Z, New York's is
        # 1990-05-15T04:00:00.000Z). The nearest midnight is the day meant, for any zone
        # within ±12 h; the time's own offset is kept, so a local midnight stays its day.
        moment = datetime.fromisoformat(text)
        return (moment + timedelta(hours=12)).date().isoformat()
    except ValueError as error:
        raise Skip(f"traits.birthday must be an ISO date, not {text[:40]!r}") from error


PROFILE_TRAITS = {
    "email": "email",
    "phone": "phone",
    "firstName": "first_name",
    "first_name": "first_name",
    "lastName": "last_name",
    "last_name": "last_name",
}
# Traits read into the profile or about Segment itself; the rest become attributes.
_NOT_ATTRIBUTES = {*PROFILE_TRAITS, "name", "birthday", "id", "userId", "anonymousId"}


def _profile(
    traits: dict[str, Any], context: dict[str, Any], *, attributes: bool
) -> dict[str, Any]:
    profile: dict[str, Any] = {}
    for trait, field in PROFILE_TRAITS.items():
        value = _text(traits.get(trait), f"traits.{trait}")
        if value is not None:
            profile[field] = value
    name = _text(traits.get("name"), "traits.name")
    if name and "first_name" not in profile and "last_name" not in profile:
        first, _, last = name.strip().partition(" ")
        profile["first_name"] = first
        if last.strip():
            profile["last_name"] = last.strip()
    birthday = _birthday(traits.get("birthday"))
    if birthday:
        profile["birthday"] = birthday
    locale = context.get("locale")
    if isinstance(locale, str) and 0 < len(locale) <= 16:
        profile["locale"] = locale
    zone = context.get("timezone")
    if isinstance(zone, str) and _is_zone(zone):
        profile["timezone"] = zone
    if attributes:
        rest = {k: v for k, v in traits.items() if k not in _NOT_ATTRIBUTES and v is not None}
        if rest:
            profile["attributes"] = rest
    return profile


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _customer(message: dict[str, Any], profile: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The event's customer and the person's key (for a default cart id)."""
    user = _text(message.get("userId"), "userId")
    anonymous = _text(message.get("anonymousId"), "anonymousId")
    if user is None and anonymous is None:
        raise Skip("a message needs a userId or an anonymousId")
    customer = dict(profile)
    if user is not None:
        customer["id"] = user
        if anonymous is not None:
            customer["previous_ids"] = [ANONYMOUS + anonymous]
    else:
        customer["id"] = ANONYMOUS + (anonymous or "")
    return customer, anonymous or user or ""


def to_event(message: Any, *, kind: str | None = None) -> Mapped:
    """The ulak event a Segment message becomes; Skip with the reason when it cannot.
    `kind`: the call's type when the path says it (/v1/track), else the message's `type`."""
    if not isinstance(message, dict):
        raise Skip("a message must be an object")
    kind = kind or message.get("type")
    if kind not in TYPES:
        raise Skip(f"type must be one of {', '.join(TYPES)}, not {str(kind)[:40]!r}")
    context = _object(message.get("context"), "context")
    message_id = _text(message.get("messageId"), "messageId")
    timestamp = message.get("timestamp") or message.get("originalTimestamp")
    if timestamp is not None and not isinstance(timestamp, str):
        raise Skip("timestamp must be an ISO 8601 string")
    event: dict[str, Any] = {}
    if message_id is not None:
        event["id"] = KEY_PREFIX + message_id
    if timestamp:
        event["occurred_at"] = timestamp
    if kind == "alias":
        user = _text(message.get("userId"), "userId")
        previous = _text(message.get("previousId"), "previousId")
        if user is None or previous is None:
            raise Skip("an alias needs a userId and a previousId")
        # The previous id may be a user id or an anonymous id: either profile merges.
        event["type"] = "customer.updated"
        event["customer"] = {"id": user, "previous_ids": [previous, ANONYMOUS + previous]}
        return Mapped(event)
    # RudderStack's SDKs send identify's traits in context.traits, Segment's at the top.
    traits = _object(context.get("traits"), "context.traits")
    if kind == "identify":
        traits = {**traits, **_object(message.get("traits"), "traits")}
    customer, person = _customer(message, _profile(traits, context, attributes=kind == "identify"))
    event["customer"] = customer
    if kind == "identify":
        event["type"] = "customer.updated"
        return Mapped(event)
    properties = _object(message.get("properties"), "properties")
    if kind == "track":
        name = message.get("event")
        if name is None or name == "":
            raise Skip("a track message needs an event name")
        if not isinstance(name, str):
            raise Skip("event must be a string")
        known = TRACKED.get(name)
        if known is None:
            event["type"] = custom_type(name)
            event["data"] = properties
        else:
            ulak_type, mapping = known
            mapped = {k: v for k, v in mapping(properties, person).items() if v is not None}
            event["type"] = ulak_type
            # Product Added / Removed: the properties are the line, nothing beside it.
            line_only = ulak_type == "cart.updated" and mapped["change"] != "replace"
            extras = {} if line_only else _extras(properties, ulak_type)
            event["data"] = {**extras, **mapped}
        return Mapped(event)
    if kind == "group":
        event["type"] = "group.identified"
        event["data"] = {
            "group_id": _text(message.get("groupId"), "groupId"),
            "traits": _object(message.get("traits"), "traits"),
        }
        return Mapped(event)
    # page, screen
    event["type"] = f"{kind}.viewed"
    event["data"] = {
        **properties,
        "name": _text(message.get("name"), "name"),
        "category": _text(message.get("category"), "category"),
    }
    return Mapped(event)
