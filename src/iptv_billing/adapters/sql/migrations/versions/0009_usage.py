"""usage: billable metrics and deduplicated usage events

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BYTEWISE_ID = sa.String(40).with_variant(sa.String(40, collation="C"), "postgresql")
BYTEWISE_EVENT_ID = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
AGGREGATIONS = "aggregation IN ('count', 'sum', 'max', 'unique_count', 'latest')"


def _metrics() -> None:
    op.create_table(
        "billable_metrics",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("aggregation", sa.String(length=20), nullable=False),
        sa.Column("unit", sa.String(length=40), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(AGGREGATIONS, name=op.f("ck_billable_metrics_aggregation")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_billable_metrics_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billable_metrics")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_billable_metrics_tenant_id_code")),
    )


def _events() -> None:
    op.create_table(
        "usage_events",
        sa.Column("tenant_id", BYTEWISE_ID, nullable=False),
        sa.Column("event_id", BYTEWISE_EVENT_ID, nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("metric_code", sa.String(length=64), nullable=False),
        sa.Column("value_scaled", sa.BigInteger(), nullable=False),
        sa.Column("unique_key", sa.String(length=128), nullable=True),
        sa.Column("subscription_id", sa.String(length=40), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("properties", sa.Text(), nullable=True),
        sa.CheckConstraint("value_scaled >= 0", name=op.f("ck_usage_events_value_non_negative")),
        sa.PrimaryKeyConstraint("tenant_id", "event_id", name=op.f("pk_usage_events")),
    )
    op.create_index(
        "ix_usage_events_occurred_at", "usage_events", ["occurred_at"], postgresql_using="brin"
    )
    op.create_index(
        "ix_usage_events_rating",
        "usage_events",
        ["tenant_id", "subscription_id", "metric_code", "occurred_at"],
    )


def upgrade() -> None:
    _metrics()
    _events()


def downgrade() -> None:
    op.drop_index("ix_usage_events_rating", table_name="usage_events")
    op.drop_index("ix_usage_events_occurred_at", table_name="usage_events")
    op.drop_table("usage_events")
    op.drop_table("billable_metrics")
