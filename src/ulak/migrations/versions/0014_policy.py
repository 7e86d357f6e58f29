"""policy: the sending policy's store settings, journey priority and held messages

Stores get the merchant relaxation, sending hours per channel and frequency caps; journeys
their priority and what their messages do over a cap; messages why and until when they
wait, and when the policy let a commercial one go (what the caps count, through
`ix_messages_released`).

Revision ID: 0014_policy
Revises: 0014_iys
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ulak.db

revision = "0014_policy"
down_revision = "0014_iys"
branch_labels = None
depends_on = None

Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    # Plain ALTER TABLE: SQLite's batch mode would copy each table into a new one and drop
    # the old one, and that drop cascades.
    with op.batch_alter_table("stores", recreate="never") as batch:
        batch.add_column(
            sa.Column("merchant_opt_out", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("sending_hours_email", sa.String(length=11), nullable=True))
        batch.add_column(
            sa.Column(
                "sending_hours_sms",
                sa.String(length=11),
                nullable=True,
                server_default="09:00-20:00",
            )
        )
        for name, default in (
            ("cap_email_day", "1"),
            ("cap_email_week", "3"),
            ("cap_sms_day", "0"),
            ("cap_sms_week", "1"),
        ):
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default=default))
    with op.batch_alter_table("journeys", recreate="never") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="50"))
        batch.add_column(
            sa.Column("over_cap", sa.String(length=8), nullable=False, server_default="postpone")
        )
    with op.batch_alter_table("messages", recreate="never") as batch:
        batch.add_column(sa.Column("held_reason", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("held_until", Time, nullable=True))
        batch.add_column(sa.Column("released_at", Time, nullable=True))
    op.create_index(
        "ix_messages_released",
        "messages",
        ["customer_id", "released_at"],
        postgresql_where=sa.text("released_at IS NOT NULL"),
        sqlite_where=sa.text("released_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_released", table_name="messages")
    with op.batch_alter_table("messages", recreate="never") as batch:
        for name in ("released_at", "held_until", "held_reason"):
            batch.drop_column(name)
    with op.batch_alter_table("journeys", recreate="never") as batch:
        batch.drop_column("over_cap")
        batch.drop_column("priority")
    with op.batch_alter_table("stores", recreate="never") as batch:
        for name in (
            "cap_sms_week",
            "cap_sms_day",
            "cap_email_week",
            "cap_email_day",
            "sending_hours_sms",
            "sending_hours_email",
            "merchant_opt_out",
        ):
            batch.drop_column(name)
