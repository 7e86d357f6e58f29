"""surveys: a store's survey settings and the answers to its satisfaction surveys

`survey_settings` holds a store's scale (CSAT or NPS), the delay after delivery and
whether detractors get a make-good code; `survey_answers` one answer per order (a second
answer replaces the first).

Revision ID: 0015_surveys
Revises: 0015_returns
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ulak.db

revision = "0015_surveys"
down_revision = "0015_returns"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "survey_settings",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("delay_days", sa.Integer(), nullable=False),
        sa.Column("make_good", sa.Boolean(), nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_survey_settings_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", name=op.f("pk_survey_settings")),
    )
    op.create_table(
        "survey_answers",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("answered_at", Time, nullable=False),
        sa.Column("replaced", sa.Integer(), nullable=False),
        sa.Column("alerts", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_survey_answers_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_survey_answers_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answers")),
        sa.UniqueConstraint(
            "store_id", "order_id", name=op.f("uq_survey_answers_store_id_order_id")
        ),
    )
    op.create_index("ix_survey_answers_customer", "survey_answers", ["customer_id"])
    op.create_index(
        "ix_survey_answers_store_answered", "survey_answers", ["store_id", "answered_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_survey_answers_store_answered", table_name="survey_answers")
    op.drop_index("ix_survey_answers_customer", table_name="survey_answers")
    op.drop_table("survey_answers")
    op.drop_table("survey_settings")
