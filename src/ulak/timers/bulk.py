"""Timers after `ulak import`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ulak.orders.bulk import order_times_of
from ulak.stores.models import Store
from ulak.timers.service import LAPSED, lapse_window, set_timers


async def orders_imported(
    session: AsyncSession, *, store: Store, customer_ids: Iterable[int], now: datetime
) -> int:
    """Move the lapse timer of customers who got imported orders, as `set_lapse` would,
    but only to a moment still ahead: a lapse computed from a 2019 order would be due at
    once and greet a long-gone customer about it. Nothing else is set: replenishment and
    cart timers come from live orders and carts. Returns the timers set."""
    timers: list[dict[str, Any]] = []
    for customer_id, orders in (await order_times_of(session, customer_ids=customer_ids)).items():
        last_order, last_at = orders[-1]
        window = lapse_window([at for _, at in orders], days=store.lapsed_days)
        if last_at + window <= now:
            continue
        timers.append(
            {
                "store_id": store.id,
                "kind": LAPSED,
                "subject": str(customer_id),
                "customer_id": customer_id,
                "due_at": last_at + window,
                "data": {
                    "never_bought": False,
                    "last_order_id": last_order,
                    "last_order_at": last_at.isoformat(),
                    "orders": len(orders),
                    "days": round(window / timedelta(days=1), 1),
                },
            }
        )
    await set_timers(session, timers)
    return len(timers)
