"""Shopify's webhooks as ulak events (see the README's Shopify section for the table).

Keys. Every event's id starts `shopify:` (reserved: a shop's own events cannot take one).
Two kinds:
- a *restatement* (order.placed, customer.*, consent.updated, cart/checkout, product.updated)
  is keyed by a digest of the event it makes: the same content again, from a replayed
  webhook (same X-Shopify-Webhook-Id) or from another topic restating the order, is a
  duplicate and stores nothing; changed content is a new event that updates ulak's copy;
- a *fact* that happens once (an order paid, cancelled; a fulfillment shipped or reaching
  a carrier status; a refund) is keyed by what it is about, whichever topic brings it
  (orders/updated restates every fulfillment and refund of the order). The first report
  stands: a later one under the same key with other details is the inbox's conflict,
  which the route answers 200 as already known, so Shopify does not retry it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ulak.events.schemas import CustomerIn, EventIn, Problem, validate_event
from ulak.integrations.shopify_payloads import (
    Checkout,
    Customer,
    Fulfillment,
    LineItem,
    MarketingConsent,
    MoneySet,
    Order,
    Product,
    Refund,
)

KEY_PREFIX = "shopify:"

# Shopify's `shipment_status` of a fulfillment (the carrier's latest word) as ulak's
# normalised shipment statuses.
SHIPMENT_STATUSES = {
    "label_printed": "info_received",
    "label_purchased": "info_received",
    "confirmed": "info_received",
    "carrier_picked_up": "in_transit",
    "in_transit": "in_transit",
    "delayed": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "attempted_delivery": "attempt_failed",
    "ready_for_pickup": "available_for_pickup",
    "picked_up": "delivered",
    "delivered": "delivered",
    "failure": "exception",
    "not_delivered": "exception",
}

# Where the order came from (`source_name`) as ulak's channel; the rest (pos, an app's
# id, a sales channel's handle) is "other", and the raw name is kept as `source_name`.
CHANNELS = {
    "web": "web",
    "shopify_draft_order": "web",
    "iphone": "web",
    "android": "web",
    "instagram": "instagram",
    "facebook": "facebook",
}

# Payment gateways ulak's emails can name in the customer's language; any other
# gateway's own name is shown as it is.
PAYMENT_METHODS = {
    "shopify_payments": "credit_card",
    "cash on delivery (cod)": "cash_on_delivery",
    "cash_on_delivery": "cash_on_delivery",
    "bank deposit": "bank_transfer",
    "bank_transfer": "bank_transfer",
    "paypal": "paypal",
    "gift_card": "gift_card",
}

PAID = frozenset({"paid", "partially_refunded", "refunded"})


@dataclass
class Mapped:
    """What one webhook becomes: the events to store, and what was left out and why."""

    events: list[EventIn] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # The customer blocks validated so far, by their JSON: the events of one webhook name
    # the same customer, and checking an email address took a third of the mapping's CPU.
    customers: dict[str, CustomerIn] = field(default_factory=dict)


def _at(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _cut(text: str | None, length: int) -> str | None:
    # Past what ulak's contract holds (a title of 500 characters, a name of 200): cut,
    # rather than lose the order or the customer for a long name.
    return text[:length] if text else text


def _digest(raw: dict[str, Any]) -> str:
    text = json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != "" and v != []}


def _add(
    mapped: Mapped,
    *,
    type: str,
    about: str,
    customer: dict[str, Any] | None,
    data: dict[str, Any],
    occurred_at: datetime | None,
    once: bool = False,
) -> None:
    """Validate one event against ulak's contract and add it, or record why not. An
    address ulak's contract refuses is dropped when the customer is named otherwise too."""
    raw: dict[str, Any] = {"type": type, "data": _clean(data)}
    if customer:
        raw["customer"] = customer
    if occurred_at is not None:
        raw["occurred_at"] = _at(occurred_at)
    event, problems = _validated(mapped, raw)
    if event is None and customer:
        refused = {p.path.partition(".")[2] for p in problems if p.path.startswith("customer.")}
        kept = {k: v for k, v in customer.items() if k not in refused}
        if (
            refused
            and refused <= {"email", "phone"}
            and all(p.path.startswith("customer.") for p in problems)
            and kept.keys() & {"id", "email", "phone"}
        ):
            raw["customer"] = kept
            event, problems = _validated(mapped, raw)
    if event is not None:
        # Validated without its key: `shopify:` keys are reserved for this route.
        key = f"{KEY_PREFIX}{about}" if once else f"{KEY_PREFIX}{about}:{_digest(raw)}"
        mapped.events.append(event.model_copy(update={"id": key}))
        return
    mapped.skipped.append(
        f"{type} about {about}: " + "; ".join(f"{p.path}: {p.message}" for p in problems)
    )


