"""Helpers for the stream-server callback tests: billing changes that end a right, another
streaming server's address, and bodies no server sends."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi.testclient import TestClient
from stream_harness import StreamOperator, Viewer

from iptv_billing.services import credentials, subscriptions

IP = "198.51.100.7"
OTHER_IP = "203.0.113.9"
MAC = "00:1A:79:00:00:01"
HUGE = "x" * 100_000
LONG = "x" * 5_000  # for URLs (httpx refuses parts over 64 kB)
FORM = "application/x-www-form-urlencoded"

# Bodies no streaming server sends: (content type, body).
MALFORMED_BODIES: list[tuple[str, bytes]] = [
    ("application/json", b""),
    ("application/json", b"{not json"),
    ("application/json", b"[1, 2, 3]"),
    ("application/json", b'"a string"'),
    ("application/json", b"null"),
    ("application/json", b"[" * 5000 + b"]" * 5000),
    ("application/json", b'{"a": "\\ud800"}'),  # a lone surrogate
    ("application/json", json.dumps({"token": HUGE, "name": HUGE, "path": HUGE}).encode()),
    ("application/json", json.dumps({"action": ["on_play"], "client_id": {"x": 1}}).encode()),
    ("application/json", '{"name": "ニュース", "token": "😀"}'.encode()),
    (FORM, b"token=%FF%FE&name=%00&call=play&clientid=1&app=live"),
    (FORM, "&".join(f"f{i}=v" for i in range(5000)).encode()),
    (FORM, b"name=" + HUGE.encode() + b"&token=" + HUGE.encode()),
    ("text/plain", b"\x00\x01\x02\xff"),
    ("application/octet-stream", bytes(range(256)) * 100),
]


def pause(op: StreamOperator, viewer: Viewer) -> None:
    op.tx(lambda u, c: subscriptions.pause(u, c, viewer.subscription.id))
    op.sync()


def cancel(op: StreamOperator, viewer: Viewer) -> None:
    op.tx(lambda u, c: subscriptions.cancel(u, c, viewer.subscription.id, False))
    op.sync()


def disable(op: StreamOperator, credential_id: str) -> None:
    op.tx(lambda u, c: credentials.set_enabled(u, c, credential_id, False))
    op.sync()


def register_box(op: StreamOperator, viewer: Viewer, mac: str = MAC) -> str:
    record = op.tx(lambda u, c: credentials.register_device(u, c, viewer.subscription.id, mac))
    op.sync()
    return record.id


def run_out(op: StreamOperator) -> None:
    """Past the paid period and the renewal allowance, no billing run in between."""
    op.advance(35)
    op.sync()


def from_address(op: StreamOperator, host: str) -> TestClient:
    """Another caller (another streaming server) of the same app."""
    return TestClient(op.client.app, raise_server_exceptions=False, client=(host, 40000))


def served(response: httpx.Response) -> httpx.Response:
    """The response, after checking that the app answered it rather than failing."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    return response


def denied(response: httpx.Response, status: int, reason: str) -> None:
    assert (response.status_code, response.headers.get("x-deny-reason")) == (status, reason), (
        response.status_code,
        response.text[:300],
    )


def post_body(client: TestClient, path: str, content_type: str, body: bytes) -> Any:
    return served(client.post(path, content=body, headers={"Content-Type": content_type}))
