"""``Idempotency-Key`` on every POST route, through the route class ``IdempotentRoute``.

A POST with the header is authenticated first (keys are scoped per tenant), fingerprinted,
and reserved (see ``services.idempotency`` for the policy). A stored response is replayed with
the same status and body and ``Idempotent-Replayed: true``; otherwise the handler runs and its
response is stored (2xx, 4xx but 401/403) or the key released (401, 403, 5xx, exceptions).

A POST without the header runs as usual. To make the header mandatory on a route, add
``dependencies=[Depends(require_idempotency_key)]`` to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from iptv_billing.api.deps import AppServices, authenticate_request, get_services
from iptv_billing.api.errors import PROBLEM_MEDIA_TYPE, render_known_error
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.services import idempotency
from iptv_billing.services.access import ApiKeyScope, require_scope
from iptv_billing.services.records import IdempotencyEntry

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def idempotency_key_header(
    key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            description="makes a retried POST safe: the first response is replayed",
        ),
    ] = None,
) -> str | None:
    """Documents the header on every POST (the route class does the work)."""
    return key


def require_idempotency_key(
    key: Annotated[str | None, Depends(idempotency_key_header)],
) -> str:
    if key is None:
        raise InvalidInput("idempotency.key_required", f"this route needs {IDEMPOTENCY_HEADER}")
    return key


class IdempotentRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if "POST" in {method.upper() for method in kwargs.get("methods") or ()}:
            documented = Depends(idempotency_key_header)
            kwargs["dependencies"] = [*(kwargs.get("dependencies") or ()), documented]
        super().__init__(path, endpoint, **kwargs)
        self.required_scope = _required_scope(self.dependant) or ApiKeyScope.ADMIN

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            key = request.headers.get(IDEMPOTENCY_HEADER)
            if request.method != "POST" or key is None:
                return await handler(request)
            return await _run_once(request, key, handler, self.required_scope)

        return route_handler


def _target(request: Request) -> str:
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


def _required_scope(dependant: Dependant) -> ApiKeyScope | None:
    """The scope a route's access dependency (``AdminWrite`` …) demands, found in its tree."""
    for sub_dependant in dependant.dependencies:
        scope = getattr(sub_dependant.call, "required_scope", None)
        if isinstance(scope, ApiKeyScope):
            return scope
        found = _required_scope(sub_dependant)
        if found is not None:
            return found
    return None


async def _run_once(request: Request, key: str, handler: Handler, scope: ApiKeyScope) -> Response:
    services = get_services(request)
    caller = await run_in_threadpool(authenticate_request, request, services)
    # Before any replay: a stored answer is only for callers who may make the request.
    require_scope(caller, scope)
    fingerprint = idempotency.request_fingerprint(
        request.method, _target(request), await request.body()
    )
    stored = await run_in_threadpool(
        idempotency.begin,
        services.database.uow,
        caller.tenant_id,
        key,
        request.method,
        request.url.path,
        fingerprint,
        services.system_clock,
    )
    if stored is not None:
        return _replay(stored, services)
    slot = _Slot(services, caller.tenant_id, key)
    try:
        response = await handler(request)
    except Exception as exc:
        known = await render_known_error(request, exc)
        if known is None:  # a bug: nothing committed, so a retry may run again
            await slot.release()
            raise
        response = known
    await slot.settle(response)
    return response


def _storable(status: int) -> bool:
    # 401/403 judge the credentials, not the request: another key may retry with the same
    # Idempotency-Key. 5xx: the attempt failed and committed nothing.
    return status < 500 and status not in (401, 403)


# Stored answers can carry secrets (a new line's password, an API key): with a sealer they are
# kept encrypted, bound to their tenant and key.
_SEALED = "sealed:"


def _seal_context(tenant_id: str, key: str) -> str:
    return f"idempotency:{tenant_id}:{key}"


def _stored_body(services: AppServices, tenant_id: str, key: str, body: str) -> str:
    if services.sealer is None:
        return body
    return _SEALED + services.sealer.seal(body, _seal_context(tenant_id, key))


def _replayed_body(services: AppServices, entry: IdempotencyEntry) -> str:
    body = entry.response_body or ""
    if not body.startswith(_SEALED) or services.sealer is None:
        return body
    context = _seal_context(entry.tenant_id, entry.key)
    return services.sealer.unseal(body.removeprefix(_SEALED), context)


def _replay(entry: IdempotencyEntry, services: AppServices) -> Response:
    status = entry.status_code or 200  # begin only returns completed entries
    body = _replayed_body(services, entry)
    media_type = PROBLEM_MEDIA_TYPE if status >= 400 else "application/json"
    return Response(
        body,
        status_code=status,
        media_type=media_type if body else None,
        headers={REPLAYED_HEADER: "true"},
    )


class _Slot:
    """One reserved key: stored with its response, or released."""

    def __init__(self, services: AppServices, tenant_id: str, key: str) -> None:
        self._services = services
        self._uow = services.database.uow
        self._tenant_id = tenant_id
        self._key = key

    async def settle(self, response: Response) -> None:
        body = getattr(response, "body", None)  # streaming responses have none to store
        if not _storable(response.status_code) or not isinstance(body, bytes):
            await self.release()
            return
        try:
            await run_in_threadpool(
                idempotency.finish,
                self._uow,
                self._tenant_id,
                self._key,
                response.status_code,
                _stored_body(self._services, self._tenant_id, self._key, body.decode("utf-8")),
            )
        except Exception:
            # The request's effect is committed: answering it beats a 500, and the key
            # stays in progress rather than allowing a second execution.
            logger.exception("could not store the response for idempotency key %r", self._key)

    async def release(self) -> None:
        try:
            await run_in_threadpool(idempotency.abandon, self._uow, self._tenant_id, self._key)
        except Exception:
            logger.exception("could not release idempotency key %r", self._key)
