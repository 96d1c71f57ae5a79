"""XMLTV guides and the Xtream player API's account answer."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import pytest

from iptv_billing.domain.entitlement import Entitlement
from iptv_billing.domain.epg import GuideChannel, Programme, render_xmltv, xmltv_time
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.subscription import SubscriptionStatus
from iptv_billing.domain.xtream import XtreamServer, server_info, user_info, xtream_status

NOW = datetime(2026, 4, 10, 20, 0, tzinfo=UTC)
BERLIN_SUMMER = timezone(timedelta(hours=2))


def test_a_guide_lists_only_the_entitled_channels_and_escapes_text() -> None:
    channels = [GuideChannel("news.example", "News & Weather", "http://tv.example/n.png")]
    programmes = [
        Programme(
            "news.example",
            datetime(2026, 4, 10, 22, 0, tzinfo=BERLIN_SUMMER),
            datetime(2026, 4, 10, 22, 30, tzinfo=BERLIN_SUMMER),
            "<Breaking> news",
            "Tonight & tomorrow",
        ),
        Programme("sports.example", NOW, NOW + timedelta(hours=2), "Cup final"),
    ]
    root = ET.fromstring(render_xmltv(channels, programmes, "iptv-billing"))
    assert root.tag == "tv"
    assert [c.get("id") for c in root.iter("channel")] == ["news.example"]
    assert root.find("channel/display-name").text == "News & Weather"  # type: ignore[union-attr]
    (programme,) = root.iter("programme")
    assert programme.get("start") == "20260410200000 +0000"
    assert programme.get("stop") == "20260410203000 +0000"
    assert programme.find("title").text == "<Breaking> news"  # type: ignore[union-attr]


def test_programmes_must_end_after_they_start() -> None:
    with pytest.raises(InvalidInput):
        Programme("news.example", NOW, NOW, "Nothing")
    assert xmltv_time(NOW) == "20260410200000 +0000"


ENTITLEMENT = Entitlement(
    subscription_id="sub_1",
    status=SubscriptionStatus.ACTIVE,
    valid_until=datetime(2026, 5, 1, tzinfo=UTC),
    packages=frozenset({"basic"}),
    max_connections=2,
)


@pytest.mark.parametrize(
    ("changes", "at", "status"),
    [
        ({}, NOW, "Active"),
        ({"status": SubscriptionStatus.PAST_DUE}, NOW, "Active"),
        ({"status": SubscriptionStatus.TRIALING}, NOW, "Active"),
        ({}, datetime(2026, 5, 1, tzinfo=UTC), "Expired"),
        ({"status": SubscriptionStatus.EXPIRED}, NOW, "Expired"),
        ({"status": SubscriptionStatus.CANCELLED}, NOW, "Expired"),
        ({"status": SubscriptionStatus.SUSPENDED}, NOW, "Banned"),
        ({"status": SubscriptionStatus.PAUSED}, NOW, "Disabled"),
        ({"enabled": False}, NOW, "Disabled"),
    ],
)
def test_status_mapping(changes: dict[str, object], at: datetime, status: str) -> None:
    entitlement = dataclasses.replace(ENTITLEMENT, **changes)  # type: ignore[arg-type]
    assert xtream_status(entitlement, at) == status


def test_user_and_server_info_have_the_fields_apps_read() -> None:
    info = user_info("alice", "s3cret", ENTITLEMENT, active_connections=1, created_at=NOW, now=NOW)
    assert info == {
        "username": "alice",
        "password": "s3cret",
        "message": "",
        "auth": 1,
        "status": "Active",
        "exp_date": "1777593600",
        "is_trial": "0",
        "active_cons": "1",
        "created_at": str(int(NOW.timestamp())),
        "max_connections": "2",
        "allowed_output_formats": ["m3u8", "ts"],
    }
    server = server_info(XtreamServer("tv.example", 80, 443, "http", "UTC"), NOW)
    assert server["time_now"] == "2026-04-10 20:00:00"
    assert server["timestamp_now"] == int(NOW.timestamp())
    assert {"url", "port", "https_port", "server_protocol", "rtmp_port", "timezone"} <= set(server)
