"""The Xtream-compatible player endpoints against a real database, through the full app:
what Xtream apps read (player_api.php, get.php, xmltv.php) and where stream URLs send them."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from m3u_parser import M3uParser
from operator_harness import START
from stream_harness import StreamOperator, Viewer

from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices
from iptv_billing.domain.xtream import category_id
from iptv_billing.services import access, catalog, credentials, subscriptions

BASIC = ["news-1", "news-2", "kids-1"]
SPORTS = [*BASIC, "sport-1", "sport-2"]
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url)
    yield operator
    operator.close()


def player(op: StreamOperator, viewer: Viewer, **params: str) -> httpx.Response:
    query = {"username": viewer.username, "password": viewer.password, **params}
    return op.client.get("/player_api.php", params=query)


def user_info(op: StreamOperator, viewer: Viewer) -> dict[str, Any]:
    answer = player(op, viewer)
    assert answer.status_code == 200
    info: dict[str, Any] = answer.json()["user_info"]
    return info


def stream_ids(op: StreamOperator) -> dict[str, int]:
    tenant = op.index.tenant(op.tenant_id)
    assert tenant is not None
    return {v.record.code: v.record.stream_id or 0 for v in tenant.catalog.ordered}


def channel_ids(op: StreamOperator) -> dict[str, str]:
    found = op.read(lambda u, c: u.catalog.channels_by_code(c.tenant_id, SPORTS))
    return {ch.code: ch.id for ch in found}


def admin_key(op: StreamOperator) -> dict[str, str]:
    _, secret = op.tx(
        lambda u, c: access.issue_api_key(u, op.ids, op.system, c.tenant_id, "epg", "admin")
    )
    return {"Authorization": f"Bearer {secret}"}


def import_guide(op: StreamOperator) -> None:
    ids = channel_ids(op)

    def at(minutes: int) -> str:
        return (START + timedelta(minutes=minutes)).isoformat()

    programmes = [
        {"channel_id": ids["news-1"], "start": at(-30), "stop": at(30), "title": "Morning News"},
        {
            "channel_id": ids["news-1"],
            "start": at(30),
            "stop": at(60),
            "title": "Wetter & Verkehr",
            "description": "Sonne über Berlin",
            "lang": "de",
        },
        {"channel_id": ids["sport-1"], "start": at(0), "stop": at(120), "title": "Cup Final"},
    ]
    answer = op.client.post(
        "/v1/epg/programmes", json={"programmes": programmes}, headers=admin_key(op)
    )
    assert answer.status_code == 200, answer.text


# -- the account ---------------------------------------------------------------------------------
def test_the_account_answer_has_the_fields_and_types_apps_read(op: StreamOperator) -> None:
    viewer = op.viewer()
    answer = player(op, viewer)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    period_end = viewer.subscription.state.current_period.end
    assert body["user_info"] == {
        "username": viewer.username,
        "password": viewer.password,
        "message": "",
        "auth": 1,
        "status": "Active",
        "exp_date": str(int(period_end.timestamp())),  # the paid period, not the allowance
        "is_trial": "0",
        "active_cons": "0",
        "created_at": str(int(START.timestamp())),
        "max_connections": "2",
        "allowed_output_formats": ["m3u8", "ts"],
    }
    server = body["server_info"]
    assert server["url"] == "tv.example.test"
    assert (server["port"], server["https_port"], server["server_protocol"]) == (
        "80",
        "443",
        "http",
    )
    assert server["timezone"] == "Europe/Berlin"
    assert server["timestamp_now"] == int(START.timestamp())
    assert server["time_now"] == START.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M:%S")
    # Some apps post a form instead; the answer is the same.
    form = {"username": viewer.username, "password": viewer.password}
    assert op.client.post("/player_api.php", data=form).json() == body


def test_wrong_or_missing_credentials_answer_auth_0(op: StreamOperator) -> None:
    viewer = op.viewer()
    wrong = op.client.get(
        "/player_api.php", params={"username": viewer.username, "password": "nope"}
    )
    assert (wrong.status_code, wrong.json()) == (200, {"user_info": {"auth": 0}})
    assert op.client.get("/player_api.php").json() == {"user_info": {"auth": 0}}
    listed = op.client.get(
        "/player_api.php",
        params={"username": viewer.username, "password": "x", "action": "get_live_streams"},
    )
    assert listed.json() == {"user_info": {"auth": 0}}


def test_an_ip_that_guesses_too_often_is_refused_with_429(database_url: str) -> None:
    op = StreamOperator(database_url, max_failures=3)
    try:
        viewer = op.viewer()
        for _ in range(3):
            player(op, Viewer(viewer.subscription, viewer.username, "guess", "", "", ""))
        blocked = player(op, viewer)
        assert (blocked.status_code, blocked.json()) == (429, {"user_info": {"auth": 0}})
    finally:
        op.close()


def test_statuses_follow_billing_and_the_credential(op: StreamOperator) -> None:
    expiring, disabled, banned = op.viewer(), op.viewer(), op.viewer()
    op.tx(lambda u, c: credentials.set_enabled(u, c, disabled.line_id, False))
    op.tx(lambda u, c: subscriptions.cancel(u, c, expiring.subscription.id, at_period_end=True))
    op.sync()
    assert user_info(op, disabled)["status"] == "Disabled"
    assert user_info(op, expiring)["status"] == "Active"
    op.advance(30)  # past the period end, which the cancelled subscription does not renew
    op.sync()
    assert user_info(op, expiring)["status"] == "Expired"
    assert player(op, expiring, action="get_live_streams").json() == []
    # The first invoice is still unpaid: the plan suspends at once (no grace).
    op.bill()
    op.sync()
    assert user_info(op, banned)["status"] == "Banned"
    assert user_info(op, banned)["auth"] == 1


def test_trials_are_flagged(op: StreamOperator) -> None:
    op.plan("trial", "5.00", trial_days=7, package_codes=["basic"])
    viewer = op.viewer("trial", trial=True)
    info = user_info(op, viewer)
    assert (info["is_trial"], info["status"]) == ("1", "Active")


# -- categories and streams ---------------------------------------------------------------------
def test_categories_and_streams_are_those_of_the_packages(op: StreamOperator) -> None:
    basic, sports = op.viewer(), op.viewer("sports")
    categories = player(op, basic, action="get_live_categories").json()
    assert categories == [
        {"category_id": category_id("News"), "category_name": "News", "parent_id": 0},
        {"category_id": category_id("Kids"), "category_name": "Kids", "parent_id": 0},
    ]
    names = [c["category_name"] for c in player(op, sports, action="get_live_categories").json()]
    assert names == ["News", "Kids", "Sports"]

    streams = player(op, basic, action="get_live_streams").json()
    ids = stream_ids(op)
    assert [s["stream_id"] for s in streams] == [ids[code] for code in BASIC]
    news = streams[0]
    assert news == {
        "num": 1,
        "name": "News One",
        "stream_type": "live",
        "stream_id": ids["news-1"],
        "stream_icon": "http://logos.example.test/news-1.png",
        "epg_channel_id": "news-1.example",
        "added": str(int(START.timestamp())),
        "category_id": category_id("News"),
        "custom_sid": "",
        "tv_archive": 1,
        "direct_source": "",
        "tv_archive_duration": 3,  # the channel's 3 days, inside the plan's 7
    }
    assert (streams[1]["tv_archive"], streams[1]["tv_archive_duration"]) == (0, 0)
    all_of_sports = player(op, sports, action="get_live_streams").json()
    assert [s["stream_id"] for s in all_of_sports] == [ids[code] for code in SPORTS]
    only_sports = player(
        op, sports, action="get_live_streams", category_id=category_id("Sports")
    ).json()
    assert [(s["num"], s["name"]) for s in only_sports] == [(4, "Sport One"), (5, "Sport Two")]
    assert (
        player(op, basic, action="get_live_streams", category_id=category_id("Sports")).json() == []
    )


def test_vod_series_and_unknown_actions_are_empty_lists(op: StreamOperator) -> None:
    viewer = op.viewer()
    for action in ("get_vod_categories", "get_vod_streams", "get_series_categories", "get_series"):
        assert player(op, viewer, action=action).json() == []
    assert player(op, viewer, action="no_such_action").json() == []


def test_the_short_epg_is_base64_with_string_timestamps(op: StreamOperator) -> None:
    import_guide(op)
    viewer = op.viewer()
    ids = stream_ids(op)
    answer = player(op, viewer, action="get_short_epg", stream_id=str(ids["news-1"]), limit="5")
    listings = answer.json()["epg_listings"]
    assert [base64.b64decode(x["title"]).decode() for x in listings] == [
        "Morning News",
        "Wetter & Verkehr",
    ]
    first, second = listings
    start = START - timedelta(minutes=30)
    assert first["start_timestamp"] == str(int(start.timestamp()))
    assert first["stop_timestamp"] == str(int((START + timedelta(minutes=30)).timestamp()))
    assert first["start"] == start.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M:%S")
    assert first["channel_id"] == "news-1.example"
    assert (first["lang"], second["lang"]) == ("en", "de")
    assert base64.b64decode(second["description"]).decode() == "Sonne über Berlin"
    assert {"id", "epg_id", "end"} <= set(first)
    one = player(op, viewer, action="get_short_epg", stream_id=str(ids["news-1"]), limit="1")
    assert len(one.json()["epg_listings"]) == 1
    # Not in the viewer's packages, unknown, or missing: nothing.
    for stream in (str(ids["sport-1"]), "999", "", "abc"):
        refused = player(op, viewer, action="get_short_epg", stream_id=stream)
        assert refused.json() == {"epg_listings": []}


# -- get.php -----------------------------------------------------------------------------------
def parse_m3u(text: str, tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "playlist.m3u"
    path.write_text(text, encoding="utf-8")
    parser = M3uParser()
    parser.parse_m3u(str(path), check_live=False)
    streams: list[dict[str, Any]] = parser.get_list()
    return streams


def playlist(op: StreamOperator, viewer: Viewer, **params: str) -> httpx.Response:
    query = {"username": viewer.username, "password": viewer.password, **params}
    return op.client.get("/get.php", params=query)


@pytest.mark.parametrize(("plan", "codes"), [("basic", BASIC), ("sports", SPORTS)])
def test_the_playlist_has_exactly_the_entitled_channels(
    op: StreamOperator, tmp_path: Path, plan: str, codes: list[str]
) -> None:
    viewer = op.viewer(plan)
    answer = playlist(op, viewer, type="m3u_plus", output="ts")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("audio/x-mpegurl")
    assert answer.headers["cache-control"] == "no-store"
    streams = parse_m3u(answer.text, tmp_path)
    ids = stream_ids(op)
    base = f"http://tv.example.test/live/{viewer.username}/{viewer.password}"
    assert [s["url"] for s in streams] == [f"{base}/{ids[c]}.ts" for c in codes]
    assert [s["tvg"]["id"] for s in streams] == [f"{c}.example" for c in codes]
    assert streams[0]["logo"] == "http://logos.example.test/news-1.png"
    assert streams[0]["category"] == "News"
    header, first = answer.text.splitlines()[:2]
    guide = urlsplit(header.split('x-tvg-url="')[1].rstrip('"'))
    assert guide.path == "/xmltv.php"
    assert parse_qs(guide.query) == {"username": [viewer.username], "password": [viewer.password]}
    assert 'catchup="xc" catchup-days="3"' in first  # news-1 keeps a 3-day archive


def test_playlist_variants_and_refusals(op: StreamOperator, tmp_path: Path) -> None:
    viewer = op.viewer()
    hls = playlist(op, viewer, type="m3u_plus", output="hls")
    assert all(s["url"].endswith(".m3u8") for s in parse_m3u(hls.text, tmp_path))
    plain = playlist(op, viewer, type="m3u")
    assert plain.text.startswith("#EXTM3U\n")
    assert len(parse_m3u(plain.text, tmp_path)) == 3
    assert "group-title" not in plain.text
    assert playlist(op, viewer, type="enigma2").status_code == 400
    assert playlist(op, viewer, output="rtmp").status_code == 400
    wrong = op.client.get("/get.php", params={"username": viewer.username, "password": "x"})
    assert (wrong.status_code, wrong.text) == (401, "unknown_credential\n")
    assert op.client.get("/get.php").status_code == 401
    op.tx(lambda u, c: credentials.set_enabled(u, c, viewer.line_id, False))
    op.sync()
    assert (playlist(op, viewer).status_code, playlist(op, viewer).text) == (403, "disabled\n")


# -- xmltv.php ----------------------------------------------------------------------------------
def test_the_guide_lists_the_entitled_channels_and_their_programmes(op: StreamOperator) -> None:
    import_guide(op)
    viewer = op.viewer()
    query = {"username": viewer.username, "password": viewer.password}
    answer = op.client.get("/xmltv.php", params=query)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(answer.content)
    assert [c.get("id") for c in root.iter("channel")] == [f"{c}.example" for c in BASIC]
    programmes = list(root.iter("programme"))
    assert [p.findtext("title") for p in programmes] == ["Morning News", "Wetter & Verkehr"]
    assert {p.get("channel") for p in programmes} == {"news-1.example"}  # no Cup Final
    assert programmes[1].find("title").get("lang") == "de"  # type: ignore[union-attr]
    sports = op.viewer("sports")
    query = {"username": sports.username, "password": sports.password}
    titles = [
        p.findtext("title")
        for p in ET.fromstring(op.client.get("/xmltv.php", params=query).content).iter("programme")
    ]
    assert "Cup Final" in titles
    wrong = op.client.get("/xmltv.php", params={"username": viewer.username, "password": "x"})
    assert wrong.status_code == 401


# -- stream URLs --------------------------------------------------------------------------------
def test_live_urls_redirect_entitled_viewers_to_the_source(op: StreamOperator) -> None:
    viewer = op.viewer()
    ids = stream_ids(op)
    base = f"/live/{viewer.username}/{viewer.password}"
    answer = op.client.get(f"{base}/{ids['news-1']}.ts", follow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["location"] == "http://origin.example.test/hls/news-1/index.m3u8"
    assert answer.headers["cache-control"] == "no-store"
    assert op.client.get(f"{base}/kids-1.m3u8", follow_redirects=False).status_code == 302
    refused = op.client.get(f"{base}/{ids['sport-1']}.ts", follow_redirects=False)
    assert (refused.status_code, refused.text) == (403, "not_in_package\n")
    wrong = op.client.get(f"/live/{viewer.username}/nope/{ids['news-1']}.ts")
    assert (wrong.status_code, wrong.text) == (401, "unknown_credential\n")
    assert op.client.get(f"{base}/999.ts").status_code == 404
    for bad in (f"{ids['news-1']}.mp4", f"{ids['news-1']}", "NEWS.ts", ".ts"):
        assert op.client.get(f"{base}/{bad}").status_code in (404, 422), bad
    # The token form, and no session is opened by a redirect.
    token = op.client.get(f"/play/{viewer.token}/{ids['news-1']}.m3u8", follow_redirects=False)
    assert token.status_code == 302
    assert user_info(op, viewer)["active_cons"] == "0"


def test_sources_get_the_viewer_filled_in(op: StreamOperator) -> None:
    create = catalog.CreateChannel(
        "extra-1", "Extra", 6, source_url="http://origin.example.test/{user}/x.m3u8?t={token}"
    )
    op.tx(lambda u, c: catalog.create_channel(u, c, create))
    package = catalog.CreatePackage("extra", "Extra", ("extra-1",))
    op.tx(lambda u, c: catalog.create_package(u, c, package))
    op.plan("extra", "3.00", package_codes=["extra"])
    op.index.refresh_catalogs()
    viewer = op.viewer("extra")
    line = op.client.get(
        f"/live/{viewer.username}/{viewer.password}/extra-1.ts", follow_redirects=False
    )
    assert line.headers["location"] == (
        f"http://origin.example.test/{viewer.username}/x.m3u8?t={viewer.password}"
    )
    token = op.client.get(f"/play/{viewer.token}/extra-1.ts", follow_redirects=False)
    assert token.headers["location"].endswith(f"?t={viewer.token}")


def test_a_channel_without_a_source_is_not_found(op: StreamOperator) -> None:
    create = catalog.CreateChannel("bare-1", "Bare", 7)
    op.tx(lambda u, c: catalog.create_channel(u, c, create))
    op.tx(
        lambda u, c: catalog.create_package(u, c, catalog.CreatePackage("bare", "B", ("bare-1",)))
    )
    op.plan("bare", "3.00", package_codes=["bare"])
    op.index.refresh_catalogs()
    viewer = op.viewer("bare")
    answer = op.client.get(f"/live/{viewer.username}/{viewer.password}/bare-1.ts")
    assert answer.status_code == 404
    assert answer.json()["code"] == "channel.no_source"


def timeshift_url(viewer: Viewer, stream: int, ago: timedelta, minutes: int = 30) -> str:
    start = (START - ago).astimezone(BERLIN).strftime("%Y-%m-%d:%H-%M")
    return f"/timeshift/{viewer.username}/{viewer.password}/{minutes}/{start}/{stream}.ts"


def test_timeshift_inside_and_outside_the_archive(op: StreamOperator) -> None:
    viewer = op.viewer()
    ids = stream_ids(op)
    inside = op.client.get(
        timeshift_url(viewer, ids["news-1"], timedelta(hours=2)), follow_redirects=False
    )
    assert inside.status_code == 302
    aired = int((START - timedelta(hours=2)).timestamp())
    assert inside.headers["location"] == (
        f"http://origin.example.test/hls/news-1/index.m3u8?utc={aired}&duration=1800"
    )
    refusals = [
        timeshift_url(viewer, ids["news-1"], timedelta(days=4)),  # the channel keeps 3 days
        timeshift_url(viewer, ids["news-1"], -timedelta(hours=1)),  # not aired yet
        timeshift_url(viewer, ids["news-2"], timedelta(hours=1)),  # no archive
    ]
    for url in refusals:
        answer = op.client.get(url, follow_redirects=False)
        assert (answer.status_code, answer.text) == (403, "catchup_out_of_window\n"), url
    sports = timeshift_url(viewer, ids["sport-1"], timedelta(hours=1))
    assert op.client.get(sports).text == "not_in_package\n"
    wrong = timeshift_url(
        Viewer(viewer.subscription, viewer.username, "x", "", "", ""), 1, timedelta(hours=1)
    )
    assert op.client.get(wrong).status_code == 401
    base = f"/timeshift/{viewer.username}/{viewer.password}"
    for bad in (
        f"0/2028-01-31:10-00/{ids['news-1']}.ts",
        f"30/2028-13-40:10-00/{ids['news-1']}.ts",
        f"30/yesterday/{ids['news-1']}.ts",
    ):
        assert op.client.get(f"{base}/{bad}").status_code == 422, bad


# -- robustness ---------------------------------------------------------------------------------
def test_garbage_never_fails_the_server(op: StreamOperator) -> None:
    viewer = op.viewer()
    huge, odd = "u" * 10_000, "ünï😀\u202e"
    requests = [
        ("GET", "/player_api.php?username=&password="),
        ("GET", f"/player_api.php?username={huge}&password={huge}"),
        ("GET", f"/player_api.php?username={odd}&password={odd}&action=get_live_streams"),
        (
            "GET",
            f"/player_api.php?username={viewer.username}&password={viewer.password}&action=get_short_epg&stream_id={huge}&limit=-1",
        ),
        (
            "GET",
            f"/player_api.php?username={viewer.username}&password={viewer.password}&action=get_short_epg&stream_id=1&limit=99999999999",
        ),
        (
            "GET",
            f"/player_api.php?username={viewer.username}&password={viewer.password}&action={huge}",
        ),
        ("GET", "/player_api.php?username=%00&password=%FF%FE"),
        ("POST", "/player_api.php"),
        ("GET", f"/get.php?username={huge}&password=x&type=m3u_plus"),
        ("GET", f"/get.php?username={odd}&password={odd}&output={odd}"),
        ("GET", f"/xmltv.php?username={odd}&password=%00"),
        ("GET", f"/live/{huge}/{huge}/1.ts"),
        ("GET", f"/live/{odd}/{odd}/1.ts"),
        ("GET", "/live/../../etc/passwd.ts"),
        ("GET", f"/live/{viewer.username}/{viewer.password}/..%2F..%2F1.ts"),
        ("GET", f"/live/{viewer.username}/{viewer.password}/%2e%2e.ts"),
        ("GET", "/live/a/b/99999999999999999999.ts"),
        ("GET", f"/play/{huge}/1.ts"),
        ("GET", f"/play/{odd}/1.m3u8"),
        ("GET", f"/timeshift/{odd}/{odd}/30/2028-01-31:10-00/1.ts"),
        ("GET", f"/timeshift/{viewer.username}/{viewer.password}/99999999/2028-01-31:10-00/1.ts"),
        ("GET", f"/timeshift/{viewer.username}/{viewer.password}/30/9999-12-31:23-59/1.ts"),
        ("GET", f"/timeshift/{viewer.username}/{viewer.password}/30/0000-01-01:00-00/1.ts"),
    ]
    form = b"username=" + huge.encode() + b"&password=" + "ü".encode() * 500 + b"&" * 100
    for method, url in requests:
        answer = op.client.request(method, url, content=form if method == "POST" else None)
        assert answer.status_code < 500, (method, url[:120], answer.status_code, answer.text[:200])


def test_without_stream_authorization_players_get_503(op: StreamOperator) -> None:
    from fastapi.testclient import TestClient

    bare = TestClient(create_app(AppServices(op.database, op.ids, op.system)))
    answer = bare.get("/player_api.php", params={"username": "a", "password": "b"})
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert bare.get("/live/a/b/1.ts").status_code == 503
