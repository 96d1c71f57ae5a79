"""Proration: the share of a period's price that falls before and after a moment.

Shares are by elapsed time to the microsecond and split with ``Money.allocate``, so the used and
unused parts always add up to the whole price, not to the whole price give or take a cent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import Period, require_aware

_MICROSECOND = timedelta(microseconds=1)


class ProrationMode(StrEnum):
    NONE = "none"  # switch now, no credit or charge for the current period
    PRORATE_NOW = "prorate_now"  # credit the unused old price, charge the remaining new one
    AT_PERIOD_END = "at_period_end"  # switch when the current period ends


def split_amount(amount: Money, period: Period, at: datetime) -> tuple[Money, Money]:
    """``(used, unused)`` parts of ``amount`` at ``at``, clamped into ``period``."""
    at_utc = min(max(require_aware(at), period.start), period.end)
    total = (period.end - period.start) // _MICROSECOND
    elapsed = (at_utc - period.start) // _MICROSECOND
    used, unused = amount.allocate((elapsed, total - elapsed))
    return used, unused


def prorate_change(
    old_amount: Money, new_amount: Money, period: Period, at: datetime
) -> tuple[Money, Money]:
    """``(credit, charge)`` for switching prices at ``at``: the credit is minus the unused part
    of the old price (<= 0), the charge the remaining part of the new price (>= 0)."""
    if old_amount.currency != new_amount.currency:
        raise InvalidInput(
            "money.currency_mismatch", f"cannot prorate {old_amount.code} to {new_amount.code}"
        )
    if old_amount.is_negative() or new_amount.is_negative():
        raise InvalidInput("proration.negative_amount", "prices to prorate are never negative")
    _, unused_old = split_amount(old_amount, period, at)
    _, remaining_new = split_amount(new_amount, period, at)
    return -unused_old, remaining_new
