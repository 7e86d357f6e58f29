"""back-in-stock subscriptions, restock numbers and the store's limits on them

A customer asks to hear when a variant is back; a restock (inventory from none to some)
tells the oldest subscriptions, at most inventory × the store's factor.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ulak.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WAITING = sa.text("status = 'waiting'")


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (see 0009): a copied and dropped `stores` would take
    # every row that cascades from a store with it.
    with op.batch_alter_table("stores", recreate="never") as batch:
        batch.add_column(
            sa.Column("back_in_stock_factor", sa.Integer(), nullable=False, server_default="3")
        )
        batch.add_column(
            sa.Column(
                "back_in_stock_daily_limit", sa.Integer(), nullable=False, server_default="10"
            )
        )
    with op.batch_alter_table("products", recreate="never") as batch:
        batch.add_column(sa.Column("restocks", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "back_in_stock_subscriptions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("store_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("product_id", sa.String(200), nullable=False),
        sa.Column("variant_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(320), nullable=False),
        sa.Column("created_at", ulak.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", ulak.db.UTCDateTime(), nullable=False),
        sa.Column("notified_at", ulak.db.UTCDateTime(), nullable=True),
        sa.Column("restock", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name="fk_back_in_stock_subscriptions_store_id_stores",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_back_in_stock_subscriptions_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_back_in_stock_subscriptions"),
        sa.UniqueConstraint(
            "store_id",
            "customer_id",
            "product_id",
            "variant_id",
            name="uq_back_in_stock_customer_variant",
        ),
    )
    op.create_index(
        "ix_back_in_stock_subscriptions_customer_id",
        "back_in_stock_subscriptions",
        ["customer_id"],
    )
    op.create_index(
        "ix_back_in_stock_waiting",
        "back_in_stock_subscriptions",
        ["store_id", "product_id", "variant_id", "created_at"],
        sqlite_where=WAITING,
        postgresql_where=WAITING,
    )
    op.create_index(
        "ix_back_in_stock_requested_by",
        "back_in_stock_subscriptions",
        ["store_id", "requested_by", "created_at"],
    )


def downgrade() -> None:
    op.drop_table("back_in_stock_subscriptions")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("restocks")
    with op.batch_alter_table("stores") as batch:
        batch.drop_column("back_in_stock_daily_limit")
        batch.drop_column("back_in_stock_factor")
