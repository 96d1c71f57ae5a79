"""What every stream-server adapter shares: the authorizer, reading fields, answers.

These routes are the benchmark's hot path: plain ``async def`` handlers that read the query or
body themselves and answer with bare responses (no pydantic, no dependencies but the
``Idempotency-Key`` documentation every POST gets). With the in-process session store the
authorizer runs right in the event loop (it does no I/O); with Redis in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from iptv_billing.api.deps import get_services
from iptv_billing.api.routers._common import peer as peer  # re-exported for the protocol modules
from iptv_billing.domain.errors import Unavailable
from iptv_billing.domain.stream_protocols import MAX_SESSION_PART, Offered, parse_query
from iptv_billing.services.stream_auth import Presented, StreamAuthorizer

T = TypeVar("T")

DENY_REASON = "X-Deny-Reason"
# Deny reasons besides the domain's ``Reason`` values.
MALFORMED = "malformed_request"
PUBLISH_REFUSED = "publish_refused"
UNSUPPORTED = "unsupported_action"


def authorizer(request: Request) -> StreamAuthorizer:
    stream = get_services(request).stream
    if stream is None:
        raise Unavailable("stream.unavailable", "stream authorization is not configured")
    return stream


async def call(stream: StreamAuthorizer, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``: in the event loop with the in-process store, else in a worker thread
    (Redis calls block)."""
    if stream.blocking:
        return await run_in_threadpool(fn, *args)
    return fn(*args)


def presented(offer: Offered | None) -> Presented | None:
    if offer is None:
        return None
    if offer.kind == "line":
        return Presented.line(offer.login, offer.password or "")
    if offer.kind == "token":
        return Presented.token(offer.login)
    return Presented.device(offer.login)


def server_name(request: Request) -> str:
    """Which streaming server called: ``?server=`` in the callback URL it was configured with,
    else its address (behind a load balancer every server has the balancer's address)."""
    named = parse_query(request.scope.get("query_string", b"")).get("server")
    return named if named and len(named) <= MAX_SESSION_PART else peer(request)


def query_fields(request: Request) -> dict[str, str]:
    query: bytes = request.scope.get("query_string", b"")
    return parse_query(query)


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded POST body's fields; the query's for GET (or an empty body)."""
    if request.method == "POST":
        body = await request.body()
        if body:
            return parse_query(body)
    return query_fields(request)


async def json_object(request: Request) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def deny(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, headers={DENY_REASON: reason, **(headers or {})})


# -- OpenAPI: the handlers parse their input themselves; these only describe it ----------------


def _strings(names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in names},
    }


def query_doc(*names: str, headers: tuple[str, ...] = ()) -> dict[str, Any]:
    params = [{"name": n, "in": "query", "schema": {"type": "string"}} for n in names]
    params += [{"name": h, "in": "header", "schema": {"type": "string"}} for h in headers]
    return {"parameters": params}


def body_doc(media_type: str, *names: str, query: tuple[str, ...] = ()) -> dict[str, Any]:
    doc = query_doc(*query) if query else {}
    content = {media_type: {"schema": _strings(names)}}
    return {**doc, "requestBody": {"required": False, "content": content}}


def answers(**by_status: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the docs: status → description (``s200="allowed"``)."""
    return {int(status[1:]): {"description": text} for status, text in by_status.items()}


def empty_answers(**by_status: str) -> dict[str, Any]:
    """Route keywords for answers without a body: the status is the answer."""
    return {"responses": answers(**by_status), "response_class": Response}
