"""stores' reorder link and never-bought window; the shipped journeys offered to each store

`stores.reorder_url` is the shop's one-click reorder link pattern (`orders/reorder.py`),
`stores.never_bought_days` how long after signing up a customer who never ordered gets the
win-back journey. `shipped_journeys` records which shipped journeys each store was offered,
so `ulak migrate` adds the ones shipped since a store was made, and never again one the
store removed. The stores that exist are recorded as offered the journeys they have; those
they lack (shipped after they were made) are offered by `ulak migrate`'s next step.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ulak.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (see 0009): a copied `stores` would lose, through the
    # cascades, every row that hangs from a store.
    with op.batch_alter_table("stores", recreate="never") as batch:
        batch.add_column(
            sa.Column(
                "never_bought_days", sa.Integer(), nullable=False, server_default=sa.text("14")
            )
        )
        batch.add_column(sa.Column("reorder_url", sa.String(length=2000), nullable=True))
    op.create_table(
        "shipped_journeys",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("offered_at", ulak.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name="fk_shipped_journeys_store_id_stores",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", "key", name="pk_shipped_journeys"),
    )
    # What each store has was offered to it already (whether it came from the library or
    # the shop wrote one of the same key): the upgrade never overwrites it.
    op.execute(
        "INSERT INTO shipped_journeys (store_id, key, offered_at)"
        " SELECT store_id, key, created_at FROM journeys"
    )


def downgrade() -> None:
    op.drop_table("shipped_journeys")
    with op.batch_alter_table("stores") as batch:
        batch.drop_column("reorder_url")
        batch.drop_column("never_bought_days")
