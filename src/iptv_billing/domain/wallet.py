"""Prepaid wallet arithmetic: a balance moves by positive amounts and never goes below zero."""

from __future__ import annotations

from iptv_billing.domain.errors import InsufficientFunds, InvalidInput
from iptv_billing.domain.money import Money


def debit(balance: Money, amount: Money) -> Money:
    """The balance after taking ``amount`` out; an overdraft is refused, never allowed."""
    _check(balance, amount)
    if amount > balance:
        raise InsufficientFunds(
            "wallet.insufficient_funds",
            f"the wallet holds {balance}, {amount} is needed",
            balance=str(balance),
            requested=str(amount),
        )
    return balance - amount


def credit(balance: Money, amount: Money) -> Money:
    """The balance after putting ``amount`` in."""
    _check(balance, amount)
    return balance + amount


def _check(balance: Money, amount: Money) -> None:
    if amount.currency != balance.currency:
        raise InvalidInput(
            "money.currency_mismatch", f"a {amount.code} amount on a {balance.code} wallet"
        )
    if amount.minor <= 0:
        raise InvalidInput("wallet.invalid_amount", "a wallet moves by positive amounts")
    if balance.is_negative():
        raise InvalidInput("wallet.negative_balance", "a wallet balance is never negative")
