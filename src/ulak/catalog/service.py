from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.models import BackInStockSubscription, Product, TagTip
from ulak.clock import Clock
from ulak.db import Note, notes, table_of
from ulak.errors import Invalid, NotFound
from ulak.events.schemas import BackInStockData, ProductData
from ulak.orders.service import best_sellers, bought_with, products_bought

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
    known = {"title", "url", "image_url", "price", "currency", "inventory", "tags", "tips"}
    for field in known & sent.keys():
        setattr(product, field, sent[field])
    if "replenish_days" in sent:
        product.replenish_days = sent["replenish_days"]
    notes(session).pop(REPLENISH_DAYS)  # what it read may have changed
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


async def variants_of(session: AsyncSession, *, store_id: int, product_id: str) -> list[Product]:
    """The product's rows as the store sent them, its own ("" variant) first, then its
    variants by id; empty when the store never sent it."""
    rows = await session.execute(
        select(Product)
        .where(Product.store_id == store_id, Product.product_id == product_id)
        .order_by(Product.variant_id)
        .limit(200)
    )
    return list(rows.scalars())


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
    known = notes(session)(REPLENISH_DAYS)
    missing = sorted(p for p in wanted if (store_id, p) not in known)
    if missing:
        rows = await session.execute(
            _REPLENISH_DAYS, {"store_id": store_id, "product_ids": missing}
        )
        # Ordered so that the product's own row ("" sorts last) is the one kept.
        found = {product_id: days for product_id, days in rows.all() if days is not None}
        for product_id in missing:
            known[store_id, product_id] = found.get(product_id)
    return {p: days for p in wanted if (days := known[store_id, p]) is not None}


# What `replenish_days` read in this transaction, per store and product (None: says
# nothing), forgotten when `upsert_product` writes a product. The applier's batch reads it
# for every order, mostly of the same few products: one query a batch rather than one an
# order saves ~0.15 ms of CPU per order (bench/RESULTS.md, "worker CPU per order"). On
# PostgreSQL a product another worker commits meanwhile counts from the next batch.
REPLENISH_DAYS: Note[dict[tuple[int, str], int | None]] = Note(
    "catalog.replenish_days", dict, void_on_rollback=True
)


# Built once (read for every order applied): built for each order it cost 0.50 ms of CPU
# against 0.16 ms prebuilt, on SQLite with two products (`bench/statements.py`).
_products = table_of(Product)
_REPLENISH_DAYS = (
    select(_products.c.product_id, _products.c.replenish_days)
    .where(
        _products.c.store_id == bindparam("store_id"),
        _products.c.product_id.in_(bindparam("product_ids", expanding=True)),
        _products.c.replenish_days.is_not(None),
    )
    .order_by(_products.c.variant_id.desc())
)


# ---------------------------------------------------------------------------------------------
# Usage tips: a product's own (from `product.updated`), else its store's text per tag


async def set_tag_tip(
    session: AsyncSession, *, store_id: int, tag: str, text: str, now: datetime
) -> TagTip:
    """Set (or replace) the store's tip for the products with `tag`."""
    tag, text = tag.strip(), text.strip()
    if not tag or not text:
        raise Invalid("a tag tip needs a tag and a text")
    if len(tag) > 100 or len(text) > 1000:
        raise Invalid("a tag is at most 100 characters and its tip at most 1000")
    tip = (
        await session.execute(select(TagTip).where(TagTip.store_id == store_id, TagTip.tag == tag))
    ).scalar_one_or_none()
    if tip is None:
        tip = TagTip(store_id=store_id, tag=tag)
        session.add(tip)
    tip.text = text
    tip.updated_at = now
    await session.flush()
    return tip


async def remove_tag_tip(session: AsyncSession, *, store_id: int, tag: str) -> None:
    tip = (
        await session.execute(select(TagTip).where(TagTip.store_id == store_id, TagTip.tag == tag))
    ).scalar_one_or_none()
    if tip is None:
        raise NotFound(f"store {store_id} has no tip for the tag {tag!r}")
    await session.delete(tip)


async def tag_tips(session: AsyncSession, *, store_id: int) -> list[TagTip]:
    rows = await session.execute(
        select(TagTip).where(TagTip.store_id == store_id).order_by(TagTip.tag)
    )
    return list(rows.scalars())


@dataclass(frozen=True)
class BoughtItem:
    """An item of an order, as the customer saw it."""

    product_id: str
    title: str | None
    url: str | None
    image_url: str | None


@dataclass(frozen=True)
class ProductTips:
    product_id: str
    title: str
    url: str | None
    image_url: str | None
    tips: tuple[str, ...]


