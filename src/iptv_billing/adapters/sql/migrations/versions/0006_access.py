"""access: credentials (lines, tokens, set-top boxes), channel playback fields, programme guide

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 07:40:00

Existing channels get stream ids in code order, per tenant, so Xtream apps see stable numbers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _channel_columns() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.add_column(sa.Column("stream_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("category", sa.String(length=100), nullable=False, server_default="General")
        )
        batch.add_column(sa.Column("epg_id", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("source_url", sa.String(length=1000), nullable=True))
        batch.add_column(
            sa.Column("catchup_days", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE channels SET stream_id = (SELECT COUNT(*) FROM channels AS c "
        "WHERE c.tenant_id = channels.tenant_id AND c.code <= channels.code)"
    )
    op.create_index("uq_channels_stream_id", "channels", ["tenant_id", "stream_id"], unique=True)


def _credentials() -> None:
    op.create_table(
        "access_credentials",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("lookup", sa.String(length=64), nullable=False),
        sa.Column("secret_salt", sa.String(length=32), nullable=True),
        sa.Column("secret_digest", sa.String(length=64), nullable=True),
        sa.Column("sealed_secret", sa.Text(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('line', 'token', 'device')", name=op.f("ck_access_credentials_kind")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_access_credentials_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_access_credentials_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_credentials")),
    )
    op.create_index(
        "uq_access_credentials_lookup",
        "access_credentials",
        ["kind", "lookup"],
        unique=True,
        sqlite_where=sa.text("removed_at IS NULL"),
        postgresql_where=sa.text("removed_at IS NULL"),
    )
    op.create_index(
        "ix_access_credentials_subscription",
        "access_credentials",
        ["tenant_id", "subscription_id"],
    )


def _programmes() -> None:
    op.create_table(
        "programmes",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("channel_id", sa.String(length=40), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stop", sa.DateTime(timezone=True), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("lang", sa.String(length=35), nullable=True),
        sa.CheckConstraint("stop > start", name=op.f("ck_programmes_order")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_programmes_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_programmes_channel_id_channels")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "channel_id", "start", name=op.f("pk_programmes")),
    )


def upgrade() -> None:
    _channel_columns()
    _credentials()
    _programmes()


def downgrade() -> None:
    op.drop_table("programmes")
    op.drop_index("ix_access_credentials_subscription", table_name="access_credentials")
    op.drop_index("uq_access_credentials_lookup", table_name="access_credentials")
    op.drop_table("access_credentials")
    op.drop_index("uq_channels_stream_id", table_name="channels")
    with op.batch_alter_table("channels") as batch:
        for column in ("catchup_days", "source_url", "epg_id", "category", "stream_id"):
            batch.drop_column(column)
