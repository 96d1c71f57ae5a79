from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from iptv_billing.domain.billing import (
    PlannedInvoice,
    due_at,
    dunning_events,
    dunning_target,
    renew,
)
from iptv_billing.domain.catalog import AddOnKind, AddOnTerms, BillingTerms
from iptv_billing.domain.errors import Conflict
from iptv_billing.domain.invoice import LineKind
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit
from iptv_billing.domain.proration import ProrationMode
from iptv_billing.domain.subscription import (
    SubscriptionEvent,
    SubscriptionState,
    SubscriptionStatus,
    cancel,
    change_plan,
    pause,
    start,
)

S, E = SubscriptionStatus, SubscriptionEvent
BERLIN = ZoneInfo("Europe/Berlin")
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
        "effective_from": datetime(2020, 1, 1, tzinfo=UTC),
        "trial_days": 14,
        "addons": (SCREEN,),
        "payment_due_days": 7,
    }
    fields.update(changes)
    return BillingTerms(**fields)


BASIC = terms()
PREMIUM = terms(plan_code="premium", name="Premium", prices=(eur("60"),))
YEARLY = terms(plan_code="yearly", interval=BillingInterval(PeriodUnit.YEAR))


def assert_contiguous(invoices: tuple[PlannedInvoice, ...], first_start: datetime) -> None:
    expected = first_start
    for invoice in invoices:
        assert invoice.period.start == expected
        assert invoice.period.start < invoice.period.end
        for item in invoice.lines:
            assert item.period is None or item.period == invoice.period
        expected = invoice.period.end


def test_catch_up_across_a_leap_year_in_berlin() -> None:
    anchor = datetime(2023, 11, 30, 10, tzinfo=BERLIN)
    state = start(BASIC, "EUR", anchor, BERLIN, trial=False, addons=[("screen", 1)]).state
    now = datetime(2025, 3, 15, tzinfo=BERLIN)
    result = renew(state, BASIC, None, BERLIN, now)
    assert len(result.invoices) == 15  # periods 1..15 have started by now
    assert_contiguous(result.invoices, state.current_period.end)
    local_days = [i.period.start.astimezone(BERLIN) for i in result.invoices]
    assert {(d.hour, d.minute) for d in local_days} == {(10, 0)}  # wall clock kept over DST
    assert local_days[2].date().isoformat() == "2024-02-29"
    assert local_days[3].date().isoformat() == "2024-03-30"
    assert local_days[14].date().isoformat() == "2025-02-28"
    for invoice in result.invoices:
        assert [(i.kind, i.amount) for i in invoice.lines] == [
            (LineKind.SUBSCRIPTION, eur("30")),
            (LineKind.ADDON, eur("2")),
        ]
    assert result.state.period_index == 15
    assert now in result.state.current_period
    assert result.events == ()
    # Exactly once: running again at the same moment plans nothing.
    assert renew(result.state, BASIC, None, BERLIN, now).invoices == ()


def test_catch_up_equals_monthly_runs() -> None:
    state = start(BASIC, "EUR", datetime(2023, 1, 31, 23, 30, tzinfo=BERLIN), BERLIN, False).state
    end = datetime(2025, 1, 1, tzinfo=UTC)
    at_once = renew(state, BASIC, None, BERLIN, end)
    step_by_step: list[PlannedInvoice] = []
    moment = state.current_period.start
    while moment < end:
        moment = min(moment + timedelta(days=9), end)
        result = renew(state, BASIC, None, BERLIN, moment)
        step_by_step += result.invoices
        state = result.state
    assert tuple(step_by_step) == at_once.invoices
    assert state == at_once.state


def test_trial_conversion() -> None:
    now = datetime(2024, 3, 20, 12, tzinfo=BERLIN)
    trial = start(BASIC, "EUR", now, BERLIN, addons=[("screen", 2)]).state
    assert trial.trial_end is not None
    early = renew(trial, BASIC, None, BERLIN, trial.trial_end - timedelta(seconds=1))
    assert early.invoices == ()
    assert early.state is trial
    result = renew(trial, BASIC, None, BERLIN, trial.trial_end)
    assert result.events == (E.TRIAL_CONVERTED,)
    assert result.state.status is S.ACTIVE
    assert result.state.period_index == 0
    (invoice,) = result.invoices
    assert invoice.period.start == trial.trial_end
    assert invoice.period.end == datetime(2024, 5, 3, 12, tzinfo=BERLIN)
    assert [(i.kind, i.amount) for i in invoice.lines] == [
        (LineKind.SUBSCRIPTION, eur("30")),
        (LineKind.SETUP_FEE, eur("5")),
        (LineKind.ADDON, eur("4")),
    ]


