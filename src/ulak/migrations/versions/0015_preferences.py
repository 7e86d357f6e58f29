"""preferences: topics per customer and channel, privacy requests from the page, a
message's topic

`topic_preferences` holds a customer's choice of a topic on a channel (no row: on);
`privacy_requests` the KVKK/GDPR requests made from the preference page, for the shop to
answer; `messages.topic` what a message is about, checked at its creation and its claim.

Revision ID: 0015_preferences
Revises: 0014_sms
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ulak.db

revision = "0015_preferences"
down_revision = "0014_sms"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "topic_preferences",
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_topic_preferences_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_topic_preferences_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "channel", "topic", name=op.f("pk_topic_preferences")
        ),
    )
    op.create_table(
        "privacy_requests",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("requested_at", Time, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_privacy_requests_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    op.create_index("ix_privacy_requests_store", "privacy_requests", ["store_id", "requested_at"])
    with op.batch_alter_table("messages", recreate="never") as batch:
        batch.add_column(sa.Column("topic", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", recreate="never") as batch:
        batch.drop_column("topic")
    op.drop_index("ix_privacy_requests_store", table_name="privacy_requests")
    op.drop_table("privacy_requests")
    op.drop_table("topic_preferences")
