"""Orders from Trendyol, Hepsiburada and Amazon through the event API (`channel`): the
buyer is the shop's own customer where the phone or the shop's customer id says so, a
relay address never takes the place of the address they gave the shop, two buyers behind
one relay domain stay two people, and commercial mail never goes to a relay; on SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from tests.policy.test_sending_policy import CONFIRMATION, journey, messages, post
from tests.support import StoreKey, add_journey, consent_updated, dev_inbox, make_store
from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.orders.models import Order
from ulak.worker import Workers

TRENDYOL = "pf+dym24k@trendyolmail.com"
AMAZON = "7x2kq9vd4hzm5rt@marketplace.amazon.com.tr"


def marketplace_order(
    order_id: str, channel: str, customer: dict[str, Any], total: str = "499.90"
) -> dict[str, Any]:
    """An order.placed as the README's "Marketplaces" table maps a marketplace's order."""
    return {
        "id": f"{channel}-{order_id}",
        "type": "order.placed",
        "customer": {"first_name": "Ayşe", "last_name": "Yılmaz", **customer},
        "data": {
            "order_id": f"{channel}-{order_id}",
            "number": order_id,
            "channel": channel,
            "items": [
                {"sku": "KUPA-01", "title": "Seramik kupa", "quantity": 2, "price": "249.95"}
            ],
            "total": total,
            "currency": "TRY",
        },
    }


def web_order(order_id: str, **customer: Any) -> dict[str, Any]:
    event = marketplace_order(order_id, "web", customer)
    event["id"] = f"evt-order-{order_id}"
    event["data"]["order_id"] = order_id
    return event


async def people(db: Database) -> list[tuple[str | None, str | None, str | None]]:
    """(shop id, email, phone) of every live (unmerged) customer."""
    async with db.read() as session:
        rows = await session.scalars(
            select(Customer).where(Customer.merged_into_id.is_(None)).order_by(Customer.id)
        )
        return [(c.external_id, c.email, c.phone) for c in rows]


async def orders(db: Database) -> list[tuple[str, str, str | None]]:
    """(order id, channel, its customer's email) of every order."""
    async with db.read() as session:
        rows = await session.execute(
            select(Order.order_id, Order.channel, Customer.email)
            .join(Customer, Customer.id == Order.customer_id)
            .order_by(Order.id)
        )
        return [(o, c, e) for o, c, e in rows]


async def test_a_marketplace_buyer_is_the_shops_customer_by_phone_or_shop_id(
    client: httpx.AsyncClient, db: Database, workers: Workers, store: StoreKey
) -> None:
    await post(
        client,
        store,
        web_order("1001", id="c-1042", email="ayse@example.com", phone="0532 111 22 33"),
        # Trendyol gives a relay address and the phone, written its own way.
        marketplace_order("TY-58", "trendyol", {"email": TRENDYOL, "phone": "+90 (532) 111 22 33"}),
        # The shop's back office matched the Amazon buyer to its customer: the shop's id.
        marketplace_order("402-1", "amazon", {"id": "c-1042", "email": AMAZON}),
        # Hepsiburada: its order gives a name and phone (no relay domain is known).
        marketplace_order("HB-9", "hepsiburada", {"phone": "05321112233"}),
    )
    await workers.drain()

    assert await people(db) == [("c-1042", "ayse@example.com", "+905321112233")]
    assert await orders(db) == [
        ("1001", "web", "ayse@example.com"),
        ("trendyol-TY-58", "trendyol", "ayse@example.com"),
        ("amazon-402-1", "amazon", "ayse@example.com"),
        ("hepsiburada-HB-9", "hepsiburada", "ayse@example.com"),
    ]


async def test_the_address_given_to_the_shop_wins_over_a_relay_whichever_came_first(
    client: httpx.AsyncClient, db: Database, workers: Workers, store: StoreKey
) -> None:
    # A Trendyol buyer first; then the same phone orders on the shop's site.
    await post(
        client,
        store,
        marketplace_order("TY-1", "trendyol", {"email": TRENDYOL, "phone": "05321112233"}),
    )
    await workers.drain()
    assert await people(db) == [(None, TRENDYOL, "+905321112233")]
    await post(client, store, web_order("1001", email="ayse@example.com", phone="05321112233"))
    await post(
        client,
        store,
        marketplace_order("TY-2", "trendyol", {"email": TRENDYOL, "phone": "05321112233"}),
    )
    # Two profiles, the shop's customer and an Amazon relay, are one person once an event
    # names both; the relay's profile absorbs the other, and takes its address.
    await post(
        client,
        store,
        web_order("2001", id="c-7", email="mehmet@example.com", phone="05339998877"),
        marketplace_order("402-9", "amazon", {"email": AMAZON}),
    )
    await workers.drain()
    assert len(await people(db)) == 3
    await post(
        client,
        store,
        marketplace_order("402-10", "amazon", {"email": AMAZON, "phone": "05339998877"}),
    )
    await workers.drain()

    assert await people(db) == [
        (None, "ayse@example.com", "+905321112233"),
        ("c-7", "mehmet@example.com", "+905339998877"),
    ]


async def test_two_buyers_behind_one_relay_domain_stay_two_people(
    client: httpx.AsyncClient, db: Database, workers: Workers, store: StoreKey
) -> None:
    await post(
        client,
        store,
        marketplace_order("TY-1", "trendyol", {"email": "pf+aaa111@trendyolmail.com"}),
        marketplace_order("TY-2", "trendyol", {"email": "pf+bbb222@trendyolmail.com"}),
        marketplace_order("402-1", "amazon", {"email": AMAZON}),
        marketplace_order("402-2", "amazon", {"email": "q8w7e6r5t4@marketplace.amazon.com.tr"}),
        # The same relay address again is the same buyer.
        marketplace_order("TY-3", "trendyol", {"email": "pf+aaa111@trendyolmail.com"}),
    )
    await workers.drain()

    assert await people(db) == [
        (None, "pf+aaa111@trendyolmail.com", None),
        (None, "pf+bbb222@trendyolmail.com", None),
        (None, AMAZON, None),
        (None, "q8w7e6r5t4@marketplace.amazon.com.tr", None),
    ]
    assert [o for o, _, _ in await orders(db)] == [
        "trendyol-TY-1",
        "trendyol-TY-2",
        "amazon-402-1",
        "amazon-402-2",
        "trendyol-TY-3",
    ]


async def test_commercial_mail_never_goes_to_a_relay_and_reaches_the_customer_once_known(
    client: httpx.AsyncClient, db: Database, clock: FrozenClock, workers: Workers
) -> None:
    store = await make_store(db, clock, library=False)
    await add_journey(db, clock, store, journey("thanks", priority=80))
    await add_journey(db, clock, store, CONFIRMATION)
    buyer = {"email": TRENDYOL, "phone": "05321112233"}
    await post(
        client,
        store,
        {**consent_updated("granted", email=TRENDYOL), "customer": buyer},
        marketplace_order("TY-1", "trendyol", buyer),
    )
    await workers.drain()
    assert sorted((t, s, r) for t, s, _, r, _ in await messages(db)) == [
        ("order_confirmation", "sent", None),
        ("order_delivered", "skipped", "marketplace relay address"),
    ]
    assert [m["To"] for m in await dev_inbox(db)] == [TRENDYOL]

    # The same person orders on the shop's site with their own address.
    await post(client, store, web_order("1001", email="ayse@example.com", phone="0532 111 22 33"))
    await workers.drain()
    assert sorted((t, s, r) for t, s, _, r, _ in await messages(db)) == [
        ("order_confirmation", "sent", None),
        ("order_confirmation", "sent", None),
        ("order_delivered", "sent", None),
        ("order_delivered", "skipped", "marketplace relay address"),
    ]
    assert [m["To"] for m in await dev_inbox(db)] == [
        TRENDYOL,
        "ayse@example.com",
        "ayse@example.com",
    ]
