from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import money

from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.invoice import (
    INVOICE_TRANSITIONS,
    InvoiceAction,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    apply_payment,
    format_invoice_number,
    invoice_totals,
    line,
    next_invoice_status,
)
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import Period

S, A = InvoiceStatus, InvoiceAction
LEGAL = {
    (S.DRAFT, A.FINALIZE): S.FINALIZED,
    (S.DRAFT, A.VOID): S.VOID,
    (S.FINALIZED, A.PAY): S.PAID,
    (S.FINALIZED, A.VOID): S.VOID,
    (S.FINALIZED, A.MARK_UNCOLLECTIBLE): S.UNCOLLECTIBLE,
    (S.UNCOLLECTIBLE, A.PAY): S.PAID,
    (S.UNCOLLECTIBLE, A.VOID): S.VOID,
}


@pytest.mark.parametrize("status", list(InvoiceStatus))
@pytest.mark.parametrize("action", list(InvoiceAction))
def test_transition_table(status: InvoiceStatus, action: InvoiceAction) -> None:
    expected = LEGAL.get((status, action))
    if expected is None:
        with pytest.raises(Conflict) as caught:
            next_invoice_status(status, action)
        assert caught.value.code == "invoice.illegal_transition"
    else:
        assert next_invoice_status(status, action) is expected
    assert dict(INVOICE_TRANSITIONS) == LEGAL


def test_paid_and_void_are_terminal() -> None:
    for status in (S.PAID, S.VOID):
        assert not any(s is status for s, _ in INVOICE_TRANSITIONS)


@settings(max_examples=100, deadline=None)
@given(money("KWD"), st.integers(min_value=1, max_value=1000))
def test_line_amount_is_unit_times_quantity(unit: Money, quantity: int) -> None:
    item = line(LineKind.ADDON, "Extra screen", unit, quantity)
    assert item.amount.minor == unit.minor * quantity
    assert item.amount.currency == unit.currency


def test_inconsistent_or_bad_lines_are_refused() -> None:
    eur = Money.of("2", "EUR")
    with pytest.raises(InvalidInput):
        InvoiceLine(LineKind.ADDON, "x", 2, eur, eur)
    with pytest.raises(InvalidInput):
        line(LineKind.ADDON, "x", eur, 0)
    with pytest.raises(InvalidInput):
        line(LineKind.ADDON, "", eur)
    with pytest.raises(InvalidInput):
        line("addon", "x", eur)  # type: ignore[arg-type]


def test_totals() -> None:
    period = Period(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
    lines = [
        line(LineKind.SUBSCRIPTION, "Basic", Money.of("9.99", "EUR"), period=period),
        line(LineKind.ADDON, "Screen", Money.of("1.50", "EUR"), 2, period),
        line(LineKind.PRORATION_CREDIT, "Unused", Money.of("-3.00", "EUR")),
    ]
    totals = invoice_totals(lines, "EUR")
    assert totals.subtotal == Money.of("9.99", "EUR")
    assert totals.total == totals.subtotal
    assert invoice_totals([], "JPY").total == Money.zero("JPY")
    with pytest.raises(InvalidInput) as caught:
        invoice_totals([*lines, line(LineKind.ADDON, "x", Money.of("1", "USD"))], "EUR")
    assert caught.value.code == "invoice.mixed_currencies"


@pytest.mark.parametrize(
    ("prefix", "number", "expected"),
    [("INV-", 42, "INV-000042"), ("", 1, "000001"), ("A/", 1234567, "A/1234567")],
)
def test_invoice_numbers(prefix: str, number: int, expected: str) -> None:
    assert format_invoice_number(prefix, number) == expected


@pytest.mark.parametrize(("prefix", "number"), [("INV-", 0), ("bad prefix", 1), ("I", True)])
def test_bad_invoice_numbers_are_refused(prefix: str, number: int) -> None:
    with pytest.raises(InvalidInput):
        format_invoice_number(prefix, number)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=10**9))
def test_apply_payment(due_minor: int, paid_minor: int) -> None:
    due, paid = Money.from_minor(due_minor, "EUR"), Money.from_minor(paid_minor, "EUR")
    result = apply_payment(due, paid)
    assert result.applied + result.excess == paid
    assert result.applied <= due
    assert not result.excess.is_negative()
    assert result.settles == (paid >= due)
    assert result.excess.is_zero() or result.settles


def test_apply_payment_refusals() -> None:
    due = Money.of("10", "EUR")
    for payment in (Money.zero("EUR"), Money.of("-1", "EUR")):
        with pytest.raises(InvalidInput) as caught:
            apply_payment(due, payment)
        assert caught.value.code == "payment.invalid_amount"
    with pytest.raises(InvalidInput) as caught:
        apply_payment(due, Money.of("10", "USD"))
    assert caught.value.code == "money.currency_mismatch"
    partial = apply_payment(due, Money.of("4", "EUR"))
    assert (partial.applied, partial.excess, partial.settles) == (
        Money.of("4", "EUR"),
        Money.zero("EUR"),
        False,
    )
