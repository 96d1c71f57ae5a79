"""Ministra's oss_url, login and purchase hooks, and signed links for servers without
callbacks, against the full app."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from stream_harness import StreamOperator
from stream_server_kit import IP, LONG, MAC, OTHER_IP, disable, pause, register_box, served

from iptv_billing.api.app import create_app
from iptv_billing.domain.secure_links import LinkCheck, SecureLinkSigner
from iptv_billing.domain.stream_protocols import PURCHASES_DISABLED

OSS = "/integrations/ministra/oss"
SECRET = "an-operator-secret-for-links"
TTL = 600


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url, max_failures=5)
    yield operator
    operator.close()


def ministra(op: StreamOperator, path: str = OSS, **query: str) -> Any:
    response = served(op.client.get(path, params=query))
    assert response.status_code == 200  # Ministra reads its envelope, never the status
    return response.json()


def profile_query(mac: str = MAC) -> dict[str, str]:
    return {
        "mac": mac,
        "serial_number": "0123456789012",
        "type": "MAG254",
        "locale": "en_GB.utf8",
        "login": "",
        "portal": "tv.example.test",
        "verified": "1",
        "ip": IP,
    }


# --------------------------------------------------------------------------- oss_url


def test_a_registered_box_is_switched_on(op: StreamOperator) -> None:
    viewer = op.viewer()
    register_box(op, viewer)
    assert ministra(op, **profile_query()) == {
        "status": "OK",
        "results": {
            "ls": viewer.subscription.id,
            "status": 1,
            "additional_services_on": 1,
            "tariff": "basic",  # the plan's code: Ministra's tariff external_id
        },
    }
    lower = ministra(op, **profile_query("00-1a-79-00-00-01"))
    assert lower["results"]["status"] == 1


def test_a_paused_subscription_or_disabled_box_is_switched_off(op: StreamOperator) -> None:
    paused, disabled = op.viewer(), op.viewer()
    register_box(op, paused)
    box = register_box(op, disabled, "00:1A:79:00:00:02")
    pause(op, paused)
    disable(op, box)
    assert ministra(op, **profile_query())["results"]["status"] == 0
    assert ministra(op, **profile_query("00:1A:79:00:00:02"))["results"]["status"] == 0


def test_unknown_boxes_are_errors(op: StreamOperator) -> None:
    unknown = {"status": "ERROR", "error": "Unknown device"}
    assert ministra(op, **profile_query("00:1A:79:FF:FF:FF")) == unknown
    assert ministra(op, **profile_query("not-a-mac")) == unknown
    required = {"status": "ERROR", "error": "mac is required"}
    assert ministra(op) == required
    assert ministra(op, **profile_query(LONG)) == required  # no MAC is that long


def test_guessing_boxes_is_counted_per_box_address(op: StreamOperator) -> None:
    viewer = op.viewer()
    register_box(op, viewer)
    for n in range(5):
        ministra(op, **profile_query(f"00:1A:79:00:10:{n:02X}"))
    limited = {"status": "ERROR", "error": "Too many attempts, try again later"}
    assert ministra(op, **profile_query()) == limited
    assert ministra(op, **{**profile_query(), "ip": OTHER_IP})["status"] == "OK"


def test_login_and_password(op: StreamOperator) -> None:
    viewer = op.viewer()
    login = {"login": viewer.username, "portal": "tv.example.test", "mac": MAC, "ip": IP}
    assert ministra(op, **login, password=viewer.password) == {"status": "OK", "results": True}
    mismatch = {
        "status": "OK",
        "results": False,
        "error": "User not exist or login-password mismatch",
    }
    assert ministra(op, **login, password="wrong") == mismatch
    assert ministra(op, **{**login, "login": ""}, password=viewer.password) == mismatch
    disable(op, viewer.line_id)
    assert ministra(op, **login, password=viewer.password) == {
        "status": "OK",
        "results": False,
        "error": "Login disabled",
    }


def test_login_guessing_without_an_address_is_counted_per_login(op: StreamOperator) -> None:
    target, bystander = op.viewer(), op.viewer()
    for n in range(5):  # Ministra's login check carries no box address
        assert ministra(op, login=target.username, password=f"guess{n}")["results"] is False
    limited = ministra(op, login=target.username, password=target.password)
    assert limited["error"] == "Too many attempts, try again later"
    # the portal as a whole is not locked out
    assert ministra(op, login=bystander.username, password=bystander.password)["results"] is True


def test_odd_queries_get_the_envelope(op: StreamOperator) -> None:
    for query in (
        {"mac": "ニュース", "ip": "::::"},
        {"mac": MAC, "ip": LONG},
        {"login": LONG, "password": LONG},
        {"login": "😀", "password": "%FF"},
    ):
        answer = ministra(op, **query)
        assert answer["status"] in ("OK", "ERROR")
        assert answer.get("results") in (None, False)


# --------------------------------------------------------------------------- purchase hooks


def test_only_packages_the_subscription_has_are_approved(op: StreamOperator) -> None:
    viewer = op.viewer()
    register_box(op, viewer)
    hook = "/integrations/ministra/subscribe"
    approve = {"status": "OK", "results": True}
    assert ministra(op, hook, mac=MAC, tariff_id="basic", package_id="basic") == approve
    purchases = {"status": "ERROR", "error": PURCHASES_DISABLED}
    assert ministra(op, hook, mac=MAC, tariff_id="basic", package_id="sports") == purchases
    assert ministra(op, hook, mac=MAC, tariff_id="basic") == purchases
    unknown = {"status": "ERROR", "error": "Unknown device"}
    assert ministra(op, hook, mac="00:1A:79:FF:FF:FF", package_id="basic") == unknown
    pause(op, viewer)
    inactive = {"status": "ERROR", "error": "Subscription is not active"}
    assert ministra(op, hook, mac=MAC, package_id="basic") == inactive
    unsubscribe = "/integrations/ministra/unsubscribe"
    assert ministra(op, unsubscribe, mac=MAC, package_id="basic") == approve


# --------------------------------------------------------------------------- signed links


def linking_client(op: StreamOperator, host: str = IP) -> TestClient:
    services = replace(
        op.client.app.state.services,
        secure_link_signer=SecureLinkSigner(SECRET),
        secure_link_ttl_seconds=TTL,
    )
    return TestClient(create_app(services), raise_server_exceptions=False, client=(host, 50000))


def nginx_md5(expires: int, uri: str, ip: str) -> str:
    """secure_link_md5 "$secure_link_expires$uri$remote_addr secret", recomputed as nginx's
    documentation does (openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =)."""
    digest = hashlib.md5(f"{expires}{uri}{ip} {SECRET}".encode()).digest()
    return base64.b64encode(digest).decode().replace("+", "-").replace("/", "_").rstrip("=")


def test_signed_links_need_a_secret(op: StreamOperator) -> None:
    viewer = op.viewer()
    query = {"token": viewer.token, "stream": "news-1"}
    response = op.client.get("/integrations/secure-link", params=query)
    assert response.status_code == 503  # the operator's to fix: not the viewer's fault
    assert response.json()["code"] == "secure_link.not_configured"


def test_a_signed_link_redirects_to_the_source(op: StreamOperator) -> None:
    viewer = op.viewer()
    client = linking_client(op)
    query = {"token": viewer.token, "stream": "news-1", "ip_bound": "1"}
    response = served(client.get("/integrations/secure-link", params=query, follow_redirects=False))
    assert response.status_code == 302
    assert response.headers["cache-control"] == "no-store"
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "http",
        "origin.example.test",
        "/hls/news-1/index.m3u8",
    )
    signed = {k: v[0] for k, v in parse_qs(location.query).items()}
    expires = int(op.system.now().timestamp()) + TTL
    assert signed["expires"] == str(expires)
    assert signed["md5"] == nginx_md5(expires, location.path, IP)
    signer = SecureLinkSigner(SECRET)
    assert signer.check(location.path, signed["md5"], expires, expires - 1, IP) is LinkCheck.VALID
    assert signer.check(location.path, signed["md5"], expires, expires, IP) is LinkCheck.EXPIRED
    assert signer.check(location.path, signed["md5"], expires, 0, OTHER_IP) is LinkCheck.INVALID


def test_a_signed_link_as_json(op: StreamOperator) -> None:
    viewer = op.viewer()
    client = linking_client(op)
    query = {
        "username": viewer.username,
        "password": viewer.password,
        "stream": "2",  # Xtream stream ids work as well as codes
        "format": "json",
    }
    response = served(client.get("/integrations/secure-link", params=query))
    assert response.status_code == 200
    body = response.json()
    expires = int(op.system.now().timestamp()) + TTL
    assert body["expires"] == expires
    link = urlsplit(body["url"])
    md5 = parse_qs(link.query)["md5"][0]
    assert md5 == nginx_md5(expires, "/hls/news-2/index.m3u8", "")  # not bound to an address


def test_signed_link_refusals_are_problems(op: StreamOperator) -> None:
    viewer = op.viewer()
    client = linking_client(op)
    for query, status, code in (
        ({"token": "nope", "stream": "news-1"}, 401, "stream.unknown_credential"),
        ({"token": viewer.token, "stream": "sport-1"}, 403, "stream.not_in_package"),
        ({"token": viewer.token, "stream": "nope"}, 404, "stream.unknown_stream"),
        ({"token": viewer.token}, 404, "stream.unknown_stream"),
        ({"token": LONG, "stream": LONG}, 401, "stream.unknown_credential"),
    ):
        response = served(client.get("/integrations/secure-link", params=query))
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code
