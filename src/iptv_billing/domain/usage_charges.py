"""Usage charges in the billing terms: which metric, aggregated how, priced how, per currency.

The aggregation is part of the terms, not looked up from the metric catalog: terms are a
content-addressed contract, so a replay of any invoice needs nothing but the terms and the
events. Decimal amounts are strings in the document, so the canonical form (and the terms
hash) does not depend on how a JSON library prints numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.invoice import InvoiceLine, LineKind, line
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import Period
from iptv_billing.domain.rating import Aggregation, Price, PricingModel, Tier, charge

MAX_TIERS = 20
_PRICE_KEYS = ("model", "currency", "unit_price", "tiers", "package_size", "included")
_CHARGE_KEYS = ("metric", "name", "aggregation", "prices")


def _document(doc: object, keys: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping) or set(doc) != set(keys):
        got = sorted(map(str, doc)) if isinstance(doc, Mapping) else type(doc).__name__
        raise InvalidInput("terms.invalid_document", f"{what}: expected {sorted(keys)}, got {got}")
    return doc


def decimal_of(value: object, what: str) -> Decimal:
    """A finite decimal from a string or an integer (never a float: it is not exact)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput("terms.invalid_document", f"{what} must be a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidInput("terms.invalid_document", f"{what} is not a number: {value!r}") from None
    if not number.is_finite() or abs(number.as_tuple().exponent) > 12:  # type: ignore[arg-type]
        raise InvalidInput("terms.invalid_document", f"{what} must be finite, at most 12 places")
    return number


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def price_to_document(price: Price) -> dict[str, Any]:
    return {
        "model": price.model.value,
        "currency": price.currency,
        "unit_price": _text(price.unit_price),
        "tiers": [
            {
                "up_to": None if t.up_to is None else _text(t.up_to),
                "unit_price": _text(t.unit_price),
                "flat_fee": _text(t.flat_fee),
            }
            for t in price.tiers
        ],
        "package_size": _text(price.package_size),
        "included": _text(price.included),
    }


def price_from_document(doc: object) -> Price:
    d = _document(doc, _PRICE_KEYS, "a usage price")
    model, currency, tiers = d["model"], d["currency"], d["tiers"]
    if model not in PricingModel._value2member_map_:
        raise InvalidInput("rating.invalid_model", f"use one of {[m.value for m in PricingModel]}")
    if not isinstance(currency, str):
        raise InvalidInput("terms.invalid_document", "a usage price needs a currency code")
    if not isinstance(tiers, list | tuple) or len(tiers) > MAX_TIERS:
        raise InvalidInput("rating.no_tiers", f"tiers: a list of at most {MAX_TIERS}")
    Money.from_minor(0, currency)  # an unknown currency is refused here, with its own code
    return Price(
        PricingModel(model),
        currency,
        decimal_of(d["unit_price"], "unit_price"),
        tuple(_tier(t) for t in tiers),
        decimal_of(d["package_size"], "package_size"),
        decimal_of(d["included"], "included"),
    )


def _tier(doc: object) -> Tier:
    d = _document(doc, ("up_to", "unit_price", "flat_fee"), "a tier")
    up_to = None if d["up_to"] is None else decimal_of(d["up_to"], "up_to")
    return Tier(
        up_to, decimal_of(d["unit_price"], "unit_price"), decimal_of(d["flat_fee"], "flat_fee")
    )


@dataclass(frozen=True, slots=True)
class UsageCharge:
    """A metered charge of a plan: the period's aggregate of ``metric``, priced in the
    subscription's currency."""

    metric: str
    name: str
    aggregation: Aggregation
    prices: tuple[Price, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 200:
            raise InvalidInput("terms.invalid_value", "a usage charge needs a name (<= 200)")
        currencies = [p.currency for p in self.prices]
        if not currencies or len(set(currencies)) != len(currencies):
            raise InvalidInput(
                "terms.invalid_usage_prices", f"{self.metric}: one price per currency"
            )
        object.__setattr__(self, "prices", tuple(sorted(self.prices, key=lambda p: p.currency)))

    def price_in(self, currency: str) -> Price:
        for price in self.prices:
            if price.currency == currency:
                return price
        raise InvalidInput(
            "terms.currency_not_offered", f"usage of {self.metric} has no {currency} price"
        )

    def line(self, quantity: Decimal, currency: str, period: Period) -> InvoiceLine | None:
        """The invoice line for ``quantity`` units; None when they cost nothing."""
        amount = charge(self.price_in(currency), quantity)
        if amount.is_zero():
            return None
        description = f"{self.name}: {_text(quantity)}"[:500]
        return line(LineKind.USAGE, description, amount, period=period)

    def to_document(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "name": self.name,
            "aggregation": self.aggregation.value,
            "prices": [price_to_document(p) for p in self.prices],
        }

    @classmethod
    def from_document(cls, doc: object, check_code: Any) -> UsageCharge:
        d = _document(doc, _CHARGE_KEYS, "a usage charge")
        aggregation, prices = d["aggregation"], d["prices"]
        if aggregation not in Aggregation._value2member_map_:
            raise InvalidInput(
                "rating.invalid_aggregation", f"use one of {[a.value for a in Aggregation]}"
            )
        if not isinstance(prices, list | tuple):
            raise InvalidInput("terms.invalid_document", "usage prices must be a list")
        return cls(
            check_code(d["metric"], "metric code"),
            d["name"],
            Aggregation(aggregation),
            tuple(price_from_document(p) for p in prices),
        )


def check_usage_charges(
    charges: Iterable[UsageCharge], offered: set[str]
) -> tuple[UsageCharge, ...]:
    """Every offered currency priced, each metric charged once; sorted by metric."""
    result = tuple(sorted(charges, key=lambda c: c.metric))
    for item in result:
        if not isinstance(item, UsageCharge):
            raise InvalidInput("terms.invalid_value", f"not a UsageCharge: {item!r}")
        missing = offered - {p.currency for p in item.prices}
        if missing:
            raise InvalidInput(
                "terms.invalid_usage_prices",
                f"usage of {item.metric} needs a price in {', '.join(sorted(missing))}",
            )
    metrics = [c.metric for c in result]
    if len(set(metrics)) != len(metrics):
        raise InvalidInput("terms.duplicate_usage_charge", "each metric is charged once")
    return result
