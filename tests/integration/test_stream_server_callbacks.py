"""nginx-rtmp (on_play / on_update / on_play_done) and nginx auth_request against the full app:
each answer in the server's own form, the connection limit, suspensions during playback,
guessing, and bodies no server sends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from stream_harness import StreamOperator, Viewer
from stream_server_kit import (
    FORM,
    HUGE,
    IP,
    MALFORMED_BODIES,
    OTHER_IP,
    cancel,
    denied,
    from_address,
    pause,
    post_body,
    run_out,
    served,
)

from iptv_billing.adapters.sessions import open_guess_limiter, open_session_registry
from iptv_billing.api.app import create_app
from iptv_billing.domain.sessions import OverLimit
from iptv_billing.services.stream_auth import StreamAuthorizer

RTMP = "/integrations/nginx-rtmp"
AUTH = "/integrations/nginx/auth"


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url, max_failures=5)
    yield operator
    operator.close()


# --------------------------------------------------------------------------- nginx-rtmp


def rtmp_form(viewer: Viewer | None, call: str = "play", **fields: str) -> dict[str, str]:
    """What nginx-rtmp posts: its fields, then the player's query (``token=…``)."""
    form = {
        "call": call,
        "addr": IP,
        "clientid": "1",
        "app": "live",
        "flashver": "LNX 9,0,124,2",
        "tcurl": "rtmp://tv.example.test/live",
        "name": "news-1",
    }
    form.update(fields)
    if viewer is not None and "username" not in fields:
        form.setdefault("token", viewer.token)
    return form


def rtmp(op: StreamOperator, hook: str, form: dict[str, str]) -> Any:
    return served(op.client.post(f"{RTMP}/{hook}", data=form))


def test_rtmp_allows_with_an_empty_200(op: StreamOperator) -> None:
    viewer = op.viewer()
    response = rtmp(op, "play", rtmp_form(viewer))
    assert (response.status_code, response.content) == (200, b"")
    line = rtmp_form(None, clientid="2", username=viewer.username, password=viewer.password)
    assert rtmp(op, "play", line).status_code == 200
    assert rtmp(op, "update", rtmp_form(viewer, "update_play")).status_code == 200
    # notify_method get: the same fields in the query (stream ids are Xtream's numbers)
    other = op.viewer()
    got = served(op.client.get(f"{RTMP}/play", params=rtmp_form(other, name="2")))
    assert (got.status_code, got.content) == (200, b"")
    assert served(op.client.get(f"{RTMP}/update", params=rtmp_form(other, "update_play")))
    assert served(op.client.get(f"{RTMP}/done", params=rtmp_form(other, "play_done")))


def test_rtmp_refusals_say_why(op: StreamOperator) -> None:
    viewer = op.viewer()
    wrong = rtmp_form(None, username=viewer.username, password="wrong")
    response = rtmp(op, "play", wrong)
    denied(response, 403, "unknown_credential")
    assert response.content == b""
    denied(rtmp(op, "play", rtmp_form(None, token="no-such-token")), 403, "unknown_credential")
    denied(rtmp(op, "play", rtmp_form(None)), 403, "unknown_credential")
    denied(rtmp(op, "play", rtmp_form(viewer, name="sport-1")), 403, "not_in_package")
    denied(rtmp(op, "play", rtmp_form(viewer, name="no-such")), 403, "unknown_stream")
    denied(rtmp(op, "play", rtmp_form(viewer, call="publish")), 403, "publish_refused")
    denied(rtmp(op, "play", rtmp_form(viewer, clientid="")), 403, "malformed_request")


def test_rtmp_refuses_ended_rights(op: StreamOperator) -> None:
    paused, cancelled, lapsed = op.viewer(), op.viewer(), op.viewer()
    pause(op, paused)
    cancel(op, cancelled)
    denied(rtmp(op, "play", rtmp_form(paused)), 403, "paused")
    denied(rtmp(op, "play", rtmp_form(cancelled)), 403, "expired")
    assert rtmp(op, "play", rtmp_form(lapsed)).status_code == 200
    run_out(op)
    denied(rtmp(op, "update", rtmp_form(lapsed, "update_play")), 403, "expired")


