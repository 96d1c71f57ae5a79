"""Exact money: integer minor units plus an ISO 4217 code.

``Decimal`` is used inside calculations; rounding happens at named points to the currency's
exponent (CLDR data via Babel). Floats are refused everywhere, and amounts of different
currencies never mix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from fractions import Fraction
from functools import lru_cache
from math import lcm

from babel.numbers import get_currency_precision, list_currencies

from iptv_billing.domain.errors import InvalidInput

# Larger than any real invoice, small enough for BIGINT and for Decimal sums never to overflow.
MAX_MINOR_UNITS = 10**15
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
_DECIMAL_TEXT = re.compile(r"^-?\d{1,18}(\.\d{1,18})?$")
# Enough digits for any accepted input (18 + 18) times any factor without the context rounding
# before the one named rounding point.
_EXACT_PRECISION = 80


@lru_cache(maxsize=1)
def _known_currencies() -> frozenset[str]:
    # CLDR's list; X-codes are metals, test and fund codes, except the CFA francs.
    return frozenset(c for c in list_currencies() if not c.startswith("X")) | {"XOF", "XAF"}


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency and the number of digits after its decimal point."""

    code: str
    exponent: int

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.exponent)

    def __str__(self) -> str:
        return self.code


def currency(code: object) -> Currency:
    """Look up a currency by its code; unknown or malformed codes are refused."""
    # Checked before the cache so that unhashable junk is refused, not a TypeError.
    if not isinstance(code, str) or not _CURRENCY_CODE.fullmatch(code):
        raise InvalidInput("money.unknown_currency", f"not an ISO 4217 currency code: {code!r}")
    return _currency(code)


@lru_cache(maxsize=512)
def _currency(code: str) -> Currency:
    if code not in _known_currencies():
        raise InvalidInput("money.unknown_currency", f"unknown currency: {code}")
    return Currency(code, get_currency_precision(code))


def _refuse_float(value: object) -> None:
    if isinstance(value, float):
        raise InvalidInput("money.float_refused", "money is never a float; use a decimal string")


