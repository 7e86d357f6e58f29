from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.models import BackInStockSubscription, Product
from ulak.clock import Clock
from ulak.errors import NotFound
from ulak.events.schemas import BackInStockData, ProductData

# A back-in-stock subscription that no restock told ends after this long.
SUBSCRIPTION_DAYS = 90


@dataclass(frozen=True)
class Restocked:
    """A variant came back: the customers to tell, in the order they asked."""

    product: Product
    restock: int
    subscriptions: list[BackInStockSubscription]


async def upsert_product(
    session: AsyncSession, *, store_id: int, data: ProductData, factor: int, clock: Clock
) -> Restocked | None:
    """Store the product; when its inventory goes from none to some, the subscriptions it
    answers (at most inventory × `factor`, oldest first) are marked notified and returned,
    for the caller to tell their customers. Those beyond wait for the next restock."""
    variant_id = data.variant_id or ""
    product = (
        await session.execute(
            select(Product).where(
                Product.store_id == store_id,
                Product.product_id == data.product_id,
                Product.variant_id == variant_id,
            )
        )
    ).scalar_one_or_none()
    before: int | None = None
    if product is None:
        product = Product(
            store_id=store_id, product_id=data.product_id, variant_id=variant_id, restocks=0
        )
        session.add(product)
    else:
        before = product.inventory
    sent = data.model_dump(exclude_unset=True, exclude={"product_id", "variant_id"})
    known = {"title", "url", "image_url", "price", "currency", "inventory", "tags"}
    for field in known & sent.keys():
        setattr(product, field, sent[field])
    if "replenish_days" in sent:
        product.replenish_days = sent["replenish_days"]
    product.data = {k: v for k, v in data.model_dump(mode="json").items() if k not in known}
    product.updated_at = clock.now()
    await session.flush()
    # A restock: known to be out (0 or less) and now in. A product ulak first hears of
    # with stock, or whose inventory the shop does not send, was never out.
    if before is None or before > 0 or not product.inventory or product.inventory <= 0:
        return None
    product.restocks += 1
    now = clock.now()
    waiting = (
        await session.execute(
            select(BackInStockSubscription)
            .where(
                BackInStockSubscription.store_id == store_id,
                BackInStockSubscription.product_id == product.product_id,
                BackInStockSubscription.variant_id.in_({product.variant_id, ""}),
                BackInStockSubscription.status == "waiting",
                BackInStockSubscription.expires_at > now,
            )
            .order_by(BackInStockSubscription.created_at, BackInStockSubscription.id)
            .limit(product.inventory * factor)
        )
    ).scalars()
    told = list(waiting)
    for subscription in told:
        subscription.status = "notified"
        subscription.notified_at = now
        subscription.restock = product.restocks
    await session.flush()
    return Restocked(product, product.restocks, told)


async def find_product(
    session: AsyncSession, *, store_id: int, product_id: str, variant_id: str | None
) -> Product:
    """The variant named (or any variant of the product, when none is); NotFound if the
    store has never sent it."""
    query = select(Product).where(Product.store_id == store_id, Product.product_id == product_id)
    if variant_id:
        query = query.where(Product.variant_id == variant_id)
    product = (await session.execute(query.limit(1))).scalar_one_or_none()
    if product is None:
        named = f"{product_id} variant {variant_id}" if variant_id else product_id
        raise NotFound(f"product {named} is not in the store's catalogue")
    return product


def requester(email: object, customer_ref: object, customer_id: int) -> str:
    """Whom the per-day limit counts: the email given (lowercased), else the shop's id for
    the customer, else ulak's."""
    if isinstance(email, str) and email:
        return email.strip().lower()
    if isinstance(customer_ref, str | int) and str(customer_ref):
        return f"id:{customer_ref}"
    return f"customer:{customer_id}"


async def subscriptions_today(
    session: AsyncSession, *, store_id: int, requested_by: str, now: datetime
) -> int:
    """How many subscriptions this requester made in the last 24 hours."""
    count = await session.scalar(
        select(func.count()).where(
            BackInStockSubscription.store_id == store_id,
            BackInStockSubscription.requested_by == requested_by,
            BackInStockSubscription.created_at > now - timedelta(days=1),
        )
    )
    return int(count or 0)


