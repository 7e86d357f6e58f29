from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.models import Product
from ulak.clock import Clock
from ulak.events.schemas import ProductData


async def upsert_product(
    session: AsyncSession, *, store_id: int, data: ProductData, clock: Clock
) -> Product:
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
    if product is None:
        product = Product(store_id=store_id, product_id=data.product_id, variant_id=variant_id)
        session.add(product)
    sent = data.model_dump(exclude_unset=True, exclude={"product_id", "variant_id"})
    known = {"title", "url", "image_url", "price", "currency", "inventory", "tags"}
    for field in known & sent.keys():
        setattr(product, field, sent[field])
    if "replenish_days" in sent:
        product.replenish_days = sent["replenish_days"]
    product.data = {k: v for k, v in data.model_dump(mode="json").items() if k not in known}
    product.updated_at = clock.now()
    await session.flush()
    return product


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
