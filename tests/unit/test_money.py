from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import money

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.money import (
    Money,
    allocate_minor,
    currency,
    to_decimal,
    total,
)

PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(money("EUR"), money("EUR"), money("EUR"))
def test_addition_is_associative_and_commutative(a: Money, b: Money, c: Money) -> None:
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert (a + b) - b == a
    assert a - a == Money.zero("EUR")


@PROPERTY
@given(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=12).filter(any),
)
def test_allocate_sums_exactly(minor: int, weights: list[int]) -> None:
    parts = Money.from_minor(minor, "EUR").allocate(weights)
    assert sum(p.minor for p in parts) == minor
    assert len(parts) == len(weights)
    for part, weight in zip(parts, weights, strict=True):
        if weight == 0:
            assert part.minor == 0


@PROPERTY
@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(min_value=1, max_value=50))
def test_equal_weights_give_parts_within_one_minor_unit(minor: int, n: int) -> None:
    parts = allocate_minor(minor, [1] * n)
    assert sum(parts) == minor
    assert max(parts) - min(parts) <= 1
    # Ties go to the earlier parts: the sequence never increases (in magnitude).
    assert [abs(p) for p in parts] == sorted((abs(p) for p in parts), reverse=True)


def test_allocate_with_decimal_weights_is_exact() -> None:
    weights = [Decimal("1"), Decimal("2.0000000000000000000000000001")]
    parts = allocate_minor(10**15, weights)
    assert parts == [333_333_333_333_333, 666_666_666_666_667]


@pytest.mark.parametrize(
    ("code", "exponent", "text"),
    [("JPY", 0, "1234"), ("EUR", 2, "12.50"), ("KWD", 3, "1.234")],
)
def test_exponents(code: str, exponent: int, text: str) -> None:
    assert currency(code).exponent == exponent
    assert str(Money.of(text, code).amount) == text


@PROPERTY
@given(st.sampled_from(["JPY", "EUR", "KWD"]), st.integers(min_value=-(10**15), max_value=10**15))
def test_of_and_amount_round_trip(code: str, minor: int) -> None:
    original = Money.from_minor(minor, code)
    assert Money.of(original.amount, code) == original
    assert Money.of(str(original.amount), code) == original
    assert original.amount.as_tuple().exponent == -currency(code).exponent


@pytest.mark.parametrize(
    "attempt",
    [
        lambda: Money.of(1.5, "EUR"),
        lambda: Money(1.0, currency("EUR")),  # type: ignore[arg-type]
        lambda: Money.from_minor(100.0, "EUR"),  # type: ignore[arg-type]
        lambda: Money.of("1", "EUR").times(1.5),  # type: ignore[arg-type]
        lambda: Money.of("1", "EUR").allocate([1.0, 2]),  # type: ignore[list-item]
        lambda: allocate_minor(10, [0.5, 0.5]),  # type: ignore[list-item]
        lambda: to_decimal(0.1),
    ],
)
def test_floats_are_refused_everywhere(attempt: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        attempt()  # type: ignore[operator]
    assert caught.value.code in {"money.float_refused", "money.invalid_amount"}


def test_mixed_currencies_are_refused() -> None:
    eur, usd = Money.of("1", "EUR"), Money.of("1", "USD")
    for operation in (lambda: eur + usd, lambda: eur - usd, lambda: eur < usd):
        with pytest.raises(InvalidInput) as caught:
            operation()
        assert caught.value.code == "money.currency_mismatch"
    with pytest.raises(InvalidInput):
        total([eur, usd], "EUR")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1.234", "EUR"),
        ("1.5", "JPY"),
        ("0.0001", "KWD"),
        ("999999999999999.000000000000000001", "JPY"),
    ],
)
def test_too_precise_is_refused_not_rounded(text: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Money.of(text, code)
    assert caught.value.code == "money.too_precise"


def test_trailing_zeros_are_not_too_precise() -> None:
    assert Money.of("1.500", "EUR") == Money.from_minor(150, "EUR")


@pytest.mark.parametrize("code", ["EURO", "eur", "ZZZ", "", None, ["EUR"], 978])
def test_unknown_currencies_are_refused(code: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        currency(code)
    assert caught.value.code == "money.unknown_currency"


def test_times_rounds_once_half_even() -> None:
    assert Money.of("1.25", "EUR").times(Decimal("0.5")) == Money.of("0.62", "EUR")
    assert Money.of("1.35", "EUR").times(Decimal("0.5")) == Money.of("0.68", "EUR")
    assert Money.of("10", "EUR").times(3) == Money.of("30", "EUR")


def test_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        Money.from_minor(10**15 + 1, "EUR")
    assert caught.value.code == "money.amount_too_large"
    with pytest.raises(InvalidInput):
        Money.round(Decimal("1e40"), "EUR")


def test_total_of_nothing_is_zero() -> None:
    assert total([], "KWD") == Money.zero("KWD")
    assert total([Money.of("1.5", "EUR"), Money.of("2", "EUR")], "EUR") == Money.of("3.5", "EUR")
