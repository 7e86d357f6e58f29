"""consent: every change of a customer's consent, and the current state on the customer

`consent_changes` keeps each change (channel, status, source, proof) for good;
`customers.consent` holds the state per channel that the sender checks. The unsubscribe
time that `customers.email_unsubscribed_at` kept becomes a revoked email consent, and the
column goes: consent is now the one record of it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ulak.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consent_changes",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("recipient_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("proof", JSON, nullable=True),
        sa.Column("occurred_at", Time, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_consent_changes_customer_id_customers"
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name="fk_consent_changes_store_id_stores",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_consent_changes"),
    )
    op.create_index(
        "ix_consent_changes_customer", "consent_changes", ["customer_id", "occurred_at"]
    )
    # Plain ALTER TABLE: SQLite's batch mode would copy `customers` into a new table and
    # drop the old one, and that drop cascades.
    with op.batch_alter_table("customers", recreate="never") as batch:
        batch.add_column(sa.Column("consent", JSON, nullable=False, server_default="{}"))

    customers = sa.table(
        "customers",
        sa.column("id", Id),
        sa.column("store_id", Id),
        sa.column("email_unsubscribed_at", Time),
        sa.column("consent", JSON),
    )
    changes = sa.table(
        "consent_changes",
        sa.column("store_id", Id),
        sa.column("customer_id", Id),
        sa.column("channel", sa.String()),
        sa.column("recipient_type", sa.String()),
        sa.column("status", sa.String()),
        sa.column("source", sa.String()),
        sa.column("occurred_at", Time),
        sa.column("recorded_at", Time),
    )
    connection = op.get_bind()
    unsubscribed = connection.execute(
        sa.select(customers.c.id, customers.c.store_id, customers.c.email_unsubscribed_at).where(
            customers.c.email_unsubscribed_at.is_not(None)
        )
    ).all()
    for customer_id, store_id, at in unsubscribed:
        connection.execute(
            changes.insert().values(
                store_id=store_id,
                customer_id=customer_id,
                channel="email",
                recipient_type="individual",
                status="revoked",
                source="unsubscribe_link",
                occurred_at=at,
                recorded_at=at,
            )
        )
        state = {"status": "revoked", "source": "unsubscribe_link", "at": at.isoformat()}
        connection.execute(
            customers.update().where(customers.c.id == customer_id).values(consent={"email": state})
        )
    with op.batch_alter_table("customers", recreate="never") as batch:
        batch.drop_column("email_unsubscribed_at")


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("email_unsubscribed_at", Time, nullable=True))
        batch.drop_column("consent")
    op.drop_index("ix_consent_changes_customer", table_name="consent_changes")
    op.drop_table("consent_changes")