def _validated(mapped: Mapped, raw: dict[str, Any]) -> tuple[EventIn | None, list[Problem]]:
    seen = json.dumps(raw["customer"], sort_keys=True) if "customer" in raw else ""
    known = mapped.customers.get(seen)
    event, problems = validate_event({**raw, "customer": known} if known else raw)
    if event is not None and event.customer is not None and known is None:
        mapped.customers[seen] = event.customer
    return event, problems


def _customer(
    shopify: Customer | None,
    *,
    email: str | None = None,
    phone: str | None = None,
    locale: str | None = None,
) -> dict[str, Any]:
    """ulak's customer block: Shopify's customer id first (so every event of a customer
    shares a lane and applies in order), the order's or checkout's email and phone when
    the customer has none."""
    values: dict[str, Any] = {"locale": _cut(locale, 16)}
    if shopify is not None:
        values |= {
            "id": str(shopify.id) if shopify.id is not None else None,
            "email": shopify.email,
            "phone": shopify.phone,
            "first_name": _cut(shopify.first_name, 200),
            "last_name": _cut(shopify.last_name, 200),
        }
    values["email"] = values.get("email") or email
    values["phone"] = values.get("phone") or phone
    return _clean(values)


def _consent_status(consent: MarketingConsent) -> str | None:
    # not_subscribed (never asked), pending (double opt-in not confirmed yet), redacted and
    # invalid say nothing about a choice: no event, rather than a revocation.
    return {"subscribed": "granted", "unsubscribed": "revoked"}.get(consent.state or "")


def _consents(mapped: Mapped, shopify: Customer | None, customer: dict[str, Any]) -> None:
    if shopify is None or shopify.id is None or not customer:
        return
    given: list[tuple[str, str, datetime | None, dict[str, Any]]] = []
    for channel, consent in (
        ("email", shopify.email_marketing_consent),
        ("sms", shopify.sms_marketing_consent),
    ):
        if consent is not None and (status := _consent_status(consent)) is not None:
            proof = {
                "platform": "shopify",
                "opt_in_level": consent.opt_in_level,
                "consent_updated_at": _at(consent.consent_updated_at),
                "collected_from": consent.consent_collected_from,
            }
            given.append((channel, status, consent.consent_updated_at, _clean(proof)))
    if shopify.email_marketing_consent is None and shopify.accepts_marketing is not None:
        # The pre-2022 flag: true or false is the customer's choice for email.
        status = "granted" if shopify.accepts_marketing else "revoked"
        legacy: dict[str, Any] = {
            "platform": "shopify",
            "accepts_marketing": shopify.accepts_marketing,
        }
        given.append(("email", status, shopify.accepts_marketing_updated_at, legacy))
    for channel, status, at, proof in given:
        _add(
            mapped,
            type="consent.updated",
            about=f"consent:{shopify.id}:{channel}",
            customer=customer,
            data={"channel": channel, "status": status, "source": "shopify", "proof": proof},
            occurred_at=at,
        )


def _presented(plain: Decimal | None, money: MoneySet | None) -> str | None:
    """The amount the customer saw (Shopify's presentment money), else the shop's."""
    if money is not None:
        return str((money.presentment_money or money.shop_money).amount)
    return str(plain) if plain is not None else None


def _item(line: LineItem) -> dict[str, Any]:
    title = line.title or line.name or "?"
    if line.variant_title and line.title:
        title = f"{line.title} - {line.variant_title}"
    return _clean(
        {
            "product_id": str(line.product_id) if line.product_id else None,
            "variant_id": str(line.variant_id) if line.variant_id else None,
            "sku": _cut(line.sku, 200),
            "title": _cut(title, 500),
            "quantity": line.quantity,
            "price": _presented(line.price, line.price_set),
        }
    )


def _payment_method(names: list[str]) -> str | None:
    for name in names:
        if name and name.lower() != "manual":
            return PAYMENT_METHODS.get(name.lower(), name[:100])
    return None


def _shipping(order: Order) -> str | None:
    if order.total_shipping_price_set is not None:
        return _presented(None, order.total_shipping_price_set)
    prices = [_presented(line.price, line.price_set) for line in order.shipping_lines]
    known = [Decimal(p) for p in prices if p is not None]
    return str(sum(known, Decimal(0))) if known else None


