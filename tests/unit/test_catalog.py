from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from strategies import terms_strategy

from iptv_billing.domain.canonical import canonical_json, sha256_hex
from iptv_billing.domain.catalog import (
    AddOnKind,
    AddOnTerms,
    BillingTerms,
    Channel,
    Package,
    format_utc,
    parse_utc,
)
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit

EUR = Money.of("9.99", "EUR")
USD = Money.of("10.99", "USD")
PROPERTY = settings(max_examples=60, deadline=None)


def make_terms(**changes: Any) -> BillingTerms:
    fields: dict[str, Any] = {
        "plan_code": "basic",
        "version": 1,
        "name": "Basic",
        "interval": BillingInterval(PeriodUnit.MONTH),
        "prices": (USD, EUR),
        "effective_from": datetime(2024, 1, 1, tzinfo=UTC),
        "setup_fees": (Money.of("5", "EUR"),),
        "trial_days": 7,
        "package_codes": ("sports", "news", "sports"),
        "addons": (
            AddOnTerms("extra-screen", "Extra screen", AddOnKind.EXTRA_CONNECTION, (EUR,), 1),
        ),
    }
    fields.update(changes)
    return BillingTerms(**fields)


@PROPERTY
@given(terms_strategy())
def test_document_round_trip_preserves_the_hash(terms: BillingTerms) -> None:
    document = terms.to_document()
    via_json = json.loads(json.dumps(document))  # what a database or the wire gives back
    again = BillingTerms.from_document(via_json)
    assert again == terms
    assert again.terms_hash == terms.terms_hash
    assert again.canonical() == terms.canonical() == canonical_json(document)
    assert terms.terms_hash == sha256_hex(terms.canonical())


@pytest.mark.parametrize(
    "change",
    [
        {"plan_code": "premium"},
        {"version": 2},
        {"name": "Basic+"},
        {"interval": BillingInterval(PeriodUnit.MONTH, 3)},
        {"prices": (EUR,)},
        {"setup_fees": ()},
        {"trial_days": 0},
        {"max_connections": 2},
        {"package_codes": ("sports",)},
        {"addons": ()},
        {"effective_from": datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)},
        {"payment_due_days": 7},
        {"grace_days": 4},
        {"suspend_after_days": 15},
        {"expire_after_days": 61},
    ],
)
def test_any_field_changes_the_hash(change: dict[str, Any]) -> None:
    assert make_terms(**change).terms_hash != make_terms().terms_hash


def test_every_field_is_in_the_document() -> None:
    """Every field but the usage ones, which appear only when the plan meters usage (so terms
    published before usage existed keep their hash; tests/unit/test_usage_terms.py)."""
    names = {f.name for f in dataclasses.fields(BillingTerms) if f.init}
    usage = {"usage_charges", "usage_threshold", "usage_cap"}
    assert set(make_terms().to_document()) == names - usage


def test_equal_content_gives_equal_hash_regardless_of_order() -> None:
    a = make_terms(prices=(USD, EUR), package_codes=("sports", "news"))
    b = make_terms(prices=(EUR, USD), package_codes=("news", "sports", "news"))
    assert a == b
    assert a.terms_hash == b.terms_hash
    assert b.package_codes == ("news", "sports")


def test_document_is_deterministic_and_json_safe() -> None:
    document = make_terms(
        effective_from=datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    ).to_document()
    assert document["effective_from"] == "2024-01-01T00:00:00Z"
    assert document["prices"] == [
        {"currency": "EUR", "minor": 999},
        {"currency": "USD", "minor": 1099},
    ]
    assert document["interval"] == {"unit": "month", "count": 1}
    assert json.loads(json.dumps(document)) == document
    assert make_terms().canonical() == make_terms().canonical()


