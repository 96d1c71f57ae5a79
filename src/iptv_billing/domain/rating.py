"""Usage rating: billable metrics aggregated over a period, priced by the terms' model.

Pure and exact. Quantities are ``Decimal`` (viewing minutes, gigabytes, plays); unit prices
are ``Decimal`` amounts in a currency, and the charge is rounded once, to the currency's
exponent, at the end (never per event or per tier), so that splitting a period's events into
batches any way cannot change an invoice. Models follow Lago's and Stripe's vocabulary:

* ``per_unit``: quantity × unit price;
* ``graduated``: each tier prices the units that fall inside it (a phone bill);
* ``volume``: the tier the whole quantity reaches prices every unit;
* ``package``: a price per started block of N units;
* allowances (``included``) are free units taken off before any model applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.money import Money, to_decimal


class Aggregation(StrEnum):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"


class PricingModel(StrEnum):
    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"


@dataclass(frozen=True, slots=True)
class Event:
    """One usage event as rating sees it (ingestion has checked and deduplicated it)."""

    id: str
    value: Decimal  # ignored by COUNT and UNIQUE_COUNT
    unique_key: str | None = None  # what UNIQUE_COUNT counts (a channel, a device)
    at: int = 0  # an ordering key (microseconds); LATEST takes the value of the largest


@dataclass(frozen=True, slots=True)
class Partial:
    """A batch's aggregate state; ``merge`` of partials equals aggregating all their events,
    in any split and any order."""

    count: int = 0
    total: Decimal = Decimal(0)
    maximum: Decimal | None = None
    uniques: frozenset[str] = frozenset()
    latest: tuple[int, str, Decimal] | None = None  # (at, event id, value)

    def merge(self, other: Partial) -> Partial:
        return Partial(
            self.count + other.count,
            self.total + other.total,
            _max(self.maximum, other.maximum),
            self.uniques | other.uniques,
            max((x for x in (self.latest, other.latest) if x is not None), default=None),
        )

    def value(self, aggregation: Aggregation) -> Decimal:
        if aggregation is Aggregation.COUNT:
            return Decimal(self.count)
        if aggregation is Aggregation.SUM:
            return self.total
        if aggregation is Aggregation.MAX:
            return self.maximum if self.maximum is not None else Decimal(0)
        if aggregation is Aggregation.UNIQUE_COUNT:
            return Decimal(len(self.uniques))
        return self.latest[2] if self.latest is not None else Decimal(0)


def _max(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def partial_of(events: Iterable[Event]) -> Partial:
    result = Partial()
    for event in events:
        unique = frozenset({event.unique_key}) if event.unique_key is not None else frozenset()
        one = Partial(1, event.value, event.value, unique, (event.at, event.id, event.value))
        result = result.merge(one)
    return result


def aggregate(events: Iterable[Event], aggregation: Aggregation) -> Decimal:
    return partial_of(events).value(aggregation)


@dataclass(frozen=True, slots=True)
class Tier:
    """Units up to ``up_to`` (None: no end) cost ``unit_price`` each, plus ``flat_fee`` once
    when the tier is entered."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Price:
    model: PricingModel
    currency: str
    unit_price: Decimal = Decimal(0)  # per_unit; package: the price of one block
    tiers: tuple[Tier, ...] = ()
    package_size: Decimal = Decimal(1)
    included: Decimal = Decimal(0)  # free units before the model applies

    def __post_init__(self) -> None:
        for amount in (self.unit_price, self.package_size, self.included):
            _non_negative(amount)
        if self.package_size <= 0:
            raise InvalidInput("rating.invalid_package", "a package holds at least one unit")
        if self.model in (PricingModel.GRADUATED, PricingModel.VOLUME):
            _check_tiers(self.tiers)


def _non_negative(value: Decimal) -> None:
    if to_decimal(value) < 0:
        raise InvalidInput("rating.negative", f"must not be negative: {value}")


def _check_tiers(tiers: Sequence[Tier]) -> None:
    if not tiers:
        raise InvalidInput("rating.no_tiers", "tiered prices need at least one tier")
    bounds = [t.up_to for t in tiers]
    if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
        raise InvalidInput("rating.open_tier", "only the last tier is open-ended")
    closed = [b for b in bounds if b is not None]
    if closed != sorted(closed) or len(set(closed)) != len(closed) or any(b <= 0 for b in closed):
        raise InvalidInput("rating.tier_order", "tier bounds must increase from above zero")
    for tier in tiers:
        _non_negative(tier.unit_price)
        _non_negative(tier.flat_fee)


def charge(price: Price, quantity: Decimal) -> Money:
    """What ``quantity`` units cost, rounded once to the currency (half-even)."""
    _non_negative(quantity)
    billable = max(Decimal(0), quantity - price.included)
    return Money.round(_exact(price, billable), price.currency)


def _exact(price: Price, units: Decimal) -> Decimal:
    if price.model is PricingModel.PER_UNIT:
        return units * price.unit_price
    if price.model is PricingModel.PACKAGE:
        blocks = (units / price.package_size).to_integral_value(rounding=ROUND_CEILING)
        return blocks * price.unit_price
    if price.model is PricingModel.VOLUME:
        tier = _tier_reached(price.tiers, units)
        return units * tier.unit_price + (tier.flat_fee if units > 0 else Decimal(0))
    return _graduated(price.tiers, units)


def _tier_reached(tiers: Sequence[Tier], units: Decimal) -> Tier:
    for tier in tiers:
        if tier.up_to is None or units <= tier.up_to:
            return tier
    return tiers[-1]


def _graduated(tiers: Sequence[Tier], units: Decimal) -> Decimal:
    amount, floor = Decimal(0), Decimal(0)
    for tier in tiers:
        if units <= floor:
            break
        ceiling = units if tier.up_to is None else min(units, tier.up_to)
        amount += (ceiling - floor) * tier.unit_price + tier.flat_fee
        floor = ceiling if tier.up_to is None else tier.up_to
    return amount
