"""A period's usage as invoice lines: any split of the events into batches gives the same
invoice; invoicing early at thresholds and then at period end bills exactly what one invoice
at period end would; the cap is never exceeded."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, Period, PeriodUnit
from iptv_billing.domain.rating import (
    Aggregation,
    Event,
    Partial,
    Price,
    PricingModel,
    Tier,
    partial_of,
)
from iptv_billing.domain.usage_charges import UsageCharge
from iptv_billing.domain.usage_rating import marginal_charge, rate_period, threshold_reached

START = datetime(2027, 1, 1, tzinfo=UTC)
PERIOD = Period(START, datetime(2027, 2, 1, tzinfo=UTC))
TIERS = (
    Tier(Decimal(100), Decimal("0.05")),
    Tier(Decimal(1000), Decimal("0.02"), Decimal("1.00")),
    Tier(None, Decimal("0.013")),
)
AGGREGATIONS = {
    "minutes": Aggregation.SUM,
    "plays": Aggregation.COUNT,
    "channels": Aggregation.UNIQUE_COUNT,
    "peak": Aggregation.MAX,
}


def terms(cap: str | None = None, threshold: str | None = None) -> BillingTerms:
    models = [
        PricingModel.GRADUATED,
        PricingModel.VOLUME,
        PricingModel.PER_UNIT,
        PricingModel.PACKAGE,
    ]
    charges = tuple(
        UsageCharge(
            metric,
            metric.title(),
            aggregation,
            (
                Price(
                    model,
                    "EUR",
                    unit_price=Decimal("0.7"),
                    tiers=TIERS if model in (PricingModel.GRADUATED, PricingModel.VOLUME) else (),
                    package_size=Decimal(10),
                    included=Decimal(5),
                ),
            ),
        )
        for (metric, aggregation), model in zip(AGGREGATIONS.items(), models, strict=True)
    )
    return BillingTerms(
        plan_code="metered",
        version=1,
        name="Metered",
        interval=BillingInterval(PeriodUnit.MONTH),
        prices=(Money.of("5", "EUR"),),
        effective_from=START,
        usage_charges=charges,
        usage_cap=(Money.of(cap, "EUR"),) if cap else (),
        usage_threshold=(Money.of(threshold, "EUR"),) if threshold else (),
    )


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(sorted(AGGREGATIONS)),
        st.decimals(min_value=0, max_value=500, places=3, allow_nan=False),
        st.sampled_from(["ch1", "ch2", "ch3", "ch4"]),
    ),
    max_size=60,
)


def as_events(raw: list[tuple[str, Decimal, str]]) -> list[tuple[str, Event]]:
    return [(m, Event(f"e{i}", v, key, i)) for i, (m, v, key) in enumerate(raw)]


def quantities(partials: dict[str, Partial]) -> dict[str, Decimal]:
    return {m: p.value(AGGREGATIONS[m]) for m, p in partials.items()}


def aggregate_in_batches(events: list[tuple[str, Event]], cuts: list[int]) -> dict[str, Partial]:
    partials: dict[str, Partial] = {}
    bounds = [0, *sorted(c % (len(events) + 1) for c in cuts), len(events)]
    for low, high in itertools.pairwise(bounds):
        for metric in AGGREGATIONS:
            batch = partial_of(e for m, e in events[low:high] if m == metric)
            partials[metric] = partials.get(metric, Partial()).merge(batch)
    return partials


@given(raw=events_strategy, cuts=st.lists(st.integers(min_value=0, max_value=100), max_size=8))
def test_any_batch_split_gives_the_same_invoice(
    raw: list[tuple[str, Decimal, str]], cuts: list[int]
) -> None:
    events = as_events(raw)
    whole = aggregate_in_batches(events, [])
    split = aggregate_in_batches(events, cuts)
    plan = terms()
    assert rate_period(plan, "EUR", PERIOD, quantities(split)) == rate_period(
        plan, "EUR", PERIOD, quantities(whole)
    )


@given(raw=events_strategy, checks=st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_threshold_invoices_then_the_period_end_bill_exactly_the_period(
    raw: list[tuple[str, Decimal, str]], checks: list[int]
) -> None:
    """Thresholds are checked at arbitrary moments in the period; whatever was invoiced early,
    the period in total is billed what one invoice at its end would bill, capped."""
    plan = terms(cap="80", threshold="3")
    events = as_events(raw)
    invoiced = Money.of("0", "EUR")
    for seen in sorted(c % (len(events) + 1) for c in checks):
        rated = rate_period(
            plan, "EUR", PERIOD, quantities(aggregate_in_batches(events[:seen], [])), invoiced
        )
        if threshold_reached(plan, rated):
            assert rated.total.minor >= 300
            invoiced = invoiced + rated.total
    final = rate_period(plan, "EUR", PERIOD, quantities(aggregate_in_batches(events, [])), invoiced)
    one_invoice = rate_period(plan, "EUR", PERIOD, quantities(aggregate_in_batches(events, [])))
    assert invoiced + final.total == one_invoice.total == one_invoice.charged
    assert one_invoice.charged <= Money.of("80", "EUR")


def test_a_cap_credits_the_excess() -> None:
    plan = terms(cap="10")
    rated = rate_period(plan, "EUR", PERIOD, {"minutes": Decimal(100_000)})
    assert rated.charged == Money.of("10", "EUR")
    assert rated.total == Money.of("10", "EUR")
    assert rated.lines[-1].description == "Usage capped at 10.00 EUR"
    assert rated.lines[-1].amount.is_negative()


def test_no_usage_no_lines() -> None:
    rated = rate_period(terms(), "EUR", PERIOD, {})
    assert rated.lines == ()
    assert rated.total == Money.of("0", "EUR")


@given(
    stretches=st.lists(st.decimals(min_value=0, max_value=400, places=2), max_size=12),
    cap=st.sampled_from([None, "15"]),
)
def test_charging_a_session_stretch_by_stretch_adds_up_to_the_period(
    stretches: list[Decimal], cap: str | None
) -> None:
    """What session holds charge, stretch after stretch at each stretch's marginal price
    (tiers crossed, allowance used up, cap reached), is what the period costs as a whole."""
    plan = terms(cap=cap)
    used: dict[str, Decimal] = {}
    charged = Money.of("0", "EUR")
    for more in stretches:
        step = marginal_charge(plan, "EUR", PERIOD, used, "minutes", more)
        assert not step.is_negative()
        charged = charged + step
        used["minutes"] = used.get("minutes", Decimal(0)) + more
    assert charged == rate_period(plan, "EUR", PERIOD, used).charged


def test_a_stretch_inside_the_allowance_costs_nothing_and_the_next_tier_prices_the_rest() -> None:
    plan = terms()  # "minutes": graduated, 5 included, 0.05 up to 100, then 0.02 + 1.00 flat
    assert marginal_charge(plan, "EUR", PERIOD, {}, "minutes", Decimal(5)).is_zero()
    # 95 used is 90 billed; 20 more: 10 at 0.05 to the tier's end, 10 at 0.02, its 1.00 fee.
    more = marginal_charge(plan, "EUR", PERIOD, {"minutes": Decimal(95)}, "minutes", Decimal(20))
    assert more == Money.of("0.50", "EUR") + Money.of("0.20", "EUR") + Money.of("1.00", "EUR")
