"""wallet automation: low-balance notices and auto top-up settings; customer-level webhooks

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 10:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

WHOLE = (
    "(auto_top_up_below_minor IS NULL) = (auto_top_up_amount_minor IS NULL) AND "
    "(auto_top_up_below_minor IS NULL) = (auto_top_up_payment_method IS NULL)"
)
POSITIVE = (
    "(low_balance_threshold_minor IS NULL OR low_balance_threshold_minor > 0) AND "
    "(auto_top_up_below_minor IS NULL OR auto_top_up_below_minor > 0) AND "
    "(auto_top_up_amount_minor IS NULL OR auto_top_up_amount_minor > 0)"
)
LOW_BALANCE_WHERE = "low_balance_threshold_minor IS NOT NULL"
AUTO_TOP_UP_WHERE = "auto_top_up_below_minor IS NOT NULL"


def _wallets() -> None:
    with op.batch_alter_table("wallets") as batch:
        batch.add_column(sa.Column("low_balance_threshold_minor", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("auto_top_up_below_minor", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("auto_top_up_amount_minor", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("auto_top_up_payment_method", sa.String(length=100), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "low_balance_notified", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch.add_column(
            sa.Column("auto_top_up_attempt", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("auto_top_up_payment_id", sa.String(length=40), nullable=True))
        batch.add_column(
            sa.Column("auto_top_up_retry_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.create_check_constraint("auto_top_up_whole", WHOLE)
        batch.create_check_constraint("automation_positive", POSITIVE)
        batch.create_check_constraint("auto_top_up_attempt", "auto_top_up_attempt >= 0")
    op.create_index(
        "ix_wallets_low_balance",
        "wallets",
        ["tenant_id", "low_balance_notified"],
        sqlite_where=sa.text(LOW_BALANCE_WHERE),
        postgresql_where=sa.text(LOW_BALANCE_WHERE),
    )
    op.create_index(
        "ix_wallets_auto_top_up",
        "wallets",
        ["tenant_id"],
        sqlite_where=sa.text(AUTO_TOP_UP_WHERE),
        postgresql_where=sa.text(AUTO_TOP_UP_WHERE),
    )


def upgrade() -> None:
    _wallets()
    # Wallet notices are webhook events about a customer, not a subscription.
    with op.batch_alter_table("provisioning_deliveries") as batch:
        batch.alter_column("subscription_id", existing_type=sa.String(length=40), nullable=True)


def downgrade() -> None:
    # Customer-level deliveries cannot survive the NOT NULL: they go with their attempt log.
    op.execute(
        "DELETE FROM provisioning_attempts WHERE delivery_id IN "
        "(SELECT id FROM provisioning_deliveries WHERE subscription_id IS NULL)"
    )
    op.execute("DELETE FROM provisioning_deliveries WHERE subscription_id IS NULL")
    with op.batch_alter_table("provisioning_deliveries") as batch:
        batch.alter_column("subscription_id", existing_type=sa.String(length=40), nullable=False)
    op.drop_index("ix_wallets_auto_top_up", table_name="wallets")
    op.drop_index("ix_wallets_low_balance", table_name="wallets")
    with op.batch_alter_table("wallets") as batch:
        batch.drop_constraint(op.f("ck_wallets_auto_top_up_attempt"), type_="check")
        batch.drop_constraint(op.f("ck_wallets_automation_positive"), type_="check")
        batch.drop_constraint(op.f("ck_wallets_auto_top_up_whole"), type_="check")
        for column in (
            "auto_top_up_retry_at",
            "auto_top_up_payment_id",
            "auto_top_up_attempt",
            "low_balance_notified",
            "auto_top_up_payment_method",
            "auto_top_up_amount_minor",
            "auto_top_up_below_minor",
            "low_balance_threshold_minor",
        ):
            batch.drop_column(column)
