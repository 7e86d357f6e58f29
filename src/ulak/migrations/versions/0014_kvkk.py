"""kvkk: erased customers, and how long a store keeps its events

`customers.erased_at` marks a profile erased on the customer's request (KVKK/GDPR): the
row stays, emptied, so orders keep their customer and counts hold. `stores.keep_events_days`
is how long applied events are kept (`events.forget_old`).

Revision ID: 0014_kvkk
Revises: 0014_suppressions
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ulak.db

revision = "0014_kvkk"
down_revision = "0014_suppressions"
branch_labels = None
depends_on = None

Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    # Plain ALTER TABLE: SQLite's batch mode would copy the table and drop the old one, and
    # that drop cascades.
    with op.batch_alter_table("customers", recreate="never") as batch:
        batch.add_column(sa.Column("erased_at", Time, nullable=True))
    with op.batch_alter_table("stores", recreate="never") as batch:
        batch.add_column(
            sa.Column(
                "keep_events_days", sa.Integer(), nullable=False, server_default=sa.text("365")
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("stores", recreate="never") as batch:
        batch.drop_column("keep_events_days")
    with op.batch_alter_table("customers", recreate="never") as batch:
        batch.drop_column("erased_at")
