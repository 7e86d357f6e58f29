"""catalog content: products' usage tips, a store's tip per tag, the indexes that bound
recommendations, and the `next-order` coupon template

`products.tips` holds the tips `product.updated` brings; `tag_tips` a store's text for the
products of a tag that bring none. `ix_order_items_product` (product, order) reads a
product's latest orders, and `ix_orders_store_placed` a store's latest orders, so a
recommendation reads only what the customer's products need (`catalog.service.recommend`).
Every store gets the default `next-order` coupon template the `thank-you` journey issues.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

(Written beside other branches' migrations after 0009: the merger re-chains them.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ulak.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# As `ulak.coupons.service.DEFAULTS` had it when this migration was written.
NEXT_ORDER = ("next-order", Decimal(10), 30, "TESEKKURLER", "THANKYOU")


def upgrade() -> None:
    op.create_table(
        "tag_tips",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", ulak.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name="fk_tag_tips_store_id_stores", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tag_tips"),
        sa.UniqueConstraint("store_id", "tag", name="uq_tag_tips_store_id_tag"),
    )
    # Plain ALTER TABLE ADD COLUMN: SQLite's batch mode would copy and drop `products`.
    with op.batch_alter_table("products", recreate="never") as batch:
        batch.add_column(
            sa.Column(
                "tips",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                server_default=sa.text("'[]'"),
                nullable=False,
            )
        )
    op.create_index("ix_order_items_product", "order_items", ["product_id", "order_id"])
    op.create_index("ix_orders_store_placed", "orders", ["store_id", "placed_at"])
    templates = sa.table(
        "coupon_templates",
        sa.column("store_id", Id),
        sa.column("key", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("amount", ulak.db.Money(length=40)),
        sa.column("minimum_order", ulak.db.Money(length=40)),
        sa.column("validity_days", sa.Integer()),
        sa.column("source", sa.String()),
        sa.column("prefix", sa.String()),
        sa.column("created_at", ulak.db.UTCDateTime(timezone=True)),
        sa.column("updated_at", ulak.db.UTCDateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    key, amount, days, turkish, english = NEXT_ORDER
    stores = op.get_bind().execute(
        sa.text(
            "SELECT id, locale FROM stores WHERE id NOT IN"
            " (SELECT store_id FROM coupon_templates WHERE key = :key)"
        ),
        {"key": key},
    )
    rows = [
        {
            "store_id": store_id,
            "key": key,
            "kind": "percent",
            "amount": amount,
            "minimum_order": None,
            "validity_days": days,
            "source": "generated",
            "prefix": turkish if (locale or "").lower().startswith("tr") else english,
            "created_at": now,
            "updated_at": now,
        }
        for store_id, locale in stores.all()
    ]
    if rows:
        op.bulk_insert(templates, rows)


def downgrade() -> None:
    op.drop_index("ix_orders_store_placed", table_name="orders")
    op.drop_index("ix_order_items_product", table_name="order_items")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("tips")
    op.drop_table("tag_tips")