def to_decimal(value: object) -> Decimal:
    """Parse a decimal amount from a string, int or Decimal. Floats and junk are refused."""
    _refuse_float(value)
    if isinstance(value, bool):
        raise InvalidInput("money.invalid_amount", "an amount is not a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput("money.invalid_amount", "an amount must be finite")
        return value
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the pattern already rules this out
            pass
    raise InvalidInput("money.invalid_amount", f"not a decimal amount: {value!r}")


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An exact amount: ``minor`` units (cents, fils, yen) of ``currency``."""

    minor: int
    currency: Currency

    def __post_init__(self) -> None:
        if type(self.minor) is not int:  # one check on the hot path; bool and float fail it
            _refuse_float(self.minor)
            raise InvalidInput("money.invalid_amount", "minor units must be an integer")
        if abs(self.minor) > MAX_MINOR_UNITS:
            raise InvalidInput("money.amount_too_large", "amount is out of range")
        if not isinstance(self.currency, Currency):
            raise InvalidInput("money.unknown_currency", "currency must be a Currency")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def of(cls, amount: object, code: str) -> Money:
        """Money from a major-unit decimal (``"12.50"``); more digits than the currency has
        are refused rather than rounded, because silent rounding of input loses money."""
        cur = currency(code)
        value = to_decimal(amount)
        with localcontext(prec=_EXACT_PRECISION):  # the default 28 digits would round silently
            minor = value.scaleb(cur.exponent)
        if minor != minor.to_integral_value():
            raise InvalidInput(
                "money.too_precise", f"{code} has {cur.exponent} decimal places: {amount!r}"
            )
        return cls(int(minor), cur)

    @classmethod
    def from_minor(cls, minor: int, code: str) -> Money:
        return cls(minor, currency(code))

    @classmethod
    def zero(cls, code: str) -> Money:
        return cls(0, currency(code))

    @classmethod
    def round(cls, value: Decimal, code: str, rounding: str = ROUND_HALF_EVEN) -> Money:
        """The named rounding point: a major-unit Decimal quantized to the currency."""
        cur = currency(code)
        if not value.is_finite() or value.adjusted() > 20:
            raise InvalidInput("money.amount_too_large", "amount is out of range")
        with localcontext(prec=_EXACT_PRECISION):
            quantized = value.quantize(cur.quantum, rounding=rounding)
            return cls(int(quantized.scaleb(cur.exponent)), cur)

    # -- views --------------------------------------------------------------------------
    @property
    def code(self) -> str:
        return self.currency.code

    @property
    def amount(self) -> Decimal:
        """Major units as an exact Decimal with exactly ``exponent`` places."""
        return Decimal(self.minor).scaleb(-self.currency.exponent).quantize(self.currency.quantum)

    def __str__(self) -> str:
        return f"{self.amount} {self.code}"

    def is_zero(self) -> bool:
        return self.minor == 0

    def is_negative(self) -> bool:
        return self.minor < 0

    # -- arithmetic ---------------------------------------------------------------------
    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise InvalidInput(
                "money.currency_mismatch", f"cannot mix {self.code} and {other.code}"
            )
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.minor + self._same(other).minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.minor - self._same(other).minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.minor), self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.minor < self._same(other).minor

    def __le__(self, other: Money) -> bool:
        return self.minor <= self._same(other).minor

    def __gt__(self, other: Money) -> bool:
        return self.minor > self._same(other).minor

    def __ge__(self, other: Money) -> bool:
        return self.minor >= self._same(other).minor

    def times(self, factor: Decimal | int, rounding: str = ROUND_HALF_EVEN) -> Money:
        """Multiply by an exact factor (quantity, ratio) and round once to the currency."""
        _refuse_float(factor)
        if isinstance(factor, bool):
            raise InvalidInput("money.invalid_amount", "a factor is not a boolean")
        with localcontext(prec=_EXACT_PRECISION):  # exact product; only `round` rounds
            product = self.amount * Decimal(factor)
        return Money.round(product, self.code, rounding)

    def allocate(self, weights: Sequence[int | Decimal]) -> tuple[Money, ...]:
        """Split into parts proportional to ``weights`` that sum exactly to this amount.

        Largest-remainder method; ties go to the earlier part, so the result is deterministic.
        """
        return tuple(Money(m, self.currency) for m in allocate_minor(self.minor, weights))


def allocate_minor(total: int, weights: Sequence[int | Decimal]) -> list[int]:
    """Split integer ``total`` proportionally to non-negative ``weights``; parts sum to total."""
    scaled = _integer_weights(weights)
    weight_sum = sum(scaled)
    if weight_sum == 0:
        raise InvalidInput("money.bad_allocation", "weights must not all be zero")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    # Integer arithmetic throughout: a Decimal quotient rounded to 28 digits could push a floor
    # over an integer and break the exact sum.
    floors, remainders = zip(*(divmod(magnitude * w, weight_sum) for w in scaled), strict=True)
    leftover = magnitude - sum(floors)
    order = sorted(range(len(scaled)), key=lambda i: (-remainders[i], i))
    parts = list(floors)
    for i in order[:leftover]:
        parts[i] += 1
    return [sign * part for part in parts]


def _integer_weights(weights: Sequence[int | Decimal]) -> list[int]:
    """The weights scaled by one common factor to exact integers (same proportions)."""
    fractions: list[Fraction] = []
    for w in weights:
        _refuse_float(w)
        if isinstance(w, bool) or not isinstance(w, int | Decimal):
            raise InvalidInput("money.bad_allocation", f"not a weight: {w!r}")
        if isinstance(w, Decimal) and not w.is_finite():
            raise InvalidInput("money.bad_allocation", "weights must be finite")
        fractions.append(Fraction(w))
    if not fractions or any(f < 0 for f in fractions):
        raise InvalidInput("money.bad_allocation", "weights must be non-empty and non-negative")
    common = lcm(*(f.denominator for f in fractions))
    return [int(f * common) for f in fractions]


def total(amounts: Iterable[Money], code: str) -> Money:
    """Sum of amounts that must all be in ``code`` (an empty sum is zero in ``code``)."""
    result = Money.zero(code)
    for item in amounts:
        result = result + item
    return result
