"""pay-per-view: events, VOD rentals and purchases

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MOMENT = sa.DateTime(timezone=True)


def _events() -> None:
    op.create_table(
        "ppv_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel_id", sa.String(length=40), nullable=False),
        sa.Column("starts_at", MOMENT, nullable=False),
        sa.Column("ends_at", MOMENT, nullable=False),
        sa.Column("sale_starts_at", MOMENT, nullable=True),
        sa.Column("sale_ends_at", MOMENT, nullable=False),
        sa.Column("replay_hours", sa.Integer(), nullable=False),
        sa.Column("blackout_countries", sa.String(length=1000), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("sold", sa.Integer(), nullable=False),
        sa.Column("discounts", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.CheckConstraint(
            "status IN ('scheduled', 'cancelled')", name=op.f("ck_ppv_events_status")
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_ppv_events_window")),
        sa.CheckConstraint("replay_hours >= 0", name=op.f("ck_ppv_events_replay")),
        sa.CheckConstraint("sold >= 0", name=op.f("ck_ppv_events_sold_non_negative")),
        sa.CheckConstraint(
            "capacity IS NULL OR (capacity >= 1 AND sold <= capacity)",
            name=op.f("ck_ppv_events_capacity"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_ppv_events_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_ppv_events_channel_id_channels")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ppv_events")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_ppv_events_tenant_id_code")),
    )
    op.create_index("ix_ppv_events_tenant_status", "ppv_events", ["tenant_id", "status"])


def _prices() -> None:
    op.create_table(
        "ppv_prices",
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_ppv_prices_non_negative")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["ppv_events.id"], name=op.f("fk_ppv_prices_event_id_ppv_events")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_ppv_prices_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("event_id", "currency", name=op.f("pk_ppv_prices")),
    )


def _purchases() -> None:
    op.create_table(
        "ppv_purchases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("refunded_at", MOMENT, nullable=True),
        sa.CheckConstraint("status IN ('paid', 'refunded')", name=op.f("ck_ppv_purchases_status")),
        sa.CheckConstraint(
            "method IN ('wallet', 'card', 'manual', 'bank_transfer')",
            name=op.f("ck_ppv_purchases_method"),
        ),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_ppv_purchases_non_negative")),
        sa.CheckConstraint(
            "(status = 'refunded') = (refunded_at IS NOT NULL)",
            name=op.f("ck_ppv_purchases_refunded"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_ppv_purchases_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["ppv_events.id"], name=op.f("fk_ppv_purchases_event_id_ppv_events")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_ppv_purchases_subscription_id_subscriptions"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_ppv_purchases_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ppv_purchases")),
        sa.UniqueConstraint(
            "event_id", "subscription_id", name=op.f("uq_ppv_purchases_event_id_subscription_id")
        ),
    )
    op.create_index(
        "ix_ppv_purchases_subscription", "ppv_purchases", ["tenant_id", "subscription_id"]
    )
    op.create_index("ix_ppv_purchases_event_status", "ppv_purchases", ["event_id", "status"])


def upgrade() -> None:
    _events()
    _prices()
    _purchases()


def downgrade() -> None:
    op.drop_index("ix_ppv_purchases_event_status", table_name="ppv_purchases")
    op.drop_index("ix_ppv_purchases_subscription", table_name="ppv_purchases")
    op.drop_table("ppv_purchases")
    op.drop_table("ppv_prices")
    op.drop_index("ix_ppv_events_tenant_status", table_name="ppv_events")
    op.drop_table("ppv_events")
