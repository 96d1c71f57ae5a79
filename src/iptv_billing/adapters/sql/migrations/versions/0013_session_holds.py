"""session holds: a wallet hold may reserve for a subscription's metered period

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BOTH_OR_NEITHER = "(subscription_id IS NULL) = (period_start IS NULL)"


def upgrade() -> None:
    with op.batch_alter_table("wallet_holds") as batch:
        batch.add_column(sa.Column("subscription_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("period_start", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            "fk_wallet_holds_subscription_id_subscriptions",
            "subscriptions",
            ["subscription_id"],
            ["id"],
        )
        batch.create_check_constraint("session_period", BOTH_OR_NEITHER)
    op.create_index(
        "ix_wallet_holds_subscription",
        "wallet_holds",
        ["tenant_id", "subscription_id", "status"],
        postgresql_where=sa.text("subscription_id IS NOT NULL"),
        sqlite_where=sa.text("subscription_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_wallet_holds_subscription", table_name="wallet_holds")
    with op.batch_alter_table("wallet_holds") as batch:
        batch.drop_constraint("session_period", type_="check")
        batch.drop_constraint("fk_wallet_holds_subscription_id_subscriptions", type_="foreignkey")
        batch.drop_column("period_start")
        batch.drop_column("subscription_id")
