"""Subscription lifecycle: a status machine and pure functions from (state, terms, time) to a
new state plus the invoice lines to bill at once.

Grid invariant kept by every function here and in ``billing``: the current period ends where
period ``period_index + 1`` of the anchor's grid starts. Index -1 means "the period before the
grid": a trial, or the tail of a period billed under an earlier interval or anchor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.invoice import InvoiceLine, LineKind, line
from iptv_billing.domain.periods import Period, add_days, period_at, require_aware
from iptv_billing.domain.proration import ProrationMode, prorate_change, split_amount

MAX_ADDON_QUANTITY = 100


class SubscriptionStatus(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class SubscriptionEvent(StrEnum):
    TRIAL_CONVERTED = "trial_converted"
    BECAME_PAST_DUE = "became_past_due"
    DUNNING_EXHAUSTED = "dunning_exhausted"
    SETTLED = "settled"
    PAUSED = "paused"
    RESUMED = "resumed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


_S, _E = SubscriptionStatus, SubscriptionEvent
TRANSITIONS: Mapping[tuple[SubscriptionStatus, SubscriptionEvent], SubscriptionStatus] = (
    MappingProxyType(
        {
            (_S.TRIALING, _E.TRIAL_CONVERTED): _S.ACTIVE,
            (_S.ACTIVE, _E.BECAME_PAST_DUE): _S.PAST_DUE,
            (_S.PAST_DUE, _E.DUNNING_EXHAUSTED): _S.SUSPENDED,
            (_S.PAST_DUE, _E.SETTLED): _S.ACTIVE,
            (_S.SUSPENDED, _E.SETTLED): _S.ACTIVE,
            (_S.ACTIVE, _E.PAUSED): _S.PAUSED,
            (_S.TRIALING, _E.PAUSED): _S.PAUSED,
            (_S.PAUSED, _E.RESUMED): _S.ACTIVE,
            (_S.SUSPENDED, _E.EXPIRED): _S.EXPIRED,
            (_S.TRIALING, _E.EXPIRED): _S.EXPIRED,
            **{
                (s, _E.CANCELLED): _S.CANCELLED
                for s in (_S.TRIALING, _S.ACTIVE, _S.PAST_DUE, _S.PAUSED, _S.SUSPENDED)
            },
        }
    )
)
TERMINAL_STATUSES = frozenset({_S.CANCELLED, _S.EXPIRED})
ACCESS_STATUSES = frozenset({_S.TRIALING, _S.ACTIVE, _S.PAST_DUE})  # may watch
# Statuses whose period runs and renews; plan changes and cancel-at-period-end need one.
RUNNING_STATUSES = frozenset({_S.TRIALING, _S.ACTIVE, _S.PAST_DUE})
_DUNNING_EVENTS = frozenset({_E.BECAME_PAST_DUE, _E.DUNNING_EXHAUSTED, _E.SETTLED, _E.EXPIRED})


def next_status(status: SubscriptionStatus, event: SubscriptionEvent) -> SubscriptionStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise Conflict(
            "subscription.illegal_transition",
            f"a {status} subscription cannot be {event}",
            status=str(status),
            event=str(event),
        ) from None


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    status: SubscriptionStatus
    currency: str
    terms_hash: str
    anchor: datetime
    period_index: int
    current_period: Period
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    pending_terms_hash: str | None = None
    addons: tuple[tuple[str, int], ...] = ()  # (add-on code, quantity), sorted by code
    paused_at: datetime | None = None
    ended_at: datetime | None = None

    def __post_init__(self) -> None:
        # Cheap checks only: renewals build one of these per subscription per run.
        if not isinstance(self.status, SubscriptionStatus):
            raise InvalidInput("subscription.invalid_state", f"bad status: {self.status!r}")
        for moment in (self.anchor, self.trial_end, self.paused_at, self.ended_at):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInput("time.naive_datetime", "subscription times must be aware")

    @property
    def in_trial_period(self) -> bool:
        """The current period is the trial: it has not been converted (or cut short) yet."""
        return self.trial_end is not None and self.current_period.end == self.trial_end


@dataclass(frozen=True, slots=True)
class LifecycleResult:
    state: SubscriptionState
    lines: tuple[InvoiceLine, ...]  # to invoice now; may be empty
    events: tuple[SubscriptionEvent, ...]


# -- lines -------------------------------------------------------------------------------------
def period_lines(
    terms: BillingTerms,
    currency_code: str,
    addons: tuple[tuple[str, int], ...],
    period: Period,
    *,
    setup_fee: bool = False,
) -> tuple[InvoiceLine, ...]:
    """The lines billing one whole period: the plan, each add-on, and the setup fee if due."""
    lines = [line(LineKind.SUBSCRIPTION, terms.name, terms.price_in(currency_code), 1, period)]
    if setup_fee:
        fee = terms.setup_fee_in(currency_code)
        if not fee.is_zero():
            lines.append(line(LineKind.SETUP_FEE, f"{terms.name}: setup fee", fee))
    for code, quantity in addons:
        addon = terms.addon(code)
        price = addon.price_in(currency_code)
        lines.append(line(LineKind.ADDON, addon.name, price, quantity, period))
    return tuple(lines)


def _unused_credit_lines(
    terms: BillingTerms, state: SubscriptionState, at: datetime
) -> list[InvoiceLine]:
    """Credits for the part of the current (billed) period after ``at``: plan and add-ons."""
    period = state.current_period
    if at >= period.end:
        return []
    rest = Period(max(at, period.start), period.end)
    priced = [(terms.name, terms.price_in(state.currency), 1)]
    for code, quantity in state.addons:
        addon = terms.addon(code)
        priced.append((addon.name, addon.price_in(state.currency), quantity))
    credits = []
    for name, price, quantity in priced:
        _, unused = split_amount(price, period, at)
        if not unused.is_zero():
            credits.append(
                line(LineKind.PRORATION_CREDIT, f"{name}: unused time", -unused, quantity, rest)
            )
    return credits


def normalise_addons(
    terms: BillingTerms, currency_code: str, addons: Iterable[tuple[str, int]]
) -> tuple[tuple[str, int], ...]:
    """Validated ``(code, quantity)`` pairs sorted by code; each must be sold in the currency."""
    result: dict[str, int] = {}
    for code, quantity in addons:
        terms.addon(code).price_in(currency_code)
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise InvalidInput("subscription.invalid_addon_quantity", "quantity is an integer")
        if not 1 <= quantity <= MAX_ADDON_QUANTITY:
            raise InvalidInput(
                "subscription.invalid_addon_quantity", f"quantity is 1..{MAX_ADDON_QUANTITY}"
            )
        if code in result:
            raise InvalidInput("subscription.duplicate_addon", f"add-on {code} listed twice")
        result[code] = quantity
    return tuple(sorted(result.items()))


def require_terms(state: SubscriptionState, terms: BillingTerms) -> None:
    if terms.terms_hash != state.terms_hash:
        raise Conflict(
            "subscription.terms_mismatch",
            "these are not the terms the subscription is billed under",
            expected=state.terms_hash,
            got=terms.terms_hash,
        )


# -- lifecycle ---------------------------------------------------------------------------------
def require_changeable(state: SubscriptionState, terms: BillingTerms, now: datetime) -> datetime:
    """What every change of a running subscription checks first; returns ``now`` checked."""
    now = require_aware(now, "now")
    require_terms(state, terms)
    if state.status not in RUNNING_STATUSES:
        raise Conflict(
            "subscription.not_changeable", f"a {state.status} subscription cannot change"
        )
    return now


def start(
    terms: BillingTerms,
    currency: str,
    now: datetime,
    tz: ZoneInfo,
    trial: bool = True,
    addons: Iterable[tuple[str, int]] = (),
) -> LifecycleResult:
    """A new subscription: a trial (billed at conversion) or period 0 billed at once."""
    now = require_aware(now, "now")
    terms.price_in(currency)  # refuses a currency the plan is not sold in
    held = normalise_addons(terms, currency, addons)
    if trial and terms.trial_days > 0:
        trial_end = add_days(now, terms.trial_days, tz)
        state = SubscriptionState(
            _S.TRIALING,
            currency,
            terms.terms_hash,
            anchor=trial_end,
            period_index=-1,
            current_period=Period(now, trial_end),
            trial_end=trial_end,
            addons=held,
        )
        return LifecycleResult(state, (), ())
    period = period_at(now, terms.interval, 0, tz)
    state = SubscriptionState(_S.ACTIVE, currency, terms.terms_hash, now, 0, period, addons=held)
    return LifecycleResult(state, period_lines(terms, currency, held, period, setup_fee=True), ())


def change_plan(
    state: SubscriptionState,
    old_terms: BillingTerms,
    new_terms: BillingTerms,
    mode: ProrationMode,
    now: datetime,
    tz: ZoneInfo,
) -> LifecycleResult:
    """Move to other terms now (with or without proration) or at the end of the period."""
    now = require_changeable(state, old_terms, now)
    if new_terms.terms_hash == state.terms_hash:
        raise Conflict("subscription.same_terms", "the subscription already has these terms")
    new_terms.price_in(state.currency)
    normalise_addons(new_terms, state.currency, state.addons)  # held add-ons must stay on sale
    if state.status is _S.TRIALING:  # nothing billed yet: just switch (the trial end stays)
        return _result(replace(state, terms_hash=new_terms.terms_hash, pending_terms_hash=None))
    if mode is ProrationMode.AT_PERIOD_END:
        return _result(replace(state, pending_terms_hash=new_terms.terms_hash))
    if mode is ProrationMode.NONE:
        return _result(_switch_terms(state, old_terms, new_terms))
    if now >= state.current_period.end:
        raise Conflict("subscription.renewal_due", "renew the subscription before prorating")
    if old_terms.interval != new_terms.interval:
        return _restart(state, old_terms, new_terms, now, tz)
    return _prorate_now(state, old_terms, new_terms, now)


def _switch_terms(
    state: SubscriptionState, old_terms: BillingTerms, new_terms: BillingTerms
) -> SubscriptionState:
    """New terms from the end of the current period; a new interval starts a new grid there."""
    if old_terms.interval == new_terms.interval:
        return replace(state, terms_hash=new_terms.terms_hash, pending_terms_hash=None)
    return replace(
        state,
        terms_hash=new_terms.terms_hash,
        pending_terms_hash=None,
        anchor=state.current_period.end,
        period_index=-1,
    )


def _prorate_now(
    state: SubscriptionState, old_terms: BillingTerms, new_terms: BillingTerms, now: datetime
) -> LifecycleResult:
    # Add-ons keep their price: only the plan's own price is prorated.
    period = state.current_period
    rest = Period(max(now, period.start), period.end)
    old_price, new_price = old_terms.price_in(state.currency), new_terms.price_in(state.currency)
    credit, charge = prorate_change(old_price, new_price, period, now)
    lines = []
    if not credit.is_zero():
        text = f"{old_terms.name}: unused time"
        lines.append(line(LineKind.PRORATION_CREDIT, text, credit, 1, rest))
    if not charge.is_zero():
        text = f"{new_terms.name}: remaining time"
        lines.append(line(LineKind.PRORATION_CHARGE, text, charge, 1, rest))
    new_state = replace(state, terms_hash=new_terms.terms_hash, pending_terms_hash=None)
    return LifecycleResult(new_state, tuple(lines), ())


def _restart(
    state: SubscriptionState,
    old_terms: BillingTerms,
    new_terms: BillingTerms,
    now: datetime,
    tz: ZoneInfo,
) -> LifecycleResult:
    """A new interval cannot share the old grid: credit what is unused, bill a period from now."""
    credits = _unused_credit_lines(old_terms, state, now)
    period = period_at(now, new_terms.interval, 0, tz)
    new_state = replace(
        state,
        terms_hash=new_terms.terms_hash,
        pending_terms_hash=None,
        anchor=now,
        period_index=0,
        current_period=period,
    )
    charges = period_lines(new_terms, state.currency, state.addons, period)
    return LifecycleResult(new_state, (*credits, *charges), ())


def pause(state: SubscriptionState, now: datetime) -> LifecycleResult:
    now = require_aware(now, "now")
    status = next_status(state.status, _E.PAUSED)
    return LifecycleResult(replace(state, status=status, paused_at=now), (), (_E.PAUSED,))


def resume(
    state: SubscriptionState, terms: BillingTerms, now: datetime, tz: ZoneInfo
) -> LifecycleResult:
    """Active again from ``now`` on a new grid, its first period billed in full.

    The paused period's time after the pause is credited, so no time is billed twice; a trial
    cut short by the pause is converted here, setup fee included.
    """
    now = require_aware(now, "now")
    require_terms(state, terms)
    status = next_status(state.status, _E.RESUMED)
    from_trial = state.in_trial_period
    paused_at = state.paused_at if state.paused_at is not None else now
    credits = [] if from_trial else _unused_credit_lines(terms, state, paused_at)
    period = period_at(now, terms.interval, 0, tz)
    trial_end = state.trial_end
    if from_trial and trial_end is not None and now < trial_end:
        trial_end = now  # the trial ended early, here
    new_state = replace(
        state,
        status=status,
        anchor=now,
        period_index=0,
        current_period=period,
        trial_end=trial_end,
        paused_at=None,
    )
    charges = period_lines(terms, state.currency, state.addons, period, setup_fee=from_trial)
    return LifecycleResult(new_state, (*credits, *charges), (_E.RESUMED,))


def cancel(state: SubscriptionState, now: datetime, at_period_end: bool) -> LifecycleResult:
    """Cancel now (no refund here: refunds are explicit) or when the current period ends."""
    now = require_aware(now, "now")
    status = next_status(state.status, _E.CANCELLED)
    if at_period_end:
        if state.status not in RUNNING_STATUSES:
            raise Conflict(
                "subscription.no_period_end", f"a {state.status} subscription has no period end"
            )
        return _result(replace(state, cancel_at_period_end=True))
    return LifecycleResult(replace(state, status=status, ended_at=now), (), (_E.CANCELLED,))


def apply_events(
    state: SubscriptionState, events: Iterable[SubscriptionEvent], now: datetime
) -> LifecycleResult:
    """Apply dunning events (past due, suspended, settled, expired) in order."""
    now = require_aware(now, "now")
    applied: list[SubscriptionEvent] = []
    for event in events:
        if event not in _DUNNING_EVENTS:
            raise InvalidInput(
                "subscription.use_lifecycle_function", f"{event} has its own function"
            )
        state = _apply_one(state, event, now)
        applied.append(event)
    return LifecycleResult(state, (), tuple(applied))


def _apply_one(
    state: SubscriptionState, event: SubscriptionEvent, now: datetime
) -> SubscriptionState:
    status = next_status(state.status, event)
    if status in TERMINAL_STATUSES:
        return replace(state, status=status, ended_at=now)
    if state.status is _S.SUSPENDED and state.current_period.end < now:
        # Periods that ended while suspended are not billed: the next one starts now.
        gap = Period(state.current_period.end, now)
        return replace(state, status=status, anchor=now, period_index=-1, current_period=gap)
    return replace(state, status=status)


def _result(state: SubscriptionState) -> LifecycleResult:
    return LifecycleResult(state, (), ())
