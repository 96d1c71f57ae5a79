"""Usage charges in the billing terms: their canonical document, the hash of terms without
them unchanged, what is refused, and the invoice line a period's quantity becomes."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from iptv_billing.domain.catalog import BillingTerms, usage_limit
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.invoice import LineKind
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, Period, PeriodUnit
from iptv_billing.domain.rating import Aggregation, Price, PricingModel, Tier
from iptv_billing.domain.usage_charges import UsageCharge, price_from_document

START = datetime(2027, 1, 1, tzinfo=UTC)
PERIOD = Period(START, datetime(2027, 2, 1, tzinfo=UTC))


def minutes(*currencies: str) -> UsageCharge:
    tiers = (Tier(Decimal(100), Decimal("0.02")), Tier(None, Decimal("0.01"), Decimal("0.50")))
    prices = tuple(
        Price(PricingModel.GRADUATED, c, tiers=tiers, included=Decimal(60)) for c in currencies
    )
    return UsageCharge("viewing_minutes", "Viewing minutes", Aggregation.SUM, prices)


def terms(**changes: Any) -> BillingTerms:
    fields: dict[str, Any] = {
        "plan_code": "metered",
        "version": 1,
        "name": "Metered",
        "interval": BillingInterval(PeriodUnit.MONTH),
        "prices": (Money.of("5", "EUR"), Money.of("6", "USD")),
        "effective_from": START,
    }
    fields.update(changes)
    return BillingTerms(**fields)


def test_terms_without_usage_keep_their_document_and_hash() -> None:
    plain = terms()
    assert "usage_charges" not in plain.to_document()
    # The hash published before usage existed (the document has no usage keys at all).
    assert BillingTerms.from_document(plain.to_document()).terms_hash == plain.terms_hash


def test_usage_terms_round_trip_through_json_with_every_field() -> None:
    metered = terms(
        usage_charges=(minutes("USD", "EUR"),),
        usage_threshold=(Money.of("50", "EUR"), Money.of("60", "USD")),
        usage_cap=(Money.of("100", "EUR"),),
    )
    document = metered.to_document()
    names = {f.name for f in dataclasses.fields(BillingTerms) if f.init}
    assert set(document) == names
    again = BillingTerms.from_document(json.loads(json.dumps(document)))
    assert again == metered
    assert again.terms_hash == metered.terms_hash
    price = document["usage_charges"][0]["prices"][0]
    assert price["currency"] == "EUR"  # sorted, so the hash does not depend on input order
    assert price["tiers"][0] == {"up_to": "100", "unit_price": "0.02", "flat_fee": "0"}
    assert usage_limit(metered.usage_cap, "EUR") == Money.of("100", "EUR")
    assert usage_limit(metered.usage_cap, "USD") is None


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"usage_charges": (minutes("EUR"),)}, "terms.invalid_usage_prices"),
        (
            {"usage_charges": (minutes("EUR", "USD"), minutes("EUR", "USD"))},
            "terms.duplicate_usage_charge",
        ),
        ({"usage_threshold": (Money.of("5", "EUR"),)}, "terms.invalid_value"),
        (
            {"usage_charges": (minutes("EUR", "USD"),), "usage_cap": (Money.of("5", "GBP"),)},
            "terms.currency_not_offered",
        ),
    ],
)
def test_inconsistent_usage_terms_are_refused(changes: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        terms(**changes)
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("unit_price", 0.1, "terms.invalid_document"),  # a float is not exact
        ("unit_price", "NaN", "terms.invalid_document"),
        ("unit_price", "abc", "terms.invalid_document"),
        ("included", "-1", "rating.negative"),
        ("model", "bulk", "rating.invalid_model"),
        ("currency", "XXX1", "money.unknown_currency"),
    ],
)
def test_malformed_usage_prices_are_refused(field: str, value: object, code: str) -> None:
    document = {
        "model": "per_unit",
        "currency": "EUR",
        "unit_price": "0.01",
        "tiers": [],
        "package_size": "1",
        "included": "0",
        field: value,
    }
    with pytest.raises(InvalidInput) as raised:
        price_from_document(document)
    assert raised.value.code == code


def test_a_periods_quantity_becomes_one_usage_line() -> None:
    charge = minutes("EUR", "USD")
    # 60 free, then 100 at 0.02 and 90 at 0.01 plus the second tier's 0.50 fee.
    line = charge.line(Decimal("250"), "EUR", PERIOD)
    assert line is not None
    assert line.kind is LineKind.USAGE
    assert line.amount == Money.of("3.40", "EUR")
    assert line.description == "Viewing minutes: 250"
    assert line.period == PERIOD
    assert charge.line(Decimal("60"), "EUR", PERIOD) is None  # within the allowance