def test_rtmp_counts_sessions_and_frees_them_when_done(op: StreamOperator) -> None:
    viewer = op.viewer()
    assert rtmp(op, "play", rtmp_form(viewer, clientid="1")).status_code == 200
    assert rtmp(op, "play", rtmp_form(viewer, clientid="2")).status_code == 200
    denied(rtmp(op, "play", rtmp_form(viewer, clientid="3")), 403, "over_connection_limit")
    assert rtmp(op, "play", rtmp_form(viewer, clientid="1")).status_code == 200  # same session
    done = rtmp(op, "done", rtmp_form(viewer, "play_done", clientid="1"))
    assert (done.status_code, done.content) == (200, b"")
    assert rtmp(op, "play", rtmp_form(viewer, clientid="3")).status_code == 200


def test_rtmp_client_ids_are_per_nginx(op: StreamOperator) -> None:
    viewer = op.viewer()
    assert rtmp(op, "play", rtmp_form(viewer, clientid="7")).status_code == 200
    other_nginx = from_address(op, "10.0.0.2")
    second = served(other_nginx.post(f"{RTMP}/play", data=rtmp_form(viewer, clientid="7")))
    assert second.status_code == 200
    third = served(op.client.post(f"{RTMP}/play", data=rtmp_form(viewer, clientid="8")))
    denied(third, 403, "over_connection_limit")


def test_rtmp_servers_behind_one_balancer_name_themselves(op: StreamOperator) -> None:
    viewer = op.viewer()
    form = rtmp_form(viewer, clientid="7")
    for edge in ("edge1", "edge2"):  # on_play http://billing/…/play?server=edgeN
        response = served(op.client.post(f"{RTMP}/play?server={edge}", data=form))
        assert response.status_code == 200
    denied(
        served(op.client.post(f"{RTMP}/play?server=edge3", data=form)), 403, "over_connection_limit"
    )
    done = rtmp_form(viewer, "play_done", clientid="7")
    assert served(op.client.post(f"{RTMP}/done?server=edge1", data=done)).status_code == 200
    assert served(op.client.post(f"{RTMP}/play?server=edge3", data=form)).status_code == 200


def test_a_suspension_ends_playback_at_the_next_update(op: StreamOperator) -> None:
    viewer = op.viewer()
    assert rtmp(op, "play", rtmp_form(viewer)).status_code == 200
    assert rtmp(op, "update", rtmp_form(viewer, "update_play", time="30")).status_code == 200
    pause(op, viewer)
    denied(rtmp(op, "update", rtmp_form(viewer, "update_play", time="60")), 403, "paused")
    # the operator's encoder is never dropped, whatever it presents
    publisher = rtmp(op, "update", rtmp_form(None, "update_publish"))
    assert (publisher.status_code, publisher.content) == (200, b"")


def test_drop_oldest_refuses_the_oldest_at_its_next_update(database_url: str) -> None:
    op = StreamOperator(database_url, policy=OverLimit.DROP_OLDEST)
    try:
        viewer = op.viewer()
        for clientid in ("1", "2", "3"):
            assert rtmp(op, "play", rtmp_form(viewer, clientid=clientid)).status_code == 200
        dropped = rtmp(op, "update", rtmp_form(viewer, "update_play", clientid="1"))
        denied(dropped, 403, "over_connection_limit")
        assert rtmp(op, "update", rtmp_form(viewer, "update_play", clientid="3")).status_code == 200
    finally:
        op.close()


