"""nginx ``auth_request``: the subrequest nginx makes before serving an HLS/DASH file.

nginx passes 2xx (serve), 401 and 403 (refuse with that code) and turns anything else into a
500 for the viewer. A "yes" carries ``X-Accel-Expires`` (and ``Cache-Control``) so that
nginx's ``proxy_cache`` of the subrequest answers the following segments itself; a "no" is
``no-store``. HLS has no stable session id, so nothing is counted against the connection
limit unless the nginx configuration sends one in ``X-Session-Id``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers.stream_servers._common import (
    MALFORMED,
    authorizer,
    call,
    deny,
    empty_answers,
    peer,
    presented,
    query_doc,
)
from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.stream_protocols import (
    MAX_FIELD,
    client_ip,
    country_code,
    offered,
    parse_original_uri,
    session_id,
)
from iptv_billing.services.stream_auth import PlayRequest

router = APIRouter(route_class=IdempotentRoute, tags=["stream servers"])
HEADERS = (
    "X-Original-URI",
    "X-Stream-Name",
    "X-Real-IP",
    "X-Forwarded-For",
    "X-Country-Code",
    "X-Session-Id",
)
NO_STORE = {"Cache-Control": "no-store"}
EMPTY = empty_answers(
    s200="allowed: Cache-Control/X-Accel-Expires say for how long, X-User-Id for whom",
    s401="no or unknown credentials",
    s403="refused; X-Deny-Reason says why",
)


@router.get("/integrations/nginx/auth", openapi_extra=query_doc(headers=HEADERS), **EMPTY)
async def auth_request(request: Request) -> Response:
    stream = authorizer(request)
    headers = request.headers
    original = parse_original_uri(headers.get("x-original-uri", "")[: 4 * MAX_FIELD])
    named = headers.get("x-stream-name")
    name = original.stream if named is None else _named(named)
    if name is None:
        return deny(403, MALFORMED, NO_STORE)
    ip = client_ip(headers.get("x-real-ip") or headers.get("x-forwarded-for"), peer(request))
    play = PlayRequest(
        presented(offered(original.fields)),
        name,
        ip,
        session_id=session_id("nginx", headers.get("x-session-id")),
        country=country_code(headers.get("x-country-code")),
    )
    answer = await call(stream, stream.authorize, play)
    if not answer.allowed:
        status = 401 if answer.reason is Reason.UNKNOWN_CREDENTIAL else 403
        return deny(status, str(answer.reason), NO_STORE)
    seconds = str(int(answer.decision.cache_for.total_seconds()))
    return Response(
        status_code=200,
        headers={
            # X-Accel-Expires first: nginx before 1.23 stops at "private" when it comes first
            "X-Accel-Expires": seconds,
            "Cache-Control": f"private, max-age={seconds}",
            "X-User-Id": answer.decision.subscription_id or "",
        },
    )


def _named(header: str) -> str | None:
    """``X-Stream-Name``: the stream as the nginx location captured it (any URI layout)."""
    return header if 0 < len(header) <= MAX_FIELD else None
