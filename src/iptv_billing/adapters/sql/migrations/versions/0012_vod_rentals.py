"""vod rentals: a VOD catalog and rentals of its items for a number of hours

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22 10:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

MOMENT = sa.DateTime(timezone=True)


def _items() -> None:
    op.create_table(
        "vod_items",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("source_url", sa.String(length=1000), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("poster_url", sa.String(length=1000), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("packages", sa.String(length=2000), nullable=False),
        sa.Column("rental_hours", sa.Integer(), nullable=True),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.CheckConstraint(
            "rental_hours IS NULL OR (rental_hours >= 1 AND rental_hours <= 720)",
            name=op.f("ck_vod_items_rental_hours"),
        ),
        sa.CheckConstraint("stream_id >= 1", name=op.f("ck_vod_items_stream_id_positive")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_vod_items_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vod_items")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_vod_items_tenant_id_code")),
    )
    op.create_index("uq_vod_items_stream_id", "vod_items", ["tenant_id", "stream_id"], unique=True)


def _prices() -> None:
    op.create_table(
        "vod_prices",
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_vod_prices_non_negative")),
        sa.ForeignKeyConstraint(
            ["item_id"], ["vod_items.id"], name=op.f("fk_vod_prices_item_id_vod_items")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_vod_prices_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("item_id", "currency", name=op.f("pk_vod_prices")),
    )


def _rentals() -> None:
    op.create_table(
        "vod_rentals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("starts_at", MOMENT, nullable=False),
        sa.Column("ends_at", MOMENT, nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("refunded_at", MOMENT, nullable=True),
        sa.CheckConstraint("status IN ('paid', 'refunded')", name=op.f("ck_vod_rentals_status")),
        sa.CheckConstraint(
            "method IN ('wallet', 'card', 'manual', 'bank_transfer')",
            name=op.f("ck_vod_rentals_method"),
        ),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_vod_rentals_non_negative")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_vod_rentals_window")),
        sa.CheckConstraint(
            "(status = 'refunded') = (refunded_at IS NOT NULL)",
            name=op.f("ck_vod_rentals_refunded"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_vod_rentals_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["vod_items.id"], name=op.f("fk_vod_rentals_item_id_vod_items")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_vod_rentals_subscription_id_subscriptions"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_vod_rentals_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vod_rentals")),
    )
    op.create_index(
        "ix_vod_rentals_subscription",
        "vod_rentals",
        ["tenant_id", "subscription_id", "ends_at"],
    )
    op.create_index(
        "ix_vod_rentals_item_subscription", "vod_rentals", ["item_id", "subscription_id"]
    )


def upgrade() -> None:
    _items()
    _prices()
    _rentals()


def downgrade() -> None:
    op.drop_index("ix_vod_rentals_item_subscription", table_name="vod_rentals")
    op.drop_index("ix_vod_rentals_subscription", table_name="vod_rentals")
    op.drop_table("vod_rentals")
    op.drop_table("vod_prices")
    op.drop_index("uq_vod_items_stream_id", table_name="vod_items")
    op.drop_table("vod_items")
