"""Products in bulk, for `ulak import`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ulak.catalog.models import Product
from ulak.db import insert_ignoring_conflicts, table_of


@dataclass(frozen=True)
class ImportedProduct:
    product_id: str
    variant_id: str
    title: str | None = None
    url: str | None = None
    image_url: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    inventory: int | None = None
    tags: list[str] = field(default_factory=list)
    tips: list[str] = field(default_factory=list)
    replenish_days: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


async def import_products(
    session: AsyncSession, *, store_id: int, products: Sequence[ImportedProduct], now: datetime
) -> int:
    """Add the variants the store does not have yet (store × product × variant); one it has
    stays as the shop's events left it: an export is older than they are, and a restock
    (which tells back-in-stock subscribers) is for a live `product.updated` to say.
    Returns how many were added."""
    if not products:
        return 0
    table = table_of(Product)
    statement = insert_ignoring_conflicts(session, table).returning(table.c.id)
    # One row per variant: a file naming one twice keeps its first row.
    rows = {
        (p.product_id, p.variant_id): {
            "store_id": store_id,
            "product_id": p.product_id,
            "variant_id": p.variant_id,
            "title": p.title,
            "url": p.url,
            "image_url": p.image_url,
            "price": p.price,
            "currency": p.currency,
            "inventory": p.inventory,
            "tags": p.tags,
            "tips": p.tips,
            "replenish_days": p.replenish_days,
            "restocks": 0,
            "data": p.data,
            "updated_at": now,
        }
        for p in reversed(products)
    }
    result = await session.execute(statement, list(reversed(rows.values())))
    return len(result.all())
