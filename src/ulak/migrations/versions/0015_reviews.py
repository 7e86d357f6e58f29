"""reviews: verified buyers' reviews with their photos, and a store's review settings

`reviews` one per store, order and product (a second submission replaces the first);
`review_photos` the re-encoded photos (BLOBs, served by an unguessable token);
`review_settings` moderation on/off and the delay before asking, per store and tag.

Revision ID: 0015_reviews
Revises: 0015_tracking
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ulak.db

revision = "0015_reviews"
down_revision = "0015_tracking"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Time = ulak.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "review_settings",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("moderate", sa.Boolean(), nullable=False),
        sa.Column("delay_days", sa.Integer(), nullable=False),
        sa.Column("tag_delays", JSON, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_review_settings_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", name=op.f("pk_review_settings")),
    )
    op.create_table(
        "reviews",
        sa.Column("id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("customer_id", Id, nullable=True),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("product_id", sa.String(length=200), nullable=False),
        sa.Column("product_title", sa.String(length=500), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("quote_ok", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("replied_at", Time, nullable=True),
        sa.Column("submitted_at", Time, nullable=False),
        sa.Column("published_at", Time, nullable=True),
        sa.Column("event_id", Id, nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_reviews_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_reviews_store_id_stores"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint(
            "store_id",
            "order_id",
            "product_id",
            name=op.f("uq_reviews_store_id_order_id_product_id"),
        ),
    )
    op.create_index(
        "ix_reviews_published",
        "reviews",
        ["store_id", "status", "product_id", "published_at"],
        unique=False,
    )
    op.create_index("ix_reviews_customer", "reviews", ["customer_id"], unique=False)
    op.create_table(
        "review_photos",
        sa.Column("id", Id, nullable=False),
        sa.Column("review_id", Id, nullable=False),
        sa.Column("store_id", Id, nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["reviews.id"],
            name=op.f("fk_review_photos_review_id_reviews"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_review_photos_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_photos")),
        sa.UniqueConstraint("token", name=op.f("uq_review_photos_token")),
    )
    op.create_index(
        "ix_review_photos_review", "review_photos", ["review_id", "position"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_review_photos_review", table_name="review_photos")
    op.drop_table("review_photos")
    op.drop_index("ix_reviews_customer", table_name="reviews")
    op.drop_index("ix_reviews_published", table_name="reviews")
    op.drop_table("reviews")
    op.drop_table("review_settings")
