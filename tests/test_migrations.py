"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Dialect, create_engine, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable

from ulak.db import Database
from ulak.migrate import alembic_config, upgrade
from ulak.models import Base


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_match_the_models(db: Database) -> None:
    async with db.engine.connect() as connection:
        differences = await connection.run_sync(_differences)
        names = await connection.run_sync(_constraint_names)
    assert differences == []
    if not db.is_sqlite:  # SQLite's constraints have no names to compare
        assert names == _declared_names(connection.dialect)


def _constraint_names(connection: Connection) -> dict[str, set[str]]:
    """Each table's primary key, unique and foreign key constraint names, as stored."""
    inspector = inspect(connection)
    names: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        found = {inspector.get_pk_constraint(table.name)["name"]}
        found |= {c["name"] for c in inspector.get_unique_constraints(table.name)}
        found |= {c["name"] for c in inspector.get_foreign_keys(table.name)}
        names[table.name] = {name for name in found if name}
    return names


def _declared_names(dialect: Dialect) -> dict[str, set[str]]:
    """The names the models' naming convention gives the same constraints."""
    names: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        names[table.name] = set(re.findall(r"CONSTRAINT (\w+) (?:PRIMARY|UNIQUE|FOREIGN)", ddl))
    return names


def test_stores_from_before_coupons_get_the_default_templates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0006")
    engine = create_engine(url)
    with engine.begin() as connection:
        for name, locale in (("Dükkan", "tr"), ("Shop", "en-GB")):
            connection.execute(
                text(
                    "INSERT INTO stores (name, locale, timezone, currency, phone_region,"
                    " sender_name, sender_email, brand_color, link_secret, created_at)"
                    " VALUES (:name, :locale, 'Europe/Istanbul', 'TRY', 'TR', :name,"
                    " 'a@b.example', '#000000', 'x', '2026-11-01 00:00:00')"
                ),
                {"name": name, "locale": locale},
            )
        connection.execute(
            text(
                "INSERT INTO api_keys (store_id, prefix, key_hash, created_at)"
                " VALUES (1, 'ulak_x', 'hash', '2026-11-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO customers (store_id, external_id, email, attributes, created_at,"
                " updated_at) VALUES (1, 'c-1', 'a@b.example', '{}', '2026-11-01 00:00:00',"
                " '2026-11-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO products (store_id, product_id, variant_id, tags, data, updated_at)"
                " VALUES (1, 'p-1', '', '[\"mug\"]', '{}', '2026-11-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO customers (store_id, external_id, email, attributes, created_at,"
                " updated_at, email_unsubscribed_at) VALUES (1, 'c-2', 'c@b.example', '{}',"
                " '2026-11-01 00:00:00', '2026-11-01 00:00:00', '2026-11-02 08:00:00')"
            )
        )
    upgrade(url)
    with engine.connect() as connection:
        # A product from before tips has none (and is kept: `products` is altered in place).
        tips = connection.execute(text("SELECT product_id, tips FROM products")).all()
        rows = connection.execute(
            text(
                "SELECT store_id, key, kind, amount, validity_days, prefix, source"
                " FROM coupon_templates ORDER BY store_id, key"
            )
        ).all()
        # Columns added to `stores` and `customers` since must not have copied and dropped
        # them: with foreign keys on, the drop deletes what cascades from them.
        kept = [
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: S608
            for table in ("stores", "api_keys", "customers")
        ]
        consent = connection.execute(
            text("SELECT external_id, consent FROM customers ORDER BY external_id")
        ).all()
        changes = connection.execute(
            text("SELECT customer_id, channel, status, source, occurred_at FROM consent_changes")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in tips] == [("p-1", "[]")]
    assert kept == [2, 1, 2]
    # An unsubscribe from before consent was recorded is a revoked email consent.
    assert [(ref, json.loads(state)) for ref, state in consent] == [
        ("c-1", {}),
        (
            "c-2",
            {
                "email": {
                    "status": "revoked",
                    "source": "unsubscribe_link",
                    "at": "2026-11-02T08:00:00+00:00",
                }
            },
        ),
    ]
    assert [tuple(row) for row in changes] == [
        (2, "email", "revoked", "unsubscribe_link", "2026-11-02 08:00:00.000000")
    ]
    assert [tuple(row) for row in rows] == [
        (1, "birthday", "percent", "15", 7, "DOGUMGUNU", "generated"),
        (1, "cart", "percent", "10", 7, "SEPET", "generated"),
        (1, "next-order", "percent", "10", 30, "TESEKKURLER", "generated"),
        (1, "welcome", "percent", "10", 30, "HOSGELDIN", "generated"),
        (1, "win-back", "percent", "15", 30, "OZLEDIK", "generated"),
        (2, "birthday", "percent", "15", 7, "BIRTHDAY", "generated"),
        (2, "cart", "percent", "10", 7, "CART", "generated"),
        (2, "next-order", "percent", "10", 30, "THANKYOU", "generated"),
        (2, "welcome", "percent", "10", 30, "WELCOME", "generated"),
        (2, "win-back", "percent", "15", 30, "COMEBACK", "generated"),
    ]
