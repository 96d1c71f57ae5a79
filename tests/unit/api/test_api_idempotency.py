"""Idempotency-Key on POST routes: replay, reuse, scoping, concurrency, failure policy."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from api_support import NOW, Probe, assert_problem
from fastapi.testclient import TestClient

from fakes import MemoryDatabase, SeededTenant
from iptv_billing.services.access import ApiKeyScope
from iptv_billing.services.idempotency import request_fingerprint
from iptv_billing.services.records import IdempotencyEntry


def test_same_key_and_body_replays_the_first_response(
    client: TestClient, acme: SeededTenant, probe: Probe
) -> None:
    first = client.post(
        "/probe/echo", json={"text": "hi"}, headers={**acme.auth(), "Idempotency-Key": "k1"}
    )
    again = client.post(
        "/probe/echo",
        content=b'{ "text" : "hi" }',  # same JSON, other spelling
        headers={**acme.auth(), "Idempotency-Key": "k1", "content-type": "application/json"},
    )
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["content-type"] == "application/json"
    assert probe.calls == 1


def test_same_key_other_body_or_route_is_409(
    client: TestClient, acme: SeededTenant, probe: Probe
) -> None:
    headers = {**acme.auth(), "Idempotency-Key": "k1"}
    assert client.post("/probe/echo", json={"text": "a"}, headers=headers).status_code == 201
    other_body = client.post("/probe/echo", json={"text": "b"}, headers=headers)
    assert_problem(other_body, 409, "idempotency.key_reused")
    other_route = client.post("/probe/other", json={"text": "a"}, headers=headers)
    assert_problem(other_route, 409, "idempotency.key_reused")
    assert probe.calls == 1


def test_keys_are_scoped_per_tenant(
    client: TestClient, acme: SeededTenant, globex: SeededTenant, probe: Probe
) -> None:
    body = {"text": "hi"}
    first = client.post("/probe/echo", json=body, headers={**acme.auth(), "Idempotency-Key": "k"})
    theirs = client.post(
        "/probe/echo", json=body, headers={**globex.auth(), "Idempotency-Key": "k"}
    )
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert (first.json()["call"], theirs.json()["call"]) == (1, 2)


def test_concurrent_duplicates_run_once(
    client: TestClient, acme: SeededTenant, probe: Probe
) -> None:
    probe.delay = 0.3
    headers = {**acme.auth(), "Idempotency-Key": "race"}

    def send(_: int) -> int:
        response = client.post("/probe/echo", json={"text": "hi"}, headers=headers)
        return int(response.status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, range(8)))
    assert probe.calls == 1
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}


def test_in_progress_key_is_409(
    client: TestClient, acme: SeededTenant, database: MemoryDatabase, probe: Probe
) -> None:
    fingerprint = request_fingerprint("POST", "/probe/echo", b'{"text":"hi"}')
    with database.uow() as uow:
        uow.idempotency.reserve(
            IdempotencyEntry(acme.id, "busy", "POST", "/probe/echo", fingerprint, None, None, NOW)
        )
        uow.commit()
    response = client.post(
        "/probe/echo", json={"text": "hi"}, headers={**acme.auth(), "Idempotency-Key": "busy"}
    )
    assert_problem(response, 409, "idempotency.in_progress")
    assert probe.calls == 0


def test_client_errors_are_stored_and_replayed(
    client: TestClient, acme: SeededTenant, probe: Probe
) -> None:
    headers = {**acme.auth(), "Idempotency-Key": "e4"}
    first = client.post("/probe/fail/conflict", headers=headers)
    again = client.post("/probe/fail/conflict", headers=headers)
    assert first.status_code == again.status_code == 409
    assert again.content == first.content
    assert again.headers["content-type"] == "application/problem+json"
    assert again.headers["idempotent-replayed"] == "true"
    assert probe.calls == 1


def test_validation_errors_are_stored_too(
    client: TestClient, acme: SeededTenant, probe: Probe
) -> None:
    headers = {**acme.auth(), "Idempotency-Key": "v"}
    payload = {"text": "x", "price": {"amount": 1.5, "currency": "EUR"}}
    first = client.post("/probe/echo", json=payload, headers=headers)
    again = client.post("/probe/echo", json=payload, headers=headers)
    assert_problem(first, 422, "money.float_refused")
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content


def test_server_errors_release_the_key(
    client: TestClient, acme: SeededTenant, probe: Probe, database: MemoryDatabase
) -> None:
    attempts = [("/probe/fail/unavailable", "e5", 503), ("/probe/boom", "b", 500)] * 2
    for path, key, status in attempts:
        response = client.post(path, headers={**acme.auth(), "Idempotency-Key": key})
        assert response.status_code == status
    assert probe.calls == 4  # every retry ran again
    assert database.state.idempotency == {}


def test_post_without_key_runs_every_time(
    client: TestClient, acme: SeededTenant, probe: Probe
) -> None:
    for _ in range(2):
        client.post("/probe/echo", json={"text": "hi"}, headers=acme.auth())
    assert probe.calls == 2


def test_a_route_can_require_the_key(client: TestClient, acme: SeededTenant, probe: Probe) -> None:
    assert_problem(
        client.post("/probe/strict", headers=acme.auth()), 422, "idempotency.key_required"
    )
    ok = client.post("/probe/strict", headers={**acme.auth(), "Idempotency-Key": "s"})
    assert ok.status_code == 200
    assert probe.calls == 1


def test_bad_keys_are_422(client: TestClient, acme: SeededTenant, probe: Probe) -> None:
    for key in (b"x" * 256, "café".encode()):
        headers = [*acme.auth().items(), ("Idempotency-Key", key)]
        response = client.post("/probe/echo", json={"text": "a"}, headers=headers)
        assert_problem(response, 422, "idempotency.invalid_key")
    assert probe.calls == 0


def test_the_key_needs_valid_credentials_first(
    client: TestClient, acme: SeededTenant, probe: Probe
) -> None:
    response = client.post("/probe/echo", json={"text": "a"}, headers={"Idempotency-Key": "k"})
    assert_problem(response, 401, "auth.missing_key")
    read_only = client.post(
        "/probe/echo",
        json={"text": "a"},
        headers={**acme.auth(ApiKeyScope.READ_ONLY), "Idempotency-Key": "k"},
    )
    assert_problem(read_only, 403, "auth.insufficient_scope")
    assert probe.calls == 0
    admin = client.post(
        "/probe/echo", json={"text": "a"}, headers={**acme.auth(), "Idempotency-Key": "k"}
    )
    assert admin.status_code == 201  # the refused attempts did not use the key up
    assert "idempotent-replayed" not in admin.headers
