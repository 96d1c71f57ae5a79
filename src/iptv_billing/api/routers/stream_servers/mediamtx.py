"""MediaMTX ``authMethod: http``, and ``runOnUnread`` to end sessions.

MediaMTX posts one JSON request per read (no heartbeat) and treats any 20x as "yes". RTSP
clients first come without credentials and send them only after a 401, so a request without
any is answered 401 and not counted as a failed login. Publishing, the API, metrics and pprof
are refused: exclude them with ``authHTTPExclude`` or serve them on an internal address.
A read's session (``mediamtx:{id}``) ends by ``POST …/unread`` from ``runOnUnread``, or when
the session TTL passes without news.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers.stream_servers._common import (
    MALFORMED,
    PUBLISH_REFUSED,
    UNSUPPORTED,
    authorizer,
    body_doc,
    call,
    deny,
    empty_answers,
    form_fields,
    json_object,
    peer,
    presented,
)
from iptv_billing.domain.stream_protocols import (
    Offered,
    client_ip,
    offered,
    parse_query,
    session_id,
    value,
)
from iptv_billing.services.stream_auth import PlayRequest

router = APIRouter(route_class=IdempotentRoute, tags=["stream servers"])
PREFIX = "/integrations/mediamtx"
FIELDS = ("user", "password", "token", "ip", "action", "path", "protocol", "id", "query")
READS = frozenset({"read", "playback"})
ASK_CREDENTIALS = "credentials_required"
EMPTY = empty_answers(
    s200="allowed (empty body)",
    s401="no credentials yet: RTSP clients send them now",
    s403="refused; X-Deny-Reason says why",
)


def _credentials(fields: dict[str, Any]) -> Offered | None:
    return offered(fields) or offered(parse_query(value(fields, "query") or ""))


@router.post(f"{PREFIX}/auth", openapi_extra=body_doc("application/json", *FIELDS), **EMPTY)
async def auth(request: Request) -> Response:
    stream = authorizer(request)
    fields = await json_object(request)
    if fields is None:
        return deny(403, MALFORMED)
    action = value(fields, "action")
    if action == "publish":
        return deny(403, PUBLISH_REFUSED)
    if action not in READS:  # api, metrics, pprof, anything new
        return deny(403, UNSUPPORTED)
    path = value(fields, "path")
    if path is None:
        return deny(403, MALFORMED)
    offer = _credentials(fields)
    if offer is None:
        return deny(401, ASK_CREDENTIALS)
    play = PlayRequest(
        presented(offer),
        path,
        client_ip(value(fields, "ip"), peer(request)),
        session_id=session_id("mediamtx", value(fields, "id")),
    )
    answer = await call(stream, stream.authorize, play)
    return Response(status_code=200) if answer.allowed else deny(403, str(answer.reason))


@router.post(
    f"{PREFIX}/unread",
    openapi_extra=body_doc("application/json", "id", "path", "query"),
    **empty_answers(s200="always (empty body)"),
)
async def unread(request: Request) -> Response:
    """``runOnUnread``: the reader ``id`` left; its slot frees. JSON or a urlencoded form
    (``curl -d``); the ``query`` carries the credentials the read was counted under."""
    stream = authorizer(request)
    fields: dict[str, Any] | None
    if request.headers.get("content-type", "").startswith("application/json"):
        fields = await json_object(request)
    else:
        fields = await form_fields(request)
    sid = session_id("mediamtx", value(fields or {}, "id"))
    who = presented(_credentials(fields or {}))
    if sid is not None and who is not None:
        await call(stream, stream.finish, who, sid, peer(request))
    return Response(status_code=200)
