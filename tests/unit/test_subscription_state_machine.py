"""A stateful simulation of one subscription: lifecycle calls, renewals, dunning and payments
in random order over random time steps, checking the invariants after every step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from strategies import instants, zones

from iptv_billing.domain.billing import due_at, dunning_events, renew
from iptv_billing.domain.catalog import AddOnKind, AddOnTerms, BillingTerms
from iptv_billing.domain.errors import Conflict
from iptv_billing.domain.invoice import InvoiceLine, LineKind, invoice_totals
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit, period_start
from iptv_billing.domain.proration import ProrationMode
from iptv_billing.domain.subscription import (
    RUNNING_STATUSES,
    TERMINAL_STATUSES,
    LifecycleResult,
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

S = SubscriptionStatus
SCREEN = AddOnTerms("screen", "Screen", AddOnKind.EXTRA_CONNECTION, (Money.of("1.5", "EUR"),), 1)


def _plan(code: str, unit: PeriodUnit, count: int, price: str, trial: int) -> BillingTerms:
    return BillingTerms(
        plan_code=code,
        version=1,
        name=code.title(),
        interval=BillingInterval(unit, count),
        prices=(Money.of(price, "EUR"),),
        setup_fees=(Money.of("3", "EUR"),),
        trial_days=trial,
        addons=(SCREEN,),
        effective_from=datetime(2000, 1, 1, tzinfo=UTC),
        payment_due_days=5,
    )


PLANS = (
    _plan("monthly", PeriodUnit.MONTH, 1, "10", 14),
    _plan("quarterly", PeriodUnit.MONTH, 3, "27", 0),
    _plan("weekly", PeriodUnit.WEEK, 2, "4", 3),
    _plan("yearly", PeriodUnit.YEAR, 1, "99", 30),
)
BY_HASH = {p.terms_hash: p for p in PLANS}
steps = st.integers(min_value=1, max_value=50 * 86_400)  # seconds between actions


class SubscriptionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tz = ZoneInfo("UTC")
        self.now = datetime(2000, 1, 1, tzinfo=UTC)
        self.state: SubscriptionState | None = None
        self.billed_starts: set[datetime] = set()
        self.unpaid_due: list[datetime] = []
        self.actions = 0
        self.ended: SubscriptionStatus | None = None

    # -- helpers -------------------------------------------------------------------------------
    @property
    def sub(self) -> SubscriptionState:
        assert self.state is not None
        return self.state

    @property
    def terms(self) -> BillingTerms:
        return BY_HASH[self.sub.terms_hash]

    def tick(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        self.actions += 1

    def bill(self, lines: tuple[InvoiceLine, ...], terms: BillingTerms) -> None:
        for item in lines:
            if item.kind is LineKind.SUBSCRIPTION:
                assert item.period is not None
                assert item.period.start not in self.billed_starts, "period billed twice"
                self.billed_starts.add(item.period.start)
        if lines and invoice_totals(lines, "EUR").total.minor > 0:
            self.unpaid_due.append(due_at(self.now, terms, self.tz))

    def accept(
        self,
        before: SubscriptionState,
        after: SubscriptionState,
        events: tuple[SubscriptionEvent, ...],
    ) -> None:
        """Each reported event must be a legal step, ending at the new status."""
        status = before.status
        for event in events:
            status = next_status(status, event)
        assert status is after.status
        self.state = after

    # -- rules ---------------------------------------------------------------------------------
    @initialize(
        tz=zones,
        when=instants(2000, 2090),
        plan=st.sampled_from(PLANS),
        trial=st.booleans(),
        screens=st.integers(min_value=0, max_value=2),
    )
    def begin(
        self, tz: ZoneInfo, when: datetime, plan: BillingTerms, trial: bool, screens: int
    ) -> None:
        self.tz, self.now = tz, when
        addons = [("screen", screens)] if screens else []
        result = start(plan, "EUR", when, tz, trial=trial, addons=addons)
        self.state = result.state
        self.bill(result.lines, plan)

    @rule(seconds=steps)
    def run_billing(self, seconds: int) -> None:
        self.tick(seconds)
        before = self.sub
        pending = BY_HASH.get(before.pending_terms_hash or "")
        result = renew(before, self.terms, pending, self.tz, self.now)
        expected_start = before.current_period.end
        for invoice in result.invoices:
            assert invoice.period.start == expected_start, "periods must be contiguous"
            expected_start = invoice.period.end
            self.bill(invoice.lines, BY_HASH[invoice.terms_hash])
        if result.invoices:
            assert result.state.current_period == result.invoices[-1].period
        self.accept(before, result.state, result.events)
        if self.sub.status in RUNNING_STATUSES:
            assert self.sub.current_period.end > self.now, "everything due was billed"
        again = renew(self.sub, self.terms, pending, self.tz, self.now)
        assert again.invoices == ()
        assert again.state == self.sub

    @rule(seconds=steps)
    def run_dunning(self, seconds: int) -> None:
        self.tick(seconds)
        oldest = min(self.unpaid_due, default=None)
        events = dunning_events(self.sub.status, oldest, self.terms, self.tz, self.now)
        result = apply_events(self.sub, events, self.now)
        self.accept(self.sub, result.state, result.events)

    @rule()
    def pay_oldest(self) -> None:
        if self.unpaid_due:
            self.unpaid_due.remove(min(self.unpaid_due))

    @rule()
    def pay_everything(self) -> None:
        self.unpaid_due.clear()

    @rule(seconds=steps)
    def pause_it(self, seconds: int) -> None:
        self.tick(seconds)
        self.attempt(lambda: pause(self.sub, self.now), allowed={S.ACTIVE, S.TRIALING})

    @rule(seconds=steps)
    def resume_it(self, seconds: int) -> None:
        self.tick(seconds)
        terms = self.terms
        if self.attempt(lambda: resume(self.sub, terms, self.now, self.tz), allowed={S.PAUSED}):
            self.bill(self.last_lines, terms)

    @rule(seconds=steps)
    def cancel_at_period_end(self, seconds: int) -> None:
        self.tick(seconds)
        self.attempt(lambda: cancel(self.sub, self.now, True), allowed=set(RUNNING_STATUSES))

    # Late in a run only: an early immediate cancel would end most simulations at once.
    @precondition(lambda self: self.actions >= 20)
    @rule(seconds=steps)
    def cancel_now(self, seconds: int) -> None:
        self.tick(seconds)
        allowed = set(S) - TERMINAL_STATUSES
        self.attempt(lambda: cancel(self.sub, self.now, False), allowed=allowed)

    @rule(seconds=steps, plan=st.sampled_from(PLANS), mode=st.sampled_from(list(ProrationMode)))
    def change(self, seconds: int, plan: BillingTerms, mode: ProrationMode) -> None:
        self.tick(seconds)
        before, old = self.sub, self.terms
        refusal = self.expected_change_refusal(old, plan, mode)
        if refusal is not None:
            with pytest.raises(Conflict) as caught:
                change_plan(before, old, plan, mode, self.now, self.tz)
            assert caught.value.code == refusal
            return
        result = change_plan(before, old, plan, mode, self.now, self.tz)
        self.accept(before, result.state, result.events)
        self.bill(result.lines, plan)
        if before.status is S.TRIALING or mode is not ProrationMode.AT_PERIOD_END:
            assert self.sub.terms_hash == plan.terms_hash
        else:
            assert self.sub.pending_terms_hash == plan.terms_hash

    def expected_change_refusal(
        self, old: BillingTerms, new: BillingTerms, mode: ProrationMode
    ) -> str | None:
        state = self.sub
        if state.status not in RUNNING_STATUSES:
            return "subscription.not_changeable"
        if new is old:
            return "subscription.same_terms"
        renewal_due = state.current_period.end <= self.now
        if state.status is not S.TRIALING and mode is ProrationMode.PRORATE_NOW and renewal_due:
            return "subscription.renewal_due"
        return None

    def attempt(self, call: object, allowed: set[SubscriptionStatus]) -> bool:
        before = self.sub
        try:
            result: LifecycleResult = call()  # type: ignore[operator]
        except Conflict:
            assert before.status not in allowed
            return False
        assert before.status in allowed
        self.accept(before, result.state, result.events)
        self.last_lines = result.lines
        return True

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def grid_invariant(self) -> None:
        if self.state is None:
            return
        state = self.sub
        interval = self.terms.interval
        assert state.current_period.end == period_start(
            state.anchor, interval, state.period_index + 1, self.tz
        )

    @invariant()
    def terminal_states_stay_terminal(self) -> None:
        if self.state is None:
            return
        if self.ended is not None:
            assert self.sub.status is self.ended
            assert self.sub.ended_at is not None
        elif self.sub.status in TERMINAL_STATUSES:
            self.ended = self.sub.status

    @invariant()
    def access_follows_status(self) -> None:
        if self.state is not None and self.sub.status is S.PAUSED:
            assert self.sub.paused_at is not None


SubscriptionMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None
)
TestSubscriptionMachine = SubscriptionMachine.TestCase


def test_events_cover_every_transition_source() -> None:
    # Sanity for the simulation: each non-terminal status can leave by some event.
    from iptv_billing.domain.subscription import TRANSITIONS

    sources = {status for status, _ in TRANSITIONS}
    assert sources == set(S) - TERMINAL_STATUSES
    assert all(isinstance(e, SubscriptionEvent) for _, e in TRANSITIONS)
