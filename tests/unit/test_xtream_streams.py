"""The Xtream content answers and stream-URL rules: categories, live streams, the short EPG,
catch-up start times and origin URL templates."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.domain.entitlement import Entitlement
from iptv_billing.domain.epg import Programme
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.subscription import SubscriptionStatus
from iptv_billing.domain.xtream import (
    LiveChannel,
    XtreamServer,
    archive_days,
    catchup_source,
    category_id,
    fill_source,
    in_archive,
    live_categories,
    live_streams,
    server_info,
    short_epg,
    timeshift_start,
    user_info,
    zone,
)

NOW = datetime(2028, 1, 31, 10, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
CHANNELS = [
    LiveChannel(11, "News One", "News", NOW, "http://l/n.png", "news.example", 3),
    LiveChannel(12, "Kids One", "Kids", NOW, None, None),
    LiveChannel(13, "News Two", "News", NOW),
]


@given(st.text(max_size=50))
def test_category_ids_are_stable_positive_31_bit_numbers(name: str) -> None:
    value = category_id(name)
    assert value == category_id(name)
    assert 0 <= int(value) < 2**31


def test_categories_come_once_each_in_channel_order() -> None:
    assert live_categories(CHANNELS) == [
        {"category_id": category_id("News"), "category_name": "News", "parent_id": 0},
        {"category_id": category_id("Kids"), "category_name": "Kids", "parent_id": 0},
    ]
    assert category_id("News") != category_id("Kids")


def test_live_streams_keep_their_numbers_under_a_category_filter() -> None:
    entries = live_streams(CHANNELS)
    assert [(e["num"], e["stream_id"]) for e in entries] == [(1, 11), (2, 12), (3, 13)]
    news = live_streams(CHANNELS, category_id("News"))
    assert [(e["num"], e["name"]) for e in news] == [(1, "News One"), (3, "News Two")]
    assert live_streams(CHANNELS, "0") == []
    first, second = entries[0], entries[1]
    assert (first["tv_archive"], first["tv_archive_duration"]) == (1, 3)
    assert (second["tv_archive"], second["tv_archive_duration"]) == (0, 0)
    assert (second["stream_icon"], second["epg_channel_id"]) == ("", None)
    assert first["added"] == str(int(NOW.timestamp()))
    assert isinstance(first["category_id"], str)
    assert isinstance(first["stream_id"], int)


@pytest.mark.parametrize(
    ("channel", "entitled", "days"), [(3, 7, 3), (10, 7, 7), (0, 7, 0), (5, 0, 0)]
)
def test_the_archive_is_the_smaller_of_channel_and_subscription(
    channel: int, entitled: int, days: int
) -> None:
    assert archive_days(channel, entitled) == days


def test_in_archive() -> None:
    assert in_archive(NOW - timedelta(days=3), NOW, 3)
    assert not in_archive(NOW - timedelta(days=3, seconds=1), NOW, 3)
    assert not in_archive(NOW + timedelta(seconds=1), NOW, 3)  # not aired yet
    assert not in_archive(NOW, NOW, 0)


def test_the_short_epg_is_base64_in_local_time() -> None:
    programme = Programme("news.example", NOW, NOW + timedelta(minutes=30), "Wetter", "Sonne", "de")
    (listing,) = short_epg([programme], BERLIN)["epg_listings"]  # type: ignore[misc]
    assert listing == {
        "id": str(int(NOW.timestamp())),
        "epg_id": "1",
        "title": base64.b64encode(b"Wetter").decode(),
        "lang": "de",
        "start": "2028-01-31 11:00:00",
        "end": "2028-01-31 11:30:00",
        "description": base64.b64encode(b"Sonne").decode(),
        "channel_id": "news.example",
        "start_timestamp": str(int(NOW.timestamp())),
        "stop_timestamp": str(int(NOW.timestamp()) + 1800),
    }
    assert short_epg([], UTC) == {"epg_listings": []}


def test_timeshift_starts_are_read_in_the_servers_zone() -> None:
    assert timeshift_start("2028-01-31:11-00", BERLIN) == NOW
    assert timeshift_start("2028-07-01:12-30-15", BERLIN) == datetime(
        2028, 7, 1, 10, 30, 15, tzinfo=UTC
    )
    for bad in ("2028-13-01:10-00", "2028-01-31 10:00", "", "0000-01-01:00-00", "x" * 1000):
        with pytest.raises(InvalidInput):
            timeshift_start(bad, UTC)


def test_source_templates_get_quoted_values_and_keep_other_braces() -> None:
    url = fill_source("http://o/{user}/s.m3u8?t={token}&x={other}", {"user": "a b", "token": "&/?"})
    assert url == "http://o/a%20b/s.m3u8?t=%26%2F%3F&x={other}"
    assert fill_source("http://o/s.ts", {"user": "u"}) == "http://o/s.ts"


def test_catchup_sources_fill_or_append_start_and_duration() -> None:
    start = NOW - timedelta(hours=1)
    utc = int(start.timestamp())
    assert catchup_source("http://o/s.m3u8", {}, start, 1800) == (
        f"http://o/s.m3u8?utc={utc}&duration=1800"
    )
    assert catchup_source("http://o/s.m3u8?a=1", {}, start, 60).endswith(
        f"?a=1&utc={utc}&duration=60"
    )
    assert catchup_source("http://o/s-{utc}-{duration}.ts", {}, start, 60) == (
        f"http://o/s-{utc}-60.ts"
    )


def test_account_expiry_and_server_time() -> None:
    entitlement = Entitlement(
        "sub_1", SubscriptionStatus.ACTIVE, NOW + timedelta(days=2), frozenset(), 1
    )
    paid_until = NOW + timedelta(days=1)
    info = user_info(
        "u", "p", entitlement, active_connections=0, created_at=NOW, now=NOW, expires_at=paid_until
    )
    assert info["exp_date"] == str(int(paid_until.timestamp()))
    server = server_info(XtreamServer("tv", 80, 443, "http", "Europe/Berlin"), NOW)
    assert server["time_now"] == "2028-01-31 11:00:00"
    assert zone("Not/AZone") is UTC
