"""The real Segment and RudderStack Python SDKs, pointed at ulak, unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient
from sqlalchemy import select

from tests.segment.test_api import applied, live_customers
from tests.support import StoreKey, free_port, stored_keys
from ulak.db import Database
from ulak.orders.models import Order
from ulak.worker import Workers


@pytest.fixture
async def url(app: Any) -> AsyncIterator[str]:
    """ulak on a real port, served on the test's own loop (the SDKs post from their
    threads, with `requests`)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn says so only by this flag
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


def completed(order_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "total": 59.97,
        "currency": "TRY",
        "coupon": "HOSGELDIN",
        "products": [
            {"product_id": "p-1", "sku": "S-1", "name": "Çay", "price": 19.99, "quantity": 3}
        ],
    }


async def drive(client: Any) -> None:
    """The calls a shop's backend makes, then the SDK's own flush and shutdown."""
    client.page(anonymous_id="a-9", name="Home", message_id="m-1")
    client.track(
        anonymous_id="a-9",
        event="Product Added",
        properties={"product_id": "p-1", "name": "Çay", "price": 19.99},
        message_id="m-2",
    )
    client.identify(
        user_id="c-7",
        anonymous_id="a-9",
        traits={"email": "Zeynep@Example.com", "firstName": "Zeynep", "birthday": "1991-02-03"},
        message_id="m-3",
    )
    client.track(
        user_id="c-7", event="Order Completed", properties=completed("7001"), message_id="m-4"
    )
    client.track(user_id="c-7", event="Wishlist Shared", message_id="m-5")
    client.group(user_id="c-7", group_id="g-1", traits={"name": "Acme"}, message_id="m-6")
    client.alias(previous_id="c-7", user_id="c-7-new", message_id="m-7")
    await asyncio.to_thread(client.flush)
    await asyncio.to_thread(client.join)


EXPECTED = [
    ("segment:m-1", "page.viewed", None),
    ("segment:m-2", "cart.updated", None),
    ("segment:m-3", "customer.updated", None),
    ("segment:m-4", "order.placed", None),
    ("segment:m-5", "wishlist_shared", None),
    ("segment:m-6", "group.identified", None),
    ("segment:m-7", "customer.updated", None),
]


async def check(db: Database, workers: Workers, store: StoreKey) -> None:
    assert await stored_keys(db) == [(store.id, key) for key, _, _ in EXPECTED]
    await workers.drain()
    assert await applied(db) == EXPECTED
    (customer,) = await live_customers(db)
    assert (
        customer.external_id,
        customer.email,
        customer.first_name,
        customer.birthday.isoformat() if customer.birthday else None,
    ) == ("c-7-new", "zeynep@example.com", "Zeynep", "1991-02-03")
    async with db.read() as session:
        (order,) = (await session.execute(select(Order))).scalars()
    assert (order.order_id, order.total, order.customer_id) == (
        "7001",
        Decimal("59.97"),
        customer.id,
    )


async def test_segment_analytics_python_feeds_ulak(
    url: str, store: StoreKey, db: Database, workers: Workers
) -> None:
    errors: list[Exception] = []
    client = SegmentClient(
        write_key=store.key,
        host=url,
        gzip=True,
        max_retries=1,
        on_error=lambda error, batch: errors.append(error),
    )
    await drive(client)
    assert errors == []
    await check(db, workers, store)


async def test_rudder_sdk_python_feeds_ulak(
    url: str, store: StoreKey, db: Database, workers: Workers
) -> None:
    errors: list[Exception] = []
    client = RudderClient(
        write_key=store.key,
        host=url,
        max_retries=1,
        on_error=lambda error, batch: errors.append(error),
    )
    await drive(client)
    assert errors == []
    await check(db, workers, store)


async def test_an_sdk_with_a_wrong_key_hears_401_and_nothing_is_stored(
    url: str, store: StoreKey, db: Database
) -> None:
    errors: list[Any] = []
    client = SegmentClient(
        write_key="ulak_sk_wrong",
        host=url,
        max_retries=1,
        on_error=lambda error, batch: errors.append(error),
    )
    client.track(user_id="c-7", event="Order Completed", properties=completed("1"))
    await asyncio.to_thread(client.flush)
    await asyncio.to_thread(client.join)
    assert [(e.status, e.code, e.message) for e in errors] == [
        (401, "unauthorized", "invalid API key")
    ]
    assert await stored_keys(db) == []
