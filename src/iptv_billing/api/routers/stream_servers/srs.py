"""SRS ``http_hooks``: one URL for every hook, told apart by ``action``.

SRS goes on only when the hook answers HTTP 200 with the body ``0``; anything else refuses.
``on_play`` is the decision (credentials from the player's query, ``param``, which SRS 3+
sends; else the ``tcUrl`` query); ``on_stop`` / ``on_close`` end the session
``srs:{server}:{client_id}``, where ``server`` is SRS 5's ``server_id``, else ``?server=`` in the
hook URL, else the SRS address. Notifications are acknowledged; publishing is refused (let
encoders in on a vhost or app without the hook).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers.stream_servers._common import (
    MALFORMED,
    PUBLISH_REFUSED,
    UNSUPPORTED,
    answers,
    authorizer,
    body_doc,
    call,
    deny,
    json_object,
    peer,
    presented,
    server_name,
)
from iptv_billing.domain.stream_protocols import (
    MAX_SESSION_PART,
    client_ip,
    offered,
    parse_query,
    session_id,
    value,
)
from iptv_billing.services.stream_auth import PlayRequest, Presented

router = APIRouter(route_class=IdempotentRoute, tags=["stream servers"])
FIELDS = ("action", "client_id", "ip", "vhost", "app", "stream", "param", "tcUrl", "server_id")
ACKNOWLEDGED = frozenset({"on_connect", "on_unpublish", "on_dvr", "on_hls"})
ENDED = frozenset({"on_stop", "on_close"})
ANSWERS = answers(
    s200="allowed or acknowledged: the body is exactly 0",
    s403="refused; X-Deny-Reason says why",
)


def _ok() -> Response:
    return PlainTextResponse("0")


def _client_id(found: object) -> str | None:
    """SRS 2 numbers its clients, SRS 4+ names them (``"vid-…"``)."""
    if isinstance(found, int) and not isinstance(found, bool):
        return str(found)
    if isinstance(found, str) and 0 < len(found) <= MAX_SESSION_PART:
        return found
    return None


def _credentials(fields: dict[str, Any]) -> Presented | None:
    param = value(fields, "param") or ""
    tc_url = (value(fields, "tcUrl") or "").partition("?")[2]
    return presented(offered(parse_query(param)) or offered(parse_query(tc_url)))


@router.post(
    "/integrations/srs/hooks",
    openapi_extra=body_doc("application/json", *FIELDS, query=("server",)),
    responses=ANSWERS,
    response_class=PlainTextResponse,
)
async def hooks(request: Request) -> Response:
    stream = authorizer(request)
    fields = await json_object(request)
    if fields is None:
        return deny(403, MALFORMED)
    action = value(fields, "action")
    server = value(fields, "server_id") or server_name(request)
    sid = session_id("srs", server, _client_id(fields.get("client_id")))
    if action in ACKNOWLEDGED:
        return _ok()
    if action in ENDED:
        who = _credentials(fields)
        if who is not None and sid is not None:
            await call(stream, stream.finish, who, sid, peer(request))
        return _ok()
    if action == "on_publish":
        return deny(403, PUBLISH_REFUSED)
    if action != "on_play":
        return deny(403, UNSUPPORTED)
    name = value(fields, "stream")
    if name is None or sid is None:
        return deny(403, MALFORMED)
    ip = client_ip(value(fields, "ip"), peer(request))
    play = PlayRequest(_credentials(fields), name, ip, session_id=sid)
    answer = await call(stream, stream.authorize, play)
    return _ok() if answer.allowed else deny(403, str(answer.reason))
