"""Billing periods on the tenant's wall clock.

Every period start is computed from the anchor and its index, never by stepping from the
previous period, so month-end clamping does not drift (Jan 31 → Feb 28 → Mar 31, not Mar 28)
and any period can be found without walking from the first one.

Local times that do not exist (a DST gap) move forward by the gap's length; repeated local
times (a DST fold) take their first occurrence. Both follow from ``fold=0`` (PEP 495).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from iptv_billing.domain.errors import InvalidInput

MAX_INTERVAL_COUNT = 36
_ONE_DAY = timedelta(days=1)


class PeriodUnit(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


def require_aware(moment: object, what: str = "datetime") -> datetime:
    """``moment`` converted to UTC; naive datetimes are refused, never guessed."""
    if not isinstance(moment, datetime):
        raise InvalidInput("time.invalid_datetime", f"{what} must be a datetime")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput("time.naive_datetime", f"{what} must be timezone-aware")
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class BillingInterval:
    """``count`` units per period: (month, 1) is monthly, (week, 2) fortnightly."""

    unit: PeriodUnit
    count: int = 1

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "unit", PeriodUnit(self.unit))
        except ValueError as exc:
            raise InvalidInput("period.invalid_interval", f"unknown unit: {self.unit!r}") from exc
        count = self.count
        if not isinstance(count, int) or isinstance(count, bool):
            raise InvalidInput("period.invalid_interval", "count must be an integer")
        if not 1 <= count <= MAX_INTERVAL_COUNT:
            raise InvalidInput(
                "period.invalid_interval", f"count must be 1..{MAX_INTERVAL_COUNT}: {count}"
            )


@dataclass(frozen=True, slots=True)
class Period:
    """The half-open UTC interval [start, end)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = require_aware(self.start, "period start")
        end = require_aware(self.end, "period end")
        if not start < end:
            raise InvalidInput("period.invalid_range", f"period must end after it starts: {self}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def period_start(anchor: datetime, interval: BillingInterval, index: int, tz: ZoneInfo) -> datetime:
    """Start (UTC) of period ``index`` of the grid that ``anchor`` starts."""
    anchor_utc = require_aware(anchor, "anchor")
    steps = index * interval.count
    if steps == 0:
        return anchor_utc  # exact even when the anchor is the second pass through a DST fold
    local = anchor_utc.astimezone(tz)
    try:
        day = _shift_date(local.date(), interval.unit, steps, local.day)
        return _resolve(datetime.combine(day, local.time()), tz)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput("period.out_of_range", f"period {index} is out of range") from exc


def period_at(anchor: datetime, interval: BillingInterval, index: int, tz: ZoneInfo) -> Period:
    """Period ``index``: from its own start to the next one's."""
    return Period(
        period_start(anchor, interval, index, tz), period_start(anchor, interval, index + 1, tz)
    )


def index_containing(
    anchor: datetime, interval: BillingInterval, at: datetime, tz: ZoneInfo
) -> int:
    """The largest index whose period starts at or before ``at`` (negative before the anchor).

    A calendar estimate is off by at most one step either way, so correction is a few calls.
    """
    at_utc = require_aware(at)
    index = _estimate_index(anchor, interval, at_utc, tz)
    while period_start(anchor, interval, index, tz) > at_utc:
        index -= 1
    while period_start(anchor, interval, index + 1, tz) <= at_utc:
        index += 1
    return index


def add_days(moment: datetime, days: int, tz: ZoneInfo) -> datetime:
    """``days`` calendar days after ``moment`` at the same wall-clock time in ``tz`` (UTC)."""
    if not isinstance(days, int) or isinstance(days, bool):
        raise InvalidInput("period.invalid_days", "days must be an integer")
    local = require_aware(moment).astimezone(tz)
    try:
        return _resolve(local.replace(tzinfo=None) + timedelta(days=days), tz)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput("period.out_of_range", f"{days} days is out of range") from exc


def _resolve(wall: datetime, tz: ZoneInfo) -> datetime:
    # fold=0: a repeated time takes its first occurrence; a skipped time is read with the
    # offset before the gap, which lands it after the gap by the gap's length.
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _shift_date(start: date, unit: PeriodUnit, steps: int, anchor_day: int) -> date:
    if unit is PeriodUnit.DAY:
        return start + steps * _ONE_DAY
    if unit is PeriodUnit.WEEK:
        return start + 7 * steps * _ONE_DAY
    months = steps * 12 if unit is PeriodUnit.YEAR else steps
    year, month0 = divmod(start.year * 12 + start.month - 1 + months, 12)
    # Clamp to the month's last day: a 31st anchor bills on Feb 28/29, then Mar 31 again.
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(anchor_day, last))


def _estimate_index(anchor: datetime, interval: BillingInterval, at: datetime, tz: ZoneInfo) -> int:
    start = require_aware(anchor, "anchor").astimezone(tz)
    end = at.astimezone(tz)
    if interval.unit in (PeriodUnit.DAY, PeriodUnit.WEEK):
        days = (end.date() - start.date()).days
        per_step = 7 if interval.unit is PeriodUnit.WEEK else 1
        return days // (per_step * interval.count)
    months = (end.year - start.year) * 12 + (end.month - start.month)
    per_step = 12 if interval.unit is PeriodUnit.YEAR else 1
    return months // (per_step * interval.count)