def test_rtmp_guessing_is_counted_per_viewer_address(op: StreamOperator) -> None:
    viewer = op.viewer()
    for n in range(5):
        guess = rtmp_form(None, clientid=str(n), username=viewer.username, password=f"guess{n}")
        denied(rtmp(op, "play", guess), 403, "unknown_credential")
    right = rtmp_form(None, clientid="9", username=viewer.username, password=viewer.password)
    denied(rtmp(op, "play", right), 403, "too_many_attempts")
    # the same nginx, another viewer: not locked out
    assert rtmp(op, "play", {**right, "addr": OTHER_IP}).status_code == 200


def test_rtmp_takes_nginx_fields_before_the_players_query(op: StreamOperator) -> None:
    viewer = op.viewer()
    # nginx-rtmp appends the player's query verbatim; it may repeat nginx's field names
    body = (
        f"call=play&addr={IP}&clientid=1&app=live&name=news-1"
        f"&token={viewer.token}&name=sport-1&call=publish&addr={OTHER_IP}"
    )
    response = served(op.client.post(f"{RTMP}/play", content=body, headers={"Content-Type": FORM}))
    assert response.status_code == 200


@pytest.mark.parametrize(("content_type", "body"), MALFORMED_BODIES)
def test_rtmp_malformed_bodies_are_refused(
    op: StreamOperator, content_type: str, body: bytes
) -> None:
    for hook in ("play", "update"):
        response = post_body(op.client, f"{RTMP}/{hook}", content_type, body)
        assert response.status_code == 403
        assert response.headers["x-deny-reason"] in ("malformed_request", "unknown_credential")
    assert post_body(op.client, f"{RTMP}/done", content_type, body).status_code == 200


def test_rtmp_odd_fields_are_refused(op: StreamOperator) -> None:
    viewer = op.viewer()
    for odd in (
        rtmp_form(viewer, clientid=HUGE),
        rtmp_form(viewer, name=HUGE),
        rtmp_form(viewer, name="ニュース", addr="not-an-address"),
        rtmp_form(viewer, token="😀" * 10),
        {"call": "play"},
    ):
        assert rtmp(op, "play", odd).status_code == 403
    assert served(op.client.get(f"{RTMP}/update")).status_code == 403


def redis_process(op: StreamOperator, redis_url: str, prefix: str) -> TestClient:
    """Another API process of the same operator, keeping sessions and failures in Redis."""
    stream = StreamAuthorizer(
        op.index,
        open_session_registry(redis_url, prefix=prefix),
        open_guess_limiter(redis_url, 5, timedelta(minutes=1), prefix=prefix),
        op.system,
        blocking=True,  # the handlers call it from worker threads
    )
    services = replace(op.client.app.state.services, stream=stream)
    return TestClient(create_app(services), raise_server_exceptions=False)


def test_processes_sharing_redis_share_the_limit(
    op: StreamOperator, redis_url: str, redis_prefix: str
) -> None:
    viewer = op.viewer()
    first, second = (redis_process(op, redis_url, redis_prefix) for _ in range(2))
    assert (
        served(first.post(f"{RTMP}/play", data=rtmp_form(viewer, clientid="1"))).status_code == 200
    )
    assert (
        served(second.post(f"{RTMP}/play", data=rtmp_form(viewer, clientid="2"))).status_code == 200
    )
    third = served(first.post(f"{RTMP}/play", data=rtmp_form(viewer, clientid="3")))
    denied(third, 403, "over_connection_limit")
    update = rtmp_form(viewer, "update_play", clientid="1")
    assert served(second.post(f"{RTMP}/update", data=update)).status_code == 200
    done = rtmp_form(viewer, "play_done", clientid="2")
    assert served(first.post(f"{RTMP}/done", data=done)).status_code == 200
    assert (
        served(second.post(f"{RTMP}/play", data=rtmp_form(viewer, clientid="3"))).status_code == 200
    )


# --------------------------------------------------------------------------- auth_request


def auth(op: StreamOperator, uri: str | None, **headers: str) -> Any:
    sent = {"X-Real-IP": IP, **headers}
    if uri is not None:
        sent["X-Original-URI"] = uri
    return served(op.client.get(AUTH, headers=sent))


