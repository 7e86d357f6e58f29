"""iys: a store's İYS account, the queue of consent changes to push, what İYS holds

`iys_accounts` (per store: codes, credentials, the cached token, the pull cursor, the push
backoff), `iys_pushes` (one row per consent change to register at İYS, kept once done)
and `iys_recipients` (each recipient's status at İYS as far as ulak knows).

Revision ID: 0014_iys
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ulak.db

revision = "0014_iys"
down_revision = "0013"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = ulak.db.UTCDateTime(timezone=True)


def _store(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["store_id"], ["stores.id"], name=f"fk_{table}_store_id_stores", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "iys_accounts",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("iys_code", sa.String(length=32), nullable=False),
        sa.Column("brand_code", sa.String(length=32), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("password", sa.String(length=200), nullable=False),
        sa.Column("base_url", sa.String(length=2000), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("access_expires_at", Time, nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("refresh_expires_at", Time, nullable=True),
        sa.Column("pull_after", sa.String(length=200), nullable=True),
        sa.Column("pulled_at", Time, nullable=True),
        sa.Column("push_lease_until", Time, nullable=True),
        sa.Column("push_retry_at", Time, nullable=True),
        sa.Column("push_failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        _store("iys_accounts"),
        sa.PrimaryKeyConstraint("store_id", name="pk_iys_accounts"),
    )
    op.create_table(
        "iys_pushes",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("recipient_type", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=4), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("consent_date", Time, nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("transaction_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("done_at", Time, nullable=True),
        _store("iys_pushes"),
        sa.PrimaryKeyConstraint("id", name="pk_iys_pushes"),
    )
    op.create_index(
        "ix_iys_pushes_pending",
        "iys_pushes",
        ["store_id", "id"],
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "iys_recipients",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("recipient_type", sa.String(length=8), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=4), nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        _store("iys_recipients"),
        sa.PrimaryKeyConstraint(
            "store_id", "type", "recipient_type", "recipient", name="pk_iys_recipients"
        ),
    )


def downgrade() -> None:
    op.drop_table("iys_recipients")
    op.drop_index("ix_iys_pushes_pending", table_name="iys_pushes")
    op.drop_table("iys_pushes")
    op.drop_table("iys_accounts")
