from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iptv_billing.domain.errors import InsufficientFunds, InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.wallet import credit, debit


def eur(minor: int) -> Money:
    return Money.from_minor(minor, "EUR")


def test_debit_and_credit() -> None:
    assert debit(eur(1000), eur(250)) == eur(750)
    assert debit(eur(250), eur(250)) == eur(0)
    assert credit(eur(0), eur(250)) == eur(250)


def test_overdraft_is_refused() -> None:
    with pytest.raises(InsufficientFunds) as caught:
        debit(eur(100), eur(101))
    assert caught.value.code == "wallet.insufficient_funds"


@pytest.mark.parametrize("amount", [0, -5])
def test_non_positive_amounts_are_refused(amount: int) -> None:
    for operation in (debit, credit):
        with pytest.raises(InvalidInput) as caught:
            operation(eur(100), eur(amount))
        assert caught.value.code == "wallet.invalid_amount"


def test_currency_and_negative_balance_are_refused() -> None:
    with pytest.raises(InvalidInput):
        credit(eur(100), Money.from_minor(1, "USD"))
    with pytest.raises(InvalidInput) as caught:
        credit(eur(-1), eur(1))
    assert caught.value.code == "wallet.negative_balance"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(min_value=1, max_value=10**6)), max_size=40))
def test_balance_never_goes_below_zero(moves: list[tuple[bool, int]]) -> None:
    balance, expected = eur(0), 0
    for is_debit, minor in moves:
        if is_debit:
            if minor > expected:
                with pytest.raises(InsufficientFunds):
                    debit(balance, eur(minor))
                continue
            balance, expected = debit(balance, eur(minor)), expected - minor
        else:
            balance, expected = credit(balance, eur(minor)), expected + minor
        assert balance == eur(expected)
        assert not balance.is_negative()
