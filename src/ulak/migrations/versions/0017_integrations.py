"""integrations: a store's shop platforms and their webhook secrets

Revision ID: 0017_integrations
Revises: 0016_fix_surveys
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ulak.db

revision = "0017_integrations"
down_revision = "0016_fix_surveys"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=500), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_integrations_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", "platform", name=op.f("pk_integrations")),
    )


def downgrade() -> None:
    op.drop_table("integrations")
