"""The caller's tenant and its API keys; the pattern other resource routers follow:

- ``APIRouter(route_class=IdempotentRoute)`` so every POST honours ``Idempotency-Key``;
- access declared by the principal parameter's type (``AdminWrite``, ``ReadAccess``);
- sync handlers (they run in the thread pool) with one unit of work each, committed explicitly;
- ``ApiModel`` schemas in and out; lists as ``ListResponse`` with ``Pagination``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import Field

from iptv_billing.api.deps import AdminWrite, CurrentTenant, ReadAccess, Services, tenant_clock
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.pagination import ListResponse, Pagination, page_of
from iptv_billing.api.schemas import ApiModel
from iptv_billing.services.access import (
    ApiKeyScope,
    issue_api_key,
    list_api_keys,
    revoke_api_key,
)
from iptv_billing.services.records import ApiKeyRecord, TenantRecord

router = APIRouter(prefix="/v1", tags=["tenant"], route_class=IdempotentRoute)

KeyId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


class TenantOut(ApiModel):
    id: str
    name: str
    timezone: str
    default_currency: str
    invoice_prefix: str
    test_clock_now: datetime | None
    now: datetime = Field(description="the tenant's current time (its test clock, if set)")
    created_at: datetime


class ApiKeyIn(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    scope: ApiKeyScope


class ApiKeyOut(ApiModel):
    id: str
    name: str
    scope: ApiKeyScope
    prefix: str = Field(description="the first characters of the key, to recognise it")
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKeyRecord) -> ApiKeyOut:
        return cls(
            id=key.id,
            name=key.name,
            scope=ApiKeyScope(key.scope),
            prefix=key.prefix,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="the key itself; shown only in this response")


def _tenant_out(tenant: TenantRecord, now: datetime) -> TenantOut:
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        timezone=tenant.timezone,
        default_currency=tenant.default_currency,
        invoice_prefix=tenant.invoice_prefix,
        test_clock_now=tenant.test_clock_now,
        now=now,
        created_at=tenant.created_at,
    )


@router.get("/tenant")
def get_tenant(caller: ReadAccess, tenant: CurrentTenant, services: Services) -> TenantOut:
    return _tenant_out(tenant, tenant_clock(services, tenant).now())


@router.post("/api-keys", status_code=201)
def create_api_key(body: ApiKeyIn, caller: AdminWrite, services: Services) -> ApiKeyCreated:
    with services.database.uow() as uow:
        key, secret = issue_api_key(
            uow, services.ids, services.system_clock, caller.tenant_id, body.name, body.scope
        )
        uow.commit()
    return ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), secret=secret)


@router.get("/api-keys")
def get_api_keys(
    caller: ReadAccess, page: Pagination, services: Services
) -> ListResponse[ApiKeyOut]:
    with services.database.uow(read_only=True) as uow:
        keys = list_api_keys(uow, caller.tenant_id)
    return ListResponse.of(page_of(keys, page), ApiKeyOut.of)


@router.delete("/api-keys/{key_id}", status_code=204)
def delete_api_key(key_id: KeyId, caller: AdminWrite, services: Services) -> Response:
    with services.database.uow() as uow:
        revoke_api_key(uow, services.system_clock, caller.tenant_id, key_id)
        uow.commit()
    return Response(status_code=204)
