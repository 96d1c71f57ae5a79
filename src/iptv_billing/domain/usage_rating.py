"""A period's metered usage as invoice lines: one line per charged metric, the spend cap as a
credit, and what threshold invoices already billed in the period taken off.

Charges are always computed from the whole period's aggregate, never summed from partial
charges, so graduated and volume tiers price the period as one quantity however many times
it was invoiced early.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from iptv_billing.domain.catalog import BillingTerms, usage_limit
from iptv_billing.domain.invoice import InvoiceLine, LineKind, line
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import Period


@dataclass(frozen=True, slots=True)
class RatedUsage:
    lines: tuple[InvoiceLine, ...]
    charged: Money  # the period's usage charges after the cap, before earlier invoices

    @property
    def total(self) -> Money:
        return Money(sum(item.amount.minor for item in self.lines), self.charged.currency)


def rate_period(
    terms: BillingTerms,
    currency: str,
    period: Period,
    quantities: Mapping[str, Decimal],
    already_invoiced: Money | None = None,
) -> RatedUsage:
    """Lines for ``quantities`` (metric code → the period's aggregate, as the terms aggregate
    it); ``already_invoiced`` is what threshold invoices billed for this period so far."""
    lines: list[InvoiceLine] = []
    for usage in terms.usage_charges:
        rated = usage.line(quantities.get(usage.metric, Decimal(0)), currency, period)
        if rated is not None:
            lines.append(rated)
    charged = Money.from_minor(sum(item.amount.minor for item in lines), currency)
    cap = usage_limit(terms.usage_cap, currency)
    if cap is not None and charged > cap:
        lines.append(_credit(f"Usage capped at {cap}", charged - cap, period))
        charged = cap
    if already_invoiced is not None and not already_invoiced.is_zero():
        lines.append(_credit("Usage already invoiced this period", already_invoiced, period))
    return RatedUsage(tuple(lines), charged)


def threshold_reached(terms: BillingTerms, unbilled: RatedUsage) -> bool:
    """Should the period's usage be invoiced now? When what is not invoiced yet reaches the
    terms' threshold: a brake on runaway (or fraudulent) usage before the period ends."""
    threshold = usage_limit(terms.usage_threshold, unbilled.charged.code)
    return threshold is not None and unbilled.total >= threshold


def _credit(description: str, amount: Money, period: Period) -> InvoiceLine:
    return line(LineKind.USAGE, description, -amount, period=period)


def marginal_charge(
    terms: BillingTerms,
    currency: str,
    period: Period,
    quantities: Mapping[str, Decimal],
    metric: str,
    more: Decimal,
) -> Money:
    """What ``more`` of ``metric`` would add to the period's charges on top of ``quantities``:
    the price of the next units at the tier they fall in, after allowances and the cap."""
    before = rate_period(terms, currency, period, quantities).charged
    grown = dict(quantities)
    grown[metric] = grown.get(metric, Decimal(0)) + more
    return rate_period(terms, currency, period, grown).charged - before
