"""FastAPI dependencies every router uses: services, the caller, scopes, the tenant's clock.

A router declares who may call it with one annotated parameter::

    @router.post("/v1/customers", status_code=201)
    def create(body: CustomerIn, caller: AdminWrite, services: Services) -> CustomerOut: ...

``AdminWrite`` (admin keys), ``ReadAccess`` (admin and read_only keys), ``IntegrationAccess``
(admin and integration keys); each resolves to the authenticated ``Principal``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers

from iptv_billing.domain.errors import InvariantViolated, Unauthorized
from iptv_billing.domain.secure_links import SecureLinkSigner
from iptv_billing.services.access import ApiKeyScope, Principal, authenticate, require_scope
from iptv_billing.services.clock import Clock
from iptv_billing.services.context import get_tenant
from iptv_billing.services.context import tenant_clock as _tenant_clock
from iptv_billing.services.credentials import Sealer
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.publishing import LedgerPublisher
from iptv_billing.services.records import TenantRecord
from iptv_billing.services.stream_auth import StreamAuthorizer
from iptv_billing.services.usage_feed import UsageFeed

T = TypeVar("T")


class Database(Protocol):
    """What the API needs of ``adapters.sql.uow.Database``."""

    def uow(self, *, read_only: bool = False) -> UnitOfWork: ...
    def transact(self, fn: Callable[[UnitOfWork], T]) -> T:
        """``fn`` in one committed unit of work, rerun from scratch on transient failures."""
        ...


def _never_transient(_error: BaseException) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class AppServices:
    """What the app is built from; stored on ``app.state.services``."""

    database: Database
    ids: IdGenerator
    system_clock: Clock
    # Which storage errors are worth retrying; the composition root passes the adapter's.
    is_transient: Callable[[BaseException], bool] = _never_transient
    # Signs checkpoints and builds receipts; None in apps built without a transparency log.
    publisher: LedgerPublisher | None = None
    # Answers streaming servers and players; None in apps built without stream authorization.
    stream: StreamAuthorizer | None = None
    # Seals line passwords and tokens; randomness for new credentials (injected, seedable).
    sealer: Sealer | None = None
    random_bytes: Callable[[int], bytes] = os.urandom
    # The base URL players reach this server at; None: each request's own.
    public_url: str | None = None
    # Signs links for servers without callbacks; None: signed links are off.
    secure_link_signer: SecureLinkSigner | None = None
    secure_link_ttl_seconds: int = 3600
    # How late a usage event may arrive (``Settings.usage_grace_seconds``).
    usage_grace_seconds: float = 259_200.0
    # Turns streaming servers' session callbacks into usage; None: no feed.
    usage_feed: UsageFeed | None = None


def get_services(request: Request) -> AppServices:
    services = getattr(request.app.state, "services", None)
    if not isinstance(services, AppServices):
        raise InvariantViolated("app.state.services is not set; build the app with create_app")
    return services


Services = Annotated[AppServices, Depends(get_services)]

# Declared for OpenAPI (the security schemes clients see); the headers are read below.
_bearer_scheme = HTTPBearer(auto_error=False, description="an API key: `Bearer ib_live_…`")
_api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key, for clients without Bearer"
)


def api_key_from(headers: Headers) -> str:
    """The API key from ``Authorization: Bearer <key>``, else from ``X-API-Key``."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise Unauthorized("auth.invalid_key", "use `Authorization: Bearer <API key>`")
    key = headers.get("x-api-key", "").strip()
    if not key:
        raise Unauthorized("auth.missing_key", "an API key is required")
    return key


def authenticate_request(request: Request, services: AppServices) -> Principal:
    """The caller of this request, authenticated once per request (the idempotency layer
    may have done it already)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    secret = api_key_from(request.headers)
    with services.database.uow(read_only=True) as uow:
        caller = authenticate(uow, secret)
    request.state.principal = caller
    return caller


def principal(
    request: Request,
    services: Services,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
    _api_key: Annotated[str | None, Depends(_api_key_scheme)],
) -> Principal:
    """Any authenticated caller, whatever its scope."""
    return authenticate_request(request, services)


Caller = Annotated[Principal, Depends(principal)]


def require(needed: ApiKeyScope) -> Callable[[Principal], Principal]:
    """A dependency admitting callers whose key may use routes of kind ``needed``."""

    def dependency(caller: Caller) -> Principal:
        require_scope(caller, needed)
        return caller

    dependency.__name__ = f"require_{needed.value}"
    dependency.required_scope = needed  # type: ignore[attr-defined]  # read by IdempotentRoute
    return dependency


admin_write = require(ApiKeyScope.ADMIN)
read_access = require(ApiKeyScope.READ_ONLY)
integration_access = require(ApiKeyScope.INTEGRATION)

AdminWrite = Annotated[Principal, Depends(admin_write)]
ReadAccess = Annotated[Principal, Depends(read_access)]
IntegrationAccess = Annotated[Principal, Depends(integration_access)]


def current_tenant(caller: Caller, services: Services) -> TenantRecord:
    """The caller's tenant, read in a read-only unit of work of its own."""
    with services.database.uow(read_only=True) as uow:
        return get_tenant(uow, caller.tenant_id)


CurrentTenant = Annotated[TenantRecord, Depends(current_tenant)]


def tenant_clock(services: AppServices, tenant: TenantRecord) -> Clock:
    """The tenant's test clock when it has one, else the system clock."""
    return _tenant_clock(tenant, services.system_clock)
