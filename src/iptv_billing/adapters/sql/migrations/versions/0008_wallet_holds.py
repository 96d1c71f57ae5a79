"""wallet holds: two-phase reservations on prepaid wallets (pending beside the balance)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

STATUSES = "status IN ('pending', 'posted', 'voided', 'expired')"


def _wallet_pending() -> None:
    with op.batch_alter_table("wallets") as batch:
        batch.add_column(
            sa.Column("pending_minor", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.create_check_constraint(
            "pending_covered", "pending_minor >= 0 AND pending_minor <= balance_minor"
        )


def _holds() -> None:
    op.create_table(
        "wallet_holds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("wallet_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("posted_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_wallet_holds_positive")),
        sa.CheckConstraint(
            "posted_minor >= 0 AND posted_minor <= amount_minor",
            name=op.f("ck_wallet_holds_posted_within"),
        ),
        sa.CheckConstraint(STATUSES, name=op.f("ck_wallet_holds_status")),
        sa.CheckConstraint(
            "(status = 'pending') = (resolved_at IS NULL)", name=op.f("ck_wallet_holds_resolved")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_wallet_holds_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_wallet_holds_wallet_id_wallets")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_wallet_holds_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_holds")),
    )
    op.create_index("ix_wallet_holds_due", "wallet_holds", ["status", "expires_at"])
    op.create_index("ix_wallet_holds_customer", "wallet_holds", ["tenant_id", "customer_id", "id"])


def upgrade() -> None:
    _wallet_pending()
    _holds()


def downgrade() -> None:
    op.drop_index("ix_wallet_holds_customer", table_name="wallet_holds")
    op.drop_index("ix_wallet_holds_due", table_name="wallet_holds")
    op.drop_table("wallet_holds")
    with op.batch_alter_table("wallets") as batch:
        batch.drop_constraint("pending_covered", type_="check")
        batch.drop_column("pending_minor")
