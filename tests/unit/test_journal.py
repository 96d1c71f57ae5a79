from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.invoice import InvoiceLine, LineKind, line
from iptv_billing.domain.journal import (
    JournalEntry,
    Posting,
    balances,
    cash,
    invoice_finalized,
    invoice_paid_from_wallet,
    invoice_voided,
    payment_received,
    receivable,
    revenue,
    wallet,
    wallet_topped_up,
)
from iptv_billing.domain.money import Money


def eur(text: str) -> Money:
    return Money.of(text, "EUR")


def test_account_names() -> None:
    assert receivable("cus_1") == "receivable:cus_1"
    assert wallet("cus_1") == "wallet:cus_1"
    assert revenue("subscription") == "revenue:subscription"
    assert cash("bank_transfer") == "cash:bank_transfer"
    with pytest.raises(InvalidInput):
        cash("has space")


def test_entries_must_balance_per_currency() -> None:
    with pytest.raises(InvalidInput) as caught:
        JournalEntry("x", (Posting("cash:card", eur("1")),))
    assert caught.value.code == "journal.unbalanced"
    with pytest.raises(InvalidInput) as caught:
        JournalEntry("x", (Posting("cash:card", eur("1")), Posting("wallet:c", eur("-0.99"))))
    assert caught.value.code == "journal.unbalanced"
    usd = Money.of("1", "USD")
    with pytest.raises(InvalidInput) as caught:  # balanced in total, not per currency
        JournalEntry("x", (Posting("cash:card", eur("1")), Posting("wallet:c", -usd)))
    assert caught.value.code == "journal.unbalanced"
    with pytest.raises(InvalidInput) as caught:
        Posting("cash:card", eur("0"))
    assert caught.value.code == "journal.zero_posting"


def test_invoice_finalized_groups_revenue_by_line_kind() -> None:
    lines = [
        line(LineKind.SUBSCRIPTION, "Basic", eur("10")),
        line(LineKind.SETUP_FEE, "Setup", eur("5")),
        line(LineKind.ADDON, "Screen", eur("2"), 2),
        line(LineKind.PRORATION_CREDIT, "Unused", eur("-3")),
        line(LineKind.PRORATION_CHARGE, "Remaining", eur("3")),  # nets to zero: skipped
    ]
    entry = invoice_finalized("cus_1", lines)
    assert entry is not None
    assert {p.account: p.amount for p in entry.postings} == {
        "receivable:cus_1": eur("19"),
        "revenue:subscription": eur("-10"),
        "revenue:setup_fee": eur("-5"),
        "revenue:addon": eur("-4"),
    }


def test_negative_invoice_credits_the_wallet() -> None:
    lines = [
        line(LineKind.PRORATION_CREDIT, "Unused", eur("-8")),
        line(LineKind.PRORATION_CHARGE, "Remaining", eur("3")),
    ]
    entry = invoice_finalized("cus_1", lines)
    assert entry is not None
    assert {p.account: p.amount for p in entry.postings} == {
        "wallet:cus_1": eur("-5"),
        "revenue:proration": eur("5"),
    }


def test_zero_invoice_has_no_entry() -> None:
    assert invoice_finalized("cus_1", []) is None
    assert invoice_finalized("cus_1", [line(LineKind.SUBSCRIPTION, "Free", eur("0"))]) is None


def test_void_reverses_the_finalization() -> None:
    entry = invoice_finalized("cus_1", [line(LineKind.SUBSCRIPTION, "Basic", eur("10"))])
    assert entry is not None
    reversal = invoice_voided(entry)
    assert all(v == 0 for v in balances([entry, reversal]).values())
    with pytest.raises(InvalidInput):
        invoice_voided(reversal)


def test_payment_with_excess_and_wallet_flows() -> None:
    payment = payment_received("cus_1", "card", applied=eur("10"), excess=eur("2.50"))
    assert {p.account: p.amount for p in payment.postings} == {
        "cash:card": eur("12.50"),
        "receivable:cus_1": eur("-10"),
        "wallet:cus_1": eur("-2.50"),
    }
    top_up = wallet_topped_up("cus_1", "manual", eur("20"))
    spend = invoice_paid_from_wallet("cus_1", eur("7"))
    totals = balances([payment, top_up, spend])
    assert totals[("wallet:cus_1", "EUR")] == -(250 + 2000 - 700)  # credit-normal
    with pytest.raises(InvalidInput):
        payment_received("cus_1", "card", eur("0"), eur("0"))
    with pytest.raises(InvalidInput):
        wallet_topped_up("cus_1", "card", eur("0"))


# -- property: any sequence of builder entries keeps every currency summing to zero ----------
CUSTOMERS = ("cus_a", "cus_b")
CODES = ("EUR", "JPY")
amounts = st.integers(min_value=1, max_value=10**7)


@st.composite
def invoice_lines(draw: st.DrawFn, code: str) -> list[InvoiceLine]:
    kinds = st.sampled_from(list(LineKind))
    size = draw(st.integers(min_value=0, max_value=5))
    return [
        line(
            draw(kinds),
            "line",
            Money.from_minor(draw(st.integers(min_value=-(10**6), max_value=10**6)), code),
            draw(st.integers(min_value=1, max_value=3)),
        )
        for _ in range(size)
    ]


@st.composite
def entries(draw: st.DrawFn) -> list[JournalEntry]:
    result: list[JournalEntry] = []
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        customer, code = draw(st.sampled_from(CUSTOMERS)), draw(st.sampled_from(CODES))
        flow = draw(st.sampled_from(("invoice", "void", "payment", "top_up", "from_wallet")))
        if flow in ("invoice", "void"):
            entry = invoice_finalized(customer, draw(invoice_lines(code)))
            if entry is not None:
                result.append(entry)
                if flow == "void":
                    result.append(invoice_voided(entry))
        elif flow == "payment":
            applied = Money.from_minor(draw(amounts), code)
            excess = Money.from_minor(draw(st.integers(min_value=0, max_value=10**6)), code)
            result.append(payment_received(customer, "card", applied, excess))
        elif flow == "top_up":
            result.append(
                wallet_topped_up(customer, "manual", Money.from_minor(draw(amounts), code))
            )
        else:
            result.append(invoice_paid_from_wallet(customer, Money.from_minor(draw(amounts), code)))
    return result


@settings(max_examples=150, deadline=None)
@given(entries())
def test_any_sequence_of_entries_sums_to_zero_per_currency(journal: list[JournalEntry]) -> None:
    per_currency: dict[str, int] = defaultdict(int)
    for (_, code), minor in balances(journal).items():
        per_currency[code] += minor
    assert all(total == 0 for total in per_currency.values())
    # And the ledger view agrees with the postings themselves.
    assert sum(len(e.postings) for e in journal) >= 2 * len(journal)
