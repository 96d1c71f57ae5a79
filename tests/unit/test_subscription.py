from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from iptv_billing.domain.catalog import AddOnKind, AddOnTerms, BillingTerms
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.invoice import LineKind, invoice_totals
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit
from iptv_billing.domain.proration import ProrationMode
from iptv_billing.domain.subscription import (
    ACCESS_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    SubscriptionEvent,
    SubscriptionState,
    SubscriptionStatus,
    apply_events,
    cancel,
    change_plan,
    next_status,
    pause,
    resume,
    start,
)

S, E = SubscriptionStatus, SubscriptionEvent
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2024, 4, 1, 10, tzinfo=BERLIN)
SCREEN = AddOnTerms(
    "screen", "Extra screen", AddOnKind.EXTRA_CONNECTION, (Money.of("2", "EUR"),), 1
)


def eur(text: str) -> Money:
    return Money.of(text, "EUR")


def terms(**changes: Any) -> BillingTerms:
    fields: dict[str, Any] = {
        "plan_code": "basic",
        "version": 1,
        "name": "Basic",
        "interval": BillingInterval(PeriodUnit.MONTH),
        "prices": (eur("30"),),
        "setup_fees": (eur("5"),),
        "effective_from": datetime(2024, 1, 1, tzinfo=UTC),
        "trial_days": 14,
        "addons": (SCREEN,),
    }
    fields.update(changes)
    return BillingTerms(**fields)


BASIC = terms()
PREMIUM = terms(plan_code="premium", name="Premium", prices=(eur("60"),))
YEARLY = terms(plan_code="yearly", interval=BillingInterval(PeriodUnit.YEAR))


def active(addons: tuple[tuple[str, int], ...] = ()) -> SubscriptionState:
    return start(BASIC, "EUR", NOW, BERLIN, trial=False, addons=addons).state


def kinds_and_amounts(lines: Any) -> list[tuple[LineKind, Money]]:
    return [(item.kind, item.amount) for item in lines]


def test_transition_table_and_terminal_states() -> None:
    assert TRANSITIONS[(S.TRIALING, E.TRIAL_CONVERTED)] is S.ACTIVE
    assert not any(status in TERMINAL_STATUSES for status, _ in TRANSITIONS)
    assert {S.TRIALING, S.ACTIVE, S.PAST_DUE} == ACCESS_STATUSES
    with pytest.raises(Conflict) as caught:
        next_status(S.CANCELLED, E.SETTLED)
    assert caught.value.code == "subscription.illegal_transition"
    assert "cancelled" in caught.value.message
    assert "settled" in caught.value.message


def test_start_with_trial_bills_nothing() -> None:
    result = start(BASIC, "EUR", NOW, BERLIN, addons=[("screen", 2)])
    state = result.state
    assert result.lines == ()
    assert state.status is S.TRIALING
    assert state.trial_end == datetime(2024, 4, 15, 10, tzinfo=BERLIN)
    assert state.anchor == state.trial_end
    assert state.period_index == -1
    assert state.current_period.start == NOW
    assert state.addons == (("screen", 2),)


def test_start_without_trial_bills_period_zero_with_setup_fee_and_addons() -> None:
    result = start(BASIC, "EUR", NOW, BERLIN, trial=False, addons=[("screen", 2)])
    assert result.state.status is S.ACTIVE
    assert result.state.current_period.end == datetime(2024, 5, 1, 10, tzinfo=BERLIN)
    assert kinds_and_amounts(result.lines) == [
        (LineKind.SUBSCRIPTION, eur("30")),
        (LineKind.SETUP_FEE, eur("5")),
        (LineKind.ADDON, eur("4")),
    ]


def test_start_refusals() -> None:
    with pytest.raises(InvalidInput) as caught:
        start(BASIC, "USD", NOW, BERLIN)
    assert caught.value.code == "terms.currency_not_offered"
    with pytest.raises(InvalidInput) as caught:
        start(BASIC, "EUR", NOW, BERLIN, addons=[("nope", 1)])
    assert caught.value.code == "terms.unknown_addon"
    with pytest.raises(InvalidInput) as caught:
        start(BASIC, "EUR", NOW.replace(tzinfo=None), BERLIN)
    assert caught.value.code == "time.naive_datetime"


def test_change_plan_prorate_now_same_interval() -> None:
    state = active(addons=(("screen", 1),))
    halfway = datetime(2024, 4, 16, 10, tzinfo=BERLIN)
    result = change_plan(state, BASIC, PREMIUM, ProrationMode.PRORATE_NOW, halfway, BERLIN)
    assert result.state.terms_hash == PREMIUM.terms_hash
    assert result.state.current_period == state.current_period
    assert kinds_and_amounts(result.lines) == [
        (LineKind.PRORATION_CREDIT, eur("-15")),
        (LineKind.PRORATION_CHARGE, eur("30")),
    ]


def test_change_plan_prorate_now_new_interval_restarts_the_period() -> None:
    state = active()
    halfway = datetime(2024, 4, 16, 10, tzinfo=BERLIN)
    result = change_plan(state, BASIC, YEARLY, ProrationMode.PRORATE_NOW, halfway, BERLIN)
    new = result.state
    assert (new.anchor, new.period_index) == (halfway.astimezone(UTC), 0)
    assert new.current_period.end == datetime(2025, 4, 16, 10, tzinfo=BERLIN)
    assert kinds_and_amounts(result.lines) == [
        (LineKind.PRORATION_CREDIT, eur("-15")),
        (LineKind.SUBSCRIPTION, eur("30")),
    ]


