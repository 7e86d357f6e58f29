"""A store with a delivered order, and the review link its customer gets."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support import StoreKey, order_placed
from ulak.clock import FrozenClock
from ulak.customers.service import find_customer
from ulak.db import Database
from ulak.stores.service import get_store
from ulak.web.links import page_url
from ulak.worker import Workers


async def place_order(
    client: httpx.AsyncClient, store: StoreKey, workers: Workers, order_id: str = "1001", **kw: Any
) -> None:
    batch = {"events": [order_placed(order_id, **kw)]}
    answer = await client.post("/v1/events", json=batch, headers=store.auth)
    assert answer.status_code == 202, answer.text
    await workers.drain()


async def review_link(
    db: Database,
    store: StoreKey,
    clock: FrozenClock,
    order_id: str = "1001",
    customer_ref: str = "c-1042",
) -> str:
    """The path of the review page for the customer's order, as `links.review` makes it."""
    async with db.read() as session:
        found = await get_store(session, store.id)
        customer = await find_customer(session, store_id=store.id, ref=customer_ref)
        url = page_url("", found, "review", {"c": customer.id, "o": order_id}, at=clock.now())
    return url


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "the form has no csrf field"
    return match.group(1)


async def submit(
    client: httpx.AsyncClient,
    path: str,
    fields: dict[str, str],
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    *,
    csrf: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    if csrf is None:
        csrf = csrf_of((await client.get(path)).text)
    data = {"csrf": csrf, **fields}
    return await client.post(
        path,
        data=data,
        files=files or [("photos_9", ("", b"", "application/octet-stream"))],
        headers={"Accept": "text/html", **(headers or {})},
    )
