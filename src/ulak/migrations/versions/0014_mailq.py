"""orders.order_url: the order's page on the shop, behind the emails' "view your order" button

Revision ID: 0014_mailq
Revises: 0014_policy
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_mailq"
down_revision = "0014_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: an ALTER TABLE on SQLite too, never a copy of the orders table.
    with op.batch_alter_table("orders", recreate="never") as batch:
        batch.add_column(sa.Column("order_url", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", recreate="never") as batch:
        batch.drop_column("order_url")
