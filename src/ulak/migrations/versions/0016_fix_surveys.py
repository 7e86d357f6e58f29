"""fix-surveys: the scale each order's survey was asked on

`survey_requests` keeps, per order, the scale (CSAT or NPS) its `survey.due` asked on, so
the survey page takes the email's scale even after the store switched.

Revision ID: 0016_fix_surveys
Revises: 0015_reviews
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ulak.db

revision = "0016_fix_surveys"
down_revision = "0015_reviews"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "survey_requests",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("asked_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_survey_requests_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", "order_id", name=op.f("pk_survey_requests")),
    )


def downgrade() -> None:
    op.drop_table("survey_requests")
