"""check journal balance once per statement instead of once per posting row

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 13:00:00

The row-level deferred trigger re-summed an entry once for each of its postings at commit,
which dominated a billing run's commit on PostgreSQL. Every writer appends an entry's postings
in one statement, so one check per statement over the entries it touched is as strict: an
entry must balance with all its postings, including any added later.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PG_CHECK_STATEMENT = """
CREATE FUNCTION journal_check_balance_statement() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad RECORD;
BEGIN
    SELECT p.entry_id, p.currency, SUM(p.amount_minor) AS total INTO bad
    FROM journal_postings p
    WHERE p.entry_id IN (SELECT DISTINCT entry_id FROM inserted)
    GROUP BY p.entry_id, p.currency HAVING SUM(p.amount_minor) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: %',
            bad.entry_id, bad.currency, bad.total USING ERRCODE = '23514';
    END IF;
    RETURN NULL;
END $$
"""
PG_ROW_TRIGGER = (
    "CREATE CONSTRAINT TRIGGER journal_postings_balanced AFTER INSERT ON journal_postings "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_check_balance()"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER journal_postings_balanced ON journal_postings")
    op.execute(PG_CHECK_STATEMENT)
    op.execute(
        "CREATE TRIGGER journal_postings_balanced AFTER INSERT ON journal_postings "
        "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
        "EXECUTE FUNCTION journal_check_balance_statement()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER journal_postings_balanced ON journal_postings")
    op.execute("DROP FUNCTION journal_check_balance_statement()")
    op.execute(PG_ROW_TRIGGER)
