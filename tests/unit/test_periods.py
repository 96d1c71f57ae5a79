from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import instants, intervals, zones

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.periods import (
    BillingInterval,
    Period,
    PeriodUnit,
    add_days,
    index_containing,
    period_at,
    period_start,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
MONTHLY = BillingInterval(PeriodUnit.MONTH)
YEARLY = BillingInterval(PeriodUnit.YEAR)
DAILY = BillingInterval(PeriodUnit.DAY)
PROPERTY = settings(max_examples=150, deadline=None)


def local(tz: tzinfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


@PROPERTY
@given(instants(), intervals, zones, st.integers(min_value=-3, max_value=40))
def test_periods_are_contiguous_and_increasing(
    anchor: datetime, interval: BillingInterval, tz: ZoneInfo, first: int
) -> None:
    periods = [period_at(anchor, interval, i, tz) for i in range(first, first + 4)]
    for earlier, later in pairwise(periods):
        assert earlier.end == later.start  # contiguous, hence non-overlapping
        assert earlier.start < earlier.end < later.end  # strictly increasing
    assert all(p.start.tzinfo is UTC for p in periods)


@PROPERTY
@given(instants(), intervals, zones)
def test_period_zero_starts_at_the_anchor(
    anchor: datetime, interval: BillingInterval, tz: ZoneInfo
) -> None:
    assert period_start(anchor, interval, 0, tz) == anchor


@PROPERTY
@given(instants(), intervals, zones, st.integers(min_value=0, max_value=60))
def test_wall_clock_time_is_kept_unless_it_does_not_exist(
    anchor: datetime, interval: BillingInterval, tz: ZoneInfo, index: int
) -> None:
    start = period_start(anchor, interval, index, tz).astimezone(tz)
    anchor_local = anchor.astimezone(tz)
    shift = datetime.combine(start.date(), start.time()) - datetime.combine(
        start.date(), anchor_local.time()
    )
    # Equal, or moved forward across a DST gap (at most 1 h; Lord Howe's gap is 30 min).
    assert timedelta(0) <= shift <= timedelta(hours=1)


@PROPERTY
@given(instants(2000, 2090), intervals, zones, st.integers(min_value=0, max_value=10**9))
def test_index_containing_finds_the_enclosing_period(
    anchor: datetime, interval: BillingInterval, tz: ZoneInfo, offset_minutes: int
) -> None:
    at = anchor + timedelta(minutes=offset_minutes % (10 * 366 * 24 * 60))
    index = index_containing(anchor, interval, at, tz)
    assert at in period_at(anchor, interval, index, tz)


@PROPERTY
@given(instants(2001, 2100), intervals, zones, st.integers(min_value=1, max_value=10**6))
def test_index_containing_before_the_anchor_is_negative(
    anchor: datetime, interval: BillingInterval, tz: ZoneInfo, minutes: int
) -> None:
    at = anchor - timedelta(minutes=minutes)
    index = index_containing(anchor, interval, at, tz)
    assert index < 0
    assert at in period_at(anchor, interval, index, tz)


def test_month_end_anchor_clamps_without_drifting() -> None:
    anchor = local(BERLIN, 2023, 1, 31, 9, 30)
    starts = [period_start(anchor, MONTHLY, i, BERLIN).astimezone(BERLIN) for i in range(4)]
    assert [(s.month, s.day, s.hour, s.minute) for s in starts] == [
        (1, 31, 9, 30),
        (2, 28, 9, 30),
        (3, 31, 9, 30),  # back to the 31st, not stuck on the 28th
        (4, 30, 9, 30),
    ]
    leap = period_start(local(BERLIN, 2024, 1, 31, 9, 30), MONTHLY, 1, BERLIN)
    assert leap.astimezone(BERLIN).date().isoformat() == "2024-02-29"


def test_leap_day_yearly_anchor() -> None:
    anchor = local(UTC, 2024, 2, 29, 12)
    days = [period_start(anchor, YEARLY, i, ZoneInfo("UTC")).date() for i in range(5)]
    assert [d.isoformat() for d in days] == [
        "2024-02-29",
        "2025-02-28",
        "2026-02-28",
        "2027-02-28",
        "2028-02-29",
    ]


def test_quarterly_and_negative_indices() -> None:
    quarterly = BillingInterval(PeriodUnit.MONTH, 3)
    anchor = local(UTC, 2024, 11, 30)
    tz = ZoneInfo("UTC")
    assert period_start(anchor, quarterly, 1, tz) == local(UTC, 2025, 2, 28)
    assert period_start(anchor, quarterly, -1, tz) == local(UTC, 2024, 8, 30)


def test_spring_forward_gap_moves_forward() -> None:
    # Berlin skips 02:00-03:00 on 2024-03-31; an anchor at 02:30 local lands at 03:30.
    anchor = local(BERLIN, 2024, 3, 30, 2, 30)
    start = period_start(anchor, DAILY, 1, BERLIN)
    assert start == local(BERLIN, 2024, 3, 31, 3, 30)
    assert start.astimezone(UTC) == local(UTC, 2024, 3, 31, 1, 30)
    assert period_start(anchor, DAILY, 2, BERLIN) == local(BERLIN, 2024, 4, 1, 2, 30)


def test_fall_back_fold_takes_the_first_occurrence() -> None:
    # New York repeats 01:00-02:00 on 2024-11-03; 01:30 means the first (EDT) one.
    anchor = local(NEW_YORK, 2024, 11, 2, 1, 30)
    start = period_start(anchor, DAILY, 1, NEW_YORK)
    assert start == local(UTC, 2024, 11, 3, 5, 30)  # 01:30 EDT (UTC-4)
    period = period_at(anchor, DAILY, 1, NEW_YORK)
    assert period.duration == timedelta(hours=25)  # the day with the repeated hour


def test_anchor_on_the_second_pass_of_a_fold_is_period_zero_exactly() -> None:
    second = datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK)
    # (compared in UTC: PEP 495 makes a fold=1 time unequal to every other-zone time)
    assert period_start(second, DAILY, 0, NEW_YORK) == second.astimezone(UTC)
    assert period_at(second, DAILY, 0, NEW_YORK).duration > timedelta(hours=23)


def test_lord_howe_half_hour_shift() -> None:
    # Lord Howe moves clocks by 30 minutes: 2024-10-06 02:00 → 02:30.
    anchor = local(LORD_HOWE, 2024, 10, 5, 2, 15)
    start = period_start(anchor, DAILY, 1, LORD_HOWE)
    assert start.astimezone(LORD_HOWE).time().isoformat() == "02:45:00"


def test_add_days_keeps_wall_clock_across_dst() -> None:
    start = local(BERLIN, 2024, 3, 25, 10)
    later = add_days(start, 14, BERLIN)
    assert later == local(BERLIN, 2024, 4, 8, 10)
    assert later - start == timedelta(days=14, hours=-1)
    assert add_days(start, 0, BERLIN) == start
    assert add_days(start, -1, BERLIN) == local(BERLIN, 2024, 3, 24, 10)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2024, 1, 1)
    for attempt in (
        lambda: period_start(naive, MONTHLY, 0, BERLIN),
        lambda: add_days(naive, 1, BERLIN),
        lambda: Period(naive, naive + timedelta(days=1)),
        lambda: index_containing(local(UTC, 2024, 1, 1), MONTHLY, naive, BERLIN),
    ):
        with pytest.raises(InvalidInput) as caught:
            attempt()
        assert caught.value.code == "time.naive_datetime"


@pytest.mark.parametrize(("unit", "count"), [("month", 0), ("month", 37), ("fortnight", 1)])
def test_invalid_intervals_are_refused(unit: str, count: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        BillingInterval(unit, count)  # type: ignore[arg-type]
    assert caught.value.code == "period.invalid_interval"


def test_period_must_be_non_empty_and_is_stored_in_utc() -> None:
    start = local(BERLIN, 2024, 1, 1)
    with pytest.raises(InvalidInput) as caught:
        Period(start, start)
    assert caught.value.code == "period.invalid_range"
    period = Period(start, start + timedelta(days=1))
    assert period.start.tzinfo is UTC
    assert start in period
    assert period.end not in period
