"""special_days: a store's special days and the store-level timer that fans each out

One row per special day of a store (Anneler Günü, Sevgililer Günü, ...): its names, the
rule that dates it each year, and when its next occurrence starts (`ix_special_days_due`,
read only where due), with the fan-out's cursor. Existing stores get no rows (the rows'
next dates depend on the clock, which a migration should not read): `ulak stores
special-days defaults` adds the Turkish defaults new stores start with.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ulak.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "special_days",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("name_tr", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=500), nullable=False),
        sa.Column("due_at", ulak.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("fanned_out_to", Id, nullable=True),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name="fk_special_days_store_id_stores", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_special_days"),
        sa.UniqueConstraint("store_id", "key", name="uq_special_days_store_id_key"),
    )
    op.create_index("ix_special_days_due", "special_days", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_special_days_due", table_name="special_days")
    op.drop_table("special_days")
