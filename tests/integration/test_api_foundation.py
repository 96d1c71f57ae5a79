"""The API plumbing against the real SQL adapter, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fakes import SeededTenant, seed_tenant
from iptv_billing.adapters.sql.uow import Database, open_database
from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices
from iptv_billing.services.access import ApiKeyScope
from iptv_billing.services.clock import SystemClock
from iptv_billing.services.ids import TimeOrderedIds


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = open_database(database_url, migrate=False)
    yield database
    database.dispose()


@pytest.fixture
def services(database: Database) -> AppServices:
    clock = SystemClock()
    return AppServices(database, TimeOrderedIds(clock), clock)


@pytest.fixture
def client(services: AppServices) -> Iterator[TestClient]:
    with TestClient(create_app(services), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def acme(services: AppServices) -> SeededTenant:
    return seed_tenant(services.database, services.ids, services.system_clock, "Acme TV")


@pytest.fixture
def globex(services: AppServices) -> SeededTenant:
    return seed_tenant(services.database, services.ids, services.system_clock, "Globex TV")


def _key_ids(client: TestClient, who: SeededTenant) -> set[str]:
    listed = client.get("/v1/api-keys?limit=100", headers=who.auth())
    assert listed.status_code == 200
    return {key["id"] for key in listed.json()["data"]}


def _create_key(client: TestClient, who: SeededTenant, key: str, name: str = "ci") -> Any:
    return client.post(
        "/v1/api-keys",
        json={"name": name, "scope": "read_only"},
        headers={**who.auth(), "Idempotency-Key": key},
    )


def _problem_code(response: Any) -> str:
    assert response.headers["content-type"] == "application/problem+json"
    code: str = response.json()["code"]
    return code


def test_health_and_authentication(client: TestClient, acme: SeededTenant) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/v1/tenant", headers=acme.auth(ApiKeyScope.READ_ONLY)).status_code == 200
    wrong = client.get("/v1/tenant", headers={"Authorization": "Bearer ib_live_wrong"})
    assert (wrong.status_code, _problem_code(wrong)) == (401, "auth.invalid_key")
    missing = client.get("/v1/tenant")
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")


def test_read_only_key_cannot_post(client: TestClient, acme: SeededTenant) -> None:
    response = client.post(
        "/v1/api-keys",
        json={"name": "x", "scope": "admin"},
        headers=acme.auth(ApiKeyScope.READ_ONLY),
    )
    assert (response.status_code, _problem_code(response)) == (403, "auth.insufficient_scope")


def test_bad_input_is_4xx(client: TestClient, acme: SeededTenant) -> None:
    headers = {**acme.auth(), "content-type": "application/json"}
    malformed = client.post("/v1/api-keys", content=b"{", headers=headers)
    assert (malformed.status_code, _problem_code(malformed)) == (400, "request.malformed_json")
    too_many = client.get("/v1/api-keys?limit=1000", headers=acme.auth())
    assert (too_many.status_code, _problem_code(too_many)) == (422, "request.invalid")


def test_revoking_another_tenants_key_is_404(
    client: TestClient, acme: SeededTenant, globex: SeededTenant
) -> None:
    theirs = sorted(_key_ids(client, globex))[0]
    response = client.delete(f"/v1/api-keys/{theirs}", headers=acme.auth())
    assert (response.status_code, _problem_code(response)) == (404, "api_key.not_found")
    assert client.get("/v1/tenant", headers=globex.auth()).status_code == 200
    mine = sorted(_key_ids(client, acme))[0]
    assert client.delete(f"/v1/api-keys/{mine}", headers=acme.auth()).status_code == 204


def test_idempotent_replay_and_reuse(client: TestClient, acme: SeededTenant) -> None:
    before = _key_ids(client, acme)
    first = _create_key(client, acme, "k1")
    again = _create_key(client, acme, "k1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert _key_ids(client, acme) - before == {first.json()["id"]}  # the handler ran once
    reused = _create_key(client, acme, "k1", name="other")
    assert (reused.status_code, _problem_code(reused)) == (409, "idempotency.key_reused")


def test_idempotency_keys_are_scoped_per_tenant(
    client: TestClient, acme: SeededTenant, globex: SeededTenant
) -> None:
    mine = _create_key(client, acme, "shared")
    theirs = _create_key(client, globex, "shared")
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["id"] in _key_ids(client, globex)


def test_concurrent_duplicates_run_once(client: TestClient, acme: SeededTenant) -> None:
    before = _key_ids(client, acme)
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: _create_key(client, acme, "race"), range(6)))
    created = _key_ids(client, acme) - before
    assert len(created) == 1
    assert {r.status_code for r in responses} <= {201, 409}
    assert {r.json()["id"] for r in responses if r.status_code == 201} == created


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/api-keys", b'{"name": "nul\\u0000", "scope": "admin"}'),
        ("POST", "/v1/api-keys", b'{"name": "lone \\ud800", "scope": "admin"}'),
        ("POST", "/v1/api-keys", b'{"name": "' + b"n" * 300 + b'", "scope": "admin"}'),
        ("POST", "/v1/api-keys", b'{"name": "x", "scope": "admin", "id": "key_mine"}'),
        ("POST", "/v1/api-keys", b"[" * 50_000),
        ("POST", "/v1/api-keys", b"\xff\xfe"),
        ("DELETE", "/v1/api-keys/" + "k" * 500, b""),
        ("DELETE", "/v1/api-keys/key%00x", b""),
        ("GET", "/v1/api-keys?starting_after=%F0%9F%92%A9", b""),
        ("GET", "/v1/api-keys?limit=-1", b""),
    ],
)
def test_bad_input_never_500(
    client: TestClient, acme: SeededTenant, method: str, path: str, body: bytes
) -> None:
    headers = {**acme.auth(), "content-type": "application/json", "Idempotency-Key": "bad"}
    response = client.request(method, path, content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
