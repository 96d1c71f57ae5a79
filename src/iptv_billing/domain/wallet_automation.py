"""Wallet automation rules: a low-balance threshold and auto top-up from a saved payment method.

Pure: what valid settings are, when a wallet is low, when an auto top-up is due, and how long a
declined card is left alone. Amounts are in the wallet's currency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.money import Money

# Ceilings in major units: a threshold beyond these is a typo, not a policy.
MAX_THRESHOLD = Decimal("1000000")
MAX_TOP_UP = Decimal("100000")
# A declined card is not tried again before this much tenant time, a settings change or the
# wallet having been back above ``below``: issuers flag cards that are hammered.
TOP_UP_BACKOFF = timedelta(hours=24)
# Provider tokens (pm_..., card_..., src_...): never card data.
PAYMENT_METHOD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,99}")

LOW_BALANCE = "low_balance"
AUTO_TOP_UP_FAILED = "auto_top_up_failed"
AUTO_TOPPED_UP = "auto_topped_up"
NOTICES = (LOW_BALANCE, AUTO_TOP_UP_FAILED, AUTO_TOPPED_UP)


@dataclass(frozen=True, slots=True)
class AutoTopUp:
    below: Money  # top up when the available balance is under this
    amount: Money  # how much each top-up charges
    payment_method: str  # the provider's saved payment-method token


def parse_amount(value: str, currency: str, field: str) -> Money:
    """A decimal string in the wallet's currency; errors name the field."""
    try:
        return Money.of(value, currency)
    except InvalidInput as exc:
        raise InvalidInput(exc.code, f"{field}: {exc.message}", field=field) from None


def check_threshold(threshold: Money) -> Money:
    if threshold.minor <= 0:
        raise InvalidInput(
            "wallet.invalid_threshold",
            "low_balance_threshold must be positive",
            field="low_balance_threshold",
        )
    if threshold.amount > MAX_THRESHOLD:
        raise InvalidInput(
            "wallet.threshold_too_large",
            f"low_balance_threshold is at most {MAX_THRESHOLD} {threshold.code}",
            field="low_balance_threshold",
        )
    return threshold


def check_auto_top_up(below: Money, amount: Money, payment_method: str) -> AutoTopUp:
    if below.minor <= 0:
        raise InvalidInput(
            "wallet.invalid_auto_top_up",
            "auto_top_up.below must be positive",
            field="auto_top_up.below",
        )
    if below.amount > MAX_THRESHOLD:
        raise InvalidInput(
            "wallet.threshold_too_large",
            f"auto_top_up.below is at most {MAX_THRESHOLD} {below.code}",
            field="auto_top_up.below",
        )
    if amount.minor <= 0:
        raise InvalidInput(
            "wallet.invalid_auto_top_up",
            "auto_top_up.amount must be positive",
            field="auto_top_up.amount",
        )
    if amount.amount > MAX_TOP_UP:
        raise InvalidInput(
            "wallet.top_up_too_large",
            f"auto_top_up.amount is at most {MAX_TOP_UP} {amount.code}",
            field="auto_top_up.amount",
        )
    if not PAYMENT_METHOD.fullmatch(payment_method):
        raise InvalidInput(
            "wallet.invalid_payment_method",
            "auto_top_up.payment_method is a saved payment-method token such as pm_card_visa",
            field="auto_top_up.payment_method",
        )
    return AutoTopUp(below, amount, payment_method)


def is_low(available_minor: int, threshold_minor: int | None) -> bool:
    return threshold_minor is not None and available_minor < threshold_minor


def top_up_due(
    available_minor: int,
    below_minor: int | None,
    pending_payment: str | None,
    retry_at: datetime | None,
    now: datetime,
) -> bool:
    """A new auto top-up starts when the wallet is under ``below``, none is in flight, and a
    decline's back-off is over."""
    if below_minor is None or pending_payment is not None or available_minor >= below_minor:
        return False
    return retry_at is None or retry_at <= now


def retry_after_decline(now: datetime) -> datetime:
    return now + TOP_UP_BACKOFF
