"""Prepaid wallets: one balance per customer and currency, never below zero.

The balance is kept beside the journal postings (for an atomic, lock-free debit) and is
checked against them by ``wallet_discrepancies``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from iptv_billing.domain import journal
from iptv_billing.domain.errors import InsufficientFunds, InvalidInput, InvariantViolated
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
    """Credit the wallet; a prepaid customer's open invoices are then paid from it."""
    if cmd.method not in TOP_UP_METHODS:
        raise InvalidInput("wallet.invalid_method", f"use one of {TOP_UP_METHODS}")
    _checked(uow, ctx, cmd.customer_id, cmd.amount)
    wallet = invoicing.ensure_wallet(uow, ctx, cmd.customer_id, cmd.amount.code)
    uow.wallets.credit(wallet.id, cmd.amount.minor, ctx.now())
    entry = journal.wallet_topped_up(cmd.customer_id, cmd.method, cmd.amount)
    post_journal(uow, ctx, [(ctx.ids.new("je"), entry, wallet.id)])
    invoicing.settle_open_from_wallet(uow, ctx, cmd.customer_id, cmd.amount.code)
    return _reread(uow, ctx, cmd.customer_id, cmd.amount.code)


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
    return _reread(uow, ctx, cmd.customer_id, cmd.amount.code)


def _reread(uow: UnitOfWork, ctx: Context, customer_id: str, currency: str) -> WalletRecord:
    # Read back in the same transaction: the row is locked by our update, so pending is current.
    wallet = uow.wallets.get(ctx.tenant_id, customer_id, currency)
    if wallet is None:  # pragma: no cover - written just above
        raise InvariantViolated(f"wallet of {customer_id} vanished")
    return wallet


def wallets_of(uow: UnitOfWork, ctx: Context, customer_id: str) -> Sequence[WalletRecord]:
    get_customer(uow, ctx, customer_id)
    return uow.wallets.list(ctx.tenant_id, customer_id)


def wallet_discrepancies(uow: UnitOfWork, ctx: Context, customer_id: str) -> list[str]:
    """Currencies whose kept balance or held part differs from the journal (credit-normal)."""
    bad = []
    for wallet in uow.wallets.list(ctx.tenant_id, customer_id):
        spendable = -uow.journal.account_balance(
            ctx.tenant_id, journal.wallet(customer_id), wallet.currency
        )
        held = -uow.journal.account_balance(
            ctx.tenant_id, journal.held(customer_id), wallet.currency
        )
        if (spendable, held) != (wallet.available_minor, wallet.pending_minor):
            bad.append(wallet.currency)
    return bad
