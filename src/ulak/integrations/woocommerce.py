"""WooCommerce webhooks: `POST /v1/integrations/woocommerce/{store id}`.

A WooCommerce shop (WooCommerce > Settings > Advanced > Webhooks) posts each order,
customer and product as its REST API v3 JSON, signed with `X-WC-Webhook-Signature` (base64
HMAC-SHA256 of the raw body, keyed by the webhook's secret, which `ulak integrations set
woocommerce` keeps). This route checks the signature, turns the resource into ulak events
(`translate`, a pure function of the body) and sends them through the events inbox, as
every route that changes state does; the worker applies them like any shop's events.

Status mapping (the README's "WooCommerce" section has the table and why): an order is
placed once WooCommerce holds it for the shop to act on (on-hold, processing, completed and
the shipping plugins' custom statuses), not while it awaits payment (pending, failed);
completed is the shop's "sent" (WooCommerce's completed email is where the Shipment
Tracking extension puts the tracking number), so it is `order.shipped`, one per tracking
item of `_wc_shipment_tracking_items`; delivery comes from the carrier
(`shipment.updated`) or a plugin's `delivered` status.

Idempotency: each event's id is `woocommerce:` + the resource + what the event says, so a
webhook delivered twice (WooCommerce resends on a save, and a shop may press "resend") is
one event; a status the order had before is the same id again, and not sent twice. The
placed order's id carries a digest of its body: an edited order is a new `order.placed`,
which updates the order (the confirmation journey runs once per order). An id the store
has with a different body (a status event whose details changed since) is answered 200
with the first one kept: WooCommerce disables a webhook after five failed deliveries in a
row, and a retry could never succeed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError

from ulak.errors import Invalid, UlakError, Unauthorized
from ulak.events.inbox import Inbox
from ulak.events.schemas import (
    Accepted,
    EventIn,
    Problem,
    nul_problems,
    problems_of,
    validate_event,
)
from ulak.integrations.service import SecretCache, signature_ok

PLATFORM = "woocommerce"
# The reserved prefix of the ids of events made of WooCommerce webhooks
# (`events.schemas.RESERVED_KEY_PREFIXES`): a shop's own event cannot take one.
KEY_PREFIX = "woocommerce:"

router = APIRouter(tags=["integrations"])

# WooCommerce's activation ping: `WC_Webhook::deliver_ping` posts `webhook_id=<id>`,
# form-encoded and unsigned, and saves the webhook only on a 200.
_PING = re.compile(rb"webhook_id=\d{1,20}")


class BadJson(UlakError):
    status_code = 400
    code = "bad_json"


# WooCommerce's JSON, as far as ulak reads it. Unknown fields are ignored (a plugin adds
# many); a field ulak reads that has the wrong type is a 422 naming it.


def _no_float(value: Any) -> Any:
    # WooCommerce sends every amount as a decimal string; a number would have lost cents.
    if isinstance(value, float):
        raise ValueError('an amount must be a decimal string like "1249.90", not a number')
    return value


WooMoney = Annotated[Decimal, BeforeValidator(_no_float), Field(allow_inf_nan=False)]


def _utc(value: datetime) -> datetime:
    # The `*_gmt` fields are UTC without an offset.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


WooTime = Annotated[datetime, AfterValidator(_utc)]


def _text(value: Any) -> Any:
    return "" if value is None else value


Text = Annotated[str, BeforeValidator(_text)]


class WooAddress(BaseModel):
    first_name: Text = ""
    last_name: Text = ""
    company: Text = ""
    address_1: Text = ""
    address_2: Text = ""
    city: Text = ""
    state: Text = ""
    postcode: Text = ""
    country: Text = ""
    email: Text = ""
    phone: Text = ""


class WooImage(BaseModel):
    src: Text = ""


class WooLineItem(BaseModel):
    name: Text
    product_id: int = 0
    variation_id: int = 0
    quantity: Annotated[int, Field(ge=1)]
    sku: Text = ""
    subtotal: WooMoney
    subtotal_tax: WooMoney = Decimal(0)
    image: WooImage | None = None


class WooCouponLine(BaseModel):
    code: Text


class WooMeta(BaseModel):
    key: Text
    value: Any = None


class WooRefund(BaseModel):
    # Negative, as WooCommerce lists them ("-10.00").
    total: WooMoney


class WooOrder(BaseModel):
    id: Annotated[int, Field(ge=1)]
    number: Text = ""
    status: Annotated[str, Field(min_length=1, max_length=100)]
    currency: Text = ""
    prices_include_tax: bool = False
    date_created_gmt: WooTime
    date_modified_gmt: WooTime | None = None
    date_paid_gmt: WooTime | None = None
    date_completed_gmt: WooTime | None = None
    discount_total: WooMoney = Decimal(0)
    discount_tax: WooMoney = Decimal(0)
    shipping_total: WooMoney = Decimal(0)
    shipping_tax: WooMoney = Decimal(0)
    total_tax: WooMoney = Decimal(0)
    total: WooMoney
    customer_id: Annotated[int, Field(ge=0)] = 0
    billing: WooAddress = Field(default_factory=WooAddress)
    shipping: WooAddress = Field(default_factory=WooAddress)
    payment_method: Text = ""
    payment_method_title: Text = ""
    line_items: list[WooLineItem] = Field(default_factory=list)
    coupon_lines: list[WooCouponLine] = Field(default_factory=list)
    meta_data: list[WooMeta] = Field(default_factory=list)
    refunds: list[WooRefund] = Field(default_factory=list)
    created_via: Text = ""


class WooCustomer(BaseModel):
    id: Annotated[int, Field(ge=1)]
    email: Text = ""
    first_name: Text = ""
    last_name: Text = ""
    billing: WooAddress = Field(default_factory=WooAddress)
    date_created_gmt: WooTime | None = None


class WooTag(BaseModel):
    name: Text


class WooProduct(BaseModel):
    id: Annotated[int, Field(ge=1)]
    # A variation's parent; 0 for a product.
    parent_id: Annotated[int, Field(ge=0)] = 0
    name: Text = ""
    permalink: Text = ""
    # "" for a variable product, whose variations carry the prices.
    price: Text = ""
    manage_stock: bool | str = False
    stock_quantity: int | None = None
    stock_status: Text = ""
    images: list[WooImage] = Field(default_factory=list)
    # A variation has one `image` rather than `images`.
    image: WooImage | None = None
    tags: list[WooTag] = Field(default_factory=list)


class TrackingItem(BaseModel):
    """One parcel of the Shipment Tracking extension's `_wc_shipment_tracking_items` (the
    Advanced Shipment Tracking plugin writes the same key and fields)."""

    tracking_provider: Text = ""
    custom_tracking_provider: Text = ""
    custom_tracking_link: Text = ""
    tracking_number: Text = ""
    tracking_id: Text = ""


# Statuses. WooCommerce's own, without their `wc-` prefix; then the custom statuses of
# the common shipping plugins (Advanced Shipment Tracking: shipped, partial-shipped,
# delivered) and the Turkish names shops give theirs.
NOT_PLACED = {
    "pending": "the order awaits payment: not placed yet",
    "failed": "the payment failed: not placed",
    "checkout-draft": "a checkout in progress: not placed yet",
    "trash": "the order is in the trash",
}
PAID_STATUSES = frozenset({"processing", "completed"})
PREPARING = frozenset({"preparing", "hazirlaniyor", "packing", "packed", "ready-to-ship"})
SHIPPED = frozenset(
    {
        "completed",
        "shipped",
        "partial-shipped",
        "partially-shipped",
        "in-transit",
        "kargoda",
        "kargolandi",
        "kargoya-verildi",
    }
)
DELIVERED = frozenset({"delivered", "teslim-edildi"})
KNOWN = frozenset({"on-hold", "processing", "cancelled", "refunded"}) | PREPARING | SHIPPED

# WooCommerce's payment gateway ids with a common code of `order.placed`'s
# payment_method; any other is named as the shop titled it.
PAYMENT_METHODS = {
    "cod": "cash_on_delivery",
    "bacs": "bank_transfer",
    "paypal": "paypal",
    "ppcp-gateway": "paypal",
}

CENT = Decimal("0.01")


@dataclass
class Translation:
    """What ulak makes of one webhook: its events, and why it made less of it."""

    events: list[EventIn] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()[:16]


def _event(
    key: str,
    type_: str,
    occurred_at: datetime | None,
    customer: dict[str, Any] | None,
    data: dict[str, Any],
    *,
    digest: bool = False,
) -> EventIn:
    body: dict[str, Any] = {"type": type_, "data": data}
    if customer is not None:
        body["customer"] = customer
    if digest:
        # What the event says, so the same resource delivered again is the same id.
        key = f"{key}:{_digest(body)}"
    if occurred_at is not None:
        body["occurred_at"] = occurred_at.isoformat()
    # Validated as any shop's event (the ids, in ulak's reserved namespace, are added after).
    event, problems = validate_event(body)
    if event is None:
        raise Invalid(
            f"the {type_} made of this webhook is invalid: "
            + "; ".join(f"{p.path}: {p.message}" for p in problems[:5]),
            details=[p.model_dump() for p in problems],
        )
    return event.model_copy(update={"id": KEY_PREFIX + key})


def _accepted(customer: dict[str, Any], about: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The customer without an email or phone WooCommerce took but ulak refuses (an
    admin-created order's address is not validated: `a..b@example.com`), and a note for
    each left out; None when nothing else names them. A 422 would lose the whole resource
    and push WooCommerce toward disabling the webhook for one address."""
    _, problems = validate_event({"type": "customer.updated", "customer": customer, "data": {}})
    refused = {p.path.removeprefix("customer."): p.message for p in problems}
    if not problems or not refused.keys() <= {"email", "phone"}:
        return customer, []  # valid, or refused for more than an address: _event says why
    kept = {k: v for k, v in customer.items() if k not in refused}
    notes = [f"{about}: the {name} is refused ({why}): left out" for name, why in refused.items()]
    if not kept.keys() & {"id", "email", "phone"}:
        return None, [*notes, f"{about} names no other customer ulak accepts: nothing stored"]
    return kept, notes


