"""Orders, carts and shipments as the shop's events describe them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, distinct, func, select, union, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.db import (
    INSERTED,
    Database,
    insert_rows,
    is_postgres,
    notes,
    sqlite_utc,
    table_of,
)
from ulak.events.schemas import (
    CartData,
    Item,
    OrderChangeData,
    OrderDeliveredData,
    OrderPlacedData,
    OrderShippedData,
    ShipmentLine,
    ShipmentUpdatedData,
)
from ulak.orders.carriers import tracking_url as carrier_tracking_url
from ulak.orders.models import (
    Cart,
    Order,
    OrderItem,
    OrderStatusChange,
    Shipment,
    ShipmentCheckpoint,
)

ORDER_STATUS_OF_EVENT = {
    "order.placed": "placed",
    "order.paid": "paid",
    "order.preparing": "preparing",
    "order.shipped": "shipped",
    "order.delivered": "delivered",
    "order.cancelled": "cancelled",
    "order.refunded": "refunded",
}


async def apply_cart(
    session: AsyncSession,
    *,
    store_id: int,
    customer_id: int,
    data: CartData,
    checkout: bool,
    occurred_at: datetime,
    now: datetime,
) -> Cart:
    """A cart event that `occurred_at` applied to its cart. An ordered cart stays ordered
    for an event from before its order (one that came in late); an event from after it
    starts the cart afresh under the same id, emptied and open again: a shop (or Segment,
    whose default cart id is the person's) may use one cart id for a person's every cart."""
    cart = (
        await session.execute(
            select(Cart).where(Cart.store_id == store_id, Cart.cart_id == data.cart_id)
        )
    ).scalar_one_or_none()
    if cart is None:
        cart = Cart(store_id=store_id, cart_id=data.cart_id)
        session.add(cart)
    elif cart.status == "ordered" and occurred_at > await _ordered_at(session, cart):
        cart.items, cart.total, cart.currency, cart.recovery_url = [], None, None, None
        cart.status = "open"
    cart.customer_id = customer_id
    lines = [item.model_dump(mode="json") for item in data.items]
    if data.change == "replace":
        cart.items = lines
        cart.total = data.total
        cart.currency = data.currency
    else:
        cart.items = changed_lines(cart.items or [], lines, remove=data.change == "remove")
        cart.total = (
            data.total
            if data.total is not None
            else sum((Decimal(i["price"]) * i["quantity"] for i in cart.items), Decimal(0))
        )
        cart.currency = data.currency or cart.currency
    cart.recovery_url = data.recovery_url or cart.recovery_url
    if cart.status != "ordered":
        cart.status = "checkout" if checkout else "open"
    cart.updated_at = now
    await session.flush()
    return cart


async def _ordered_at(session: AsyncSession, cart: Cart) -> datetime:
    """When an ordered cart was ordered: its latest order's moment, looked up among its
    customer's orders (`ix_orders_customer`; a merge moves orders and carts together), else
    when the order was applied (the cart's `updated_at`), which is no earlier."""
    placed_at = await session.scalar(
        select(func.max(Order.placed_at)).where(
            Order.customer_id == cart.customer_id,
            Order.store_id == cart.store_id,
            Order.cart_id == cart.cart_id,
        )
    )
    return cart.updated_at if placed_at is None else placed_at


async def orders_of_cart(
    session: AsyncSession, *, store_id: int, customer_id: int, cart_id: str
) -> int:
    """How many of the customer's orders were placed from the cart id: a cart id used again
    after its order (`apply_cart`) names the next cart, which journeys enter anew."""
    found = await session.scalar(
        select(func.count()).where(
            Order.customer_id == customer_id,
            Order.store_id == store_id,
            Order.cart_id == cart_id,
        )
    )
    return found or 0


def _line_key(line: dict[str, Any]) -> tuple[Any, ...]:
    # A line is its variant, else its SKU, else its product (as a shipment names one).
    return (line.get("variant_id"), line.get("sku"), line.get("product_id"), line.get("title"))


def changed_lines(
    lines: list[dict[str, Any]], change: list[dict[str, Any]], *, remove: bool
) -> list[dict[str, Any]]:
    """The cart's lines with `change` put in (quantities added to a line already there)
    or taken out (a line whose quantity reaches none leaves the cart)."""
    out = [dict(line) for line in lines]
    for item in change:
        key = _line_key(item)
        line = next((line for line in out if _line_key(line) == key), None)
        if line is None:
            if not remove:
                out.append(dict(item))
            continue
        line["quantity"] += -item["quantity"] if remove else item["quantity"]
        if not remove:
            line.update({k: v for k, v in item.items() if k != "quantity" and v is not None})
    return [line for line in out if line["quantity"] > 0]


async def _order(session: AsyncSession, store_id: int, order_id: str) -> Order | None:
    return (
        await session.execute(
            select(Order).where(Order.store_id == store_id, Order.order_id == order_id)
        )
    ).scalar_one_or_none()


async def _record_status(
    session: AsyncSession,
    order: Order,
    status: str,
    *,
    event_id: int,
    occurred_at: datetime,
) -> None:
    latest = (
        await session.execute(
            select(OrderStatusChange.occurred_at)
            .where(OrderStatusChange.order_id == order.id)
            .order_by(OrderStatusChange.occurred_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    change = dict(order_id=order.id, status=status, occurred_at=occurred_at, event_id=event_id)
    await insert_rows(session, OrderStatusChange, [change])
    # A late-arriving older event joins the history but does not turn the status back.
    if latest is None or occurred_at >= latest:
        order.status = status


def _items(order_pk: int, items: Sequence[Item]) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order_pk,
            "position": position,
            "product_id": item.product_id,
            "variant_id": item.variant_id,
            "sku": item.sku,
            "title": item.title,
            "quantity": item.quantity,
            "price": item.price,
            "url": item.url,
            "image_url": item.image_url,
        }
        for position, item in enumerate(items)
    ]


async def apply_order_placed(
    session: AsyncSession,
    *,
    store_id: int,
    customer_id: int,
    data: OrderPlacedData,
    currency: str,
    event_id: int,
    occurred_at: datetime,
    now: datetime,
) -> None:
    values: dict[str, Any] = {
        "customer_id": customer_id,
        "number": data.number or data.order_id,
        "channel": data.channel,
        "subtotal": data.subtotal,
        "discount": data.discount,
        "shipping": data.shipping,
        "tax": data.tax,
        "total": data.total,
        "currency": data.currency or currency,
        "discount_codes": data.discount_codes,
        "cart_id": data.cart_id,
        "shipping_address": data.shipping_address,
        "payment_method": data.payment_method,
        "order_url": data.order_url,
        "data": data.model_extra or {},
        "placed_at": occurred_at,
        "updated_at": now,
    }
    # A new order, the usual case, in Core statements: about 0.3 ms less CPU than the
    # ORM's select and flush (measured alone). Nothing here reads it as an object. The
    # insert itself says whether the order is new (ON CONFLICT DO NOTHING returns no id):
    # a select before it cost one statement more per order, ~0.1 ms of CPU.
    row = {"store_id": store_id, "order_id": data.order_id, "status": "placed", **values}
    inserted = await session.execute(_insert_order(is_postgres(session)), row)
    order_pk = inserted.scalar_one_or_none()
    if order_pk is not None:
        notes(session)(INSERTED).append((Order, order_pk))
        await insert_rows(session, OrderItem, _items(order_pk, data.items))
        change = dict(
            order_id=order_pk, status="placed", occurred_at=occurred_at, event_id=event_id
        )
        await insert_rows(session, OrderStatusChange, [change])
    else:  # the shop sent the order again: its fields and items are replaced
        found = await session.execute(_ORDER_ID, {"store_id": store_id, "order_id": data.order_id})
        order = await session.get(Order, found.scalar_one())
        assert order is not None
        for field, value in values.items():
            setattr(order, field, value)
        await session.flush()
        await session.execute(delete(OrderItem).where(OrderItem.order_id == order.id))
        await insert_rows(session, OrderItem, _items(order.id, data.items))
        # Restating an order is no change of status: one paid, shipped or cancelled stays
        # so (a platform such as Shopify restates the whole order on every update, with
        # the time it was placed). Its history gains "placed" once, when a status event
        # came first and made the order.
        placed = await session.scalar(
            select(OrderStatusChange.id)
            .where(OrderStatusChange.order_id == order.id, OrderStatusChange.status == "placed")
            .limit(1)
        )
        if placed is None:
            change = dict(
                order_id=order.id, status="placed", occurred_at=occurred_at, event_id=event_id
            )
            await insert_rows(session, OrderStatusChange, [change])
    if data.cart_id:
        cart = (
            await session.execute(
                select(Cart).where(Cart.store_id == store_id, Cart.cart_id == data.cart_id)
            )
        ).scalar_one_or_none()
        if cart is not None:
            cart.status = "ordered"
            cart.updated_at = now
    await session.flush()


# Core and built once: the ORM's select, built for each order, cost 0.15 ms more CPU.
_orders = table_of(Order)
_ORDER_ID = select(_orders.c.id).where(
    _orders.c.store_id == bindparam("store_id"), _orders.c.order_id == bindparam("order_id")
)


@functools.cache
def _insert_order(postgres: bool) -> Any:
    """An order's insert that does nothing when the store has its id already; built once
    per dialect."""
    statement = (pg_insert if postgres else sqlite_insert)(_orders)
    return statement.on_conflict_do_nothing(
        index_elements=[_orders.c.store_id, _orders.c.order_id]
    ).returning(_orders.c.id)


async def apply_order_change(
    session: AsyncSession,
    *,
    store_id: int,
    customer_id: int,
    event_type: str,
    data: OrderChangeData | OrderShippedData | OrderDeliveredData,
    currency: str,
    event_id: int,
    occurred_at: datetime,
    now: datetime,
) -> Order:
    order = await _order(session, store_id, data.order_id)
    if order is None:
        # The shop may connect ulak after an order was placed: keep what we learn.
        order = Order(
            store_id=store_id,
            order_id=data.order_id,
            number=data.order_id,
            customer_id=customer_id,
            currency=currency,
            placed_at=occurred_at,
        )
        session.add(order)
    order.updated_at = now
    await session.flush()
    await _record_status(
        session,
        order,
        ORDER_STATUS_OF_EVENT[event_type],
        event_id=event_id,
        occurred_at=occurred_at,
    )
    if isinstance(data, OrderShippedData):
        shipment = await _shipment(session, store_id, data.shipment_id or data.order_id, now)
        shipment.order_id = order.id
        shipment.carrier = data.carrier or shipment.carrier
        shipment.tracking_number = data.tracking_number or shipment.tracking_number
        shipment.tracking_url = data.tracking_url or shipment.tracking_url
        shipment.estimated_delivery = data.estimated_delivery or shipment.estimated_delivery
        if data.items or not shipment.items:
            # Items the shop named for this parcel (here or in an earlier shipment.updated)
            # are what its email lists; none named: the email lists the whole order.
            shipment.items = [item.model_dump(mode="json") for item in data.items]
        shipment.status = "in_transit"
        shipment.updated_at = now
    elif isinstance(data, OrderDeliveredData):
        shipment = await _shipment(session, store_id, data.shipment_id or data.order_id, now)
        shipment.order_id = order.id
        shipment.status = "delivered"
        shipment.updated_at = now
    await session.flush()
    return order


async def _shipment(
    session: AsyncSession, store_id: int, shipment_id: str, now: datetime
) -> Shipment:
    shipment = (
        await session.execute(
            select(Shipment).where(
                Shipment.store_id == store_id, Shipment.shipment_id == shipment_id
            )
        )
    ).scalar_one_or_none()
    if shipment is None:
        # Complete from the start: the next query flushes it.
        shipment = Shipment(store_id=store_id, shipment_id=shipment_id, items=[], updated_at=now)
        session.add(shipment)
    return shipment


# Carrier statuses the customer must hear of, with what to do (the delivery-problems
# journey); "delayed" is an estimated delivery moved later.
DELIVERY_PROBLEMS = frozenset(
    {
        "out_for_delivery",
        "attempt_failed",
        "available_for_pickup",
        "exception",
        "returned_to_sender",
    }
)


@dataclass(frozen=True)
class ShipmentChange:
    shipment: Shipment
    # A status of DELIVERY_PROBLEMS the shipment just reached, or "delayed"; None otherwise.
    problem: str | None
    # The estimate before a delay.
    was_expected: str | None


async def apply_shipment_update(
    session: AsyncSession,
    *,
    store_id: int,
    data: ShipmentUpdatedData,
    occurred_at: datetime,
    now: datetime,
) -> ShipmentChange:
    """The parcel's latest status on the shipment, and the status as one more checkpoint
    of its history (when and where the carrier saw it: the tracking page's timeline)."""
    shipment = await _shipment(session, store_id, data.shipment_id, now)
    before, expected = shipment.status, shipment.estimated_delivery
    seen = (shipment.status, shipment.location, shipment.message)
    if data.order_id and shipment.order_id is None:
        order = await _order(session, store_id, data.order_id)
        shipment.order_id = order.id if order else None
    shipment.status = data.status
    shipment.location = data.location
    shipment.message = data.message
    shipment.estimated_delivery = data.estimated_delivery or shipment.estimated_delivery
    shipment.updated_at = now
    if data.items is not None:
        shipment.items = await _shipment_items(session, shipment.order_id, data.items)
    await session.flush()
    # An update that only moves the estimate or lists the parcel's items repeats what
    # the carrier last said: the timeline shows it once.
    if (data.status, data.location, data.message) != seen:
        checkpoint = {
            "shipment_id": shipment.id,
            "status": data.status,
            "location": data.location,
            "message": data.message,
            "occurred_at": occurred_at,
        }
        await insert_rows(session, ShipmentCheckpoint, [checkpoint])
    problem: str | None = None
    if data.status in DELIVERY_PROBLEMS and data.status != before:
        problem = data.status
    elif data.status != "delivered" and _later(shipment.estimated_delivery, expected):
        problem = "delayed"
    return ShipmentChange(shipment, problem, expected if problem == "delayed" else None)


async def _shipment_items(
    session: AsyncSession, order_pk: int | None, lines: Sequence[ShipmentLine]
) -> list[dict[str, Any]]:
    """A parcel's lines as its emails show them: each matched to the order's line by
    variant, then SKU, then product (its title, picture and unit price), with the parcel's
    quantity. A line the order does not hold keeps what the shop sent."""
    ordered: list[OrderItem] = []
    if order_pk is not None:
        found = await session.execute(
            select(OrderItem).where(OrderItem.order_id == order_pk).order_by(OrderItem.position)
        )
        ordered = list(found.scalars())
    items = []
    for line in lines:
        match = next(
            (
                item
                for key in ("variant_id", "sku", "product_id")
                if getattr(line, key)
                for item in ordered
                if getattr(item, key) == getattr(line, key)
            ),
            None,
        )
        view: dict[str, Any] = {
            "product_id": line.product_id,
            "variant_id": line.variant_id,
            "sku": line.sku,
            "title": line.title,
        }
        if match is not None:
            view |= {
                "product_id": match.product_id,
                "variant_id": match.variant_id,
                "sku": match.sku,
                "title": match.title,
                # As order.shipped keeps its items: JSON, money as a decimal string.
                "price": str(match.price),
                "url": match.url,
                "image_url": match.image_url,
            }
        view["title"] = view["title"] or line.sku or line.variant_id or line.product_id
        view["quantity"] = line.quantity
        items.append({k: v for k, v in view.items() if v is not None})
    return items


def _later(estimate: str | None, before: str | None) -> bool:
    """Whether an estimated delivery moved later (both readable as ISO dates)."""
    if not estimate or not before:
        return False
    try:
        return date.fromisoformat(estimate[:10]) > date.fromisoformat(before[:10])
    except ValueError:
        return False


async def order_of_shipment(session: AsyncSession, shipment: Shipment) -> Order | None:
    return await session.get(Order, shipment.order_id) if shipment.order_id else None


async def order_views(
    session: AsyncSession, keys: set[tuple[int, str]]
) -> dict[tuple[int, str], tuple[dict[str, Any], dict[str, Any] | None]]:
    """The views of many orders (by store and order id), each with its latest shipment's,
    in three queries."""
    if not keys:
        return {}
    found = await session.execute(
        select(Order).where(
            Order.store_id.in_({store for store, _ in keys}),
            Order.order_id.in_({order for _, order in keys}),
        )
    )
    orders = {o.id: o for o in found.scalars() if (o.store_id, o.order_id) in keys}
    items: dict[int, list[OrderItem]] = {id_: [] for id_ in orders}
    shipments: dict[int, Shipment] = {}
    if orders:
        found_items = await session.execute(
            select(OrderItem)
            .where(OrderItem.order_id.in_(orders))
            .order_by(OrderItem.order_id, OrderItem.position)
        )
        for item in found_items.scalars():
            items[item.order_id].append(item)
        found_shipments = await session.execute(
            select(Shipment)
            .where(Shipment.order_id.in_(orders))
            .order_by(Shipment.updated_at.desc(), Shipment.id.desc())
        )
        for shipment in found_shipments.scalars():
            if shipment.order_id is not None:
                shipments.setdefault(shipment.order_id, shipment)
    return {
        (o.store_id, o.order_id): (
            order_view_of(o, items[id_]),
            shipment_view(shipments[id_]) if id_ in shipments else None,
        )
        for id_, o in orders.items()
    }


async def find_cart(session: AsyncSession, *, store_id: int, cart_id: str) -> Cart | None:
    return (
        await session.execute(
            select(Cart).where(Cart.store_id == store_id, Cart.cart_id == cart_id)
        )
    ).scalar_one_or_none()


async def customer_of_order(session: AsyncSession, *, store_id: int, order_id: str) -> int | None:
    """The customer (row id) an order of the shop's belongs to; None for an order ulak
    does not know (yet). For a platform's webhook about an order that names nobody (a
    Shopify fulfillment or refund)."""
    return (
        await session.execute(
            select(Order.customer_id).where(Order.store_id == store_id, Order.order_id == order_id)
        )
    ).scalar_one_or_none()


async def find_shipment(
    session: AsyncSession, *, store_id: int, shipment_id: str
) -> Shipment | None:
    return (
        await session.execute(
            select(Shipment).where(
                Shipment.store_id == store_id, Shipment.shipment_id == shipment_id
            )
        )
    ).scalar_one_or_none()


async def order_view(session: AsyncSession, order: Order) -> dict[str, Any]:
    """The order as journeys and templates see it: plain values, Decimal money."""
    items = (
        await session.execute(
            select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.position)
        )
    ).scalars()
    return order_view_of(order, items)


def order_view_of(order: Order, items: Iterable[OrderItem]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "order_id": order.order_id,
        "number": order.number,
        "status": order.status,
        "channel": order.channel,
        "subtotal": order.subtotal,
        "discount": order.discount,
        "shipping": order.shipping,
        "tax": order.tax,
        "total": order.total,
        "currency": order.currency,
        "discount_codes": order.discount_codes,
        "cart_id": order.cart_id,
        "shipping_address": order.shipping_address,
        "payment_method": order.payment_method,
        "order_url": order.order_url,
        "placed_at": order.placed_at,
        "items": [
            {
                k: v
                for k, v in {
                    "product_id": i.product_id,
                    "variant_id": i.variant_id,
                    "sku": i.sku,
                    "title": i.title,
                    "quantity": i.quantity,
                    "price": i.price,
                    "url": i.url,
                    "image_url": i.image_url,
                }.items()
                if v is not None
            }
            for i in items
        ],
    }
    return {k: v for k, v in view.items() if v is not None}


def shipment_view(shipment: Shipment) -> dict[str, Any]:
    """The shipment as journeys and templates see it; a carrier that sent no tracking link
    gets the one its pattern builds (`carriers.tracking_url`)."""
    view = {
        "shipment_id": shipment.shipment_id,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_url": shipment.tracking_url
        or carrier_tracking_url(shipment.carrier, shipment.tracking_number),
        "status": shipment.status,
        "location": shipment.location,
        "estimated_delivery": shipment.estimated_delivery,
        "items": shipment.items,
    }
    return {k: v for k, v in view.items() if v is not None}


def cart_view(cart: Cart) -> dict[str, Any]:
    """The cart as journeys and templates see it: Decimal money, as an order's."""
    items = [
        {**item, "price": Decimal(str(item["price"]))} if item.get("price") is not None else item
        for item in cart.items
    ]
    view = {
        "cart_id": cart.cart_id,
        "status": cart.status,
        "items": items,
        "total": cart.total,
        "currency": cart.currency,
        "recovery_url": cart.recovery_url,
    }
    return {k: v for k, v in view.items() if v is not None}


async def orders_of(session: AsyncSession, *, customer_id: int) -> list[dict[str, Any]]:
    orders = (
        await session.execute(
            select(Order).where(Order.customer_id == customer_id).order_by(Order.placed_at.desc())
        )
    ).scalars()
    out = []
    for order in orders:
        view = await order_view(session, order)
        history = (
            await session.execute(
                select(OrderStatusChange)
                .where(OrderStatusChange.order_id == order.id)
                .order_by(OrderStatusChange.occurred_at, OrderStatusChange.id)
            )
        ).scalars()
        view["status_history"] = [{"status": h.status, "at": h.occurred_at} for h in history]
        out.append(view)
    return out


async def move_customer(session: AsyncSession, *, from_customer: int, to_customer: int) -> None:
    """On a customer merge: the absorbed profile's orders and carts become the survivor's."""
    for model in (Order, Cart):
        await session.execute(
            update(model).where(model.customer_id == from_customer).values(customer_id=to_customer)
        )


async def order_times(session: AsyncSession, *, customer_id: int) -> list[tuple[str, datetime]]:
    """(order id, placed at) of a customer's orders, oldest first (ix_orders_customer)."""
    rows = await session.execute(_ORDER_TIMES, {"customer_id": customer_id})
    return [(order_id, at) for order_id, at in rows.all()]


# Built once: read for every order applied (the lapse timer), and building it each time
# cost ~0.15 ms more CPU than running it (bench/RESULTS.md, "worker CPU per order").
_ORDER_TIMES = (
    select(_orders.c.order_id, _orders.c.placed_at)
    .where(_orders.c.customer_id == bindparam("customer_id"))
    .order_by(_orders.c.placed_at, _orders.c.id)
)


async def ordered_since(session: AsyncSession, *, customer_id: int, since: datetime) -> bool:
    """Whether the customer placed an order at or after `since` (ix_orders_customer)."""
    found = await session.execute(
        select(Order.id).where(Order.customer_id == customer_id, Order.placed_at >= since).limit(1)
    )
    return found.first() is not None


# Bounds on what a recommendation reads (`catalog.service.recommend`): the customer's most
# recent products seed it, each through its latest orders in the store; best sellers are
# counted over the store's latest orders.
SEED_PRODUCTS = 20
ORDERS_PER_PRODUCT = 200
BEST_SELLER_ORDERS = 500


async def products_bought(session: AsyncSession, *, customer_id: int) -> list[str]:
    """The products a customer ever bought, the latest bought first (read through their
    own orders: `ix_orders_customer`)."""
    last = func.max(Order.placed_at)
    rows = await session.execute(
        select(OrderItem.product_id, last)
        .join(Order, Order.id == OrderItem.order_id)
        # By customer only: a customer belongs to one store, and with the store's id too
        # SQLite chose `ix_orders_store_placed`, reading every order of the store.
        .where(Order.customer_id == customer_id, OrderItem.product_id.is_not(None))
        .group_by(OrderItem.product_id)
        .order_by(last.desc(), OrderItem.product_id)
    )
    return [product_id for product_id, _ in rows.all() if product_id is not None]


async def bought_with(
    session: AsyncSession, *, store_id: int, product_ids: Sequence[str]
) -> list[tuple[str, int]]:
    """The other products in the same orders of the store as these, with how many such
    orders hold each, most first (ties by product id).

    Bounded: only the first SEED_PRODUCTS products count, each through its latest
    ORDERS_PER_PRODUCT orders of this store, read newest first from
    `ix_order_items_product` (product, order) and stopped at the limit; then only those
    orders' items are read (`ix_order_items_order_id`). So a best seller with years of
    orders costs no more than a new product, and no other store's orders are counted (each
    order is joined to its store). One subquery per product, united, because SQLite has no
    LATERAL join.
    """
    seeds = list(dict.fromkeys(product_ids))[:SEED_PRODUCTS]
    if not seeds:
        return []
    latest = [
        select(OrderItem.order_id.label("order_id"))
        .join(Order, Order.id == OrderItem.order_id)
        .where(OrderItem.product_id == product_id, Order.store_id == store_id)
        .order_by(OrderItem.order_id.desc())
        .limit(ORDERS_PER_PRODUCT)
        .subquery()
        for product_id in seeds
    ]
    orders = union(*(select(part.c.order_id) for part in latest)).subquery()
    orders_holding = func.count(distinct(OrderItem.order_id))
    rows = await session.execute(
        select(OrderItem.product_id, orders_holding)
        .where(
            OrderItem.order_id.in_(select(orders.c.order_id)),
            OrderItem.product_id.is_not(None),
            OrderItem.product_id.not_in(seeds),
        )
        .group_by(OrderItem.product_id)
    )
    counted = [(product_id, int(count)) for product_id, count in rows.all() if product_id]
    return sorted(counted, key=lambda row: (-row[1], row[0]))


async def best_sellers(session: AsyncSession, *, store_id: int) -> list[tuple[str, int]]:
    """The store's products by how many of its latest BEST_SELLER_ORDERS orders hold them
    (read from `ix_orders_store_placed`), most first (ties by product id)."""
    latest = (
        select(Order.id)
        .where(Order.store_id == store_id)
        .order_by(Order.placed_at.desc())
        .limit(BEST_SELLER_ORDERS)
        .subquery()
    )
    orders_holding = func.count(distinct(OrderItem.order_id))
    rows = await session.execute(
        select(OrderItem.product_id, orders_holding)
        .where(OrderItem.order_id.in_(select(latest.c.id)), OrderItem.product_id.is_not(None))
        .group_by(OrderItem.product_id)
    )
    counted = [(product_id, int(count)) for product_id, count in rows.all() if product_id]
    return sorted(counted, key=lambda row: (-row[1], row[0]))


async def order_with_history(
    session: AsyncSession, *, store_id: int, order_id: str
) -> tuple[dict[str, Any], int | None, list[tuple[str, datetime]]] | None:
    """An order's view, its customer and its status history (oldest first), for a page
    about one order; None when the store has no such order."""
    order = await _order(session, store_id, order_id)
    if order is None:
        return None
    history = await session.execute(
        select(OrderStatusChange.status, OrderStatusChange.occurred_at)
        .where(OrderStatusChange.order_id == order.id)
        .order_by(OrderStatusChange.occurred_at, OrderStatusChange.id)
    )
    view = await order_view(session, order)
    return view, order.customer_id, [(status, at) for status, at in history]


# The tracking page's read: one order of one customer with its lines, status history,
# parcels and their checkpoints, in three indexed Core queries (the order joined to its
# lines, the history, the parcels joined to their checkpoints), with no ORM objects: the
# page is read-only and the hottest customer page, and each statement's round costs more
# than reading its rows.
_items_table = table_of(OrderItem)
_history_table = table_of(OrderStatusChange)
_shipments_table = table_of(Shipment)
_checkpoints_table = table_of(ShipmentCheckpoint)
_TRACKED_ORDER = (
    select(
        _orders.c.id,
        _orders.c.order_id,
        _orders.c.number,
        _orders.c.status,
        _orders.c.total,
        _orders.c.currency,
        _orders.c.placed_at,
        _items_table.c.title,
        _items_table.c.quantity,
        _items_table.c.price,
        _items_table.c.url,
        _items_table.c.image_url,
        _items_table.c.position,
    )
    .outerjoin(_items_table, _items_table.c.order_id == _orders.c.id)
    .where(
        _orders.c.store_id == bindparam("store_id"),
        _orders.c.order_id == bindparam("order_id"),
        _orders.c.customer_id == bindparam("customer_id"),
    )
    .order_by(_items_table.c.position)
)
_ORDER_HISTORY = (
    select(_history_table.c.status, _history_table.c.occurred_at)
    .where(_history_table.c.order_id == bindparam("order_pk"))
    .order_by(_history_table.c.occurred_at, _history_table.c.id)
)
_ORDER_PARCELS = (
    select(
        _shipments_table.c.id,
        _shipments_table.c.carrier,
        _shipments_table.c.tracking_number,
        _shipments_table.c.tracking_url,
        _shipments_table.c.status,
        _shipments_table.c.message,
        _shipments_table.c.estimated_delivery,
        _checkpoints_table.c.status.label("checkpoint_status"),
        _checkpoints_table.c.location.label("checkpoint_location"),
        _checkpoints_table.c.message.label("checkpoint_message"),
        _checkpoints_table.c.occurred_at.label("checkpoint_at"),
    )
    .outerjoin(_checkpoints_table, _checkpoints_table.c.shipment_id == _shipments_table.c.id)
    .where(_shipments_table.c.order_id == bindparam("order_pk"))
    .order_by(_shipments_table.c.id, _checkpoints_table.c.occurred_at, _checkpoints_table.c.id)
)


@dataclass(frozen=True)
class TrackedOrder:
    id: int
    order_id: str
    number: str | None
    status: str
    total: Decimal | None
    currency: str | None
    placed_at: datetime


@dataclass(frozen=True)
class TrackedLine:
    title: str
    quantity: int
    price: Decimal
    url: str | None
    image_url: str | None


@dataclass(frozen=True)
class StatusAt:
    status: str
    occurred_at: datetime


@dataclass(frozen=True)
class Checkpoint:
    status: str
    location: str | None
    message: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class TrackedShipment:
    carrier: str | None
    tracking_number: str | None
    status: str
    message: str | None
    estimated_delivery: str | None


@dataclass(frozen=True)
class Parcel:
    """A shipment of the order with its carrier statuses, oldest first, and the link to
    the carrier's tracking page (the shop's, else one built from the carrier's pattern)."""

    shipment: TrackedShipment
    checkpoints: list[Checkpoint]
    tracking_url: str | None


@dataclass(frozen=True)
class Tracking:
    """What the tracking page shows of one order."""

    order: TrackedOrder
    items: list[TrackedLine]
    history: list[StatusAt]
    parcels: list[Parcel]


async def tracking(
    session: AsyncSession, *, store_id: int, customer_id: int, order_id: str
) -> Tracking | None:
    """The order `order_id` of this store, if it is this customer's (None otherwise: an
    order erased, unknown or someone else's looks the same)."""
    # Core on the session's connection: the ORM's execute path would cost more than the
    # queries themselves.
    connection = await session.connection()
    found = await connection.execute(
        _TRACKED_ORDER, {"store_id": store_id, "order_id": order_id, "customer_id": customer_id}
    )
    rows = found.all()
    if not rows:
        return None
    key = {"order_pk": rows[0].id}
    history = (await connection.execute(_ORDER_HISTORY, key)).all()
    parcels = (await connection.execute(_ORDER_PARCELS, key)).all()
    return _tracking_of(rows, history, parcels, _as_is, _as_is)


# The same three statements as plain SQL, for SQLite's plain read-only connection
# (`Database.lookup`): a statement there costs microseconds where SQLAlchemy's async path
# costs a quarter of a millisecond, most of the page's time. Columns in the Core
# statements' order; SQLite keeps times as naive UTC text and money as exact text.
_SQLITE_ORDER = (
    "SELECT o.id, o.order_id, o.number, o.status, o.total, o.currency, o.placed_at,"
    " i.title, i.quantity, i.price, i.url, i.image_url, i.position"
    " FROM orders o LEFT OUTER JOIN order_items i ON i.order_id = o.id"
    " WHERE o.store_id = ? AND o.order_id = ? AND o.customer_id = ? ORDER BY i.position"
)
_SQLITE_HISTORY = (
    "SELECT status, occurred_at FROM order_status_changes WHERE order_id = ?"
    " ORDER BY occurred_at, id"
)
_SQLITE_PARCELS = (
    "SELECT s.id, s.carrier, s.tracking_number, s.tracking_url, s.status, s.message,"
    " s.estimated_delivery, c.status, c.location, c.message, c.occurred_at"
    " FROM shipments s LEFT OUTER JOIN shipment_checkpoints c ON c.shipment_id = s.id"
    " WHERE s.order_id = ? ORDER BY s.id, c.occurred_at, c.id"
)


def tracking_sqlite(
    database: Database, *, store_id: int, customer_id: int, order_id: str
) -> Tracking | None:
    """`tracking` on SQLite's plain read-only connection: the same answer. Its three
    statements are not one snapshot; a page read while the worker applies a change may
    show the order a moment before or after it, never another order."""
    rows = database.lookup(_SQLITE_ORDER, (store_id, order_id, customer_id))
    if not rows:
        return None
    history = database.lookup(_SQLITE_HISTORY, (rows[0][0],))
    parcels = database.lookup(_SQLITE_PARCELS, (rows[0][0],))
    return _tracking_of(rows, history, parcels, sqlite_utc, _sqlite_money)


def _as_is(value: Any) -> Any:
    return value


def _sqlite_money(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _tracking_of(
    rows: Sequence[Any],
    history: Sequence[Any],
    parcel_rows: Sequence[Any],
    time: Callable[[Any], Any],
    money: Callable[[Any], Any],
) -> Tracking:
    """The page's view from the three statements' rows (by position), `time` and `money`
    turning a stored value into an aware UTC datetime and a Decimal."""
    first = rows[0]
    order = TrackedOrder(
        first[0], first[1], first[2], first[3], money(first[4]), first[5], time(first[6])
    )
    items = [TrackedLine(r[7], r[8], money(r[9]), r[10], r[11]) for r in rows if r[12] is not None]
    statuses = [StatusAt(r[0], time(r[1])) for r in history]
    parcels: dict[int, Parcel] = {}
    for r in parcel_rows:
        parcel = parcels.get(r[0])
        if parcel is None:
            shipment = TrackedShipment(r[1], r[2], r[4], r[5], r[6])
            url = r[3] or carrier_tracking_url(r[1], r[2])
            parcel = parcels[r[0]] = Parcel(shipment, [], url)
        if r[7] is not None:
            parcel.checkpoints.append(Checkpoint(r[7], r[8], r[9], time(r[10])))
    return Tracking(order=order, items=items, history=statuses, parcels=list(parcels.values()))
