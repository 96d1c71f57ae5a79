from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import currency_codes, instants

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import Period
from iptv_billing.domain.proration import prorate_change, split_amount

PROPERTY = settings(max_examples=200, deadline=None)
MAX_MINOR = 10**12


@st.composite
def periods(draw: st.DrawFn) -> Period:
    start = draw(instants())
    length = draw(st.integers(min_value=1, max_value=3 * 366 * 86_400 * 10**6))
    return Period(start, start + timedelta(microseconds=length))


def moments(period: Period) -> st.SearchStrategy[datetime]:
    # Before, inside and after the period: the moment is clamped.
    slack = timedelta(days=2)
    return st.datetimes(
        min_value=(period.start - slack).replace(tzinfo=None),
        max_value=(period.end + slack).replace(tzinfo=None),
        timezones=st.just(UTC),
    )


@PROPERTY
@given(st.data(), currency_codes, st.integers(min_value=0, max_value=MAX_MINOR), periods())
def test_parts_sum_exactly_and_are_never_negative(
    data: st.DataObject, code: str, minor: int, period: Period
) -> None:
    amount = Money.from_minor(minor, code)
    used, unused = split_amount(amount, period, data.draw(moments(period)))
    assert used + unused == amount
    assert not used.is_negative()
    assert not unused.is_negative()


@PROPERTY
@given(st.data(), st.integers(min_value=0, max_value=MAX_MINOR), periods())
def test_split_is_monotonic_in_time(data: st.DataObject, minor: int, period: Period) -> None:
    amount = Money.from_minor(minor, "EUR")
    a, b = sorted([data.draw(moments(period)), data.draw(moments(period))])
    used_a, unused_a = split_amount(amount, period, a)
    used_b, unused_b = split_amount(amount, period, b)
    assert used_a <= used_b
    assert unused_a >= unused_b


@PROPERTY
@given(
    st.data(),
    st.integers(min_value=0, max_value=MAX_MINOR),
    st.integers(min_value=0, max_value=MAX_MINOR),
    periods(),
)
def test_prorate_change_signs_and_bounds(
    data: st.DataObject, old_minor: int, new_minor: int, period: Period
) -> None:
    old, new = Money.from_minor(old_minor, "KWD"), Money.from_minor(new_minor, "KWD")
    at = data.draw(moments(period))
    credit, charge = prorate_change(old, new, period, at)
    assert -old <= credit <= Money.zero("KWD")
    assert Money.zero("KWD") <= charge <= new
    assert credit == -split_amount(old, period, at)[1]
    assert charge == split_amount(new, period, at)[1]


def test_clamping_and_halfway() -> None:
    period = Period(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 31, tzinfo=UTC))
    amount = Money.of("30.00", "EUR")
    assert split_amount(amount, period, period.start - timedelta(days=5)) == (
        Money.zero("EUR"),
        amount,
    )
    assert split_amount(amount, period, period.end + timedelta(days=5)) == (
        amount,
        Money.zero("EUR"),
    )
    halfway = period.start + period.duration / 2
    assert split_amount(amount, period, halfway) == (Money.of("15", "EUR"), Money.of("15", "EUR"))
    assert split_amount(Money.of("0.01", "EUR"), period, halfway) == (
        Money.of("0.01", "EUR"),  # the tie goes to the earlier part
        Money.zero("EUR"),
    )


def test_upgrade_halfway_through() -> None:
    period = Period(datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))
    at = datetime(2024, 4, 16, tzinfo=UTC)
    credit, charge = prorate_change(Money.of("10", "EUR"), Money.of("20", "EUR"), period, at)
    assert credit == Money.of("-5", "EUR")
    assert charge == Money.of("10", "EUR")


def test_currency_mismatch_and_bad_input_are_refused() -> None:
    period = Period(datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))
    at = datetime(2024, 4, 16, tzinfo=UTC)
    with pytest.raises(InvalidInput) as caught:
        prorate_change(Money.of("10", "EUR"), Money.of("10", "USD"), period, at)
    assert caught.value.code == "money.currency_mismatch"
    with pytest.raises(InvalidInput) as caught:
        prorate_change(Money.of("-1", "EUR"), Money.of("10", "EUR"), period, at)
    assert caught.value.code == "proration.negative_amount"
    with pytest.raises(InvalidInput) as caught:
        split_amount(Money.of("1", "EUR"), period, datetime(2024, 4, 16))
    assert caught.value.code == "time.naive_datetime"
