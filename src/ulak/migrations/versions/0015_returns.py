"""returns: a store's return policy, and its customers' return requests

`return_settings` holds a store's window, policy text, what it offers besides a refund
and the reasons a customer picks from; `return_requests` each request (its reference,
items, resolution) and where the shop has taken it.

Revision ID: 0015_returns
Revises: 0015_preferences
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ulak.db

revision = "0015_returns"
down_revision = "0015_preferences"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "return_settings",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("policy", JSON, nullable=False),
        sa.Column("offer_exchange", sa.Boolean(), nullable=False),
        sa.Column("offer_store_credit", sa.Boolean(), nullable=False),
        sa.Column("credit_bonus_percent", sa.Integer(), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_return_settings_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", name=op.f("pk_return_settings")),
    )
    op.create_table(
        "return_requests",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("items", JSON, nullable=False),
        sa.Column("amount", ulak.db.Money(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("credit_bonus_percent", sa.Integer(), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=True),
        sa.Column("label", sa.String(length=2000), nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("refunded_amount", ulak.db.Money(length=40), nullable=True),
        sa.Column("history", JSON, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_return_requests_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_return_requests_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_requests")),
        sa.UniqueConstraint(
            "store_id", "reference", name=op.f("uq_return_requests_store_id_reference")
        ),
    )
    op.create_index(
        op.f("ix_return_requests_customer_id"), "return_requests", ["customer_id"], unique=False
    )
    op.create_index("ix_return_requests_order", "return_requests", ["store_id", "order_id"])
    op.create_index(
        "ix_return_requests_store_status", "return_requests", ["store_id", "status", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_return_requests_store_status", table_name="return_requests")
    op.drop_index("ix_return_requests_order", table_name="return_requests")
    op.drop_index(op.f("ix_return_requests_customer_id"), table_name="return_requests")
    op.drop_table("return_requests")
    op.drop_table("return_settings")