async def tips_for(
    session: AsyncSession, *, store_id: int, items: Sequence[BoughtItem]
) -> list[ProductTips]:
    """The tips to show for these items, in their order, once per product: the product's
    own tips (from any of its variants, its own row first), else the store's texts for its
    tags, in the order of its tags. Products without either are left out."""
    wanted = list(dict.fromkeys(item.product_id for item in items))
    if not wanted:
        return []
    rows = await session.execute(
        select(Product)
        .where(Product.store_id == store_id, Product.product_id.in_(wanted))
        .order_by(Product.product_id, Product.variant_id)
    )
    own: dict[str, list[str]] = {}
    tags: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    for product in rows.scalars():  # "" (the product itself) sorts before its variants
        if product.tips and not own.get(product.product_id):
            own[product.product_id] = list(product.tips)
        tags.setdefault(product.product_id, [])
        tags[product.product_id] += [
            t for t in product.tags or [] if t not in tags[product.product_id]
        ]
        if product.title:
            titles.setdefault(product.product_id, product.title)
    by_tag: dict[str, str] = {}
    every_tag = {tag for product_tags in tags.values() for tag in product_tags}
    if every_tag:
        found = await session.execute(
            select(TagTip.tag, TagTip.text).where(
                TagTip.store_id == store_id, TagTip.tag.in_(every_tag)
            )
        )
        by_tag = {tag: text for tag, text in found.all()}
    shown: list[ProductTips] = []
    first = {item.product_id: item for item in reversed(items)}
    for product_id in wanted:
        texts = own.get(product_id) or list(
            dict.fromkeys(by_tag[tag] for tag in tags.get(product_id, []) if tag in by_tag)
        )
        if not texts:
            continue
        item = first[product_id]
        shown.append(
            ProductTips(
                product_id=product_id,
                title=item.title or titles.get(product_id, product_id),
                url=item.url,
                image_url=item.image_url,
                tips=tuple(texts),
            )
        )
    return shown


# ---------------------------------------------------------------------------------------------
# Recommendations: bought together with what the customer bought, else the best sellers

RECOMMENDATIONS = 4
# How many of the ranked products are looked up in the catalogue for stock: enough that a
# few out of stock still leave RECOMMENDATIONS to show.
_CANDIDATES = 40


@dataclass(frozen=True)
class ProductCard:
    """A product as a message shows it: the product's own row, else its first variant in
    stock; in stock when any of its variants is (or does not say)."""

    product_id: str
    title: str
    url: str
    image_url: str | None
    price: Decimal | None
    currency: str | None


# A batch renders many customers' messages of a few stores: their best sellers are counted
# once per transaction.
BEST_SELLERS: Note[dict[int, list[tuple[str, int]]]] = Note("catalog.best_sellers", dict)


async def recommend(
    session: AsyncSession, *, store_id: int, customer_id: int, limit: int = RECOMMENDATIONS
) -> list[ProductCard]:
    """Up to `limit` products for a customer: those most often in the same orders of the
    store as what they bought (co-purchase counts), then the store's best sellers; never a
    product they bought, one out of stock (inventory 0 in every variant) or one the
    catalogue cannot link to (no title or url). The reads are bounded (see
    `orders.service.bought_with`)."""
    owned = await products_bought(session, customer_id=customer_id)
    together = await bought_with(session, store_id=store_id, product_ids=owned)
    memo = notes(session)(BEST_SELLERS)
    if store_id not in memo:
        memo[store_id] = await best_sellers(session, store_id=store_id)
    excluded = set(owned)
    ranked = [p for p, _ in together if p not in excluded][:_CANDIDATES]
    fallback = [p for p, _ in memo[store_id] if p not in excluded and p not in ranked]
    candidates = ranked + fallback[:_CANDIDATES]
    cards = await _cards(session, store_id=store_id, product_ids=candidates)
    return [cards[p] for p in candidates if p in cards][:limit]


async def _cards(
    session: AsyncSession, *, store_id: int, product_ids: list[str]
) -> dict[str, ProductCard]:
    """The products among these the store has in stock and can link to."""
    if not product_ids:
        return {}
    rows = await session.execute(
        select(Product)
        .where(Product.store_id == store_id, Product.product_id.in_(product_ids))
        .order_by(Product.product_id, Product.variant_id)
    )
    variants: dict[str, list[Product]] = {}
    for product in rows.scalars():
        variants.setdefault(product.product_id, []).append(product)
    cards = {}
    for product_id, rows_of in variants.items():
        in_stock = [v for v in rows_of if v.inventory is None or v.inventory > 0]
        if not in_stock:
            continue
        # The product's own row ("" sorts first) when it has one, else a variant in stock.
        shown = rows_of[0] if rows_of[0].variant_id == "" else in_stock[0]
        if not (shown.title and shown.url):
            continue
        cards[product_id] = ProductCard(
            product_id=product_id,
            title=shown.title,
            url=shown.url,
            image_url=shown.image_url,
            price=shown.price,
            currency=shown.currency,
        )
    return cards


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


@dataclass(frozen=True)
class VariantOption:
    """A variant a customer may take instead of another (an exchange): its catalogue title
    and whether any is in stock (unknown inventory counts as in stock)."""

    product_id: str
    variant_id: str
    title: str
    in_stock: bool


async def exchange_options(
    session: AsyncSession, *, store_id: int, product_ids: Iterable[str]
) -> dict[str, list[VariantOption]]:
    """Each product's variants the catalogue knows (not the product's own row), by id."""
    wanted = set(product_ids)
    if not wanted:
        return {}
    rows = await session.execute(
        select(Product)
        .where(
            Product.store_id == store_id,
            Product.product_id.in_(wanted),
            Product.variant_id != "",
        )
        .order_by(Product.product_id, Product.id)
    )
    found: dict[str, list[VariantOption]] = {}
    for row in rows.scalars():
        found.setdefault(row.product_id, []).append(
            VariantOption(
                product_id=row.product_id,
                variant_id=row.variant_id,
                title=row.title or row.variant_id,
                in_stock=row.inventory is None or row.inventory > 0,
            )
        )
    return found
