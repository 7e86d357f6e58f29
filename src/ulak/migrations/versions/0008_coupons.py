"""coupons, and tags on customers

A store's coupon templates (what a coupon is worth, where its codes come from) and its
coupons (a pool code waiting, a code issued to a customer by a journey step, one an order
redeemed). Every store gets the default templates (welcome, cart, birthday, win-back).
Journeys tag customers (`action: tag`): `customers.tags`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ulak.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# As `ulak.coupons.service.DEFAULTS` were when this migration was written: a migration
# does not change when the code does.
DEFAULTS = (
    ("welcome", Decimal(10), 30, "HOSGELDIN", "WELCOME"),
    ("cart", Decimal(10), 7, "SEPET", "CART"),
    ("birthday", Decimal(15), 7, "DOGUMGUNU", "BIRTHDAY"),  # the week of the birthday
    ("win-back", Decimal(15), 30, "OZLEDIK", "COMEBACK"),
)


def upgrade() -> None:
    templates = op.create_table(
        "coupon_templates",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", ulak.db.Money(length=40), nullable=False),
        sa.Column("minimum_order", ulak.db.Money(length=40), nullable=True),
        sa.Column("validity_days", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("created_at", ulak.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ulak.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_coupon_templates_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_templates")),
        sa.UniqueConstraint("store_id", "key", name=op.f("uq_coupon_templates_store_id_key")),
    )
    op.create_table(
        "coupons",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("template_id", Id, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("code_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("amount", ulak.db.Money(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("minimum_order", ulak.db.Money(length=40), nullable=True),
        sa.Column("customer_id", Id, nullable=True),
        sa.Column("enrollment_id", Id, nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("journey_key", sa.String(length=100), nullable=True),
        sa.Column("issued_at", ulak.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", ulak.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("redeemed_at", ulak.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", ulak.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_coupons_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_coupons_enrollment_id_enrollments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_coupons_store_id_stores"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["coupon_templates.id"],
            name=op.f("fk_coupons_template_id_coupon_templates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("enrollment_id", "step", name=op.f("uq_coupons_enrollment_id_step")),
        sa.UniqueConstraint("store_id", "code_key", name=op.f("uq_coupons_store_id_code_key")),
    )
    with op.batch_alter_table("coupons") as batch:
        batch.create_index(
            "ix_coupons_available",
            ["template_id", "id"],
            unique=False,
            postgresql_where=sa.text("status = 'available'"),
            sqlite_where=sa.text("status = 'available'"),
        )
        batch.create_index("ix_coupons_customer", ["customer_id"], unique=False)
    # Plain ALTER TABLE ADD COLUMN: a copied and dropped `customers` would take every row
    # that cascades from a customer with it (SQLite runs with foreign keys on).
    with op.batch_alter_table("customers", recreate="never") as batch:
        batch.add_column(
            sa.Column(
                "tags",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                server_default=sa.text("'[]'"),
                nullable=False,
            )
        )
    # The stores there are already get the default templates, as new ones do.
    now = datetime.now(UTC)
    stores = op.get_bind().execute(sa.text("SELECT id, locale FROM stores")).all()
    rows = [
        {
            "store_id": store_id,
            "key": key,
            "kind": "percent",
            "amount": amount,
            "minimum_order": None,
            "validity_days": days,
            "source": "generated",
            "prefix": turkish if (locale or "").lower().startswith("tr") else english,
            "created_at": now,
            "updated_at": now,
        }
        for store_id, locale in stores
        for key, amount, days, turkish, english in DEFAULTS
    ]
    if rows:
        op.bulk_insert(templates, rows)


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("tags")
    with op.batch_alter_table("coupons") as batch:
        batch.drop_index("ix_coupons_customer")
        batch.drop_index(
            "ix_coupons_available",
            postgresql_where=sa.text("status = 'available'"),
            sqlite_where=sa.text("status = 'available'"),
        )
    op.drop_table("coupons")
    op.drop_table("coupon_templates")
