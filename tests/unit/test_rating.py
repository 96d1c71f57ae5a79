"""Usage rating: aggregations survive any split of a period's events into batches, and each
pricing model matches a direct, unit-by-unit computation."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.rating import (
    Aggregation,
    Event,
    Partial,
    Price,
    PricingModel,
    Tier,
    aggregate,
    charge,
    partial_of,
)

values = st.decimals(min_value=0, max_value=10_000, places=3, allow_nan=False)
events = st.lists(
    st.builds(
        Event,
        id=st.uuids().map(str),
        value=values,
        unique_key=st.sampled_from(["news-1", "sport-1", "kids-1", None]),
        at=st.integers(0, 10**6),
    ),
    max_size=40,
)


@given(events, st.lists(st.integers(0, 40), max_size=6), st.randoms())
def test_any_split_of_the_events_aggregates_the_same(
    all_events: list[Event], cuts: list[int], rng: random.Random
) -> None:
    shuffled = list(all_events)
    rng.shuffle(shuffled)
    bounds = sorted({0, len(shuffled), *(min(c, len(shuffled)) for c in cuts)})
    batches = [shuffled[a:b] for a, b in itertools.pairwise(bounds)]
    merged = Partial()
    for batch in reversed(batches):
        merged = merged.merge(partial_of(batch))
    for aggregation in Aggregation:
        assert merged.value(aggregation) == aggregate(all_events, aggregation)


def test_aggregations() -> None:
    seen = [
        Event("a", Decimal("30"), "news-1", at=1),
        Event("b", Decimal("45.5"), "sport-1", at=3),
        Event("c", Decimal("12"), "news-1", at=2),
    ]
    assert aggregate(seen, Aggregation.COUNT) == 3
    assert aggregate(seen, Aggregation.SUM) == Decimal("87.5")
    assert aggregate(seen, Aggregation.MAX) == Decimal("45.5")
    assert aggregate(seen, Aggregation.UNIQUE_COUNT) == 2
    assert aggregate(seen, Aggregation.LATEST) == Decimal("45.5")
    assert aggregate([], Aggregation.MAX) == 0


TIERS = (
    Tier(Decimal(100), Decimal("0.05")),
    Tier(Decimal(500), Decimal("0.03"), flat_fee=Decimal("1.00")),
    Tier(None, Decimal("0.01")),
)


def _tier_of(unit: int) -> int:
    """Index of the tier the ``unit``-th unit (1-based) falls in."""
    for index, tier in enumerate(TIERS):
        if tier.up_to is None or unit <= tier.up_to:
            return index
    return len(TIERS) - 1


@given(st.integers(0, 2_000), st.integers(0, 150))
def test_graduated_prices_each_unit_in_its_own_tier(quantity: int, included: int) -> None:
    price = Price(PricingModel.GRADUATED, "EUR", tiers=TIERS, included=Decimal(included))
    billable = max(0, quantity - included)
    entered = {_tier_of(u) for u in range(1, billable + 1)}
    direct = sum((TIERS[_tier_of(u)].unit_price for u in range(1, billable + 1)), Decimal(0))
    direct += sum((TIERS[i].flat_fee for i in entered), Decimal(0))
    assert charge(price, Decimal(quantity)) == Money.round(direct, "EUR")


@given(st.integers(0, 2_000))
def test_volume_prices_every_unit_at_the_tier_reached(quantity: int) -> None:
    price = Price(PricingModel.VOLUME, "EUR", tiers=TIERS)
    tier = TIERS[_tier_of(quantity)] if quantity else TIERS[0]
    direct = quantity * tier.unit_price + (tier.flat_fee if quantity else 0)
    assert charge(price, Decimal(quantity)) == Money.round(Decimal(direct), "EUR")


@pytest.mark.parametrize(
    ("quantity", "expected"), [("0", "0.00"), ("1", "2.50"), ("10", "2.50"), ("10.01", "5.00")]
)
def test_packages_are_charged_per_started_block(quantity: str, expected: str) -> None:
    price = Price(PricingModel.PACKAGE, "EUR", unit_price=Decimal("2.50"), package_size=Decimal(10))
    assert charge(price, Decimal(quantity)) == Money.of(expected, "EUR")


def test_rounding_happens_once_at_the_end() -> None:
    price = Price(PricingModel.PER_UNIT, "EUR", unit_price=Decimal("0.004"))
    # 1,000 events of one unit each: 4.00, where rounding each would have charged nothing.
    assert charge(price, Decimal(1000)) == Money.of("4.00", "EUR")
    assert charge(price, Decimal(1)) == Money.of("0.00", "EUR")
    assert charge(Price(PricingModel.PER_UNIT, "JPY", unit_price=Decimal("0.5")), Decimal(3)) == (
        Money.of("2", "JPY")  # 1.5 rounds half-even to the yen
    )


@pytest.mark.parametrize(
    ("tiers", "code"),
    [
        ((), "rating.no_tiers"),
        ((Tier(Decimal(10), Decimal(1)),), "rating.open_tier"),
        ((Tier(None, Decimal(1)), Tier(None, Decimal(1))), "rating.open_tier"),
        (
            (Tier(Decimal(10), Decimal(1)), Tier(Decimal(5), Decimal(1)), Tier(None, Decimal(1))),
            "rating.tier_order",
        ),
        ((Tier(Decimal(0), Decimal(1)), Tier(None, Decimal(1))), "rating.tier_order"),
        ((Tier(None, Decimal(-1)),), "rating.negative"),
    ],
)
def test_malformed_tiers_are_refused(tiers: tuple[Tier, ...], code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Price(PricingModel.GRADUATED, "EUR", tiers=tiers)
    assert refused.value.code == code


def test_negative_quantities_and_floats_are_refused() -> None:
    price = Price(PricingModel.PER_UNIT, "EUR", unit_price=Decimal(1))
    with pytest.raises(InvalidInput):
        charge(price, Decimal(-1))
    with pytest.raises(InvalidInput):
        Price(PricingModel.PER_UNIT, "EUR", unit_price=0.1)  # type: ignore[arg-type]