def test_auth_request_allows_with_cache_headers(op: StreamOperator) -> None:
    viewer = op.viewer()
    response = auth(op, f"/hls/news-1/index.m3u8?token={viewer.token}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["cache-control"] == "private, max-age=300"
    assert response.headers["x-accel-expires"] == "300"
    assert response.headers["x-user-id"] == viewer.subscription.id
    xtream = f"/live/{viewer.username}/{viewer.password}/3.ts"
    assert auth(op, xtream).status_code == 200
    flat = f"/hls/news-2.m3u8?username={viewer.username}&password={viewer.password}"
    assert auth(op, flat).status_code == 200
    named = auth(op, f"/any/layout/v1/seg.ts?token={viewer.token}", **{"X-Stream-Name": "kids-1"})
    assert named.status_code == 200


def test_auth_request_refusals(op: StreamOperator) -> None:
    viewer = op.viewer()
    for response, status, reason in (
        (auth(op, "/hls/news-1/index.m3u8?token=nope"), 401, "unknown_credential"),
        (auth(op, "/hls/news-1/index.m3u8"), 401, "unknown_credential"),
        (auth(op, f"/hls/sport-1/index.m3u8?token={viewer.token}"), 403, "not_in_package"),
        (auth(op, f"/hls/nope/index.m3u8?token={viewer.token}"), 403, "unknown_stream"),
        (auth(op, f"/?token={viewer.token}"), 403, "malformed_request"),
        (auth(op, None), 403, "malformed_request"),
    ):
        denied(response, status, reason)
        assert response.headers["cache-control"] == "no-store"
        assert "x-accel-expires" not in response.headers
    pause(op, viewer)
    denied(auth(op, f"/hls/news-1/index.m3u8?token={viewer.token}"), 403, "paused")


def test_auth_request_counts_sessions_only_when_named(op: StreamOperator) -> None:
    viewer = op.viewer()
    uri = f"/hls/news-1/index.m3u8?token={viewer.token}"
    assert all(auth(op, uri).status_code == 200 for _ in range(3))  # HLS: no session id
    assert auth(op, uri, **{"X-Session-Id": "a"}).status_code == 200
    assert auth(op, uri, **{"X-Session-Id": "b"}).status_code == 200
    denied(auth(op, uri, **{"X-Session-Id": "c"}), 403, "over_connection_limit")


def test_auth_request_guessing_uses_the_forwarded_address(op: StreamOperator) -> None:
    viewer = op.viewer()
    forwarded = {"X-Real-IP": "", "X-Forwarded-For": f"{IP}, 10.0.0.1"}
    for n in range(5):
        response = auth(op, f"/hls/news-1/index.m3u8?token=guess{n}", **forwarded)
        denied(response, 401, "unknown_credential")
    good = f"/hls/news-1/index.m3u8?token={viewer.token}"
    denied(auth(op, good, **forwarded), 403, "too_many_attempts")
    assert auth(op, good, **{"X-Real-IP": OTHER_IP}).status_code == 200


def test_auth_request_odd_headers_are_refused(op: StreamOperator) -> None:
    viewer = op.viewer()
    token = viewer.token
    for uri, headers in (
        ("/hls/" + HUGE + f"/index.m3u8?token={token}", {}),
        (f"/hls/news-1/index.m3u8?token={HUGE}", {}),
        ("/hls/%FF%FE/index.m3u8?token=%FF", {}),
        ("%%%%/../..//?&&==", {"X-Real-IP": "::::", "X-Country-Code": "??"}),
        (f"/hls/news-1/index.m3u8?token={token}", {"X-Stream-Name": HUGE}),
    ):
        response = auth(op, uri, **headers)
        assert response.status_code in (401, 403)
        assert response.headers["cache-control"] == "no-store"
    allowed = auth(op, f"/hls/news-1/index.m3u8?token={token}", **{"X-Country-Code": "de"})
    assert allowed.status_code == 200  # no country lock on the plan
