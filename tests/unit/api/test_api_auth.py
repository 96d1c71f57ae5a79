"""API keys, scopes, the tenant router and pagination."""

from __future__ import annotations

import pytest
from api_support import assert_problem
from fastapi.testclient import TestClient

from fakes import SeededTenant
from iptv_billing.services.access import ApiKeyScope

ADMIN, READ, INTEGRATION = ApiKeyScope.ADMIN, ApiKeyScope.READ_ONLY, ApiKeyScope.INTEGRATION


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer ib_live_not-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"X-API-Key": "nope"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
)
def test_missing_or_wrong_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/v1/tenant", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] in ("auth.invalid_key", "auth.missing_key")


def test_x_api_key_header_works(client: TestClient, acme: SeededTenant) -> None:
    response = client.get("/v1/tenant", headers={"X-API-Key": acme.secrets[READ]})
    assert response.status_code == 200
    assert response.json()["id"] == acme.id


def test_get_tenant(client: TestClient, acme: SeededTenant) -> None:
    body = client.get("/v1/tenant", headers=acme.auth(READ)).json()
    assert body["name"] == "Acme TV"
    assert body["timezone"] == "Europe/Paris"
    assert body["test_clock_now"] is None


def test_read_only_key_cannot_post(client: TestClient, acme: SeededTenant) -> None:
    payload = {"name": "x", "scope": "admin"}
    response = client.post("/v1/api-keys", json=payload, headers=acme.auth(READ))
    body = assert_problem(response, 403, "auth.insufficient_scope")
    assert body["details"] == {"scope": "read_only", "needed": "admin"}


def test_integration_key_cannot_read_admin_routes(client: TestClient, acme: SeededTenant) -> None:
    assert_problem(
        client.get("/v1/tenant", headers=acme.auth(INTEGRATION)), 403, "auth.insufficient_scope"
    )


def test_issued_key_is_shown_once_and_works(client: TestClient, acme: SeededTenant) -> None:
    created = client.post(
        "/v1/api-keys", json={"name": "ci", "scope": "read_only"}, headers=acme.auth()
    )
    assert created.status_code == 201
    key = created.json()
    assert key["secret"].startswith("ib_live_")
    assert key["prefix"] == key["secret"][:12]
    bearer = {"Authorization": f"Bearer {key['secret']}"}
    assert client.get("/v1/tenant", headers=bearer).status_code == 200

    listed = client.get("/v1/api-keys", headers=acme.auth(READ)).json()
    assert listed["object"] == "list"
    assert key["id"] in {k["id"] for k in listed["data"]}
    assert key["secret"] not in created.request.url.path + str(listed)
    assert all("secret" not in k for k in listed["data"])


def test_revoked_key_stops_working(client: TestClient, acme: SeededTenant) -> None:
    key = client.post(
        "/v1/api-keys", json={"name": "tmp", "scope": "admin"}, headers=acme.auth()
    ).json()
    assert client.delete(f"/v1/api-keys/{key['id']}", headers=acme.auth()).status_code == 204
    bearer = {"Authorization": f"Bearer {key['secret']}"}
    assert_problem(client.get("/v1/tenant", headers=bearer), 401, "auth.invalid_key")
    again = client.delete(f"/v1/api-keys/{key['id']}", headers=acme.auth())
    assert_problem(again, 404, "api_key.not_found")


def test_another_tenants_key_is_not_found(
    client: TestClient, acme: SeededTenant, globex: SeededTenant
) -> None:
    theirs = client.get("/v1/api-keys", headers=globex.auth()).json()["data"][0]["id"]
    assert_problem(
        client.delete(f"/v1/api-keys/{theirs}", headers=acme.auth()), 404, "api_key.not_found"
    )
    assert client.get("/v1/tenant", headers=globex.auth()).status_code == 200


@pytest.mark.parametrize(
    "payload", [{"name": "x", "scope": "root"}, {"name": "", "scope": "admin"}, {"name": "x"}]
)
def test_bad_key_requests_are_422(
    client: TestClient, acme: SeededTenant, payload: dict[str, str]
) -> None:
    assert_problem(
        client.post("/v1/api-keys", json=payload, headers=acme.auth()), 422, "request.invalid"
    )


@pytest.mark.parametrize("query", ["limit=1000", "limit=0", "limit=x", "starting_after=a%20b"])
def test_bad_pagination_is_422(client: TestClient, acme: SeededTenant, query: str) -> None:
    response = client.get(f"/probe/items?{query}", headers=acme.auth(READ))
    assert_problem(response, 422, "request.invalid")


def test_pages_follow_the_cursor(client: TestClient, acme: SeededTenant) -> None:
    seen: list[str] = []
    cursor = ""
    while True:
        query = f"limit=2&starting_after={cursor}" if cursor else "limit=2"
        page = client.get(f"/probe/items?{query}", headers=acme.auth(READ)).json()
        seen += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == [f"itm_{n:03d}" for n in range(5)]