def order_events(order: Order, *, topic: str) -> Mapped:
    """orders/create|updated|paid|fulfilled|cancelled: the order restated, then the facts
    its state holds (paid, each fulfillment shipped and its carrier status, each refund,
    cancelled)."""
    mapped = Mapped()
    shopify = order.customer
    customer = _customer(
        shopify,
        email=order.email or order.contact_email,
        phone=order.phone,
        locale=order.customer_locale,
    )
    if not customer.keys() & {"id", "email", "phone"}:
        mapped.skipped.append(
            f"order {order.id} names no customer (no customer, email or phone): ulak keeps "
            "orders of a customer"
        )
        return mapped
    _consents(mapped, shopify, customer)
    order_id = str(order.id)
    currency = order.presentment_currency or order.currency
    _add(
        mapped,
        type="order.placed",
        about=f"order:{order_id}:placed",
        customer=customer,
        occurred_at=order.created_at,
        data={
            "order_id": order_id,
            "number": _cut(order.name, 100),
            "items": [_item(line) for line in order.line_items],
            "subtotal": _presented(order.total_line_items_price, order.total_line_items_price_set),
            "discount": _presented(order.total_discounts, order.total_discounts_set),
            "shipping": _shipping(order),
            "tax": _presented(order.total_tax, order.total_tax_set),
            "total": _presented(order.total_price, order.total_price_set),
            "currency": currency,
            "discount_codes": [code.code for code in order.discount_codes],
            "channel": CHANNELS.get(order.source_name or "web", "other"),
            "source_name": order.source_name,
            "cart_id": order.checkout_token,
            "shipping_address": order.shipping_address,
            "payment_method": _payment_method(order.payment_gateway_names),
            "order_url": order.order_status_url,
        },
    )
    if order.financial_status in PAID:
        # orders/paid comes when the payment does; another topic restating a paid order
        # does not say when it was paid: the time it was processed (for an order paid at
        # checkout, that moment), never after what happened to the order since.
        paid_at = order.processed_at or order.created_at
        if topic == "orders/paid" and order.updated_at is not None:
            paid_at = order.updated_at
        _add(
            mapped,
            type="order.paid",
            about=f"order:{order_id}:paid",
            customer=customer,
            occurred_at=paid_at,
            data={
                "order_id": order_id,
                "amount": _presented(order.total_price, order.total_price_set),
            },
            once=True,
        )
    for fulfillment in order.fulfillments:
        _fulfillment_events(mapped, fulfillment, order_id=order_id, customer=customer)
    for refund in order.refunds:
        _refund_event(mapped, refund, order_id=order_id, customer=customer)
    if order.cancelled_at is not None:
        _add(
            mapped,
            type="order.cancelled",
            about=f"order:{order_id}:cancelled",
            customer=customer,
            occurred_at=order.cancelled_at,
            data={"order_id": order_id, "reason": _cut(order.cancel_reason, 500)},
            once=True,
        )
    return mapped


def _fulfillment_events(
    mapped: Mapped, fulfillment: Fulfillment, *, order_id: str, customer: dict[str, Any]
) -> None:
    about = f"fulfillment:{fulfillment.id}"
    if fulfillment.status != "success":
        # pending/open: not handed over yet; cancelled, error, failure: never shipped.
        mapped.skipped.append(f"{about} is {fulfillment.status or 'of no status'}: not shipped")
        return
    url = fulfillment.tracking_url
    _add(
        mapped,
        type="order.shipped",
        about=f"{about}:shipped",
        customer=customer,
        occurred_at=fulfillment.created_at,
        data={
            "order_id": order_id,
            "shipment_id": str(fulfillment.id),
            "carrier": _cut(fulfillment.tracking_company, 100),
            "tracking_number": _cut(fulfillment.tracking_number, 200),
            # Only a web link reaches an email; another is left out, the number stays.
            "tracking_url": url if url and url.startswith(("https://", "http://")) else None,
            "items": [_item(line) for line in fulfillment.line_items],
        },
        once=True,
    )
    if fulfillment.shipment_status is None:
        return
    status = SHIPMENT_STATUSES.get(fulfillment.shipment_status)
    if status is None:
        mapped.skipped.append(
            f"{about}: shipment status {fulfillment.shipment_status[:40]!r} is not one ulak knows"
        )
        return
    _add(
        mapped,
        type="shipment.updated",
        about=f"{about}:{status}",
        customer=customer,
        occurred_at=fulfillment.updated_at or fulfillment.created_at,
        data={"shipment_id": str(fulfillment.id), "order_id": order_id, "status": status},
        once=True,
    )


def fulfillment_events(fulfillment: Fulfillment, *, customer: dict[str, Any]) -> Mapped:
    """fulfillments/create|update: shipped, then the carrier's status. The payload names
    no customer: the route gives the order's, or the fulfillment's email."""
    mapped = Mapped()
    if fulfillment.order_id is None:
        mapped.skipped.append(f"fulfillment {fulfillment.id} names no order")
    elif not customer:
        mapped.skipped.append(f"fulfillment {fulfillment.id}: its order is not known yet")
    else:
        _fulfillment_events(
            mapped, fulfillment, order_id=str(fulfillment.order_id), customer=customer
        )
    return mapped


