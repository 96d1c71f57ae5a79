"""One-off sales (PPV purchases, VOD rentals): the payment check, taking the price from the
wallet, the journal entry, and giving it back to where it came from."""

from __future__ import annotations

from iptv_billing.domain import journal
from iptv_billing.domain.errors import InsufficientFunds, InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.services.context import Context
from iptv_billing.services.invoicing import ensure_wallet
from iptv_billing.services.log_records import post_journal
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.ppv_records import EXTERNAL_METHODS, WALLET

METHODS = (WALLET, *EXTERNAL_METHODS)


def check_payment(area: str, method: str, reference: str | None) -> None:
    """``{area}.invalid_method`` / ``{area}.reference_required`` for a bad payment."""
    if method not in METHODS:
        raise InvalidInput(f"{area}.invalid_method", f"use one of {METHODS}")
    if method != WALLET and not reference:
        raise InvalidInput(f"{area}.reference_required", "an external payment needs its reference")


def take(uow: UnitOfWork, ctx: Context, customer_id: str, method: str, price: Money) -> None:
    """Debit a wallet-paid price (guarded on the available balance); 402 when short."""
    if method != WALLET or price.is_zero():
        return
    wallet = uow.wallets.get(ctx.tenant_id, customer_id, price.code)
    if wallet is None or uow.wallets.debit(wallet.id, price.minor, ctx.now()) is None:
        raise InsufficientFunds("wallet.insufficient_funds", "the wallet does not cover it")


def book(
    uow: UnitOfWork,
    ctx: Context,
    product: str,
    customer_id: str,
    method: str,
    price: Money,
    reference_id: str,
) -> None:
    """The sale's journal entry; a free one (a 100 % discount) moves no money."""
    if not price.is_zero():
        entry = journal.sold(product, customer_id, method, price)
        post_journal(uow, ctx, [(ctx.ids.new("je"), entry, reference_id)])


def give_back(
    uow: UnitOfWork,
    ctx: Context,
    product: str,
    customer_id: str,
    method: str,
    amount: Money,
    reference_id: str,
) -> None:
    """Refund a sale to where its money came from: the wallet, or by reversing the cash."""
    if amount.is_zero():
        return
    if method == WALLET:
        wallet = ensure_wallet(uow, ctx, customer_id, amount.code)
        uow.wallets.credit(wallet.id, amount.minor, ctx.now())
    entry = journal.sale_refunded(product, customer_id, method, amount)
    post_journal(uow, ctx, [(ctx.ids.new("je"), entry, reference_id)])
