"""Invoices driven by usage before the period ends: the preview of the upcoming invoice, and
threshold (progressive) invoices when a period's unbilled usage reaches the plan's amount."""

from __future__ import annotations

from dataclasses import dataclass

from iptv_billing.domain import billing
from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.invoice import InvoiceLine, invoice_totals
from iptv_billing.domain.periods import Period
from iptv_billing.domain.subscription import SubscriptionStatus
from iptv_billing.domain.usage_rating import threshold_reached
from iptv_billing.services import catalog, invoicing, usage_billing
from iptv_billing.services.context import Context
from iptv_billing.services.lookup import get_subscription
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import InvoiceRecord, SubscriptionRecord

THRESHOLD_REASON = "usage_threshold"
FINAL_REASON = "subscription_final_usage"
PAGE = 200
_BILLED_STATUSES = (SubscriptionStatus.ACTIVE.value, SubscriptionStatus.PAST_DUE.value)


@dataclass(frozen=True, slots=True)
class UpcomingInvoice:
    subscription_id: str
    customer_id: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    subtotal_minor: int
    total_minor: int
    period: Period  # the period the invoice will open (or, at a final invoice, close)
    invoiced_at: Period | None  # None when the subscription will not be invoiced again


def upcoming(uow: UnitOfWork, ctx: Context, subscription_id: str) -> UpcomingInvoice:
    """What the invoice at the current period's end would hold if the period ended now: the
    next period's fee (after a pending plan change) and the usage not billed yet."""
    sub = get_subscription(uow, ctx, subscription_id)
    terms = _terms(uow, ctx, sub.terms_id)
    state = sub.state
    current = state.current_period
    usage = usage_billing.unbilled_lines(uow, ctx.tenant_id, sub, terms, current)
    before = usage_billing.previous_period(ctx, state, terms)
    if before is not None:
        usage = usage_billing.unbilled_lines(uow, ctx.tenant_id, sub, terms, before) + usage
    fee: tuple[InvoiceLine, ...] = ()
    period = current
    if state.status.value in (*_BILLED_STATUSES, SubscriptionStatus.TRIALING.value):
        pending = _terms(uow, ctx, sub.pending_terms_id) if sub.pending_terms_id else None
        renewal = billing.renew(state, terms, pending, ctx.tz, current.end, max_periods=1)
        if renewal.invoices:
            fee, period = renewal.invoices[0].lines, renewal.invoices[0].period
    lines = fee + usage
    totals = invoice_totals(lines, state.currency)
    return UpcomingInvoice(
        sub.id,
        sub.customer_id,
        state.currency,
        lines,
        totals.subtotal.minor,
        totals.total.minor,
        period,
        current if lines else None,
    )


def invoice_thresholds(uow: UnitOfWork, ctx: Context) -> list[InvoiceRecord]:
    """Invoice now the usage of every subscription whose unbilled usage this period reached
    its plan's threshold. Idempotent: an invoiced amount is no longer unbilled."""
    terms_by_id = _threshold_terms(uow, ctx)
    if not terms_by_id:
        return []
    invoices: list[InvoiceRecord] = []
    after: str | None = None
    while True:
        page = uow.subscriptions.on_terms(
            ctx.tenant_id, sorted(terms_by_id), _BILLED_STATUSES, after, PAGE
        )
        for sub in page.items:
            invoice = _invoice_if_reached(uow, ctx, sub.id, terms_by_id)
            if invoice is not None:
                invoices.append(invoice)
        if not page.has_more or not page.items:
            return invoices
        after = page.items[-1].id


def _invoice_if_reached(
    uow: UnitOfWork, ctx: Context, subscription_id: str, terms_by_id: dict[str, BillingTerms]
) -> InvoiceRecord | None:
    # Locked: two passes (or a pass and a renewal) never bill the same usage twice.
    sub = get_subscription(uow, ctx, subscription_id, for_update=True)
    terms = terms_by_id.get(sub.terms_id)
    period = sub.state.current_period
    if terms is None or usage_billing.was_trial(sub.state, period):
        return None
    rated = usage_billing.rate(uow, ctx.tenant_id, sub, terms, period)
    if not threshold_reached(terms, rated):
        return None
    return usage_invoice(uow, ctx, sub, terms, period, rated.lines, THRESHOLD_REASON)


def final_usage_invoice(
    uow: UnitOfWork, ctx: Context, sub: SubscriptionRecord, terms: BillingTerms
) -> InvoiceRecord | None:
    """A subscription ended before its period did (an immediate cancellation): invoice the
    usage of the period so far, and late events of the one before, now."""
    period = sub.state.current_period
    lines = usage_billing.unbilled_lines(uow, ctx.tenant_id, sub, terms, period)
    before = usage_billing.previous_period(ctx, sub.state, terms)
    if before is not None:
        lines = usage_billing.unbilled_lines(uow, ctx.tenant_id, sub, terms, before) + lines
    if not lines:
        return None
    return usage_invoice(uow, ctx, sub, terms, period, lines, FINAL_REASON)


def usage_invoice(
    uow: UnitOfWork,
    ctx: Context,
    sub: SubscriptionRecord,
    terms: BillingTerms,
    period: Period,
    lines: tuple[InvoiceLine, ...],
    reason: str,
    *,
    collect: bool = True,
) -> InvoiceRecord:
    draft = invoicing.InvoiceDraft(
        customer_id=sub.customer_id,
        currency=sub.state.currency,
        lines=lines,
        billing_reason=reason,
        subscription_id=sub.id,
        terms_hash=terms.terms_hash,
        period=period,
    )
    record = invoicing.create_draft(uow, ctx, draft)
    return invoicing.finalize(uow, ctx, record.id, terms.payment_due_days, collect=collect)


def _threshold_terms(uow: UnitOfWork, ctx: Context) -> dict[str, BillingTerms]:
    found = {}
    for record in uow.catalog.all_terms(ctx.tenant_id):
        terms = catalog.load_terms(record)
        if terms.usage_threshold:
            found[record.id] = terms
    return found


def _terms(uow: UnitOfWork, ctx: Context, terms_id: str) -> BillingTerms:
    return catalog.load_terms(catalog.get_terms(uow, ctx, terms_id))
