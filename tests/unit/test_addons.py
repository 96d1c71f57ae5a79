"""Buying and dropping add-ons mid-period, with explicit proration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.domain.addons import change_addons
from iptv_billing.domain.catalog import AddOnKind, AddOnTerms, BillingTerms
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.invoice import LineKind, invoice_totals
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit
from iptv_billing.domain.proration import ProrationMode
from iptv_billing.domain.subscription import SubscriptionState, SubscriptionStatus, start

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 4, 1, tzinfo=UTC)  # April has 30 days: halfway is exactly 15 days in
SCREEN = AddOnTerms(
    "screen", "Extra screen", AddOnKind.EXTRA_CONNECTION, (Money.of("3.00", "EUR"),), 1
)
SPORTS = AddOnTerms(
    "sports", "Sports pack", AddOnKind.EXTRA_PACKAGE, (Money.of("7.99", "EUR"),), 0, ("sports",)
)
TERMS = BillingTerms(
    plan_code="basic",
    version=1,
    name="Basic",
    interval=BillingInterval(PeriodUnit.MONTH),
    prices=(Money.of("10.00", "EUR"),),
    effective_from=START - timedelta(days=30),
    addons=(SCREEN, SPORTS),
)


def active(addons: tuple[tuple[str, int], ...] = ()) -> SubscriptionState:
    return start(TERMS, "EUR", START, UTC, trial=False, addons=addons).state


def test_adding_a_screen_halfway_charges_half_its_price_per_unit() -> None:
    result = change_addons(
        active(), TERMS, [("screen", 2)], ProrationMode.PRORATE_NOW, START + timedelta(days=15)
    )
    assert result.state.addons == (("screen", 2),)
    (charge,) = result.lines
    assert charge.kind is LineKind.PRORATION_CHARGE
    assert (charge.unit_amount, charge.quantity, charge.amount) == (
        Money.of("1.50", "EUR"),
        2,
        Money.of("3.00", "EUR"),
    )


def test_dropping_credits_the_unused_part_and_mixed_changes_net_out() -> None:
    state = active((("screen", 3), ("sports", 1)))
    at = START + timedelta(days=15)
    result = change_addons(state, TERMS, [("screen", 1)], ProrationMode.PRORATE_NOW, at)
    kinds = {(ln.kind, ln.description, ln.quantity) for ln in result.lines}
    assert kinds == {
        (LineKind.PRORATION_CREDIT, "Extra screen: unused time", 2),
        (LineKind.PRORATION_CREDIT, "Sports pack: unused time", 1),
    }
    assert invoice_totals(result.lines, "EUR").total == Money.of("-6.99", "EUR")  # -3.00 - 3.99(5)


@given(before=st.integers(0, 5), after=st.integers(0, 5), seconds=st.integers(0, 30 * 86400 - 1))
def test_adding_then_removing_at_the_same_instant_nets_to_zero(
    before: int, after: int, seconds: int
) -> None:
    if before == after:
        return
    state = active((("screen", before),) if before else ())
    at = START + timedelta(seconds=seconds)
    wanted = [("screen", after)] if after else []
    there = change_addons(state, TERMS, wanted, ProrationMode.PRORATE_NOW, at)
    back = change_addons(
        there.state, TERMS, [("screen", before)] if before else [], ProrationMode.PRORATE_NOW, at
    )
    net = invoice_totals((*there.lines, *back.lines), "EUR").total
    assert net.is_zero()
    assert back.state.addons == state.addons


def test_without_proration_nothing_is_invoiced_now() -> None:
    result = change_addons(active(), TERMS, [("screen", 1)], ProrationMode.NONE, START)
    assert result.lines == ()
    assert result.state.addons == (("screen", 1),)


@pytest.mark.parametrize(
    ("wanted", "mode", "error", "code"),
    [
        ([], ProrationMode.PRORATE_NOW, Conflict, "subscription.same_addons"),
        (
            [("screen", 1)],
            ProrationMode.AT_PERIOD_END,
            InvalidInput,
            "subscription.addons_at_period_end",
        ),
        ([("cinema", 1)], ProrationMode.NONE, InvalidInput, "terms.unknown_addon"),
        ([("screen", 0)], ProrationMode.NONE, InvalidInput, "subscription.invalid_addon_quantity"),
    ],
)
def test_refusals(
    wanted: list[tuple[str, int]], mode: ProrationMode, error: type, code: str
) -> None:
    with pytest.raises(error) as refused:
        change_addons(active(), TERMS, wanted, mode, START)
    assert refused.value.code == code


def test_a_cancelled_subscription_cannot_buy_add_ons() -> None:
    from dataclasses import replace

    done = replace(active(), status=SubscriptionStatus.CANCELLED)
    with pytest.raises(Conflict):
        change_addons(done, TERMS, [("screen", 1)], ProrationMode.NONE, START)