def test_lookups() -> None:
    terms = make_terms()
    assert terms.currencies == ("EUR", "USD")
    assert terms.price_in("USD") == USD
    assert terms.setup_fee_in("EUR") == Money.of("5", "EUR")
    assert terms.setup_fee_in("USD") == Money.zero("USD")
    assert terms.addon("extra-screen").connections == 1
    with pytest.raises(InvalidInput) as caught:
        terms.price_in("GBP")
    assert caught.value.code == "terms.currency_not_offered"
    with pytest.raises(InvalidInput) as caught:
        terms.addon("nope")
    assert caught.value.code == "terms.unknown_addon"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"plan_code": "Basic"}, "catalog.invalid_code"),
        ({"plan_code": "-x"}, "catalog.invalid_code"),
        ({"name": "  "}, "catalog.invalid_name"),
        ({"version": 0}, "terms.invalid_value"),
        ({"prices": ()}, "terms.invalid_price"),
        ({"prices": (-EUR,)}, "terms.invalid_price"),
        ({"prices": (EUR, Money.of("1", "EUR"))}, "terms.duplicate_currency"),
        ({"setup_fees": (Money.of("1", "GBP"),)}, "terms.currency_not_offered"),
        ({"trial_days": 366}, "terms.invalid_value"),
        ({"trial_days": True}, "terms.invalid_value"),
        ({"max_connections": 0}, "terms.invalid_value"),
        ({"payment_due_days": 91}, "terms.invalid_value"),
        ({"grace_days": 20}, "terms.invalid_value"),  # after suspension (14)
        ({"expire_after_days": 10}, "terms.invalid_value"),
        ({"effective_from": datetime(2024, 1, 1)}, "time.naive_datetime"),
        ({"package_codes": ("Sports",)}, "catalog.invalid_code"),
    ],
)
def test_invalid_terms_are_refused(change: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        make_terms(**change)
    assert caught.value.code == code


def test_addon_validation() -> None:
    with pytest.raises(InvalidInput):
        AddOnTerms("screen", "Screen", AddOnKind.EXTRA_CONNECTION, (EUR,), connections=0)
    with pytest.raises(InvalidInput):
        AddOnTerms("pack", "Pack", AddOnKind.EXTRA_PACKAGE, (EUR,))
    duplicate = AddOnTerms("x", "X", AddOnKind.EXTRA_CONNECTION, (EUR,), 1)
    with pytest.raises(InvalidInput) as caught:
        make_terms(addons=(duplicate, duplicate))
    assert caught.value.code == "terms.duplicate_addon"
    gbp_only = AddOnTerms("y", "Y", AddOnKind.EXTRA_CONNECTION, (Money.of("1", "GBP"),), 1)
    with pytest.raises(InvalidInput) as caught:
        make_terms(addons=(gbp_only,))
    assert caught.value.code == "terms.currency_not_offered"


def _mutations() -> list[Any]:
    def drop(key: str) -> Any:
        return lambda d: {k: v for k, v in d.items() if k != key}

    return [
        drop("grace_days"),
        lambda d: {**d, "surprise": 1},
        lambda d: {**d, "interval": {"unit": "month", "count": 1, "x": 0}},
        lambda d: {**d, "interval": {"unit": "fortnight", "count": 1}},
        lambda d: {**d, "prices": [{"currency": "EUR", "minor": 1.5}]},
        lambda d: {**d, "prices": [{"currency": "EUR"}]},
        lambda d: {**d, "version": "1"},
        lambda d: {**d, "trial_days": True},
        lambda d: {**d, "effective_from": "2024-01-01T00:00:00+00:00"},
        lambda d: {**d, "effective_from": "2024-01-01"},
        lambda d: {**d, "addons": [{**d["addons"][0], "kind": "unknown"}]},
        lambda d: {**d, "addons": [{**d["addons"][0], "kind": ["x"]}]},
        lambda d: {**d, "package_codes": "sports"},
        lambda d: [d],
    ]


@pytest.mark.parametrize("mutate", _mutations())
def test_from_document_is_strict(mutate: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        BillingTerms.from_document(mutate(make_terms().to_document()))
    assert caught.value.code == "terms.invalid_document"


def test_utc_text_round_trips_microseconds() -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, 123, tzinfo=UTC)
    assert format_utc(moment) == "2024-05-06T07:08:09.000123Z"
    assert parse_utc(format_utc(moment)) == moment


def test_channel_and_package() -> None:
    assert Channel("bbc-one", "BBC One", 101).number == 101
    with pytest.raises(InvalidInput):
        Channel("bbc-one", "BBC One", 0)
    with pytest.raises(InvalidInput):
        Channel("BBC", "BBC One", 1)
    package = Package("uk", "UK", ("itv", "bbc-one", "itv"))
    assert package.channel_codes == ("bbc-one", "itv")
    assert hash(package) == hash(Package("uk", "UK", ("bbc-one", "itv")))
