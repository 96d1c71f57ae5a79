"""Buying or dropping add-ons (extra connections, extra packages) in the middle of a period.

With proration, each added unit is charged for the rest of the period and each dropped unit is
credited for it, priced from the subscription's own terms; without, the new quantities simply
apply from the next renewal's invoice on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.invoice import InvoiceLine, LineKind, line
from iptv_billing.domain.periods import Period
from iptv_billing.domain.proration import ProrationMode, split_amount
from iptv_billing.domain.subscription import (
    LifecycleResult,
    SubscriptionState,
    SubscriptionStatus,
    normalise_addons,
    require_changeable,
)


def change_addons(
    state: SubscriptionState,
    terms: BillingTerms,
    addons: Iterable[tuple[str, int]],
    mode: ProrationMode,
    now: datetime,
) -> LifecycleResult:
    """The subscription holding exactly ``addons`` from ``now``; an empty list drops them all."""
    now = require_changeable(state, terms, now)
    wanted = normalise_addons(terms, state.currency, addons)
    if wanted == state.addons:
        raise Conflict("subscription.same_addons", "the subscription already has these add-ons")
    changed = replace(state, addons=wanted)
    if state.status is SubscriptionStatus.TRIALING or mode is ProrationMode.NONE:
        return LifecycleResult(changed, (), ())
    if mode is ProrationMode.AT_PERIOD_END:
        raise InvalidInput(
            "subscription.addons_at_period_end",
            "add-ons change now (prorated or not); use proration none or prorate_now",
        )
    if now >= state.current_period.end:
        raise Conflict("subscription.renewal_due", "renew the subscription before prorating")
    return LifecycleResult(changed, _delta_lines(state, terms, dict(wanted), now), ())


def _delta_lines(
    state: SubscriptionState, terms: BillingTerms, wanted: dict[str, int], now: datetime
) -> tuple[InvoiceLine, ...]:
    period = state.current_period
    rest = Period(max(now, period.start), period.end)
    held = dict(state.addons)
    lines = []
    for code in sorted(set(held) | set(wanted)):
        delta = wanted.get(code, 0) - held.get(code, 0)
        addon = terms.addon(code)
        _, unused = split_amount(addon.price_in(state.currency), period, now)
        if delta == 0 or unused.is_zero():
            continue
        if delta > 0:
            text = f"{addon.name}: remaining time"
            lines.append(line(LineKind.PRORATION_CHARGE, text, unused, delta, rest))
        else:
            text = f"{addon.name}: unused time"
            lines.append(line(LineKind.PRORATION_CREDIT, text, -unused, -delta, rest))
    return tuple(lines)
