"""The test card provider behaves like a real one: async confirmation, declines, and
deduplication on the idempotency key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from iptv_billing.adapters.payments.test_provider import TestCardProvider
from iptv_billing.domain.errors import Conflict, NotFound
from iptv_billing.services.clock import FixedClock
from iptv_billing.services.providers import ChargeStatus


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, tzinfo=UTC))


@pytest.fixture
def provider(clock: FixedClock) -> TestCardProvider:
    return TestCardProvider(clock, confirm_after=timedelta(seconds=5))


def charge(provider: TestCardProvider, key: str, method: str, minor: int = 999) -> ChargeStatus:
    return provider.charge(
        idempotency_key=key, amount_minor=minor, currency="EUR", payment_method=method
    ).status


def test_visa_is_pending_then_succeeds(provider: TestCardProvider, clock: FixedClock) -> None:
    first = provider.charge(
        idempotency_key="k1", amount_minor=999, currency="EUR", payment_method="pm_card_visa"
    )
    assert first.status is ChargeStatus.PENDING
    clock.set(clock.now() + timedelta(seconds=5))
    assert provider.retrieve(first.id).status is ChargeStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("method", "code"),
    [("pm_card_declined", "card_declined"), ("pm_card_insufficient_funds", "insufficient_funds")],
)
def test_declines_fail_at_once(provider: TestCardProvider, method: str, code: str) -> None:
    result = provider.charge(
        idempotency_key="k", amount_minor=500, currency="EUR", payment_method=method
    )
    assert result.status is ChargeStatus.FAILED
    assert result.failure_code == code


def test_async_decline(provider: TestCardProvider, clock: FixedClock) -> None:
    result = provider.charge(
        idempotency_key="k",
        amount_minor=500,
        currency="EUR",
        payment_method="pm_card_async_decline",
    )
    assert result.status is ChargeStatus.PENDING
    clock.set(clock.now() + timedelta(minutes=1))
    assert provider.retrieve(result.id).failure_code == "card_declined"


def test_same_key_returns_the_same_charge(provider: TestCardProvider) -> None:
    assert charge(provider, "same", "pm_card_instant") is ChargeStatus.SUCCEEDED
    again = provider.charge(
        idempotency_key="same", amount_minor=999, currency="EUR", payment_method="pm_card_instant"
    )
    assert again.status is ChargeStatus.SUCCEEDED
    with pytest.raises(Conflict):
        charge(provider, "same", "pm_card_instant", minor=1000)


def test_unknown_tokens_and_charges(provider: TestCardProvider) -> None:
    assert charge(provider, "x", "pm_unknown") is ChargeStatus.FAILED
    with pytest.raises(NotFound):
        provider.retrieve("ch_missing")
