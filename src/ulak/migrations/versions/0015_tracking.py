"""tracking: each carrier status of a parcel, with its time and place

`shipment_checkpoints` keeps every `shipment.updated` of a shipment (the shipment row
keeps only the latest), for the order tracking page's timeline.

Revision ID: 0015_tracking
Revises: 0015_surveys
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ulak.db

revision = "0015_tracking"
down_revision = "0015_surveys"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shipment_checkpoints",
        sa.Column("id", Id, nullable=False),
        sa.Column("shipment_id", Id, nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("location", sa.String(length=300), nullable=True),
        sa.Column("message", sa.String(length=1000), nullable=True),
        sa.Column("occurred_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.id"],
            name=op.f("fk_shipment_checkpoints_shipment_id_shipments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment_checkpoints")),
    )
    op.create_index(
        "ix_shipment_checkpoints_shipment",
        "shipment_checkpoints",
        ["shipment_id", "occurred_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_shipment_checkpoints_shipment", table_name="shipment_checkpoints")
    op.drop_table("shipment_checkpoints")
