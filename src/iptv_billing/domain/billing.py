"""The renewal engine and dunning: what a billing run decides for one subscription.

``renew`` runs for every due subscription in every billing run, so it does little work when
nothing is due and, when something is, builds the new state once, however many periods it
catches up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.invoice import InvoiceLine
from iptv_billing.domain.periods import Period, add_days, period_start
from iptv_billing.domain.subscription import (
    SubscriptionEvent,
    SubscriptionState,
    SubscriptionStatus,
    period_lines,
    require_terms,
)

_S, _E = SubscriptionStatus, SubscriptionEvent
# A bound on one call's catch-up (a daily plan ~3 years behind); the caller calls again.
DEFAULT_MAX_PERIODS = 1000
_RENEWING = frozenset({_S.TRIALING, _S.ACTIVE, _S.PAST_DUE})
# Dunning severity by status, and the event that climbs each step.
_DUNNING_LEVEL = {_S.ACTIVE: 0, _S.PAST_DUE: 1, _S.SUSPENDED: 2}
_DUNNING_LADDER = (_E.BECAME_PAST_DUE, _E.DUNNING_EXHAUSTED, _E.EXPIRED)


@dataclass(frozen=True, slots=True)
class PlannedInvoice:
    period: Period
    lines: tuple[InvoiceLine, ...]
    terms_hash: str = ""  # the terms these lines were priced under


@dataclass(frozen=True, slots=True)
class RenewalResult:
    state: SubscriptionState
    invoices: tuple[PlannedInvoice, ...]  # one per period, in order
    events: tuple[SubscriptionEvent, ...]


def renew(
    state: SubscriptionState,
    terms: BillingTerms,
    next_terms: BillingTerms | None,
    tz: ZoneInfo,
    now: datetime,
    max_periods: int = DEFAULT_MAX_PERIODS,
) -> RenewalResult:
    """Convert an ended trial and bill every period that has started by ``now``.

    ``next_terms`` must be the pending terms when a plan change is due at a period end.
    At most ``max_periods`` periods are planned per call; the state says where it stopped.
    """
    if now.tzinfo is None:
        raise InvalidInput("time.naive_datetime", "now must be timezone-aware")
    if state.status not in _RENEWING or state.current_period.end > now:
        return RenewalResult(state, (), ())
    if isinstance(max_periods, bool) or not isinstance(max_periods, int) or max_periods < 1:
        raise InvalidInput("billing.invalid_max_periods", "max_periods must be >= 1")
    require_terms(state, terms)
    return _catch_up(state, terms, next_terms, tz, now, max_periods)


def _catch_up(
    state: SubscriptionState,
    terms: BillingTerms,
    next_terms: BillingTerms | None,
    tz: ZoneInfo,
    now: datetime,
    max_periods: int,
) -> RenewalResult:
    status, anchor, index = state.status, state.anchor, state.period_index
    period, pending, ended_at = state.current_period, state.pending_terms_hash, state.ended_at
    invoices: list[PlannedInvoice] = []
    events: list[SubscriptionEvent] = []
    while period.end <= now and len(invoices) < max_periods:
        if state.cancel_at_period_end:
            status, ended_at = _S.CANCELLED, period.end
            events.append(_E.CANCELLED)
            break
        setup_fee = status is _S.TRIALING
        if setup_fee:
            status = _S.ACTIVE
            events.append(_E.TRIAL_CONVERTED)
        if pending is not None:
            terms, anchor, index = _pending_terms(terms, next_terms, pending, anchor, index, period)
            pending = None
        index += 1
        # The next period starts where this one ends (the grid invariant): one zone lookup.
        period = Period(period.end, period_start(anchor, terms.interval, index + 1, tz))
        lines = period_lines(terms, state.currency, state.addons, period, setup_fee=setup_fee)
        invoices.append(PlannedInvoice(period, lines, terms.terms_hash))
    new_state = _progressed(
        state, status, terms.terms_hash, anchor, index, period, pending, ended_at
    )
    return RenewalResult(new_state, tuple(invoices), tuple(events))


def _progressed(
    state: SubscriptionState,
    status: SubscriptionStatus,
    terms_hash: str,
    anchor: datetime,
    index: int,
    period: Period,
    pending: str | None,
    ended_at: datetime | None,
) -> SubscriptionState:
    # Built directly: dataclasses.replace costs more than the rest of a renewal's bookkeeping.
    return SubscriptionState(
        status=status,
        currency=state.currency,
        terms_hash=terms_hash,
        anchor=anchor,
        period_index=index,
        current_period=period,
        trial_end=state.trial_end,
        cancel_at_period_end=state.cancel_at_period_end,
        pending_terms_hash=pending,
        addons=state.addons,
        paused_at=state.paused_at,
        ended_at=ended_at,
    )


def _pending_terms(
    terms: BillingTerms,
    next_terms: BillingTerms | None,
    pending: str,
    anchor: datetime,
    index: int,
    period: Period,
) -> tuple[BillingTerms, datetime, int]:
    """Switch to the pending terms at ``period``'s end; a new interval re-anchors there."""
    if next_terms is None or next_terms.terms_hash != pending:
        raise Conflict(
            "billing.pending_terms_required",
            "a plan change is due: pass the pending terms as next_terms",
            pending=pending,
        )
    if next_terms.interval != terms.interval:
        return next_terms, period.end, -1
    return next_terms, anchor, index


def due_at(finalized_at: datetime, terms: BillingTerms, tz: ZoneInfo) -> datetime:
    """When an invoice finalized at ``finalized_at`` falls due."""
    return add_days(finalized_at, terms.payment_due_days, tz)


def dunning_events(
    status: SubscriptionStatus,
    oldest_unpaid_due_at: datetime | None,
    terms: BillingTerms,
    tz: ZoneInfo,
    now: datetime,
) -> tuple[SubscriptionEvent, ...]:
    """The events, in order, that bring ``status`` to where the oldest unpaid invoice puts it.

    An active subscription climbs through past_due before suspension; one whose overdue debt
    is paid (or no longer past its grace) settles back to active first.
    """
    current = _DUNNING_LEVEL.get(status)
    if current is None:  # trials, pauses and ended subscriptions are not dunned
        return ()
    target = _dunning_level(oldest_unpaid_due_at, terms, tz, now)
    events: list[SubscriptionEvent] = []
    if target < current:
        events.append(_E.SETTLED)
        current = 0
    events.extend(_DUNNING_LADDER[current:target])
    return tuple(events)


def dunning_target(
    status: SubscriptionStatus,
    oldest_unpaid_due_at: datetime | None,
    terms: BillingTerms,
    tz: ZoneInfo,
    now: datetime,
) -> SubscriptionEvent | None:
    """The next single dunning step (the first of ``dunning_events``), or None."""
    events = dunning_events(status, oldest_unpaid_due_at, terms, tz, now)
    return events[0] if events else None


def _dunning_level(due: datetime | None, terms: BillingTerms, tz: ZoneInfo, now: datetime) -> int:
    """0 in good standing, 1 past due, 2 suspended, 3 expired."""
    if due is None:
        return 0
    level = 0
    for days in (terms.grace_days, terms.suspend_after_days, terms.expire_after_days):
        if now < add_days(due, days, tz):
            break
        level += 1
    return level
