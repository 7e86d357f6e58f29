"""What journey expressions and templates can read about a customer and their order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.service import BoughtItem, ProductCard, ProductTips, recommend, tips_for
from ulak.customers.models import Customer
from ulak.customers.service import customer_view
from ulak.db import Note, notes
from ulak.messages.formatting import Formatter
from ulak.messages.rendering import resolve_locale
from ulak.orders.service import (
    cart_view,
    find_cart,
    find_shipment,
    order_views,
    shipment_view,
)
from ulak.reviews.service import quotable_reviews
from ulak.stores.models import Store

# The step runner's batch of orders, loaded at once (see `prefetch_orders`).
ORDER_VIEWS: Note[dict[tuple[int, str], tuple[dict[str, Any], dict[str, Any] | None]]] = Note(
    "journeys.order_views", dict
)


async def build_context(
    session: AsyncSession,
    *,
    store_id: int,
    customer: Customer,
    order_id: str | None,
    cart_id: str | None,
    shipment_id: str | None,
) -> dict[str, Any]:
    context: dict[str, Any] = {"customer": customer_view(customer)}
    latest = None
    if order_id:
        key = (store_id, order_id)
        views = notes(session)(ORDER_VIEWS)  # see prefetch_orders
        if key not in views:
            views = await order_views(session, {key})
        if key in views:
            context["order"], latest = views[key]
    if cart_id:
        cart = await find_cart(session, store_id=store_id, cart_id=cart_id)
        if cart is not None:
            context["cart"] = cart_view(cart)
    if shipment_id:
        shipment = await find_shipment(session, store_id=store_id, shipment_id=shipment_id)
        if shipment is not None:
            context["shipment"] = shipment_view(shipment)
    elif latest is not None:
        # The order's latest shipment, for messages about an order with one parcel.
        context["shipment"] = latest
    return context


async def prefetch_orders(session: AsyncSession, keys: set[tuple[int, str]]) -> None:
    """Load the views of a batch's orders at once, for `build_context` in the rest of the
    transaction. Only for work that does not change orders (the step runner)."""
    notes(session)(ORDER_VIEWS).update(await order_views(session, keys))


# Values of a message's context that cost queries: computed only for a template or an
# expression that reads them (`add_costly`), so the order confirmation, sent for every
# order, never pays for them.
COSTLY = frozenset({"tips", "recommendations", "testimonials"})


async def add_costly(
    session: AsyncSession,
    context: dict[str, Any],
    names: frozenset[str],
    *,
    store: Store,
    customer: Customer,
) -> None:
    """Add the costly values among `names` that `context` does not hold yet.

    `tips`: for the items of the context's order, each product's tips (none without an
    order). `recommendations`: products for the customer (`catalog.service.recommend`),
    each with its price written for the message's language (`price_text`).
    `testimonials`: recent published 4-5 star reviews whose writers allowed quoting
    (`reviews.service.quotable_reviews`).
    """
    wanted = (COSTLY & names) - context.keys()
    if "tips" in wanted:
        order = context.get("order")
        items = order.get("items", []) if isinstance(order, Mapping) else []
        bought = [
            BoughtItem(
                product_id=str(item["product_id"]),
                title=item.get("title"),
                url=item.get("url"),
                image_url=item.get("image_url"),
            )
            for item in items
            if item.get("product_id")
        ]
        found = await tips_for(session, store_id=store.id, items=bought)
        context["tips"] = [_tips_view(tips) for tips in found]
    if "recommendations" in wanted:
        cards = await recommend(session, store_id=store.id, customer_id=customer.id)
        fmt = Formatter(
            locale=resolve_locale(customer.locale, store.locale),
            timezone=customer.timezone or store.timezone,
            currency=store.currency,
        )
        context["recommendations"] = [_card_view(card, fmt) for card in cards]
    if "testimonials" in wanted:
        context["testimonials"] = await quotable_reviews(session, store_id=store.id, limit=3)


def _tips_view(tips: ProductTips) -> dict[str, Any]:
    view = {
        "product_id": tips.product_id,
        "title": tips.title,
        "url": tips.url,
        "image_url": tips.image_url,
        "tips": list(tips.tips),
    }
    return {k: v for k, v in view.items() if v is not None}


def _card_view(card: ProductCard, fmt: Formatter) -> dict[str, Any]:
    view = {
        "product_id": card.product_id,
        "title": card.title,
        "url": card.url,
        "image_url": card.image_url,
        "price": card.price,
        "currency": card.currency,
        "price_text": fmt.money(card.price, card.currency) if card.price is not None else None,
    }
    return {k: v for k, v in view.items() if v is not None}
