"""inbox cursor and periodic job ticks

On SQLite the API process appends accepted events to an inbox file of its own and the
worker, the main database's one writer, copies them into `events`; `inbox_cursor` says how
far. `job_ticks` holds the tick a periodic job last ran, so it runs once per tick across
all workers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "job_ticks",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "tick",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "tick"),
    )


def downgrade() -> None:
    op.drop_table("job_ticks")
    op.drop_table("inbox_cursor")
