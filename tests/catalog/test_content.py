"""Catalogue-aware content: products bought together with the customer's (exact lists,
exclusions, the best sellers' fallback, other stores never counted), usage tips from the
product or its store's text per tag, and the `ulak catalog tips` commands."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import event, select

from tests.support import StoreKey, create_store_with_cli, make_store, ulak_cli
from ulak.catalog.models import Product
from ulak.catalog.service import BoughtItem, ProductCard, recommend, set_tag_tip, tips_for
from ulak.clock import FrozenClock
from ulak.customers.models import Customer
from ulak.db import Database
from ulak.events.schemas import ProductData
from ulak.orders.models import Order, OrderItem

DAY0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Shop:
    """Rows of one store, written straight to its tables: customers, products, orders."""

    def __init__(self, db: Database, store: StoreKey) -> None:
        self.db, self.store = db, store
        self.customers: dict[str, int] = {}
        self.orders = 0

    async def customer(self, name: str) -> int:
        if name not in self.customers:
            async with self.db.transaction() as session:
                row = Customer(
                    store_id=self.store.id,
                    external_id=name,
                    attributes={},
                    created_at=DAY0,
                    updated_at=DAY0,
                )
                session.add(row)
                await session.flush()
                self.customers[name] = row.id
        return self.customers[name]

    async def product(
        self, product_id: str, *, inventory: int | None = 5, variant: str = "", url: bool = True
    ) -> None:
        async with self.db.transaction() as session:
            session.add(
                Product(
                    store_id=self.store.id,
                    product_id=product_id,
                    variant_id=variant,
                    title=f"Ürün {product_id}",
                    url=f"https://dukkan.example/{product_id}" if url else None,
                    image_url=None,
                    price=Decimal("100.00"),
                    currency="TRY",
                    inventory=inventory,
                    tags=[],
                    restocks=0,
                    data={},
                    updated_at=DAY0,
                )
            )

    async def order(self, customer: str, *products: str) -> None:
        customer_id = await self.customer(customer)
        self.orders += 1
        placed = DAY0 + timedelta(hours=self.orders)
        async with self.db.transaction() as session:
            order = Order(
                store_id=self.store.id,
                customer_id=customer_id,
                order_id=f"o-{self.store.id}-{self.orders}",
                status="placed",
                channel="web",
                discount_codes=[],
                data={},
                placed_at=placed,
                updated_at=placed,
            )
            session.add(order)
            await session.flush()
            for position, product_id in enumerate(products):
                session.add(
                    OrderItem(
                        order_id=order.id,
                        position=position,
                        product_id=product_id,
                        title=f"Ürün {product_id}",
                        quantity=1,
                        price=Decimal("100.00"),
                    )
                )

    async def recommend(self, customer: str) -> list[str]:
        async with self.db.read() as session:
            cards = await recommend(
                session, store_id=self.store.id, customer_id=await self.customer(customer)
            )
        return [card.product_id for card in cards]


@pytest.fixture
async def shop(db: Database, store: StoreKey) -> Shop:
    shop = Shop(db, store)
    for product_id in ("kupa", "tabak", "pecete", "demlik", "bardak", "onluk", "vazo"):
        await shop.product(product_id)
    return shop


async def test_products_bought_together_rank_by_how_many_orders_hold_them(shop: Shop) -> None:
    await shop.order("ayse", "kupa")
    # Three orders hold kupa with tabak, two with pecete, one with demlik.
    await shop.order("b", "kupa", "tabak", "pecete")
    await shop.order("c", "kupa", "tabak", "pecete")
    await shop.order("d", "kupa", "tabak", "demlik")
    # Bought often, but never with kupa: only a best seller.
    await shop.order("e", "vazo")
    await shop.order("f", "vazo")
    await shop.order("g", "vazo")
    await shop.order("h", "vazo")
    assert await shop.recommend("ayse") == ["tabak", "pecete", "demlik", "vazo"]


async def test_what_the_customer_bought_and_what_is_out_of_stock_are_left_out(
    shop: Shop, db: Database
) -> None:
    await shop.order("ayse", "kupa")
    await shop.order("ayse", "tabak")
    await shop.order("b", "kupa", "tabak", "pecete", "demlik", "bardak")
    await shop.order("c", "kupa", "pecete", "bardak")
    await shop.order("d", "tabak", "bardak")
    async with db.transaction() as session:
        query = select(Product).where(Product.product_id == "bardak")
        (bardak,) = (await session.execute(query)).scalars()
        bardak.inventory = 0
    # A product the catalogue cannot link to is no recommendation either.
    await shop.product("kase", url=False)
    await shop.order("e", "kupa", "kase")
    # In stock in one of its variants: in stock.
    await shop.product("fincan", inventory=0)
    await shop.product("fincan", variant="mavi", inventory=2)
    await shop.order("f", "kupa", "fincan")
    # bardak (3 orders) is out of stock, kupa and tabak are hers, kase has no link; pecete
    # is in 2 orders with hers, demlik and fincan in 1 each (then by id). No best seller
    # is left to add: every product ordered is one of those.
    assert await shop.recommend("ayse") == ["pecete", "demlik", "fincan"]


async def test_the_best_sellers_fill_up_to_four(shop: Shop) -> None:
    await shop.order("ayse", "kupa")  # nobody else bought kupa
    for customer, products in [
        ("b", ["vazo", "demlik", "onluk"]),
        ("c", ["vazo", "demlik", "bardak"]),
        ("d", ["vazo", "pecete", "bardak"]),
        ("e", ["tabak", "bardak"]),
        ("f", ["bardak"]),
    ]:
        await shop.order(customer, *products)
    await shop.product("bardak", variant="kirmizi", inventory=0)
    # bardak (4 orders) is still in stock through its own row: first.
    assert await shop.recommend("ayse") == ["bardak", "vazo", "demlik", "onluk"]
    # A customer without orders gets the best sellers.
    assert await shop.recommend("new") == ["bardak", "vazo", "demlik", "kupa"]


async def test_another_stores_orders_are_never_counted(
    shop: Shop, db: Database, clock: FrozenClock
) -> None:
    await shop.order("ayse", "kupa")
    await shop.order("b", "kupa", "pecete")
    other = Shop(db, await make_store(db, clock, name="Başka Dükkan", library=False))
    for product_id in ("kupa", "tabak", "vazo"):
        await other.product(product_id)
    for customer in ("x", "y", "z"):
        await other.order(customer, "kupa", "tabak")
    await other.order("x", "vazo")
    # Store 1 sells tabak and vazo too, but none of its orders holds them.
    assert await shop.recommend("ayse") == ["pecete"]
    assert await other.recommend("x") == []
    await other.order("w", "kupa")
    assert await other.recommend("w") == ["tabak", "vazo"]


async def test_only_each_products_latest_orders_are_read(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    for customer in ("b", "c", "d"):
        await shop.order(customer, "kupa", "tabak")
    for customer in ("e", "f"):
        await shop.order(customer, "kupa", "pecete")
    await shop.order("ayse", "kupa")
    # Over all of kupa's orders, tabak (3) comes before pecete (2).
    assert await shop.recommend("ayse") == ["tabak", "pecete"]
    # Over kupa's latest 3 (ayse's, f's, e's), only pecete; tabak is a best seller.
    monkeypatch.setattr("ulak.orders.service.ORDERS_PER_PRODUCT", 3)
    assert await shop.recommend("ayse") == ["pecete", "tabak"]


async def test_a_recommendation_carries_what_a_message_shows(shop: Shop, db: Database) -> None:
    await shop.order("ayse", "kupa")
    await shop.order("b", "kupa", "demlik")
    async with db.read() as session:
        cards = await recommend(
            session, store_id=shop.store.id, customer_id=await shop.customer("ayse"), limit=1
        )
    assert cards == [
        ProductCard(
            product_id="demlik",
            title="Ürün demlik",
            url="https://dukkan.example/demlik",
            image_url=None,
            price=Decimal("100.00"),
            currency="TRY",
        )
    ]


# Usage tips


def test_product_updated_takes_one_tip_or_a_few() -> None:
    one = ProductData.model_validate({"product_id": "p", "tips": "  Ilık suyla yıkayın. "})
    assert one.tips == ["Ilık suyla yıkayın."]
    few = ProductData.model_validate({"product_id": "p", "tips": ["Bir.", "İki."]})
    assert few.tips == ["Bir.", "İki."]
    assert ProductData.model_validate({"product_id": "p"}).tips == []
    with pytest.raises(ValidationError) as error:
        ProductData.model_validate({"product_id": "p", "tips": ["x"] * 6})
    assert error.value.errors()[0]["loc"] == ("tips",)
    with pytest.raises(ValidationError):
        ProductData.model_validate({"product_id": "p", "tips": [""]})


async def test_a_products_own_tips_win_over_its_tags_texts(
    db: Database, store: StoreKey, clock: FrozenClock
) -> None:
    from ulak.catalog.service import upsert_product

    def data(product_id: str, **fields: object) -> ProductData:
        return ProductData.model_validate({"product_id": product_id, **fields})

    async with db.transaction() as session:
        for product in (
            data("kupa", title="Kupa", tags=["seramik"], tips="Ilık suyla yıkayın."),
            data("tabak", title="Tabak", tags=["seramik", "porselen"]),
            data("onluk", title="Önlük", tags=["keten"]),
            data("vazo", title="Vazo"),
            # A variant brings the tips, the product's own row none.
            data("demlik", title="Demlik", tags=["seramik"]),
            data("demlik", variant_id="mavi", tips=["Demledikten sonra boşaltın."]),
        ):
            await upsert_product(session, store_id=store.id, data=product, factor=3, clock=clock)
        now = clock.now()
        await set_tag_tip(
            session, store_id=store.id, tag="seramik", text="Darbeden koruyun.", now=now
        )
        await set_tag_tip(
            session, store_id=store.id, tag="porselen", text="Mikrodalgaya uygun.", now=now
        )
        await set_tag_tip(session, store_id=store.id, tag="bambu", text="Kuru tutun.", now=now)
    items = [
        BoughtItem("vazo", "Vazo", None, None),
        BoughtItem("tabak", "Tabak (6'lı)", "https://dukkan.example/tabak", None),
        BoughtItem("kupa", "Kupa", None, None),
        BoughtItem("onluk", "Önlük", None, None),
        BoughtItem("kupa", "Kupa", None, None),
        BoughtItem("demlik", None, None, None),
        BoughtItem("bilinmeyen", "?", None, None),
    ]
    async with db.read() as session:
        shown = await tips_for(session, store_id=store.id, items=items)
        stored = (
            await session.execute(select(Product.tips).where(Product.product_id == "kupa"))
        ).scalar_one()
    assert stored == ["Ilık suyla yıkayın."]
    assert [(t.product_id, t.title, t.url, t.tips) for t in shown] == [
        (
            "tabak",
            "Tabak (6'lı)",
            "https://dukkan.example/tabak",
            ("Darbeden koruyun.", "Mikrodalgaya uygun."),
        ),
        ("kupa", "Kupa", None, ("Ilık suyla yıkayın.",)),
        ("demlik", "Demlik", None, ("Demledikten sonra boşaltın.",)),
    ]


def test_catalog_tips_commands(env: dict[str, str]) -> None:
    store = str(create_store_with_cli(env)["id"])
    for tag, text in (("seramik", "Darbeden koruyun."), ("keten", "30 derecede yıkayın.")):
        done = ulak_cli("catalog", "tips", "set", tag, text, "--store", store, env=env)
        assert (done.returncode, done.stdout.strip()) == (0, f"tip for tag {tag} set")
    ulak_cli("catalog", "tips", "set", "keten", "Ütülemeden kurutun.", "--store", store, env=env)
    listed = ulak_cli("catalog", "tips", "list", "--store", store, "--json", env=env)
    assert json.loads(listed.stdout) == [
        {"tag": "keten", "text": "Ütülemeden kurutun."},
        {"tag": "seramik", "text": "Darbeden koruyun."},
    ]
    removed = ulak_cli("catalog", "tips", "remove", "seramik", "--store", store, env=env)
    assert removed.returncode == 0
    again = ulak_cli("catalog", "tips", "remove", "seramik", "--store", store, env=env)
    assert (again.returncode, again.stderr) == (
        2,
        "error: store 1 has no tip for the tag 'seramik'\n",
    )
    listed = ulak_cli("catalog", "tips", "list", "--store", store, "--json", env=env)
    assert json.loads(listed.stdout) == [{"tag": "keten", "text": "Ütülemeden kurutun."}]


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"ULAK_DATABASE_URL": database_url}


async def test_a_recommendation_reads_through_indexes_only(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """A store's order history only grows: a recommendation must read the customer's
    orders, each seed product's latest orders and those orders' items, never scan
    `orders` or `order_items` (SQLite's plans; its planner has no statistics to go by, so
    the plan does not depend on how many rows the test wrote)."""
    path = tmp_path / "ulak.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite+aiosqlite:///{path}")
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "order_items" in statement or "FROM orders" in statement:
            statements.append((statement, parameters))

    try:
        store = await make_store(db, FrozenClock(), library=False)
        shop = Shop(db, store)
        await shop.product("tabak")
        await shop.order("b", "kupa", "tabak")
        await shop.order("ayse", "kupa", "pecete")
        customer = await shop.customer("ayse")
        event.listen(db.engine.sync_engine, "before_cursor_execute", keep)
        # In a transaction: the worker's connection, the one the engine's events see.
        async with db.transaction() as session:
            cards = await recommend(session, store_id=store.id, customer_id=customer)
        assert [card.product_id for card in cards] == ["tabak"]
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", keep)
        await db.dispose()
    # What she bought, what was bought with it, the best sellers.
    assert len(statements) == 3
    with sqlite3.connect(path) as plain:
        plans = [
            [row[3] for row in plain.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()]
            for sql, params in statements
        ]
    for plan in plans:
        assert not [step for step in plan if re.match(r"SCAN (orders|order_items)\b", step)], plan
    bought, together, best = plans
    assert "SEARCH orders USING COVERING INDEX ix_orders_customer (customer_id=?)" in bought
    assert (
        together.count(
            "SEARCH order_items USING COVERING INDEX ix_order_items_product (product_id=?)"
        )
        == 2
    )  # kupa and pecete, each its latest orders in index order: no sort, no scan
    assert "SEARCH order_items USING INDEX ix_order_items_order_id (order_id=?)" in together
    assert not [step for step in together if "FOR ORDER BY" in step], together
    assert [s for s in best if "orders" in s and "order_items" not in s] == [
        "SEARCH orders USING COVERING INDEX ix_orders_store_placed (store_id=?)"
    ]
