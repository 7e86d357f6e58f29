"""messages to the shop itself have no customer

An alert to the store's contact address (a store template that stopped its emails) is a
message like any other, sent and retried by the same sender, but it is to no customer.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.alter_column(
            "customer_id",
            existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        )


def downgrade() -> None:
    op.execute("DELETE FROM messages WHERE customer_id IS NULL")
    with op.batch_alter_table("messages") as batch:
        batch.alter_column(
            "customer_id",
            existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        )
