"""Invoices: draft → finalized (numbered, journaled) → paid / void / uncollectible.

Numbers are assigned only at finalization, from a per-series counter bumped inside the
finalizing transaction, so a series has no gaps and a finalized invoice never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from iptv_billing.domain import journal
from iptv_billing.domain.errors import Conflict, InsufficientFunds, InvalidInput, NotFound
from iptv_billing.domain.invoice import (
    InvoiceAction,
    InvoiceLine,
    InvoiceStatus,
    invoice_totals,
    next_invoice_status,
)
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import Period, add_days
from iptv_billing.domain.subscription import SubscriptionEvent, SubscriptionStatus, apply_events
from iptv_billing.services.context import Context
from iptv_billing.services.customers import get_customer
from iptv_billing.services.log_records import post_journal, save_subscriptions
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import (
    InvoiceRecord,
    PaymentRecord,
    WalletRecord,
)

MAX_LINES = 200


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    customer_id: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    billing_reason: str = "manual"
    subscription_id: str | None = None
    terms_hash: str | None = None
    cycle_start: datetime | None = None
    period: Period | None = None


def draft_record(ctx: Context, draft: InvoiceDraft) -> InvoiceRecord:
    if len(draft.lines) > MAX_LINES:
        raise InvalidInput("invoice.too_many_lines", f"at most {MAX_LINES} lines")
    totals = invoice_totals(draft.lines, draft.currency)
    return InvoiceRecord(
        id=ctx.ids.new("inv"),
        tenant_id=ctx.tenant_id,
        customer_id=draft.customer_id,
        subscription_id=draft.subscription_id,
        terms_hash=draft.terms_hash,
        billing_reason=draft.billing_reason,
        cycle_start=draft.cycle_start,
        series=ctx.tenant.invoice_prefix,
        number=None,
        status=InvoiceStatus.DRAFT.value,
        currency=draft.currency,
        subtotal_minor=totals.subtotal.minor,
        total_minor=totals.total.minor,
        amount_paid_minor=0,
        period_start=draft.period.start if draft.period else None,
        period_end=draft.period.end if draft.period else None,
        created_at=ctx.now(),
        lines=draft.lines,
    )


def finalize_all(
    uow: UnitOfWork, ctx: Context, drafts: Sequence[InvoiceRecord], due_days: Sequence[int]
) -> list[InvoiceRecord]:
    """Number, date and journal a batch of drafts (already stored or about to be)."""
    post_journal(uow, ctx, finalization_entries(ctx, drafts))
    return number_and_finalize(uow, ctx, drafts, due_days)


def finalization_entries(
    ctx: Context, drafts: Sequence[InvoiceRecord]
) -> list[tuple[str, journal.JournalEntry, str | None]]:
    """The journal entries that finalizing ``drafts`` books (they do not depend on numbers)."""
    entries: list[tuple[str, journal.JournalEntry, str | None]] = []
    for draft in drafts:
        entry = journal.invoice_finalized(draft.customer_id, draft.lines)
        if entry is not None:
            entries.append((ctx.ids.new("je"), entry, draft.id))
    return entries


def number_and_finalize(
    uow: UnitOfWork, ctx: Context, drafts: Sequence[InvoiceRecord], due_days: Sequence[int]
) -> list[InvoiceRecord]:
    """Take consecutive numbers for ``drafts`` and finalize them. The series counter stays
    locked until commit, so callers do this as late in their transaction as they can."""
    if not drafts:
        return []
    now = ctx.now()
    due_at = {days: add_days(now, days, ctx.tz) for days in set(due_days)}  # few distinct terms
    first = uow.invoices.take_numbers(ctx.tenant_id, ctx.tenant.invoice_prefix, len(drafts))
    return [
        _finalized(draft, first + offset, now, due_at[days])
        for offset, (draft, days) in enumerate(zip(drafts, due_days, strict=True))
    ]


_FINALIZED = next_invoice_status(InvoiceStatus.DRAFT, InvoiceAction.FINALIZE).value


def _finalized(draft: InvoiceRecord, number: int, now: datetime, due: datetime) -> InvoiceRecord:
    if draft.status != InvoiceStatus.DRAFT.value:
        raise Conflict("invoice.illegal_transition", f"invoice is {draft.status}, not draft")
    if draft.total_minor <= 0:  # nothing to collect: a credit goes to the wallet at once
        paid = InvoiceStatus.PAID.value
        return replace(draft, status=paid, number=number, finalized_at=now, due_at=due, paid_at=now)
    return replace(draft, status=_FINALIZED, number=number, finalized_at=now, due_at=due)


def credit_negative_totals(
    uow: UnitOfWork, ctx: Context, invoices: Sequence[InvoiceRecord]
) -> None:
    """The journal already moved a negative total to the wallet account; mirror it in the
    wallet balance kept beside the postings."""
    for invoice in invoices:
        if invoice.total_minor < 0:
            wallet = ensure_wallet(uow, ctx, invoice.customer_id, invoice.currency)
            uow.wallets.credit(wallet.id, -invoice.total_minor, ctx.now())


def create_draft(uow: UnitOfWork, ctx: Context, draft: InvoiceDraft) -> InvoiceRecord:
    customer = get_customer(uow, ctx, draft.customer_id)
    if draft.currency != customer.currency:
        raise InvalidInput("invoice.currency_mismatch", "invoice currency must be the customer's")
    record = draft_record(ctx, draft)
    uow.invoices.add_many([record])
    return record


def finalize(
    uow: UnitOfWork, ctx: Context, invoice_id: str, due_days: int = 0, *, collect: bool = True
) -> InvoiceRecord:
    """Number and journal a draft; a prepaid customer's wallet pays it unless ``collect`` is
    False (the caller pays it otherwise, as a session hold does)."""
    invoice = get_invoice(uow, ctx, invoice_id, for_update=True)
    if invoice.status != InvoiceStatus.DRAFT.value:
        raise Conflict("invoice.illegal_transition", f"invoice is {invoice.status}, not draft")
    (final,) = finalize_all(uow, ctx, [invoice], [due_days])
    uow.invoices.update(final)
    credit_negative_totals(uow, ctx, [final])
    return collect_from_wallet_if_due(uow, ctx, final) if collect else final


def void(uow: UnitOfWork, ctx: Context, invoice_id: str) -> InvoiceRecord:
    invoice = get_invoice(uow, ctx, invoice_id, for_update=True)
    new_status = next_invoice_status(InvoiceStatus(invoice.status), InvoiceAction.VOID)
    if invoice.amount_paid_minor:
        raise Conflict("invoice.partially_paid", "a paid amount must be refunded before voiding")
    if invoice.status != InvoiceStatus.DRAFT.value:
        _reverse_finalization(uow, ctx, invoice)
    voided = replace(invoice, status=new_status.value, voided_at=ctx.now())
    uow.invoices.update(voided)
    return voided


def _reverse_finalization(uow: UnitOfWork, ctx: Context, invoice: InvoiceRecord) -> None:
    originals = uow.journal.entries_for(ctx.tenant_id, invoice.id)
    finalization = [e for e in originals if e.kind == "invoice_finalized"]
    reversals = [(ctx.ids.new("je"), journal.invoice_voided(e), invoice.id) for e in finalization]
    post_journal(uow, ctx, reversals)


def mark_uncollectible(uow: UnitOfWork, ctx: Context, invoice_id: str) -> InvoiceRecord:
    invoice = get_invoice(uow, ctx, invoice_id, for_update=True)
    status = next_invoice_status(InvoiceStatus(invoice.status), InvoiceAction.MARK_UNCOLLECTIBLE)
    updated = replace(invoice, status=status.value)
    uow.invoices.update(updated)
    return updated


def apply_amount(invoice: InvoiceRecord, applied_minor: int, now: datetime) -> InvoiceRecord:
    """The invoice after ``applied_minor`` of a payment went to it."""
    paid = invoice.amount_paid_minor + applied_minor
    if paid < invoice.total_minor:
        return replace(invoice, amount_paid_minor=paid)
    status = next_invoice_status(InvoiceStatus(invoice.status), InvoiceAction.PAY)
    return replace(invoice, amount_paid_minor=paid, status=status.value, paid_at=now)


def apply_to_invoice(
    uow: UnitOfWork, ctx: Context, invoice: InvoiceRecord, applied_minor: int
) -> InvoiceRecord:
    """Store ``invoice`` with ``applied_minor`` more paid; paying off the last overdue invoice
    of a subscription reactivates it."""
    paid = apply_amount(invoice, applied_minor, ctx.now())
    uow.invoices.update(paid)
    settle_subscription_if_clear(uow, ctx, paid)
    return paid


def collect_from_wallet_if_due(
    uow: UnitOfWork, ctx: Context, invoice: InvoiceRecord
) -> InvoiceRecord:
    customer = get_customer(uow, ctx, invoice.customer_id)
    if customer.collection_method != "charge_wallet" or invoice.amount_due_minor <= 0:
        return invoice
    return pay_from_wallet(uow, ctx, invoice, required=False)


def pay_from_wallet(
    uow: UnitOfWork, ctx: Context, invoice: InvoiceRecord, *, required: bool = True
) -> InvoiceRecord:
    """Settle the whole amount due from the prepaid balance, atomically, or not at all."""
    return settle_from_wallet(uow, ctx, invoice, required=required)[0]


def settle_from_wallet(
    uow: UnitOfWork, ctx: Context, invoice: InvoiceRecord, *, required: bool = True
) -> tuple[InvoiceRecord, PaymentRecord | None]:
    """``pay_from_wallet`` that also returns the payment it recorded (None if it could not)."""
    due = invoice.amount_due_minor
    if due <= 0:
        raise Conflict("invoice.nothing_due", f"invoice {invoice.id} has nothing to pay")
    wallet = uow.wallets.get(ctx.tenant_id, invoice.customer_id, invoice.currency)
    balance = uow.wallets.debit(wallet.id, due, ctx.now()) if wallet else None
    if balance is None:
        if required:
            raise InsufficientFunds("wallet.insufficient_funds", "the wallet does not cover it")
        return invoice, None
    amount = Money.from_minor(due, invoice.currency)
    entry = journal.invoice_paid_from_wallet(invoice.customer_id, amount)
    post_journal(uow, ctx, [(ctx.ids.new("je"), entry, invoice.id)])
    payment = new_payment(ctx, invoice.customer_id, invoice.id, "wallet", amount, "succeeded")
    payment = replace(payment, applied_minor=due)
    uow.payments.add(payment)
    return apply_to_invoice(uow, ctx, invoice, due), payment


def settle_open_from_wallet(
    uow: UnitOfWork, ctx: Context, customer_id: str, currency: str
) -> list[InvoiceRecord]:
    """A prepaid (``charge_wallet``) customer's money arrived: pay what they owe from the
    wallet, oldest due first, stopping at the first invoice it does not cover. Paying the last
    overdue invoice reactivates a suspended subscription."""
    customer = get_customer(uow, ctx, customer_id)
    if customer.collection_method != "charge_wallet":
        return []
    paid: list[InvoiceRecord] = []
    for invoice in uow.invoices.open_for_customer(ctx.tenant_id, customer_id):
        if invoice.currency != currency:
            continue
        locked = get_invoice(uow, ctx, invoice.id, for_update=True)
        if locked.amount_due_minor <= 0:
            continue
        settled, payment = settle_from_wallet(uow, ctx, locked, required=False)
        if payment is None:
            break
        paid.append(settled)
    return paid


def new_payment(
    ctx: Context, customer_id: str, invoice_id: str | None, method: str, amount: Money, status: str
) -> PaymentRecord:
    now = ctx.now()
    return PaymentRecord(
        id=ctx.ids.new("pay"),
        tenant_id=ctx.tenant_id,
        customer_id=customer_id,
        invoice_id=invoice_id,
        method=method,
        status=status,
        amount_minor=amount.minor,
        currency=amount.code,
        applied_minor=0,
        excess_minor=0,
        provider=None,
        provider_payment_id=None,
        provider_idempotency_key=None,
        failure_code=None,
        reference=None,
        created_at=now,
        updated_at=now,
    )


def settle_subscription_if_clear(uow: UnitOfWork, ctx: Context, invoice: InvoiceRecord) -> None:
    """Paying the last overdue invoice of a past-due or suspended subscription reactivates it."""
    if invoice.subscription_id is None or invoice.amount_due_minor:
        return
    sub = uow.subscriptions.get(ctx.tenant_id, invoice.subscription_id, for_update=True)
    troubled = (SubscriptionStatus.PAST_DUE, SubscriptionStatus.SUSPENDED)
    if sub is None or sub.state.status not in troubled:
        return
    if uow.invoices.oldest_unpaid_due(ctx.tenant_id, [sub.id]):
        return
    result = apply_events(sub.state, (SubscriptionEvent.SETTLED,), ctx.now())
    save_subscriptions(uow, ctx, [replace(sub, state=result.state, updated_at=ctx.now())])


def ensure_wallet(uow: UnitOfWork, ctx: Context, customer_id: str, code: str) -> WalletRecord:
    existing = uow.wallets.get(ctx.tenant_id, customer_id, code)
    if existing is not None:
        return existing
    fresh = WalletRecord(ctx.ids.new("wal"), ctx.tenant_id, customer_id, code, 0, ctx.now())
    return uow.wallets.ensure(fresh)


def get_invoice(
    uow: UnitOfWork, ctx: Context, invoice_id: str, *, for_update: bool = False
) -> InvoiceRecord:
    invoice = uow.invoices.get(ctx.tenant_id, invoice_id, for_update=for_update)
    if invoice is None:
        raise NotFound("invoice.not_found", f"no invoice {invoice_id}")
    return invoice