def _amount(value: Decimal) -> str:
    return str(value.quantize(CENT) if value == value.quantize(CENT) else value)


def _per_unit(total: Decimal, quantity: int) -> str:
    unit = total / quantity
    if unit == unit.quantize(CENT):
        return str(unit.quantize(CENT))
    return str(unit.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def _customer_of_order(order: WooOrder) -> dict[str, Any]:
    customer: dict[str, Any] = {}
    if order.customer_id:
        customer["id"] = str(order.customer_id)
    if email := order.billing.email.strip():
        customer["email"] = email
    if phone := (order.billing.phone or order.shipping.phone).strip():
        customer["phone"] = phone
    if first := order.billing.first_name.strip():
        customer["first_name"] = first
    if last := order.billing.last_name.strip():
        customer["last_name"] = last
    if not ({"id", "email", "phone"} & customer.keys()):
        raise Invalid(
            f"order {order.id} names no customer: no customer_id, billing.email nor billing.phone",
            details=[Problem(path="billing.email", message="missing").model_dump()],
        )
    return customer


def _address(order: WooOrder) -> dict[str, str] | None:
    address = order.shipping if order.shipping.address_1.strip() else order.billing
    name = f"{address.first_name} {address.last_name}".strip()
    fields = {
        "name": name,
        "company": address.company,
        "line1": address.address_1,
        "line2": address.address_2,
        "city": address.city,
        # WooCommerce's state code (TR34 for İstanbul), kept as it is.
        "state": address.state,
        "postal_code": address.postcode,
        "country": address.country,
        "phone": address.phone,
    }
    kept = {k: v.strip() for k, v in fields.items() if v.strip()}
    return kept or None


def _items(order: WooOrder) -> list[dict[str, Any]]:
    items = []
    for line in order.line_items:
        # `price` in WooCommerce's line item is a float, and without tax: the line's
        # subtotal (before discounts), with its tax where the shop's prices include it,
        # is the price the customer saw.
        paid = line.subtotal + (line.subtotal_tax if order.prices_include_tax else 0)
        item: dict[str, Any] = {
            # A line's name is its product's at the time; one left empty (by a plugin
            # that adds lines) is named by its SKU or product rather than refused.
            "title": line.name.strip() or line.sku.strip() or f"#{line.product_id}",
            "quantity": line.quantity,
            "price": _per_unit(paid, line.quantity),
        }
        if line.product_id:
            item["product_id"] = str(line.product_id)
        if line.variation_id:
            item["variant_id"] = str(line.variation_id)
        if line.sku:
            item["sku"] = line.sku
        if line.image is not None and line.image.src.startswith(("https://", "http://")):
            item["image_url"] = line.image.src
        items.append(item)
    return items


def _with_tax(order: WooOrder, amount: Decimal, tax: Decimal) -> str:
    return _amount(amount + tax if order.prices_include_tax else amount)


def _placed(order: WooOrder, customer: dict[str, Any]) -> EventIn:
    data: dict[str, Any] = {
        "order_id": str(order.id),
        "number": order.number or str(order.id),
        "items": _items(order),
        "subtotal": _with_tax(
            order,
            sum((line.subtotal for line in order.line_items), Decimal(0)),
            sum((line.subtotal_tax for line in order.line_items), Decimal(0)),
        ),
        "discount": _with_tax(order, order.discount_total, order.discount_tax),
        "shipping": _with_tax(order, order.shipping_total, order.shipping_tax),
        "tax": _amount(order.total_tax),
        "total": _amount(order.total),
        "discount_codes": [c.code for c in order.coupon_lines if c.code],
        "channel": "web",
    }
    if order.currency:
        data["currency"] = order.currency
    if address := _address(order):
        data["shipping_address"] = address
    method = PAYMENT_METHODS.get(order.payment_method) or order.payment_method_title.strip()
    if method:
        data["payment_method"] = method[:100]
    # Placed when paid, for an order paid at once or later (a card payment, a payment
    # link days after checkout): the confirmation is meant for that moment, and an
    # informational send more than a day late is skipped. Unpaid (on-hold): when created.
    placed_at = order.date_paid_gmt or order.date_created_gmt
    return _event(
        f"order:{order.id}:placed", "order.placed", placed_at, customer, data, digest=True
    )


def tracking_items(order: WooOrder) -> tuple[list[TrackingItem], list[str]]:
    """The parcels the Shipment Tracking extension recorded, and why any was left out."""
    notes: list[str] = []
    for meta in order.meta_data:
        if meta.key != "_wc_shipment_tracking_items":
            continue
        if not isinstance(meta.value, list):
            return [], ["_wc_shipment_tracking_items is not a list: tracking left out"]
        items = []
        for index, raw in enumerate(meta.value):
            try:
                item = TrackingItem.model_validate(raw)
            except ValidationError:
                notes.append(f"_wc_shipment_tracking_items[{index}] is unreadable: left out")
                continue
            if item.tracking_number.strip():
                items.append(item)
        return items, notes
    return [], notes


def _shipped(order: WooOrder, customer: dict[str, Any], at: datetime | None) -> Translation:
    parcels, notes = tracking_items(order)
    out = Translation(notes=notes)
    if not parcels:
        data = {"order_id": str(order.id)}
        out.events.append(_event(f"order:{order.id}:shipped", "order.shipped", at, customer, data))
        return out
    for parcel in parcels:
        number = parcel.tracking_number.strip()
        parcel_id = parcel.tracking_id.strip() or number
        data = {
            "order_id": str(order.id),
            "shipment_id": f"{order.id}-{parcel_id}"[:200],
            "tracking_number": number[:200],
        }
        if carrier := (parcel.custom_tracking_provider or parcel.tracking_provider).strip():
            data["carrier"] = carrier[:100]
        link = parcel.custom_tracking_link.strip()
        if link.startswith(("https://", "http://")):
            data["tracking_url"] = link
        # Within the 200 characters of an event's id, with its prefix.
        key = f"order:{order.id}:shipped:{parcel_id}"[: 200 - len(KEY_PREFIX)]
        out.events.append(_event(key, "order.shipped", at, customer, data))
    return out


def order_translation(order: WooOrder) -> Translation:
    status = order.status.removeprefix("wc-")
    if status in NOT_PLACED:
        return Translation(notes=[NOT_PLACED[status]])
    named, notes = _accepted(_customer_of_order(order), f"order {order.id}")
    if named is None:
        return Translation(notes=notes)
    customer = named
    order_id = str(order.id)
    changed = order.date_modified_gmt or order.date_created_gmt
    if status == "cancelled":
        data = {"order_id": order_id}
        return Translation(
            [_event(f"order:{order_id}:cancelled", "order.cancelled", changed, customer, data)],
            notes,
        )
    if status == "refunded":
        refunded = sum((-r.total for r in order.refunds), Decimal(0))
        data = {"order_id": order_id, "amount": _amount(abs(refunded) or order.total)}
        return Translation(
            [_event(f"order:{order_id}:refunded", "order.refunded", changed, customer, data)],
            notes,
        )
    out = Translation([_placed(order, customer)], notes)
    if order.date_paid_gmt is not None and status in PAID_STATUSES:
        paid = {"order_id": order_id, "amount": _amount(order.total)}
        out.events.append(
            _event(f"order:{order_id}:paid", "order.paid", order.date_paid_gmt, customer, paid)
        )
    if status in PREPARING:
        data = {"order_id": order_id}
        out.events.append(
            _event(f"order:{order_id}:preparing", "order.preparing", changed, customer, data)
        )
    if status in SHIPPED or status in DELIVERED:
        at = order.date_completed_gmt if status == "completed" else changed
        shipped = _shipped(order, customer, at or changed)
        out.events += shipped.events
        out.notes += shipped.notes
    if status in DELIVERED:
        data = {"order_id": order_id}
        out.events.append(
            _event(f"order:{order_id}:delivered", "order.delivered", changed, customer, data)
        )
    if status not in KNOWN and status not in DELIVERED:
        out.notes.append(f"status {status!r} is not one ulak maps: the order is placed only")
    return out


def customer_translation(customer: WooCustomer, *, created: bool) -> Translation:
    profile: dict[str, Any] = {"id": str(customer.id)}
    if email := (customer.email or customer.billing.email).strip():
        profile["email"] = email
    if phone := customer.billing.phone.strip():
        profile["phone"] = phone
    if first := (customer.first_name or customer.billing.first_name).strip():
        profile["first_name"] = first
    if last := (customer.last_name or customer.billing.last_name).strip():
        profile["last_name"] = last
    # The id always names them: only the refused address is left out.
    accepted, notes = _accepted(profile, f"customer {customer.id}")
    assert accepted is not None
    profile = accepted
    if created:
        key, type_, at = (
            f"customer:{customer.id}:created",
            "customer.created",
            customer.date_created_gmt,
        )
        return Translation([_event(key, type_, at, profile, {})], notes)
    # Stamped on arrival: WooCommerce saves a customer (and sends this) for changes ulak
    # does not read, such as their last visit; the same profile again is the same event.
    key = f"customer:{customer.id}:updated"
    return Translation([_event(key, "customer.updated", None, profile, {}, digest=True)], notes)


def product_translation(product: WooProduct) -> Translation:
    data: dict[str, Any] = {"product_id": str(product.parent_id or product.id)}
    if product.parent_id:
        data["variant_id"] = str(product.id)
    if product.name.strip():
        data["title"] = product.name.strip()
    if product.permalink.startswith(("https://", "http://")):
        data["url"] = product.permalink
    image = product.image or (product.images[0] if product.images else None)
    if image is not None and image.src.startswith(("https://", "http://")):
        data["image_url"] = image.src
    if product.price.strip():
        data["price"] = product.price.strip()
    if product.manage_stock is True and product.stock_quantity is not None:
        data["inventory"] = max(product.stock_quantity, 0)
    elif product.stock_status == "outofstock":
        data["inventory"] = 0
    if product.tags:
        data["tags"] = [t.name for t in product.tags if t.name]
    key = f"product:{product.id}"
    # Stamped on arrival, as a customer's update (a sale counted changes the product).
    return Translation([_event(key, "product.updated", None, None, data, digest=True)])


def translate(topic: str, body: Any) -> Translation:
    """The ulak events one webhook's body stands for. Raises `Invalid` (422) naming the
    field when the body is not the resource its topic says."""
    resource, _, action = topic.partition(".")
    if action == "deleted":
        return Translation(notes=[f"{topic} is not read: ulak keeps what it was told"])
    if resource not in {"order", "customer", "product"}:
        return Translation(notes=[f"the topic {topic!r} is not one ulak reads"])
    if not isinstance(body, dict):
        raise Invalid(f"a {topic} webhook's body must be a JSON object")
    if resource in body and isinstance(body[resource], dict):
        raise Invalid(
            "this is the legacy REST API's format: set the webhook's API version to "
            "'WP REST API Integration v3'"
        )
    models: dict[str, type[WooOrder | WooCustomer | WooProduct]] = {
        "order": WooOrder,
        "customer": WooCustomer,
        "product": WooProduct,
    }
    try:
        parsed = models[resource].model_validate(body)
    except ValidationError as error:
        problems = problems_of(error)
        raise Invalid(
            f"the {resource} is not as WooCommerce sends it: "
            + "; ".join(f"{p.path}: {p.message}" for p in problems[:5]),
            details=[p.model_dump() for p in problems],
        ) from error
    if isinstance(parsed, WooOrder):
        return order_translation(parsed)
    if isinstance(parsed, WooCustomer):
        return customer_translation(parsed, created=action == "created")
    assert isinstance(parsed, WooProduct)
    return product_translation(parsed)


@router.post(
    "/v1/integrations/woocommerce/{store_id}",
    summary="A WooCommerce webhook (order, customer, product), signed with the store's secret",
)
async def woocommerce_webhook(
    request: Request, store_id: Annotated[int, Path(ge=1, lt=2**63)]
) -> JSONResponse:
    """Answered 200 once its events are committed (or when there is nothing to store, with
    the reason in `notes`); 401 for a signature that does not match; 400/422 for a body
    that is not a WooCommerce resource."""
    body = await request.body()
    signature = request.headers.get("x-wc-webhook-signature")
    if signature is None and _PING.fullmatch(body.strip()):
        return JSONResponse({"ping": "ok"})
    secrets: SecretCache = request.app.state.integration_secrets
    secret = await secrets.secret(store_id, PLATFORM)
    if secret is None or not signature_ok(secret, body, signature):
        raise Unauthorized(
            "the X-WC-Webhook-Signature does not match: set the webhook's secret with "
            "`ulak integrations set woocommerce`"
        )
    topic = request.headers.get("x-wc-webhook-topic", "").strip()
    if not topic:
        raise Invalid("the X-WC-Webhook-Topic header is missing")
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise BadJson("the body is not valid JSON") from error
    if b"\\u0000" in body and nul_problems(parsed):
        # PostgreSQL's text and JSON cannot hold one: a 422 here, not a 500 at the insert.
        raise Invalid("the body holds a NUL character (\\u0000), which no WooCommerce field has")
    translation = translate(topic, parsed)
    answers = []
    if translation.events:
        inbox: Inbox = request.app.state.inbox
        answers = await inbox.accept(store_id, list(enumerate(translation.events)), source=PLATFORM)
    events = []
    for answer in answers:
        event = translation.events[answer.index]
        if isinstance(answer, Accepted):
            outcome = "duplicate" if answer.duplicate else "stored"
        else:
            outcome = "kept_earlier"
        events.append({"key": answer.key, "type": event.type, "outcome": outcome})
    return JSONResponse({"topic": topic, "events": events, "notes": translation.notes})
