"""The books check passes on books the services wrote, and names each kind of tampering:
an altered wallet balance, an altered payment amount on an invoice, a posting slipped in
around the balance trigger, a deleted invoice number."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa
from operator_harness import Operator

from iptv_billing.services.audit import check_books


@pytest.fixture
def operator(operator: Operator) -> Operator:
    """The shared operator, with a month of billing for three customers."""
    op = operator
    op.plan("basic", "9.99")
    for method in ("charge_wallet", "send_invoice", "send_invoice"):
        customer = op.customer(method, top_up="50.00" if method == "charge_wallet" else None)
        op.subscribe(customer.id, "basic")
    op.advance(40)
    op.bill()
    return op


def _checks(op: Operator) -> set[tuple[str, str | None]]:
    report = op.read(lambda u, c: check_books(u, c.tenant_id))
    return {(d.check, d.currency) for d in report.discrepancies}


def _tamper(op: Operator, statement: str, **params: object) -> None:
    with op.database.engine.begin() as connection:
        if op.database.engine.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            connection.execute(sa.text("PRAGMA foreign_keys = OFF"))
        connection.execute(sa.text(statement), params)


def test_books_written_by_the_services_are_consistent(operator: Operator) -> None:
    assert _checks(operator) == set()


def test_a_changed_wallet_balance_is_found(operator: Operator) -> None:
    _tamper(operator, "UPDATE wallets SET balance_minor = balance_minor + 100")
    assert _checks(operator) == {("wallet_mismatch", "EUR")}


def test_a_changed_invoice_settlement_is_found(operator: Operator) -> None:
    _tamper(
        operator,
        "UPDATE invoices SET amount_paid_minor = 1 WHERE id = "
        "(SELECT id FROM invoices WHERE status = 'finalized' ORDER BY id LIMIT 1)",
    )
    assert _checks(operator) == {("receivable_mismatch", "EUR")}


def test_an_unbalanced_posting_is_found(operator: Operator) -> None:
    _tamper(
        operator,
        "INSERT INTO journal_postings (entry_id, tenant_id, account, currency, amount_minor) "
        "SELECT id, tenant_id, 'revenue:subscription', 'EUR', 5 FROM journal_entries LIMIT 1",
    )
    assert ("unbalanced_entry", "EUR") in _checks(operator)


def test_the_cli_exits_non_zero_on_discrepancies(operator: Operator, database_url: str) -> None:
    command = [
        sys.executable,
        "-m",
        "iptv_billing",
        "books",
        "check",
        "--tenant",
        operator.tenant_id,
        "--database-url",
        database_url,
    ]
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    _tamper(operator, "UPDATE wallets SET balance_minor = balance_minor + 1")
    failed = subprocess.run(command, capture_output=True, check=False, text=True)
    assert failed.returncode == 1
    assert "wallet_mismatch" in failed.stdout


def test_a_gap_in_invoice_numbers_is_found(operator: Operator) -> None:
    if operator.database.engine.dialect.name == "sqlite":  # SQLite cannot switch triggers off
        _tamper(operator, "DROP TRIGGER invoices_frozen")
    _tamper(operator, "UPDATE invoices SET number = number + 1000 WHERE number = 2")
    assert _checks(operator) == {("numbering_gap", None)}