def test_cancel_at_period_end() -> None:
    state = start(BASIC, "EUR", datetime(2024, 1, 10, tzinfo=UTC), BERLIN, trial=False).state
    flagged = cancel(state, datetime(2024, 1, 20, tzinfo=UTC), at_period_end=True).state
    assert renew(flagged, BASIC, None, BERLIN, datetime(2024, 2, 9, tzinfo=UTC)).invoices == ()
    result = renew(flagged, BASIC, None, BERLIN, datetime(2024, 6, 1, tzinfo=UTC))
    assert result.invoices == ()
    assert result.events == (E.CANCELLED,)
    assert result.state.status is S.CANCELLED
    assert result.state.ended_at == state.current_period.end


def test_cancel_at_the_end_of_a_trial_never_bills() -> None:
    trial = start(BASIC, "EUR", datetime(2024, 1, 10, tzinfo=UTC), BERLIN).state
    flagged = cancel(trial, datetime(2024, 1, 11, tzinfo=UTC), at_period_end=True).state
    result = renew(flagged, BASIC, None, BERLIN, datetime(2024, 3, 1, tzinfo=UTC))
    assert (result.invoices, result.events) == ((), (E.CANCELLED,))
    assert result.state.ended_at == trial.trial_end


def test_pending_plan_change_same_interval() -> None:
    state = start(BASIC, "EUR", datetime(2024, 1, 10, tzinfo=UTC), BERLIN, trial=False).state
    pending = change_plan(
        state,
        BASIC,
        PREMIUM,
        ProrationMode.AT_PERIOD_END,
        datetime(2024, 1, 15, tzinfo=UTC),
        BERLIN,
    ).state
    with pytest.raises(Conflict) as caught:
        renew(pending, BASIC, None, BERLIN, datetime(2024, 2, 15, tzinfo=UTC))
    assert caught.value.code == "billing.pending_terms_required"
    result = renew(pending, BASIC, PREMIUM, BERLIN, datetime(2024, 3, 15, tzinfo=UTC))
    assert [i.lines[0].amount for i in result.invoices] == [eur("60"), eur("60")]
    assert all(i.terms_hash == PREMIUM.terms_hash for i in result.invoices)
    assert result.state.terms_hash == PREMIUM.terms_hash
    assert result.state.pending_terms_hash is None
    assert_contiguous(result.invoices, state.current_period.end)


def test_pending_plan_change_to_a_new_interval_reanchors_at_the_period_end() -> None:
    state = start(BASIC, "EUR", datetime(2024, 1, 10, tzinfo=UTC), BERLIN, trial=False).state
    pending = change_plan(
        state, BASIC, YEARLY, ProrationMode.AT_PERIOD_END, datetime(2024, 1, 15, tzinfo=UTC), BERLIN
    ).state
    result = renew(pending, BASIC, YEARLY, BERLIN, datetime(2025, 3, 1, tzinfo=UTC))
    assert_contiguous(result.invoices, state.current_period.end)
    assert [i.period.duration.days for i in result.invoices] == [366, 365]
    assert result.state.anchor == state.current_period.end
    assert result.state.period_index == 1


def test_nothing_happens_for_other_statuses() -> None:
    state = start(BASIC, "EUR", datetime(2024, 1, 10, tzinfo=UTC), BERLIN, trial=False).state
    later = datetime(2025, 1, 1, tzinfo=UTC)
    for other in (
        pause(state, datetime(2024, 1, 11, tzinfo=UTC)).state,
        cancel(state, datetime(2024, 1, 11, tzinfo=UTC), at_period_end=False).state,
    ):
        result = renew(other, BASIC, None, BERLIN, later)
        assert (result.state, result.invoices, result.events) == (other, (), ())


