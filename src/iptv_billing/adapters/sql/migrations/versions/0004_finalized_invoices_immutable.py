"""finalized invoices are immutable in the database, not only in code

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 14:00:00

Once an invoice leaves draft, what it says (customer, currency, number, dates it was issued and
due, amounts, lines) never changes; only its settlement (status, amount paid, paid/voided
times) moves. Lines are never updated, and are deleted only with a draft.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FROZEN = (
    "customer_id",
    "subscription_id",
    "terms_hash",
    "billing_reason",
    "cycle_start",
    "series",
    "number",
    "currency",
    "subtotal_minor",
    "total_minor",
    "period_start",
    "period_end",
    "created_at",
    "finalized_at",
    "due_at",
)
CHANGED = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FROZEN)
SQLITE_CHANGED = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in FROZEN)
MESSAGE = "a finalized invoice is immutable"

PG_FUNCTIONS = f"""
CREATE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION '{MESSAGE}: delete of %', OLD.id USING ERRCODE = '23000';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status <> 'draft' AND ({CHANGED}) THEN
        RAISE EXCEPTION '{MESSAGE}: %', OLD.id USING ERRCODE = '23000';
    END IF;
    RETURN NEW;
END $$;
CREATE FUNCTION invoice_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR EXISTS (
        SELECT 1 FROM invoices WHERE id = OLD.invoice_id AND status <> 'draft'
    ) THEN
        RAISE EXCEPTION 'invoice lines are immutable: %', TG_OP USING ERRCODE = '23000';
    END IF;
    RETURN OLD;
END $$;
"""


def _postgresql_upgrade() -> None:
    op.execute(PG_FUNCTIONS)
    op.execute(
        "CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON invoices "
        "FOR EACH ROW EXECUTE FUNCTION invoices_guard()"
    )
    op.execute(
        "CREATE TRIGGER invoice_lines_guard BEFORE UPDATE OR DELETE ON invoice_lines "
        "FOR EACH ROW EXECUTE FUNCTION invoice_lines_guard()"
    )


def _sqlite_upgrade() -> None:
    op.execute(
        "CREATE TRIGGER invoices_frozen BEFORE UPDATE ON invoices "
        f"WHEN OLD.status <> 'draft' AND ({SQLITE_CHANGED}) "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    )
    op.execute(
        "CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices WHEN OLD.status <> 'draft' "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    )
    op.execute(
        "CREATE TRIGGER invoice_lines_no_update BEFORE UPDATE ON invoice_lines "
        "BEGIN SELECT RAISE(ABORT, 'invoice lines are immutable'); END"
    )
    op.execute(
        "CREATE TRIGGER invoice_lines_no_delete BEFORE DELETE ON invoice_lines "
        "WHEN (SELECT status FROM invoices WHERE id = OLD.invoice_id) <> 'draft' "
        "BEGIN SELECT RAISE(ABORT, 'invoice lines are immutable'); END"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER invoice_lines_guard ON invoice_lines")
        op.execute("DROP TRIGGER invoices_guard ON invoices")
        op.execute("DROP FUNCTION invoice_lines_guard()")
        op.execute("DROP FUNCTION invoices_guard()")
        return
    for trigger in (
        "invoices_frozen",
        "invoices_no_delete",
        "invoice_lines_no_update",
        "invoice_lines_no_delete",
    ):
        op.execute(f"DROP TRIGGER {trigger}")
