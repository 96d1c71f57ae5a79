"""Hypothesis strategies shared by the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from iptv_billing.domain.catalog import AddOnKind, AddOnTerms, BillingTerms
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit

ZONE_NAMES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
)
CURRENCY_CODES = ("EUR", "JPY", "KWD", "USD")

zones = st.sampled_from(ZONE_NAMES).map(ZoneInfo)
currency_codes = st.sampled_from(CURRENCY_CODES)
intervals = st.builds(
    BillingInterval, st.sampled_from(list(PeriodUnit)), st.integers(min_value=1, max_value=36)
)
small_intervals = st.builds(
    BillingInterval, st.sampled_from(list(PeriodUnit)), st.integers(min_value=1, max_value=3)
)


def instants(min_year: int = 2000, max_year: int = 2100) -> st.SearchStrategy[datetime]:
    """UTC-aware instants; period code converts them to the tenant's zone itself."""
    return st.datetimes(
        min_value=datetime(min_year, 1, 1),
        max_value=datetime(max_year, 12, 31, 23, 59, 59),
        timezones=st.just(UTC),
    )


def money(code: str, low: int = -(10**12), high: int = 10**12) -> st.SearchStrategy[Money]:
    return st.integers(min_value=low, max_value=high).map(lambda m: Money.from_minor(m, code))


def prices(min_minor: int = 0, max_minor: int = 10**7) -> st.SearchStrategy[tuple[Money, ...]]:
    """One non-negative price for each of a non-empty set of currencies."""
    return st.sets(currency_codes, min_size=1).flatmap(
        lambda codes: st.tuples(*(money(c, min_minor, max_minor) for c in sorted(codes)))
    )


def terms_strategy(
    interval: st.SearchStrategy[BillingInterval] = intervals,
) -> st.SearchStrategy[BillingTerms]:
    return prices().flatmap(lambda ps: _terms_for(ps, interval))


def _terms_for(
    plan_prices: tuple[Money, ...], interval: st.SearchStrategy[BillingInterval]
) -> st.SearchStrategy[BillingTerms]:
    codes = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,10}", fullmatch=True)
    addon = st.builds(
        AddOnTerms,
        code=codes,
        name=st.text(min_size=1, max_size=20).filter(str.strip),
        kind=st.just(AddOnKind.EXTRA_CONNECTION),
        prices=st.just(plan_prices),
        connections=st.integers(min_value=1, max_value=5),
    )
    return st.builds(
        BillingTerms,
        plan_code=codes,
        version=st.integers(min_value=1, max_value=1000),
        name=st.text(min_size=1, max_size=30).filter(str.strip),
        interval=interval,
        prices=st.just(plan_prices),
        effective_from=instants(),
        setup_fees=st.just(plan_prices[:1]),
        trial_days=st.integers(min_value=0, max_value=365),
        max_connections=st.integers(min_value=1, max_value=100),
        package_codes=st.lists(codes, max_size=4).map(tuple),
        addons=st.lists(addon, max_size=3, unique_by=lambda a: a.code).map(tuple),
        payment_due_days=st.integers(min_value=0, max_value=90),
        grace_days=st.integers(min_value=0, max_value=10),
        suspend_after_days=st.integers(min_value=10, max_value=30),
        expire_after_days=st.integers(min_value=30, max_value=90),
    )
