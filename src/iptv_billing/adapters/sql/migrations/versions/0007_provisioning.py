"""provisioning: Xtream panels and webhook receivers that follow the log, with a delivery log

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _targets() -> None:
    op.create_table(
        "provisioning_targets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("bouquet_map", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('xtream', 'webhook')", name=op.f("ck_provisioning_targets_kind")
        ),
        sa.CheckConstraint("cursor >= 0", name=op.f("ck_provisioning_targets_cursor")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_provisioning_targets_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_targets")),
    )
    op.create_index("ix_provisioning_targets_tenant", "provisioning_targets", ["tenant_id", "id"])


def _deliveries() -> None:
    op.create_table(
        "provisioning_deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.String(length=40), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'dead', 'rejected')",
            name=op.f("ck_provisioning_deliveries_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_provisioning_deliveries_attempts")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_provisioning_deliveries_tenant_id_tenants"),
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["provisioning_targets.id"],
            name=op.f("fk_provisioning_deliveries_target_id_provisioning_targets"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_provisioning_deliveries_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_deliveries")),
    )
    op.create_index(
        "ix_provisioning_deliveries_due",
        "provisioning_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        "ix_provisioning_deliveries_target",
        "provisioning_deliveries",
        ["target_id", "status", "log_index"],
    )
    op.create_index(
        "ix_provisioning_deliveries_subscription",
        "provisioning_deliveries",
        ["tenant_id", "subscription_id"],
    )


def _attempts() -> None:
    op.create_table(
        "provisioning_attempts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("response_excerpt", sa.Text(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('delivered', 'retry', 'rejected')",
            name=op.f("ck_provisioning_attempts_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["provisioning_deliveries.id"],
            name=op.f("fk_provisioning_attempts_delivery_id_provisioning_deliveries"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_provisioning_attempts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_attempts")),
    )
    op.create_index(
        "ix_provisioning_attempts_delivery",
        "provisioning_attempts",
        ["delivery_id", "attempted_at"],
    )


def _panel_lines() -> None:
    op.create_table(
        "provisioning_panel_lines",
        sa.Column("target_id", sa.String(length=40), nullable=False),
        sa.Column("credential_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("remote_username", sa.String(length=64), nullable=False),
        sa.Column("sealed_password", sa.Text(), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["provisioning_targets.id"],
            name=op.f("fk_provisioning_panel_lines_target_id_provisioning_targets"),
        ),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["access_credentials.id"],
            name=op.f("fk_provisioning_panel_lines_credential_id_access_credentials"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_provisioning_panel_lines_tenant_id_tenants"),
        ),
        sa.PrimaryKeyConstraint(
            "target_id", "credential_id", name=op.f("pk_provisioning_panel_lines")
        ),
    )


def upgrade() -> None:
    _targets()
    _deliveries()
    _attempts()
    _panel_lines()


def downgrade() -> None:
    op.drop_table("provisioning_panel_lines")
    op.drop_index("ix_provisioning_attempts_delivery", table_name="provisioning_attempts")
    op.drop_table("provisioning_attempts")
    for index in (
        "ix_provisioning_deliveries_subscription",
        "ix_provisioning_deliveries_target",
        "ix_provisioning_deliveries_due",
    ):
        op.drop_index(index, table_name="provisioning_deliveries")
    op.drop_table("provisioning_deliveries")
    op.drop_index("ix_provisioning_targets_tenant", table_name="provisioning_targets")
    op.drop_table("provisioning_targets")