def test_change_plan_other_modes() -> None:
    state = active()
    later = NOW + timedelta(days=3)
    pending = change_plan(state, BASIC, PREMIUM, ProrationMode.AT_PERIOD_END, later, BERLIN)
    assert pending.state.pending_terms_hash == PREMIUM.terms_hash
    assert pending.state.terms_hash == BASIC.terms_hash
    assert pending.lines == ()
    switched = change_plan(state, BASIC, YEARLY, ProrationMode.NONE, later, BERLIN)
    assert switched.lines == ()
    assert switched.state.terms_hash == YEARLY.terms_hash
    # The paid month runs out; the yearly grid starts where it ends.
    assert switched.state.anchor == state.current_period.end
    assert switched.state.period_index == -1


def test_change_plan_during_trial_applies_at_once() -> None:
    trial = start(BASIC, "EUR", NOW, BERLIN).state
    result = change_plan(trial, BASIC, PREMIUM, ProrationMode.AT_PERIOD_END, NOW, BERLIN)
    assert result.lines == ()
    assert result.state.terms_hash == PREMIUM.terms_hash
    assert result.state.pending_terms_hash is None
    assert result.state.trial_end == trial.trial_end


def test_change_plan_refusals() -> None:
    state = active(addons=(("screen", 1),))
    with pytest.raises(Conflict) as caught:
        change_plan(state, BASIC, BASIC, ProrationMode.NONE, NOW, BERLIN)
    assert caught.value.code == "subscription.same_terms"
    with pytest.raises(Conflict) as caught:
        change_plan(state, PREMIUM, BASIC, ProrationMode.NONE, NOW, BERLIN)
    assert caught.value.code == "subscription.terms_mismatch"
    usd_only = terms(plan_code="usd", prices=(Money.of("1", "USD"),), setup_fees=(), addons=())
    with pytest.raises(InvalidInput) as invalid:
        change_plan(state, BASIC, usd_only, ProrationMode.NONE, NOW, BERLIN)
    assert invalid.value.code == "terms.currency_not_offered"
    paused = pause(state, NOW).state
    with pytest.raises(Conflict) as caught:
        change_plan(paused, BASIC, PREMIUM, ProrationMode.NONE, NOW, BERLIN)
    assert caught.value.code == "subscription.not_changeable"


def test_pause_and_resume_credit_the_paused_time_and_bill_a_new_period() -> None:
    state = active()
    paused_at = datetime(2024, 4, 16, 10, tzinfo=BERLIN)
    paused = pause(state, paused_at)
    assert paused.state.status is S.PAUSED
    assert paused.events == (E.PAUSED,)
    resumed_at = datetime(2024, 6, 3, 8, tzinfo=BERLIN)
    result = resume(paused.state, BASIC, resumed_at, BERLIN)
    assert result.state.status is S.ACTIVE
    assert result.state.anchor == resumed_at
    assert result.state.current_period.start == resumed_at
    assert result.state.paused_at is None
    assert kinds_and_amounts(result.lines) == [
        (LineKind.PRORATION_CREDIT, eur("-15")),
        (LineKind.SUBSCRIPTION, eur("30")),
    ]


def test_resume_of_a_paused_trial_converts_it() -> None:
    trial = start(BASIC, "EUR", NOW, BERLIN).state
    paused = pause(trial, NOW + timedelta(days=2)).state
    resumed_at = NOW + timedelta(days=5)
    result = resume(paused, BASIC, resumed_at, BERLIN)
    assert invoice_totals(result.lines, "EUR").total == eur("35")  # plan + setup, no credit
    assert result.state.trial_end == resumed_at
    assert not result.state.in_trial_period


def test_cancel() -> None:
    state = active()
    later = NOW + timedelta(days=3)
    flagged = cancel(state, later, at_period_end=True)
    assert flagged.state.cancel_at_period_end
    assert flagged.state.status is S.ACTIVE
    now_cancelled = cancel(state, later, at_period_end=False)
    assert now_cancelled.state.status is S.CANCELLED
    assert now_cancelled.state.ended_at == later
    assert now_cancelled.lines == ()
    with pytest.raises(Conflict):
        cancel(now_cancelled.state, later, at_period_end=False)
    with pytest.raises(Conflict) as caught:
        cancel(pause(state, later).state, later, at_period_end=True)
    assert caught.value.code == "subscription.no_period_end"


def test_apply_events() -> None:
    state = active()
    late = NOW + timedelta(days=20)
    suspended = apply_events(state, (E.BECAME_PAST_DUE, E.DUNNING_EXHAUSTED), late).state
    assert suspended.status is S.SUSPENDED
    settled_late = NOW + timedelta(days=70)
    settled = apply_events(suspended, (E.SETTLED,), settled_late).state
    assert settled.status is S.ACTIVE
    # Months spent suspended are not billed: the next period starts at the settlement.
    assert settled.current_period.end == settled_late
    assert settled.anchor == settled_late
    expired = apply_events(suspended, (E.EXPIRED,), settled_late).state
    assert (expired.status, expired.ended_at) == (S.EXPIRED, settled_late)
    with pytest.raises(InvalidInput):
        apply_events(state, (E.PAUSED,), late)
