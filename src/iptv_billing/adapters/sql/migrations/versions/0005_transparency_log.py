"""the transparency log: entries, tiles, checkpoints, cosignatures, anchors; all append-only

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 05:07:48

Only ``log_heads`` (the per-tenant sequencer) is ever updated. Every other log table refuses
UPDATE and DELETE (and TRUNCATE on PostgreSQL): corrections are new entries.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APPEND_ONLY = ("log_entries", "log_tiles", "log_checkpoints", "log_cosignatures", "log_anchors")
MESSAGE = "the transparency log is append-only"
PG_REFUSE_CHANGE = f"""
CREATE FUNCTION log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}: % on %', TG_OP, TG_TABLE_NAME USING ERRCODE = '23000';
END $$
"""


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants")
    )


def _create_tables() -> None:
    op.create_table(
        "log_heads",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("log_heads"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_log_heads")),
    )
    op.create_table(
        "log_entries",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("about_id", sa.String(length=40), nullable=True),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("commitment", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_log_entries_index")),
        sa.PrimaryKeyConstraint("tenant_id", "idx", name=op.f("pk_log_entries")),
    )
    op.create_index("ix_log_entries_about", "log_entries", ["tenant_id", "about_id"])
    op.create_table(
        "log_tiles",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "level", "idx", name=op.f("pk_log_tiles")),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("log_checkpoints"),
        sa.PrimaryKeyConstraint("tenant_id", "size", name=op.f("pk_log_checkpoints")),
    )
    op.create_table(
        "log_cosignatures",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=200), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("cosigned_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("log_cosignatures"),
        sa.PrimaryKeyConstraint("tenant_id", "size", "witness", name=op.f("pk_log_cosignatures")),
    )
    op.create_table(
        "log_anchors",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract", sa.String(length=42), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("anchored_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("log_anchors"),
        sa.PrimaryKeyConstraint("tenant_id", "size", name=op.f("pk_log_anchors")),
    )


def _pg_triggers() -> None:
    op.execute(PG_REFUSE_CHANGE)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION log_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION log_refuse_change()"
        )


def _sqlite_triggers() -> None:
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )


def upgrade() -> None:
    _create_tables()
    if op.get_bind().dialect.name == "postgresql":
        _pg_triggers()
    else:
        _sqlite_triggers()


def downgrade() -> None:
    for table in (*reversed(APPEND_ONLY), "log_heads"):
        op.drop_table(table)  # drops its triggers too
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS log_refuse_change()")
