"""A finalized invoice cannot be changed or deleted, even by SQL written around the services;
its settlement (status, amount paid) still moves."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from operator_harness import Operator
from sqlalchemy.exc import IntegrityError

from iptv_billing.services.records import InvoiceRecord


def _first_invoice(op: Operator) -> InvoiceRecord:
    op.plan("basic", "9.99")
    op.subscribe(op.customer().id, "basic")
    page = op.read(lambda u, c: u.invoices.list(c.tenant_id, 1, None))
    return page.items[0]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE invoices SET total_minor = 1 WHERE id = :id",
        "UPDATE invoices SET customer_id = customer_id || 'x' WHERE id = :id",
        "UPDATE invoices SET number = number + 1 WHERE id = :id",
        "UPDATE invoices SET currency = 'USD' WHERE id = :id",
        "DELETE FROM invoices WHERE id = :id",
        "UPDATE invoice_lines SET amount_minor = 1 WHERE invoice_id = :id",
        "DELETE FROM invoice_lines WHERE invoice_id = :id",
    ],
)
def test_finalized_invoice_cannot_be_altered(operator: Operator, statement: str) -> None:
    invoice = _first_invoice(operator)
    assert invoice.status == "finalized"
    with operator.database.engine.connect() as connection, pytest.raises(IntegrityError):
        connection.execute(sa.text(statement), {"id": invoice.id})
    again = operator.read(lambda u, c: u.invoices.get(c.tenant_id, invoice.id))
    assert again is not None
    assert (again.total_minor, again.number, len(again.lines)) == (
        invoice.total_minor,
        invoice.number,
        1,
    )


def test_settlement_still_moves(operator: Operator) -> None:
    invoice = _first_invoice(operator)
    with operator.database.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE invoices SET amount_paid_minor = 100 WHERE id = :id"),
            {"id": invoice.id},
        )
    again = operator.read(lambda u, c: u.invoices.get(c.tenant_id, invoice.id))
    assert again is not None
    assert again.amount_paid_minor == 100
