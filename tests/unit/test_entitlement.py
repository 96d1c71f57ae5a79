"""The stream-authorization decision: each refusal for its reason, add-ons counted, purchases
honoured, and the cache duration never outliving the right to watch."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.domain.catalog import AddOnKind, AddOnTerms, BillingTerms
from iptv_billing.domain.entitlement import (
    MAX_DECISION_TTL,
    MIN_DECISION_TTL,
    RENEWAL_ALLOWANCE,
    Asset,
    AssetKind,
    Entitlement,
    Reason,
    Request,
    Window,
    decide,
    entitlement_of,
)
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit
from iptv_billing.domain.subscription import SubscriptionStatus, start

NOW = datetime(2026, 4, 10, 20, 0, tzinfo=UTC)
EUR = (Money.of("3.00", "EUR"),)
TERMS = BillingTerms(
    plan_code="family",
    version=1,
    name="Family",
    interval=BillingInterval(PeriodUnit.MONTH),
    prices=(Money.of("10.00", "EUR"),),
    effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    max_connections=2,
    package_codes=("basic", "kids"),
    addons=(
        AddOnTerms("screen", "Extra screen", AddOnKind.EXTRA_CONNECTION, EUR, 1),
        AddOnTerms("sports", "Sports", AddOnKind.EXTRA_PACKAGE, EUR, 0, ("sports",)),
    ),
)
NEWS = Asset(AssetKind.LIVE, "news-1", frozenset({"basic"}))
FOOTBALL = Asset(AssetKind.LIVE, "football-1", frozenset({"sports"}))
FINAL = Asset(AssetKind.PPV, "cup-final")


def entitlement(**changes: object) -> Entitlement:
    state = start(TERMS, "EUR", datetime(2026, 4, 1, tzinfo=UTC), UTC, trial=False).state
    return dataclasses.replace(entitlement_of("sub_1", state, TERMS), **changes)  # type: ignore[arg-type]


def test_addons_add_connections_and_packages() -> None:
    state = start(
        TERMS,
        "EUR",
        datetime(2026, 4, 1, tzinfo=UTC),
        UTC,
        trial=False,
        addons=(("screen", 2), ("sports", 1)),
    ).state
    granted = entitlement_of("sub_1", state, TERMS)
    assert granted.max_connections == 4
    assert granted.packages == {"basic", "kids", "sports"}
    # The period ends on May 1st; the renewal allowance keeps it watchable until billed.
    assert granted.valid_until == datetime(2026, 5, 1, tzinfo=UTC) + RENEWAL_ALLOWANCE
    assert decide(granted, Request(FOOTBALL, NOW)).allowed
    assert decide(entitlement(), Request(FOOTBALL, NOW)).reason is Reason.NOT_IN_PACKAGE


@pytest.mark.parametrize(
    ("changes", "request_", "reason"),
    [
        ({"status": SubscriptionStatus.SUSPENDED}, Request(NEWS, NOW), Reason.SUSPENDED),
        ({"status": SubscriptionStatus.PAUSED}, Request(NEWS, NOW), Reason.PAUSED),
        ({"status": SubscriptionStatus.EXPIRED}, Request(NEWS, NOW), Reason.EXPIRED),
        ({"status": SubscriptionStatus.CANCELLED}, Request(NEWS, NOW), Reason.EXPIRED),
        ({"enabled": False}, Request(NEWS, NOW), Reason.CREDENTIAL_DISABLED),
        ({}, Request(NEWS, datetime(2026, 5, 2, tzinfo=UTC)), Reason.EXPIRED),
        ({}, Request(FINAL, NOW), Reason.NOT_PURCHASED),
        ({"countries": frozenset({"DE"})}, Request(NEWS, NOW, "FR"), Reason.COUNTRY_NOT_ALLOWED),
        ({"countries": frozenset({"DE"})}, Request(NEWS, NOW), Reason.COUNTRY_NOT_ALLOWED),
        ({}, Request(NEWS, NOW, active_sessions=2), Reason.OVER_CONNECTION_LIMIT),
        (
            {},
            Request(
                Asset(AssetKind.CATCHUP, "news-1", frozenset({"basic"}), NOW - timedelta(days=8)),
                NOW,
            ),
            Reason.CATCHUP_OUT_OF_WINDOW,
        ),
        (
            {},
            Request(
                Asset(AssetKind.CATCHUP, "news-1", frozenset({"basic"}), NOW + timedelta(hours=1)),
                NOW,
            ),
            Reason.CATCHUP_OUT_OF_WINDOW,
        ),
    ],
    ids=lambda v: v.value if isinstance(v, Reason) else "",
)
def test_each_refusal_names_its_reason(
    changes: dict[str, object], request_: Request, reason: Reason
) -> None:
    decision = decide(entitlement(**changes), request_)
    assert (decision.allowed, decision.reason) == (False, reason)
    assert decision.subscription_id == "sub_1"


def test_a_subscription_ending_with_its_period_has_no_renewal_allowance() -> None:
    state = start(TERMS, "EUR", datetime(2026, 4, 1, tzinfo=UTC), UTC, trial=False).state
    ending = dataclasses.replace(state, cancel_at_period_end=True)
    period_end = datetime(2026, 5, 1, tzinfo=UTC)
    assert entitlement_of("sub_1", ending, TERMS).valid_until == period_end
    renewing = entitlement_of("sub_1", state, TERMS)
    assert decide(renewing, Request(NEWS, period_end + timedelta(hours=23))).allowed
    refused = decide(entitlement_of("sub_1", ending, TERMS), Request(NEWS, period_end))
    assert refused.reason is Reason.EXPIRED


def test_an_unknown_credential_is_refused() -> None:
    assert decide(None, Request(NEWS, NOW)).reason is Reason.UNKNOWN_CREDENTIAL


def test_allowed_cases() -> None:
    past_due = entitlement(status=SubscriptionStatus.PAST_DUE)
    assert decide(past_due, Request(NEWS, NOW)).allowed  # dunning, not yet suspended
    assert decide(entitlement(countries=frozenset({"DE"})), Request(NEWS, NOW, "DE")).allowed
    heartbeat = Request(NEWS, NOW, active_sessions=2, is_known_session=True)
    assert decide(entitlement(), heartbeat).allowed  # a counted session is not a new one
    catchup = Asset(AssetKind.CATCHUP, "news-1", frozenset({"basic"}), NOW - timedelta(days=6))
    assert decide(entitlement(), Request(catchup, NOW)).allowed


def test_a_purchase_grants_its_window_only() -> None:
    window = Window("cup-final", NOW - timedelta(hours=1), NOW + timedelta(hours=3))
    bought = entitlement(purchases=(window,))
    assert decide(bought, Request(FINAL, NOW)).allowed
    assert decide(bought, Request(FINAL, NOW + timedelta(hours=3))).reason is Reason.NOT_PURCHASED
    # a purchase outlives the subscription's period (bought separately) but not a suspension
    late = NOW + timedelta(days=30)
    rental = entitlement(purchases=(Window("cup-final", NOW, late + timedelta(hours=1)),))
    assert decide(rental, Request(FINAL, late)).allowed
    suspended = dataclasses.replace(rental, status=SubscriptionStatus.SUSPENDED)
    assert decide(suspended, Request(FINAL, NOW)).reason is Reason.SUSPENDED


@given(st.integers(min_value=0, max_value=60 * 24 * 40))
def test_a_yes_is_never_cached_past_the_end_of_access(minutes: int) -> None:
    granted = entitlement()
    at = datetime(2026, 4, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    decision = decide(granted, Request(NEWS, at))
    if at >= granted.valid_until:
        assert not decision.allowed
        return
    assert decision.allowed
    assert MIN_DECISION_TTL <= decision.cache_for <= MAX_DECISION_TTL
    assert at + decision.cache_for <= granted.valid_until + MIN_DECISION_TTL


def test_bad_assets_are_refused() -> None:
    with pytest.raises(InvalidInput):
        Asset(AssetKind.LIVE, "")
    with pytest.raises(InvalidInput):
        Asset(AssetKind.CATCHUP, "news-1", frozenset({"basic"}))
