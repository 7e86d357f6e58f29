"""who claimed a message, and attempts whose outcome was never learned

`claimed_by` names the sender process that holds a message in `sending`, so a worker can
take back at once the messages of a sender that is provably gone (SQLite: any sender but
the one writer; PostgreSQL: one whose advisory lock is free) instead of waiting out the
lease. `interrupted_attempts` counts deliveries whose sender stopped before recording
their outcome: the customer may have received that message more than once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("claimed_by", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column(
                "interrupted_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("interrupted_attempts")
        batch.drop_column("claimed_by")
