"""Payments: recorded (manual, bank transfer), from the wallet, or by card through a provider.

A payment applies to one invoice, or to none (an auto top-up: all of it is prepaid credit);
what exceeds the amount due is credited to the wallet.
Settling the last unpaid invoice of a past-due or suspended subscription reactivates it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from iptv_billing.domain import journal
from iptv_billing.domain.errors import Conflict, InvalidInput, NotFound
from iptv_billing.domain.invoice import apply_payment
from iptv_billing.domain.money import Money
from iptv_billing.services import invoicing
from iptv_billing.services.context import Context
from iptv_billing.services.customers import get_customer
from iptv_billing.services.log_records import post_journal
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.providers import ChargeStatus, PaymentProvider, ProviderCharge
from iptv_billing.services.records import InvoiceRecord, PaymentRecord

RECORDED_METHODS = ("manual", "bank_transfer")


@dataclass(frozen=True, slots=True)
class RecordPayment:
    customer_id: str
    amount: Money
    method: str
    invoice_id: str | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeCard:
    invoice_id: str
    payment_method: str  # the provider's token, never card data
    request_key: str  # our idempotency key; the provider key derives from it
    amount: Money | None = None  # default: all that is due; more is credited to the wallet


def record_payment(uow: UnitOfWork, ctx: Context, cmd: RecordPayment) -> PaymentRecord:
    if cmd.method not in RECORDED_METHODS:
        raise InvalidInput("payment.invalid_method", f"use one of {RECORDED_METHODS}")
    customer = get_customer(uow, ctx, cmd.customer_id)
    # The invoice first: paying one that owes nothing is a conflict whatever the amount.
    invoice = _payable_invoice(uow, ctx, cmd.invoice_id, customer.id) if cmd.invoice_id else None
    _check_amount(cmd.amount, customer.currency)
    payment = invoicing.new_payment(
        ctx, customer.id, cmd.invoice_id, cmd.method, cmd.amount, "succeeded"
    )
    payment = replace(payment, reference=cmd.reference)
    return _apply(uow, ctx, payment, invoice)


def charge_card(
    uow: UnitOfWork, ctx: Context, provider: PaymentProvider, cmd: ChargeCard
) -> PaymentRecord:
    invoice = invoicing.get_invoice(uow, ctx, cmd.invoice_id, for_update=True)
    provider_key = provider_idempotency_key(ctx.tenant_id, cmd.request_key)
    existing = uow.payments.by_provider_key(ctx.tenant_id, provider_key)
    if existing is not None:
        return existing
    due = _due(invoice)  # refuses an invoice that owes nothing
    amount = cmd.amount or due
    _check_amount(amount, invoice.currency)
    charge = provider.charge(
        idempotency_key=provider_key,
        amount_minor=amount.minor,
        currency=amount.code,
        payment_method=cmd.payment_method,
    )
    payment = invoicing.new_payment(ctx, invoice.customer_id, invoice.id, "card", amount, "pending")
    payment = replace(
        payment,
        provider=provider.name,
        provider_payment_id=charge.id,
        provider_idempotency_key=provider_key,
    )
    uow.payments.add(payment)
    return _settle_charge(uow, ctx, payment, charge)


@dataclass(frozen=True, slots=True)
class ChargeToWallet:
    customer_id: str
    amount: Money  # in the wallet's currency; all of it is credited to the wallet
    payment_method: str  # a saved provider token
    request_key: str  # stable per attempt: the provider deduplicates a retried charge on it
    reference: str | None = None


def charge_to_wallet(
    uow: UnitOfWork, ctx: Context, provider: PaymentProvider, cmd: ChargeToWallet
) -> PaymentRecord:
    """Charge a saved payment method for prepaid credit (no invoice): a card payment, pending
    until the provider confirms; confirmed, all of it is credited to the wallet."""
    _check_amount(cmd.amount, cmd.amount.code)
    provider_key = provider_idempotency_key(ctx.tenant_id, cmd.request_key)
    existing = uow.payments.by_provider_key(ctx.tenant_id, provider_key)
    if existing is not None:
        return existing
    charge = provider.charge(
        idempotency_key=provider_key,
        amount_minor=cmd.amount.minor,
        currency=cmd.amount.code,
        payment_method=cmd.payment_method,
    )
    payment = invoicing.new_payment(ctx, cmd.customer_id, None, "card", cmd.amount, "pending")
    payment = replace(
        payment,
        provider=provider.name,
        provider_payment_id=charge.id,
        provider_idempotency_key=provider_key,
        reference=cmd.reference,
    )
    uow.payments.add(payment)
    return _settle_charge(uow, ctx, payment, charge)


def refresh_card_payment(
    uow: UnitOfWork, ctx: Context, provider: PaymentProvider, payment_id: str
) -> PaymentRecord:
    """Ask the provider what became of a pending charge (the webhook-less reconciliation)."""
    payment = get_payment(uow, ctx, payment_id, for_update=True)
    if payment.status != "pending" or payment.provider_payment_id is None:
        return payment
    return _settle_charge(uow, ctx, payment, provider.retrieve(payment.provider_payment_id))


def reconcile_pending(uow: UnitOfWork, ctx: Context, provider: PaymentProvider) -> int:
    settled = 0
    for payment in uow.payments.pending(ctx.tenant_id):
        if refresh_card_payment(uow, ctx, provider, payment.id).status != "pending":
            settled += 1
    return settled


def _settle_charge(
    uow: UnitOfWork, ctx: Context, payment: PaymentRecord, charge: ProviderCharge
) -> PaymentRecord:
    if charge.status is ChargeStatus.PENDING:
        return payment
    if charge.status is ChargeStatus.FAILED:
        failed = replace(
            payment, status="failed", failure_code=charge.failure_code, updated_at=ctx.now()
        )
        uow.payments.update(failed)
        return failed
    # A charge for no invoice (an auto top-up) is prepaid credit as a whole.
    invoice = (
        invoicing.get_invoice(uow, ctx, payment.invoice_id, for_update=True)
        if payment.invoice_id
        else None
    )
    done = replace(payment, status="succeeded", updated_at=ctx.now())
    return _apply(uow, ctx, done, invoice, stored=True)


def _apply(
    uow: UnitOfWork,
    ctx: Context,
    payment: PaymentRecord,
    invoice: InvoiceRecord | None,
    *,
    stored: bool = False,
) -> PaymentRecord:
    amount = Money.from_minor(payment.amount_minor, payment.currency)
    if invoice is None or invoice.amount_due_minor <= 0:
        # No invoice named, or it was settled meanwhile (a card confirmed after a bank
        # transfer): the money was received all the same and becomes prepaid credit.
        applied, excess = Money.zero(payment.currency), amount
    else:
        application = apply_payment(_due(invoice), amount)
        applied, excess = application.applied, application.excess
    entry = journal.payment_received(payment.customer_id, payment.method, applied, excess)
    post_journal(uow, ctx, [(ctx.ids.new("je"), entry, payment.id)])
    if excess.minor:
        wallet = invoicing.ensure_wallet(uow, ctx, payment.customer_id, payment.currency)
        uow.wallets.credit(wallet.id, excess.minor, ctx.now())
    final = replace(payment, applied_minor=applied.minor, excess_minor=excess.minor)
    (uow.payments.update if stored else uow.payments.add)(final)
    if invoice is not None and applied.minor:
        invoicing.apply_to_invoice(uow, ctx, invoice, applied.minor)
    if excess.minor:  # money in a prepaid wallet pays what its owner still owes
        invoicing.settle_open_from_wallet(uow, ctx, payment.customer_id, payment.currency)
    return final


def provider_idempotency_key(tenant_id: str, request_key: str) -> str:
    """Stable per tenant and request, and short: request keys may be 255 characters."""
    digest = hashlib.sha256(request_key.encode()).hexdigest()
    return f"{tenant_id}:{digest}"


def _check_amount(amount: Money, currency: str) -> None:
    if amount.minor <= 0:
        raise InvalidInput("payment.invalid_amount", "a payment must be positive")
    if amount.code != currency:
        raise InvalidInput("payment.currency_mismatch", "pay in the customer's currency")


def _payable_invoice(
    uow: UnitOfWork, ctx: Context, invoice_id: str, customer_id: str
) -> InvoiceRecord:
    invoice = invoicing.get_invoice(uow, ctx, invoice_id, for_update=True)
    if invoice.customer_id != customer_id:
        raise InvalidInput("payment.invoice_of_other_customer", "invoice is not this customer's")
    _due(invoice)
    return invoice


def _due(invoice: InvoiceRecord) -> Money:
    if invoice.amount_due_minor <= 0:
        raise Conflict("invoice.nothing_due", f"invoice {invoice.id} is {invoice.status}")
    return Money.from_minor(invoice.amount_due_minor, invoice.currency)


def get_payment(
    uow: UnitOfWork, ctx: Context, payment_id: str, *, for_update: bool = False
) -> PaymentRecord:
    payment = uow.payments.get(ctx.tenant_id, payment_id, for_update=for_update)
    if payment is None:
        raise NotFound("payment.not_found", f"no payment {payment_id}")
    return payment
