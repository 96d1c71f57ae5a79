"""usage rating index: (subscription, time) instead of (tenant, subscription, metric, time)

Every ingested event inserts one entry at a random place of this index, which made it about
half of the database's cost of ingestion. Subscription ids are unique across tenants, and a
period's events of one subscription are few, so tenant and metric are filtered on the rows:
the entry is half as wide and an insert a quarter cheaper (``docs/benchmarks.md``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22 13:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

OLD = ["tenant_id", "subscription_id", "metric_code", "occurred_at"]
NEW = ["subscription_id", "occurred_at"]


def upgrade() -> None:
    op.drop_index("ix_usage_events_rating", table_name="usage_events")
    op.create_index("ix_usage_events_rating", "usage_events", NEW)


def downgrade() -> None:
    op.drop_index("ix_usage_events_rating", table_name="usage_events")
    op.create_index("ix_usage_events_rating", "usage_events", OLD)
