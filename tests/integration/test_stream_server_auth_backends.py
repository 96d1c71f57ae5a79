"""Flussonic's auth backend, MediaMTX's authHTTP (and runOnUnread) and SRS http_hooks against
the full app: each answer in the server's own form, sessions, suspensions, guessing, and
bodies no server sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from stream_harness import StreamOperator, Viewer
from stream_server_kit import (
    FORM,
    HUGE,
    IP,
    LONG,
    MALFORMED_BODIES,
    OTHER_IP,
    denied,
    pause,
    post_body,
    served,
)

FLUSSONIC = "/integrations/flussonic/auth"
MEDIAMTX = "/integrations/mediamtx"
SRS = "/integrations/srs/hooks"
UUID = "6217fd62-16da-4206-9da9-0173d7552a1{}"


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url, max_failures=5)
    yield operator
    operator.close()


# --------------------------------------------------------------------------- Flussonic


def flussonic_query(
    viewer: Viewer | None, session: str | None = "1", **extra: str
) -> dict[str, str]:
    query = {
        "name": "news-1",
        "proto": "hls",
        "ip": IP,
        "request_type": "new_session",
        "request_number": "1",
        "stream_clients": "1",
        "total_clients": "1",
        "token": viewer.token if viewer else "60334b207baa",
        "user_agent": "VLC/3.0.20 LibVLC/3.0.20",
        **extra,
    }
    if session is not None:
        query["session_id"] = UUID.format(session)
    return query


def flussonic(op: StreamOperator, query: dict[str, str]) -> Any:
    return served(op.client.get(FLUSSONIC, params=query))


def test_flussonic_allows_with_session_headers(op: StreamOperator) -> None:
    viewer = op.viewer()
    response = flussonic(op, flussonic_query(viewer))
    assert response.status_code == 200
    assert response.json() == {}
    assert response.headers["x-userid"] == viewer.subscription.id
    assert response.headers["x-max-sessions"] == "2"
    # re-checked within two thirds of the 90 s session TTL
    assert response.headers["x-authduration"] == "60"
    unsessioned = flussonic(op, flussonic_query(viewer, session=None))
    assert unsessioned.headers["x-authduration"] == "300"


def test_flussonic_takes_the_players_query_first(op: StreamOperator) -> None:
    viewer = op.viewer()
    qs = f"username={viewer.username}&password={viewer.password}"
    # Flussonic's own auto-generated token is not ours; the player's query is
    assert flussonic(op, flussonic_query(None, qs=qs)).status_code == 200
    assert flussonic(op, flussonic_query(None, qs=f"token={viewer.token}")).status_code == 200
    posted = served(op.client.post(FLUSSONIC, json=flussonic_query(viewer, "2")))
    assert (posted.status_code, posted.json()) == (200, {})


def test_flussonic_refusals(op: StreamOperator) -> None:
    viewer = op.viewer()
    for query, reason in (
        (flussonic_query(None), "unknown_credential"),
        (flussonic_query(viewer, name="sport-1"), "not_in_package"),
        (flussonic_query(viewer, name="nope"), "unknown_stream"),
        ({**flussonic_query(viewer), "name": ""}, "malformed_request"),
    ):
        response = flussonic(op, query)
        denied(response, 403, reason)
        assert "x-userid" not in response.headers


def test_flussonic_update_after_a_suspension_is_refused(op: StreamOperator) -> None:
    viewer = op.viewer()
    assert flussonic(op, flussonic_query(viewer)).status_code == 200
    update = flussonic_query(viewer, request_type="update_session", duration="60")
    assert flussonic(op, update).status_code == 200
    pause(op, viewer)
    denied(flussonic(op, update), 403, "paused")


def test_flussonic_sessions_and_devices(op: StreamOperator) -> None:
    viewer = op.viewer()
    tv = {"user_agent": "SmartTV"}
    assert flussonic(op, flussonic_query(viewer, "1", **tv)).status_code == 200
    assert flussonic(op, flussonic_query(viewer, "2", ip=OTHER_IP)).status_code == 200
    denied(
        flussonic(op, flussonic_query(viewer, "3", ip="192.0.2.1")), 403, "over_connection_limit"
    )
    # the same device (address and player) reopening takes over its own slot
    assert flussonic(op, flussonic_query(viewer, "4", **tv)).status_code == 200
    update = flussonic_query(viewer, "2", ip=OTHER_IP, request_type="update_session")
    assert flussonic(op, update).status_code == 200


@pytest.mark.parametrize(("content_type", "body"), MALFORMED_BODIES)
def test_flussonic_malformed_bodies_are_refused(
    op: StreamOperator, content_type: str, body: bytes
) -> None:
    response = post_body(op.client, FLUSSONIC, content_type, body)
    assert response.status_code == 403
    assert response.headers["x-deny-reason"] in ("malformed_request", "unknown_credential")


def test_flussonic_odd_queries_are_refused(op: StreamOperator) -> None:
    viewer = op.viewer()
    for query in (
        flussonic_query(viewer, name=LONG),
        flussonic_query(viewer, session=LONG),
        flussonic_query(None, qs="%FF" * 50, token="😀"),
        {"name": "news-1"},
        {},
    ):
        assert flussonic(op, query).status_code == 403


# --------------------------------------------------------------------------- MediaMTX


def mediamtx_body(viewer: Viewer | None, reader: str | None = "1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user": viewer.username if viewer else "",
        "password": viewer.password if viewer else "",
        "token": "",
        "ip": IP,
        "action": "read",
        "path": "news-1",
        "protocol": "rtsp",
        "id": None if reader is None else UUID.format(reader),
        "query": "",
        **extra,
    }
    return body


def mediamtx(op: StreamOperator, body: dict[str, Any]) -> Any:
    return served(op.client.post(f"{MEDIAMTX}/auth", json=body))


def test_mediamtx_allows_lines_tokens_and_query_tokens(op: StreamOperator) -> None:
    viewer = op.viewer()
    response = mediamtx(op, mediamtx_body(viewer))
    assert (response.status_code, response.content) == (200, b"")
    by_token = mediamtx_body(None, "2", token=viewer.token, protocol="hls")
    assert mediamtx(op, by_token).status_code == 200
    in_query = mediamtx_body(None, None, query=f"token={viewer.token}", action="playback")
    assert mediamtx(op, in_query).status_code == 200


def test_mediamtx_asks_rtsp_clients_for_credentials_without_counting(op: StreamOperator) -> None:
    viewer = op.viewer()
    for _ in range(10):
        denied(mediamtx(op, mediamtx_body(None)), 401, "credentials_required")
    assert mediamtx(op, mediamtx_body(viewer)).status_code == 200


def test_mediamtx_refusals(op: StreamOperator) -> None:
    viewer = op.viewer()
    wrong = {**mediamtx_body(viewer), "password": "wrong"}
    denied(mediamtx(op, wrong), 403, "unknown_credential")
    denied(mediamtx(op, mediamtx_body(viewer, path="sport-1")), 403, "not_in_package")
    denied(mediamtx(op, mediamtx_body(viewer, action="publish")), 403, "publish_refused")
    for action in ("api", "metrics", "pprof", "", None):
        denied(mediamtx(op, mediamtx_body(viewer, action=action)), 403, "unsupported_action")
    denied(mediamtx(op, mediamtx_body(viewer, path="")), 403, "malformed_request")
    pause(op, viewer)
    denied(mediamtx(op, mediamtx_body(viewer)), 403, "paused")


def test_mediamtx_guessing_is_counted_per_reader_address(op: StreamOperator) -> None:
    viewer = op.viewer()
    for n in range(5):
        guess = {**mediamtx_body(viewer, str(n)), "password": f"guess{n}"}
        denied(mediamtx(op, guess), 403, "unknown_credential")
    denied(mediamtx(op, mediamtx_body(viewer, "6")), 403, "too_many_attempts")
    assert mediamtx(op, mediamtx_body(viewer, "7", ip=OTHER_IP)).status_code == 200


def test_mediamtx_unread_frees_the_slot(op: StreamOperator) -> None:
    viewer = op.viewer()
    token = f"token={viewer.token}"
    for reader in ("1", "2"):
        assert mediamtx(op, mediamtx_body(None, reader, query=token)).status_code == 200
    third = mediamtx_body(None, "3", query=token)
    denied(mediamtx(op, third), 403, "over_connection_limit")
    # runOnUnread: curl -d id=$MTX_READER_ID --data-urlencode query=$MTX_QUERY …
    unread = served(
        op.client.post(f"{MEDIAMTX}/unread", data={"id": UUID.format(1), "query": token})
    )
    assert (unread.status_code, unread.content) == (200, b"")
    assert mediamtx(op, third).status_code == 200
    as_json = {"id": UUID.format(2), "path": "news-1", "query": token}
    assert served(op.client.post(f"{MEDIAMTX}/unread", json=as_json)).status_code == 200
    assert mediamtx(op, mediamtx_body(None, "4", query=token)).status_code == 200


@pytest.mark.parametrize(("content_type", "body"), MALFORMED_BODIES)
def test_mediamtx_malformed_bodies_are_refused(
    op: StreamOperator, content_type: str, body: bytes
) -> None:
    response = post_body(op.client, f"{MEDIAMTX}/auth", content_type, body)
    assert response.status_code == 403
    assert post_body(op.client, f"{MEDIAMTX}/unread", content_type, body).status_code == 200


# --------------------------------------------------------------------------- SRS


def srs_body(viewer: Viewer | None, client: Any = 1985, **extra: Any) -> dict[str, Any]:
    return {
        "action": "on_play",
        "client_id": client,
        "ip": IP,
        "vhost": "__defaultVhost__",
        "app": "live",
        "stream": "news-1",
        "param": f"?token={viewer.token}" if viewer else "",
        "server_id": "vid-0xk989d",
        **extra,
    }


def srs(op: StreamOperator, body: dict[str, Any]) -> Any:
    return served(op.client.post(SRS, json=body))


def test_srs_allows_with_a_zero(op: StreamOperator) -> None:
    viewer = op.viewer()
    response = srs(op, srs_body(viewer))
    assert (response.status_code, response.text) == (200, "0")
    line = f"?username={viewer.username}&password={viewer.password}"
    assert srs(op, srs_body(None, "vid-2", param=line)).text == "0"
    tc_url = {"param": "", "tcUrl": f"rtmp://tv.example.test/live?token={viewer.token}"}
    # the tcUrl's token is found (and a third session is over the limit)
    denied(srs(op, srs_body(None, "vid-3", **tc_url)), 403, "over_connection_limit")


def test_srs_refusals_and_acknowledgements(op: StreamOperator) -> None:
    viewer = op.viewer()
    denied(srs(op, srs_body(None, param="?token=nope")), 403, "unknown_credential")
    denied(srs(op, srs_body(viewer, stream="sport-1")), 403, "not_in_package")
    denied(srs(op, srs_body(viewer, action="on_publish")), 403, "publish_refused")
    denied(srs(op, srs_body(viewer, action="on_forward")), 403, "unsupported_action")
    for odd_client in (True, 1.5, {"id": 1}, "", HUGE, None):
        denied(srs(op, srs_body(viewer, odd_client)), 403, "malformed_request")
    for action in ("on_connect", "on_unpublish", "on_dvr", "on_hls", "on_stop", "on_close"):
        response = srs(op, {"action": action, "client_id": 7})
        assert (response.status_code, response.text) == (200, "0")
    pause(op, viewer)
    denied(srs(op, srs_body(viewer)), 403, "paused")


def test_srs_sessions_end_on_stop(op: StreamOperator) -> None:
    viewer = op.viewer()
    assert srs(op, srs_body(viewer, 1)).text == "0"
    assert srs(op, srs_body(viewer, "vid-2")).text == "0"
    denied(srs(op, srs_body(viewer, 3)), 403, "over_connection_limit")
    assert srs(op, srs_body(viewer, 1)).text == "0"  # the same session again
    # the same client id on another SRS is another session
    denied(srs(op, srs_body(viewer, 1, server_id="vid-other")), 403, "over_connection_limit")
    stop = srs(op, srs_body(viewer, 1, action="on_stop"))
    assert (stop.status_code, stop.text) == (200, "0")
    assert srs(op, srs_body(viewer, 3)).text == "0"


@pytest.mark.parametrize(("content_type", "body"), MALFORMED_BODIES)
def test_srs_malformed_bodies_are_refused(
    op: StreamOperator, content_type: str, body: bytes
) -> None:
    response = post_body(op.client, SRS, content_type, body)
    assert response.status_code == 403
    assert response.text != "0"


def test_form_instead_of_json_is_refused(op: StreamOperator) -> None:
    viewer = op.viewer()
    form = f"action=on_play&client_id=1&stream=news-1&param=%3Ftoken%3D{viewer.token}"
    for path in (SRS, f"{MEDIAMTX}/auth", FLUSSONIC):
        denied(post_body(op.client, path, FORM, form.encode()), 403, "malformed_request")
