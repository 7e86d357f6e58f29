"""sms: a store's SMS provider, short links, the dev SMS inbox, the gateway's message id

`sms_settings` holds a store's provider, its credentials (write-only), sender header,
segment limit and price; `short_links` the links SMS carry as /s/<token>; `dev_sms` what a
store without a provider would have sent; `messages.provider_id` the gateway's id, which
its delivery reports name.

Revision ID: 0014_sms
Revises: 0014_kvkk
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ulak.db

revision = "0014_sms"
down_revision = "0014_kvkk"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sms_settings",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("credentials", JSON, nullable=False),
        sa.Column("sender", sa.String(length=11), nullable=True),
        sa.Column("segment_limit", sa.Integer(), nullable=False),
        sa.Column("price_per_segment", ulak.db.Money(length=40), nullable=True),
        sa.Column("report_token", sa.String(length=64), nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_sms_settings_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", name=op.f("pk_sms_settings")),
        sa.UniqueConstraint("report_token", name=op.f("uq_sms_settings_report_token")),
    )
    op.create_table(
        "short_links",
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_short_links_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_short_links")),
    )
    op.create_table(
        "dev_sms",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("message_id", Id, nullable=False),
        sa.Column("to", sa.String(length=32), nullable=False),
        sa.Column("sender", sa.String(length=11), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("encoding", sa.String(length=16), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("received_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_dev_sms_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dev_sms")),
    )
    op.create_index("ix_dev_sms_store", "dev_sms", ["store_id", "id"])
    with op.batch_alter_table("messages", recreate="never") as batch:
        batch.add_column(sa.Column("provider_id", sa.String(length=100), nullable=True))
    op.create_index(
        "ix_messages_provider_id",
        "messages",
        ["store_id", "provider_id"],
        postgresql_where=sa.text("provider_id IS NOT NULL"),
        sqlite_where=sa.text("provider_id IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_awaiting_report",
        "messages",
        ["sent_at"],
        postgresql_where=sa.text("status = 'sent' AND provider_id IS NOT NULL"),
        sqlite_where=sa.text("status = 'sent' AND provider_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_awaiting_report", table_name="messages")
    op.drop_index("ix_messages_provider_id", table_name="messages")
    with op.batch_alter_table("messages", recreate="never") as batch:
        batch.drop_column("provider_id")
    op.drop_index("ix_dev_sms_store", table_name="dev_sms")
    op.drop_table("dev_sms")
    op.drop_table("short_links")
    op.drop_table("sms_settings")
