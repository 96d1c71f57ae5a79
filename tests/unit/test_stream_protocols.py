"""Parsing what streaming servers send: credentials, addresses, sessions, URIs, durations,
Ministra's account status and signed links."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from iptv_billing.domain.entitlement import Entitlement
from iptv_billing.domain.secure_links import LinkCheck, SecureLinkSigner
from iptv_billing.domain.stream_protocols import (
    INACTIVE,
    MAX_FIELD,
    MAX_FIELDS,
    PURCHASES_DISABLED,
    Offered,
    auth_duration,
    client_ip,
    country_code,
    offered,
    parse_original_uri,
    parse_query,
    purchase_refusal,
    session_id,
    signed_url,
    watching,
)
from iptv_billing.domain.subscription import SubscriptionStatus

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_the_first_value_of_a_field_wins() -> None:
    # nginx-rtmp: its own fields, then the player's query repeating them
    fields = parse_query(b"call=play&name=news-1&token=t&name=other&call=publish")
    assert fields == {"call": "play", "name": "news-1", "token": "t"}
    assert parse_query("?token=a%20b&empty=") == {"token": "a b", "empty": ""}


def test_what_is_not_a_query_parses_to_nothing_usable() -> None:
    assert parse_query("&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1))) == {}
    assert parse_query(b"token=\xff\xfe") == {"token": "\ufffd\ufffd"}
    assert parse_query(b'{"token": "x"}') == {'{"token": "x"}': ""}


def test_credentials_are_a_line_then_a_token_then_a_mac() -> None:
    both = {"username": "u", "password": "p", "token": "t", "mac": "m"}
    assert offered(both) == Offered("line", "u", "p")
    assert offered({"user": "u", "pass": "p"}) == Offered("line", "u", "p")  # MediaMTX
    assert offered({"username": "u", "token": "t"}) == Offered("token", "t")
    assert offered({"mac": "00:1A:79:00:00:01"}) == Offered("device", "00:1A:79:00:00:01")
    assert offered({"username": "", "password": "", "token": ""}) is None
    assert offered({}) is None


def test_oversized_or_non_text_fields_are_absent() -> None:
    assert offered({"token": "t" * (MAX_FIELD + 1)}) is None
    assert offered({"token": "t" * MAX_FIELD}) == Offered("token", "t" * MAX_FIELD)
    assert offered({"token": 12345, "username": ["u"], "password": None}) is None


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        (" 198.51.100.7 ", "198.51.100.7"),
        ("198.51.100.7, 10.0.0.1", "198.51.100.7"),  # X-Forwarded-For: the client first
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("not-an-ip", "peer"),
        ("1" * 100, "peer"),
        ("", "peer"),
        (None, "peer"),
    ],
)
def test_the_client_address_is_checked(reported: str | None, expected: str) -> None:
    assert client_ip(reported, "peer") == expected


def test_session_ids_need_every_part() -> None:
    assert session_id("rtmp", "10.0.0.2", "live", "17") == "rtmp:10.0.0.2:live:17"
    assert session_id("rtmp", "10.0.0.2", None, "17") is None
    assert session_id("nginx", "") is None
    assert session_id("srs", "x" * 129) is None


def test_country_codes() -> None:
    assert country_code("de") == "DE"
    assert country_code("DEU") is None
    assert country_code("--") is None
    assert country_code("ÄÖ") is None
    assert country_code(None) is None


def test_flussonic_auth_duration_is_clamped() -> None:
    assert auth_duration(timedelta(seconds=10)) == 30
    assert auth_duration(timedelta(minutes=5)) == 300
    assert auth_duration(timedelta(hours=2)) == 300
    # a counted session is re-checked before the registry forgets it
    assert auth_duration(timedelta(minutes=5), timedelta(seconds=90)) == 60
    assert auth_duration(timedelta(minutes=5), timedelta(seconds=30)) == 30


@pytest.mark.parametrize(
    ("uri", "stream", "fields"),
    [
        ("/hls/news-1/index.m3u8?token=T", "news-1", {"token": "T"}),
        ("/hls/news-1/17.ts?token=T&x=1", "news-1", {"token": "T", "x": "1"}),
        ("/hls/news-1.m3u8?username=u&password=p", "news-1", {"username": "u", "password": "p"}),
        ("/live/3.ts?token=T", "3", {"token": "T"}),
        ("/live/u/p%40ss/3.m3u8", "3", {"username": "u", "password": "p@ss"}),
        ("/live/u/p/news-1.ts?token=T", "news-1", {"token": "T", "username": "u", "password": "p"}),
        ("/dash/sport%2D1/init.mp4", "sport-1", {}),
        ("/hls/news-1-17.txt", None, {}),
        ("/news-1", None, {}),
        ("/a/b/c/d/e.ts?token=T", None, {"token": "T"}),
        ("", None, {}),
        ("/hls/.m3u8", None, {}),
    ],
)
def test_original_uri_shapes(uri: str, stream: str | None, fields: dict[str, str]) -> None:
    parsed = parse_original_uri(uri)
    assert (parsed.stream, parsed.fields) == (stream, fields)


def entitlement(
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE, **extra: object
) -> Entitlement:
    values: dict[str, object] = {
        "subscription_id": "sub_1",
        "status": status,
        "valid_until": NOW + timedelta(days=1),
        "packages": frozenset({"basic"}),
        "max_connections": 2,
        **extra,
    }
    return Entitlement(**values)  # type: ignore[arg-type]


def test_a_box_is_on_while_the_subscription_may_watch() -> None:
    assert watching(entitlement(), NOW)
    assert watching(entitlement(SubscriptionStatus.PAST_DUE), NOW)
    assert not watching(entitlement(SubscriptionStatus.PAUSED), NOW)
    assert not watching(entitlement(enabled=False), NOW)
    assert not watching(entitlement(), NOW + timedelta(days=1))


def test_only_packages_already_carried_are_approved() -> None:
    assert purchase_refusal(entitlement(), NOW, "basic") is None
    assert purchase_refusal(entitlement(), NOW, "sports") == PURCHASES_DISABLED
    assert purchase_refusal(entitlement(), NOW, None) == PURCHASES_DISABLED
    assert purchase_refusal(entitlement(SubscriptionStatus.SUSPENDED), NOW, "basic") == INACTIVE


SIGNER = SecureLinkSigner("a-long-operator-secret")


def nginx_md5(expires: int, uri: str, ip: str, secret: str) -> str:
    """What nginx computes for secure_link_md5 "$secure_link_expires$uri$remote_addr secret"."""
    digest = hashlib.md5(f"{expires}{uri}{ip} {secret}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_signed_urls_verify_as_nginx_would() -> None:
    source = "http://origin.example.test/hls/n%C3%BCs/index.m3u8?quality=hd"
    url = signed_url(SIGNER, source, 1_900_000_000, "198.51.100.7")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert (parts.scheme, parts.netloc, parts.path) == (
        "http",
        "origin.example.test",
        "/hls/n%C3%BCs/index.m3u8",
    )
    assert query["quality"] == "hd"
    assert query["expires"] == "1900000000"
    uri = "/hls/nüs/index.m3u8"  # nginx's $uri is decoded
    assert query["md5"] == nginx_md5(1_900_000_000, uri, "198.51.100.7", SIGNER.secret)
    check = SIGNER.check(uri, query["md5"], 1_900_000_000, 1_899_999_999, "198.51.100.7")
    assert check is LinkCheck.VALID
    unbound = signed_url(SIGNER, "http://o.example/a.ts", 5, None)
    assert (
        unbound == f"http://o.example/a.ts?md5={nginx_md5(5, '/a.ts', '', SIGNER.secret)}&expires=5"
    )
