"""Prepaid wallets: one balance per customer and currency, never below zero.

The balance is kept beside the journal postings (for an atomic, lock-free debit) and is
checked against them by ``wallet_discrepancies``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from iptv_billing.domain import journal
from iptv_billing.domain.errors import InsufficientFunds, InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.services import invoicing
from iptv_billing.services.context import Context
from iptv_billing.services.customers import get_customer
from iptv_billing.services.log_records import post_journal
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import WalletRecord

TOP_UP_METHODS = ("manual", "bank_transfer", "card")


@dataclass(frozen=True, slots=True)
class TopUp:
    customer_id: str
    amount: Money
    method: str = "manual"


@dataclass(frozen=True, slots=True)
class DebitWallet:
    customer_id: str
    amount: Money
    description: str


def _checked(uow: UnitOfWork, ctx: Context, customer_id: str, amount: Money) -> None:
    get_customer(uow, ctx, customer_id)
    if amount.minor <= 0:
        raise InvalidInput("wallet.invalid_amount", "the amount must be positive")


def top_up(uow: UnitOfWork, ctx: Context, cmd: TopUp) -> WalletRecord:
    if cmd.method not in TOP_UP_METHODS:
        raise InvalidInput("wallet.invalid_method", f"use one of {TOP_UP_METHODS}")
    _checked(uow, ctx, cmd.customer_id, cmd.amount)
    wallet = invoicing.ensure_wallet(uow, ctx, cmd.customer_id, cmd.amount.code)
    balance = uow.wallets.credit(wallet.id, cmd.amount.minor, ctx.now())
    entry = journal.wallet_topped_up(cmd.customer_id, cmd.method, cmd.amount)
    post_journal(uow, ctx, [(ctx.ids.new("je"), entry, wallet.id)])
    return WalletRecord(
        wallet.id, ctx.tenant_id, cmd.customer_id, cmd.amount.code, balance, ctx.now()
    )


def debit(uow: UnitOfWork, ctx: Context, cmd: DebitWallet) -> WalletRecord:
    """Charge the prepaid balance for a one-off; refused, changing nothing, if it does not cover."""
    _checked(uow, ctx, cmd.customer_id, cmd.amount)
    wallet = uow.wallets.get(ctx.tenant_id, cmd.customer_id, cmd.amount.code)
    balance = uow.wallets.debit(wallet.id, cmd.amount.minor, ctx.now()) if wallet else None
    if wallet is None or balance is None:
        raise InsufficientFunds("wallet.insufficient_funds", "the wallet does not cover it")
    entry = journal.JournalEntry(
        kind="wallet_debited",
        postings=(
            journal.Posting(journal.wallet(cmd.customer_id), cmd.amount),
            journal.Posting(journal.revenue("adjustment"), -cmd.amount),
        ),
        memo=cmd.description[:500],
    )
    post_journal(uow, ctx, [(ctx.ids.new("je"), entry, wallet.id)])
    return WalletRecord(
        wallet.id, ctx.tenant_id, cmd.customer_id, cmd.amount.code, balance, ctx.now()
    )


def wallets_of(uow: UnitOfWork, ctx: Context, customer_id: str) -> Sequence[WalletRecord]:
    get_customer(uow, ctx, customer_id)
    return uow.wallets.list(ctx.tenant_id, customer_id)


def wallet_discrepancies(uow: UnitOfWork, ctx: Context, customer_id: str) -> list[str]:
    """Currencies whose kept balance differs from the journal (credit-normal: balance = -sum)."""
    bad = []
    for wallet in uow.wallets.list(ctx.tenant_id, customer_id):
        posted = uow.journal.account_balance(
            ctx.tenant_id, journal.wallet(customer_id), wallet.currency
        )
        if -posted != wallet.balance_minor:
            bad.append(wallet.currency)
    return bad