async def subscribe(
    session: AsyncSession,
    *,
    store_id: int,
    customer_id: int,
    requested_by: str,
    data: BackInStockData,
    daily_limit: int,
    now: datetime,
) -> BackInStockSubscription | None:
    """Start (or renew) the customer's subscription to the variant; None when the requester
    is past the store's daily limit (the API refuses those before they get here; requests
    already on their way are held to it here)."""
    subscription = await _subscription_of(session, store_id, customer_id, data)
    if subscription is not None and subscription.status == "waiting":
        subscription.expires_at = now + timedelta(days=SUBSCRIPTION_DAYS)
        return subscription
    if (
        await subscriptions_today(session, store_id=store_id, requested_by=requested_by, now=now)
        >= daily_limit
    ):
        return None
    if subscription is None:
        subscription = BackInStockSubscription(
            store_id=store_id,
            customer_id=customer_id,
            product_id=data.product_id,
            variant_id=data.variant_id or "",
        )
        session.add(subscription)
    subscription.status = "waiting"
    subscription.requested_by = requested_by
    subscription.created_at = now
    subscription.expires_at = now + timedelta(days=SUBSCRIPTION_DAYS)
    subscription.notified_at = None
    subscription.restock = None
    await session.flush()
    return subscription


async def cancel_subscription(
    session: AsyncSession, *, store_id: int, customer_id: int, data: BackInStockData
) -> None:
    subscription = await _subscription_of(session, store_id, customer_id, data)
    if subscription is not None and subscription.status == "waiting":
        subscription.status = "cancelled"


async def _subscription_of(
    session: AsyncSession, store_id: int, customer_id: int, data: BackInStockData
) -> BackInStockSubscription | None:
    """The customer's one subscription to the variant, if they ever made it."""
    query = select(BackInStockSubscription).where(
        BackInStockSubscription.store_id == store_id,
        BackInStockSubscription.customer_id == customer_id,
        BackInStockSubscription.product_id == data.product_id,
        BackInStockSubscription.variant_id == (data.variant_id or ""),
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_subscriptions(
    session: AsyncSession,
    *,
    store_id: int,
    customer_ids: list[int] | None,
    product_id: str | None,
) -> list[BackInStockSubscription]:
    query = select(BackInStockSubscription).where(BackInStockSubscription.store_id == store_id)
    if customer_ids is not None:
        query = query.where(BackInStockSubscription.customer_id.in_(customer_ids))
    if product_id is not None:
        query = query.where(BackInStockSubscription.product_id == product_id)
    rows = (await session.execute(query.order_by(BackInStockSubscription.id).limit(1000))).scalars()
    return list(rows)


def subscription_status(subscription: BackInStockSubscription, now: datetime) -> str:
    """Its status as of now: a waiting one past its time has expired (read so, never swept)."""
    if subscription.status == "waiting" and subscription.expires_at <= now:
        return "expired"
    return subscription.status


async def get_subscription(
    session: AsyncSession, *, store_id: int, subscription_id: int
) -> BackInStockSubscription:
    row = (
        await session.execute(
            select(BackInStockSubscription).where(
                BackInStockSubscription.store_id == store_id,
                BackInStockSubscription.id == subscription_id,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"back-in-stock subscription {subscription_id} does not exist")
    return row


async def replenish_days(
    session: AsyncSession, *, store_id: int, product_ids: Iterable[str]
) -> dict[str, int]:
    """How many days one unit of each product lasts, for the products that say (any of a
    product's variants counts, the product's own row first)."""
    wanted = set(product_ids)
    if not wanted:
        return {}
    rows = await session.execute(
        select(Product.product_id, Product.replenish_days)
        .where(
            Product.store_id == store_id,
            Product.product_id.in_(wanted),
            Product.replenish_days.is_not(None),
        )
        .order_by(Product.variant_id.desc())
    )
    # Ordered so that the product's own row ("" sorts last) is the one kept.
    return {product_id: days for product_id, days in rows.all() if days is not None}


@dataclass(frozen=True)
class ProductView:
    """What an email shows of a product: from the variant's row, else the product's."""

    title: str | None
    url: str | None
    image_url: str | None
    price: str | None
    currency: str | None


async def product_views(
    session: AsyncSession, *, store_id: int, wanted: Iterable[tuple[str, str | None]]
) -> dict[tuple[str, str | None], ProductView]:
    """The catalogue's view of each (product, variant) it knows: the variant's own row,
    else the product's own (variant ""), else any variant of the product."""
    wanted = set(wanted)
    if not wanted:
        return {}
    rows = await session.execute(
        select(Product)
        .where(Product.store_id == store_id, Product.product_id.in_({p for p, _ in wanted}))
        .order_by(Product.product_id, Product.variant_id)
    )
    by_product: dict[str, dict[str, Product]] = {}
    for product in rows.scalars():
        by_product.setdefault(product.product_id, {})[product.variant_id] = product
    views = {}
    for product_id, variant_id in wanted:
        variants = by_product.get(product_id)
        if not variants:
            continue
        row = variants.get(variant_id or "") or variants.get("") or next(iter(variants.values()))
        # A variant without its own picture or page shows the product's.
        base = variants.get("") or row
        views[(product_id, variant_id)] = ProductView(
            title=row.title or base.title,
            url=row.url or base.url,
            image_url=row.image_url or base.image_url,
            price=str(row.price) if row.price is not None else None,
            currency=row.currency,
        )
    return views
