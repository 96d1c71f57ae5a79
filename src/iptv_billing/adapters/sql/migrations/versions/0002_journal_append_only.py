"""journal is append-only; on PostgreSQL every entry balances at commit

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("journal_entries", "journal_postings")
MESSAGE = "journal is append-only"

# 23000 integrity_constraint_violation, 23514 check_violation: drivers report both as
# IntegrityError, as SQLite does for RAISE(ABORT) in a trigger.
PG_REFUSE_CHANGE = f"""
CREATE FUNCTION journal_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}: % on %', TG_OP, TG_TABLE_NAME USING ERRCODE = '23000';
END $$
"""
PG_CHECK_BALANCE = """
CREATE FUNCTION journal_check_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad RECORD;
BEGIN
    SELECT currency, SUM(amount_minor) AS total INTO bad
    FROM journal_postings WHERE entry_id = NEW.entry_id
    GROUP BY currency HAVING SUM(amount_minor) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: %',
            NEW.entry_id, bad.currency, bad.total USING ERRCODE = '23514';
    END IF;
    RETURN NULL;
END $$
"""


def _pg_upgrade() -> None:
    op.execute(PG_REFUSE_CHANGE)
    op.execute(PG_CHECK_BALANCE)
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION journal_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse_change()"
        )
    # Deferred to commit: an entry's postings arrive in several rows, balanced only together.
    op.execute(
        "CREATE CONSTRAINT TRIGGER journal_postings_balanced AFTER INSERT ON journal_postings "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_check_balance()"
    )


def _pg_downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS journal_postings_balanced ON journal_postings")
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute("DROP FUNCTION IF EXISTS journal_check_balance()")
    op.execute("DROP FUNCTION IF EXISTS journal_refuse_change()")


def _sqlite_upgrade() -> None:
    for table in TABLES:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )


def _sqlite_downgrade() -> None:
    for table in TABLES:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _pg_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _pg_downgrade()
    else:
        _sqlite_downgrade()
