"""timers: clock-driven triggers, their store settings, and enrollments' anchor time

`timers` holds one row per clock-driven trigger waiting for its moment (an abandoned cart,
a birthday, a lapsed customer, a replenishment), set or moved when the state that decides
it changes and read only where due (`ix_timers_due`). A store says how long an idle cart
takes to be abandoned and a customer to lapse. `enrollments.anchor_at` is the moment an
enrollment's next wait counts from: the trigger's `occurred_at`, not when ulak applied it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

(Written beside the coupons branch's 0007: renumber one of the two when both are merged.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ulak.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "timers",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("due_at", ulak.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_timers_customer_id_customers"
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name="fk_timers_store_id_stores", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_timers"),
        sa.UniqueConstraint("store_id", "kind", "subject", name="uq_timers_store_id_kind_subject"),
    )
    op.create_index("ix_timers_due", "timers", ["due_at"])
    op.create_index("ix_timers_customer", "timers", ["customer_id"])
    # Plain ALTER TABLE ADD COLUMN: SQLite's batch mode would copy `stores` into a new
    # table and drop the old one, and with foreign keys on that drop deletes every row
    # that cascades from a store (coupon templates, keys, journeys).
    with op.batch_alter_table("stores", recreate="never") as batch:
        batch.add_column(
            sa.Column(
                "abandoned_cart_minutes",
                sa.Integer(),
                nullable=False,
                server_default=sa.text("60"),
            )
        )
        batch.add_column(
            sa.Column("lapsed_days", sa.Integer(), nullable=False, server_default=sa.text("90"))
        )
    with op.batch_alter_table("enrollments", recreate="never") as batch:
        batch.add_column(sa.Column("anchor_at", ulak.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("anchor_at")
    with op.batch_alter_table("stores") as batch:
        batch.drop_column("lapsed_days")
        batch.drop_column("abandoned_cart_minutes")
    op.drop_index("ix_timers_customer", table_name="timers")
    op.drop_index("ix_timers_due", table_name="timers")
    op.drop_table("timers")