def _refund_event(
    mapped: Mapped, refund: Refund, *, order_id: str, customer: dict[str, Any]
) -> None:
    refunded = [
        t.amount
        for t in refund.transactions
        if t.kind == "refund" and t.status == "success" and t.amount is not None
    ]
    if not refunded:
        mapped.skipped.append(f"refund {refund.id} moved no money (a restock or a pending one)")
        return
    _add(
        mapped,
        type="order.refunded",
        about=f"refund:{refund.id}",
        customer=customer,
        occurred_at=refund.processed_at or refund.created_at,
        data={
            "order_id": order_id,
            "amount": str(sum(refunded, Decimal(0))),
            "reason": refund.note[:500] if refund.note else None,
        },
        once=True,
    )


def refund_events(refund: Refund, *, customer: dict[str, Any]) -> Mapped:
    """refunds/create: the payload names no customer; the route gives the order's."""
    mapped = Mapped()
    if refund.order_id is None:
        mapped.skipped.append(f"refund {refund.id} names no order")
    elif not customer:
        # orders/updated, which Shopify sends with every refund, carries it once the
        # order is known.
        mapped.skipped.append(f"refund {refund.id}: its order is not known yet")
    else:
        _refund_event(mapped, refund, order_id=str(refund.order_id), customer=customer)
    return mapped


def checkout_events(checkout: Checkout, *, topic: str) -> Mapped:
    """checkouts/create → checkout.started, checkouts/update → cart.updated, with
    Shopify's abandoned checkout URL as the recovery link."""
    mapped = Mapped()
    if checkout.completed_at is not None:
        mapped.skipped.append(f"checkout {checkout.token} is completed: its order follows")
        return mapped
    customer = _customer(
        checkout.customer,
        email=checkout.email,
        phone=checkout.phone,
        locale=checkout.customer_locale,
    )
    if not customer.keys() & {"id", "email", "phone"}:
        mapped.skipped.append(
            f"checkout {checkout.token} names nobody yet (no customer, email or phone)"
        )
        return mapped
    url = checkout.abandoned_checkout_url
    _add(
        mapped,
        type="checkout.started" if topic == "checkouts/create" else "cart.updated",
        about=f"checkout:{checkout.token}",
        customer=customer,
        occurred_at=checkout.updated_at or checkout.created_at,
        data={
            "cart_id": checkout.token,
            "items": [_item(line) for line in checkout.line_items],
            "total": str(checkout.total_price) if checkout.total_price is not None else None,
            "currency": checkout.presentment_currency or checkout.currency,
            "recovery_url": url if url and url.startswith(("https://", "http://")) else None,
        },
    )
    return mapped


def customer_events(shopify: Customer, *, topic: str) -> Mapped:
    """customers/create|update: the profile, then each marketing consent it states."""
    mapped = Mapped()
    customer = _customer(shopify)
    if shopify.id is None:
        mapped.skipped.append("the customer has no id")
        return mapped
    created = topic == "customers/create"
    _add(
        mapped,
        type="customer.created" if created else "customer.updated",
        about=f"customer:{shopify.id}",
        customer=customer,
        occurred_at=shopify.created_at if created else shopify.updated_at,
        data={},
    )
    _consents(mapped, shopify, customer)
    return mapped


def product_events(product: Product, *, shop_domain: str | None) -> Mapped:
    """products/update: one product.updated per variant, with its inventory (which tells
    back-in-stock subscribers when it goes from none to some)."""
    mapped = Mapped()
    tags = [tag.strip() for tag in (product.tags or "").split(",") if tag.strip()]
    pictures = {vid: image.src for image in product.images for vid in image.variant_ids}
    by_id = {image.id: image.src for image in product.images if image.id is not None}
    for variant in product.variants:
        title = product.title
        if variant.title and variant.title != "Default Title" and title:
            title = f"{title} - {variant.title}"
        url = None
        if shop_domain and product.handle:
            url = f"https://{shop_domain}/products/{product.handle}?variant={variant.id}"
        image = (
            pictures.get(variant.id)
            or (by_id.get(variant.image_id) if variant.image_id else None)
            or (product.image.src if product.image else None)
        )
        _add(
            mapped,
            type="product.updated",
            about=f"product:{product.id}:{variant.id}",
            customer=None,
            occurred_at=product.updated_at,
            data={
                "product_id": str(product.id),
                "variant_id": str(variant.id),
                "sku": variant.sku,
                "title": title[:500] if title else None,
                "url": url,
                "image_url": image if image and image.startswith("https://") else None,
                "price": str(variant.price) if variant.price is not None else None,
                "inventory": variant.inventory_quantity,
                "tags": tags,
            },
        )
    if not product.variants:
        mapped.skipped.append(f"product {product.id} has no variants")
    return mapped
