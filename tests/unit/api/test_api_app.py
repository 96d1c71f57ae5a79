"""create_app: health, metrics, OpenAPI, router checks, the tenant clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from api_support import assert_problem
from fastapi import APIRouter
from fastapi.testclient import TestClient

from fakes import MemoryDatabase, MemoryUnitOfWork, SeededTenant
from iptv_billing import __version__
from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices, tenant_clock
from iptv_billing.domain.errors import InvariantViolated
from iptv_billing.services.access import ApiKeyScope


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


class _BrokenDatabase(MemoryDatabase):
    def uow(self, *, read_only: bool = False) -> MemoryUnitOfWork:
        raise OSError("connection refused")


def test_healthz_is_503_when_the_database_is_down(services: AppServices) -> None:
    broken = AppServices(_BrokenDatabase(), services.ids, services.system_clock)
    with TestClient(create_app(broken)) as client:
        response = client.get("/healthz")
    assert_problem(response, 503, "health.database_unavailable")
    assert "connection refused" not in response.text


def test_metrics_count_requests_by_route_template(client: TestClient, acme: SeededTenant) -> None:
    for key_id in ("key_a", "key_b"):
        client.delete(f"/v1/api-keys/{key_id}", headers=acme.auth())
    client.get("/no/such/route")
    text = client.get("/metrics").text
    assert (
        'iptv_billing_http_requests_total{method="DELETE",route="/v1/api-keys/{key_id}",'
        'status="404"} 2.0'
    ) in text
    assert 'route="unmatched",status="404"' in text
    assert "iptv_billing_http_request_duration_seconds_bucket" in text
    assert "key_a" not in text


def test_openapi_declares_title_version_and_bearer(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "iptv-billing"
    assert spec["info"]["version"] == __version__
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    post = spec["paths"]["/v1/api-keys"]["post"]
    assert {"HTTPBearer": []} in post["security"]
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"]}


def test_create_app_refuses_a_post_route_without_idempotency(services: AppServices) -> None:
    plain = APIRouter()

    @plain.post("/plain")
    def handler() -> None: ...

    with pytest.raises(InvariantViolated, match="IdempotentRoute"):
        create_app(services, [plain])


def test_tenant_clock_follows_the_test_clock(
    client: TestClient, acme: SeededTenant, services: AppServices, database: MemoryDatabase
) -> None:
    frozen = datetime(2030, 6, 1, tzinfo=UTC)
    with database.uow() as uow:
        uow.tenants.set_test_clock(acme.id, frozen)
        uow.commit()
        tenant = uow.tenants.get(acme.id)
    assert tenant is not None
    assert tenant_clock(services, tenant).now() == frozen
    body = client.get("/v1/tenant", headers=acme.auth(ApiKeyScope.READ_ONLY)).json()
    assert datetime.fromisoformat(body["now"]) == frozen
    assert datetime.fromisoformat(body["test_clock_now"]) == frozen