def test_max_periods_bounds_one_call() -> None:
    daily = terms(plan_code="daily", interval=BillingInterval(PeriodUnit.DAY))
    state = start(daily, "EUR", datetime(2024, 1, 1, tzinfo=UTC), BERLIN, trial=False).state
    now = datetime(2024, 3, 1, tzinfo=UTC)
    first = renew(state, daily, None, BERLIN, now, max_periods=10)
    assert len(first.invoices) == 10
    rest = renew(first.state, daily, None, BERLIN, now)
    assert len(first.invoices) + len(rest.invoices) == 60
    assert_contiguous(first.invoices + rest.invoices, state.current_period.end)


def test_terms_must_match_the_state() -> None:
    state = start(BASIC, "EUR", datetime(2024, 1, 10, tzinfo=UTC), BERLIN, trial=False).state
    with pytest.raises(Conflict) as caught:
        renew(state, PREMIUM, None, BERLIN, datetime(2024, 3, 1, tzinfo=UTC))
    assert caught.value.code == "subscription.terms_mismatch"


# -- dunning -----------------------------------------------------------------------------------
DUE = datetime(2024, 5, 1, 9, tzinfo=BERLIN)  # grace 3, suspend 14, expire 60 days


@pytest.mark.parametrize(
    ("status", "days_after_due", "expected"),
    [
        (S.ACTIVE, 2, ()),
        (S.ACTIVE, 3, (E.BECAME_PAST_DUE,)),
        (S.ACTIVE, 20, (E.BECAME_PAST_DUE, E.DUNNING_EXHAUSTED)),
        (S.ACTIVE, 61, (E.BECAME_PAST_DUE, E.DUNNING_EXHAUSTED, E.EXPIRED)),
        (S.PAST_DUE, 13, ()),
        (S.PAST_DUE, 14, (E.DUNNING_EXHAUSTED,)),
        (S.SUSPENDED, 59, ()),
        (S.SUSPENDED, 60, (E.EXPIRED,)),
        (S.PAST_DUE, 1, (E.SETTLED,)),  # the overdue invoice was paid; a newer one is in grace
        (S.SUSPENDED, 5, (E.SETTLED, E.BECAME_PAST_DUE)),
        (S.TRIALING, 100, ()),
        (S.PAUSED, 100, ()),
        (S.CANCELLED, 100, ()),
    ],
)
def test_dunning_events(
    status: SubscriptionStatus, days_after_due: int, expected: tuple[SubscriptionEvent, ...]
) -> None:
    now = DUE + timedelta(days=days_after_due)
    assert dunning_events(status, DUE, BASIC, BERLIN, now) == expected
    assert dunning_target(status, DUE, BASIC, BERLIN, now) == (expected[0] if expected else None)


def test_dunning_without_unpaid_invoices_settles() -> None:
    now = DUE + timedelta(days=100)
    assert dunning_events(S.PAST_DUE, None, BASIC, BERLIN, now) == (E.SETTLED,)
    assert dunning_events(S.SUSPENDED, None, BASIC, BERLIN, now) == (E.SETTLED,)
    assert dunning_events(S.ACTIVE, None, BASIC, BERLIN, now) == ()


def test_dunning_days_are_calendar_days_in_the_tenant_zone() -> None:
    due = datetime(2024, 3, 28, 12, tzinfo=BERLIN)  # DST starts on the 31st
    assert (
        dunning_events(S.ACTIVE, due, BASIC, BERLIN, datetime(2024, 3, 31, 11, 59, tzinfo=BERLIN))
        == ()
    )
    assert dunning_events(
        S.ACTIVE, due, BASIC, BERLIN, datetime(2024, 3, 31, 12, tzinfo=BERLIN)
    ) == (E.BECAME_PAST_DUE,)


def test_due_at() -> None:
    finalized = datetime(2024, 3, 28, 12, tzinfo=BERLIN)
    assert due_at(finalized, BASIC, BERLIN) == datetime(2024, 4, 4, 12, tzinfo=BERLIN)


def test_state_round_trips_through_renew_unchanged_when_not_due() -> None:
    state: SubscriptionState = start(
        BASIC, "EUR", datetime(2024, 1, 10, tzinfo=UTC), BERLIN, trial=False
    ).state
    assert renew(state, BASIC, None, BERLIN, datetime(2024, 1, 20, tzinfo=UTC)).state is state
