"""Rated usage on invoices: the lines a period's usage adds, net of what was billed for it.

A period is always rated whole, from all its events, and what its earlier invoices charged
(threshold invoices, or the period-end invoice before late events arrived) is taken off. So
however often a period is invoiced, its total is what one invoice over all its events would
charge: late events (inside the ingestion grace window) are billed on the next invoice, and
tiered prices price the period as one quantity.
"""

from __future__ import annotations

from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.invoice import InvoiceLine
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import Period, period_start
from iptv_billing.domain.subscription import SubscriptionState
from iptv_billing.domain.usage_rating import RatedUsage, rate_period
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import SubscriptionRecord


def rate(
    uow: UnitOfWork, tenant_id: str, sub: SubscriptionRecord, terms: BillingTerms, period: Period
) -> RatedUsage:
    """The period's usage as lines, net of what was invoiced for it already."""
    metrics = {charge.metric: charge.aggregation for charge in terms.usage_charges}
    quantities = uow.usage.period_totals(
        tenant_id, sub.customer_id, sub.id, metrics, period.start, period.end
    )
    billed = uow.invoices.usage_invoiced(tenant_id, sub.id, period.start)
    currency = sub.state.currency
    return rate_period(terms, currency, period, quantities, Money.from_minor(billed, currency))


def unbilled_lines(
    uow: UnitOfWork, tenant_id: str, sub: SubscriptionRecord, terms: BillingTerms, period: Period
) -> tuple[InvoiceLine, ...]:
    """Lines for the period's usage not yet invoiced; none when they would net to zero."""
    if not terms.usage_charges or was_trial(sub.state, period):
        return ()
    rated = rate(uow, tenant_id, sub, terms, period)
    return rated.lines if rated.total.minor else ()


def was_trial(state: SubscriptionState, period: Period) -> bool:
    """Usage during a free trial is free too."""
    return state.trial_end is not None and period.end <= state.trial_end


def previous_period(ctx: Context, state: SubscriptionState, terms: BillingTerms) -> Period | None:
    """The period before the current one, whose late events the next invoice still bills."""
    if state.period_index < 1:
        return None
    start = period_start(state.anchor, terms.interval, state.period_index - 1, ctx.tz)
    return Period(start, state.current_period.start)
