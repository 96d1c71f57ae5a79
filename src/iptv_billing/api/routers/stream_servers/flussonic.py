"""Flussonic's HTTP authorization backend (``auth`` / ``on_play`` / ``auth_backend``).

Flussonic asks with ``request_type=new_session`` when a session starts and
``update_session`` every ``X-AuthDuration`` seconds after; 200 lets it play, 403 refuses it.
On a "yes" it also enforces ``X-Max-Sessions`` per ``X-UserId`` itself. Credentials come from
the player's query (``qs``), else from Flussonic's ``token`` parameter; the session is
``flussonic:{session_id}``, the device the viewer's address plus user agent.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from iptv_billing.api.deps import get_services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers.stream_servers._common import (
    MALFORMED,
    answers,
    authorizer,
    body_doc,
    call,
    deny,
    json_object,
    peer,
    presented,
    query_doc,
    query_fields,
)
from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.stream_protocols import (
    auth_duration,
    client_ip,
    offered,
    parse_query,
    session_id,
    value,
)
from iptv_billing.services.stream_auth import PlayAnswer, PlayRequest, StreamAuthorizer

router = APIRouter(route_class=IdempotentRoute, tags=["stream servers"])
PATH = "/integrations/flussonic/auth"
FIELDS = ("name", "proto", "ip", "token", "session_id", "request_type", "qs", "user_agent")
ANSWERS = answers(
    s200="allowed: X-UserId, X-Max-Sessions, X-AuthDuration; body {}",
    s403="refused; X-Deny-Reason says why",
)
JSON_BODY = b"{}"


@router.get(PATH, openapi_extra=query_doc(*FIELDS), responses=ANSWERS)
async def auth_get(request: Request) -> Response:
    return await _auth(request, query_fields(request))


@router.post(PATH, openapi_extra=body_doc("application/json", *FIELDS), responses=ANSWERS)
async def auth_post(request: Request) -> Response:
    """The same fields as a JSON object, as newer versions may send them."""
    fields = await json_object(request)
    if fields is None:
        return deny(403, MALFORMED)
    return await _auth(request, fields)


async def _auth(request: Request, fields: dict[str, Any]) -> Response:
    stream = authorizer(request)
    name = value(fields, "name")
    sid = session_id("flussonic", value(fields, "session_id"))
    if name is None or (sid is None and "session_id" in fields):
        return deny(403, MALFORMED)
    ip = client_ip(value(fields, "ip"), peer(request))
    # The player's own query first: Flussonic invents a ``token`` when the URL has none.
    offer = offered(parse_query(value(fields, "qs") or "")) or offered(
        {"token": fields.get("token")}
    )
    agent = value(fields, "user_agent")
    play = PlayRequest(
        presented(offer),
        name,
        ip,
        session_id=sid,
        device=f"{ip} {agent}" if agent else None,
    )
    update = value(fields, "request_type") == "update_session"
    answer = await call(stream, stream.heartbeat if update else stream.authorize, play)
    if not answer.allowed:
        return deny(403, str(answer.reason))
    if answer.credential is not None and play.session_id is not None:
        charged = (
            _meter(request, answer, play.session_id, fields)
            if update
            else await _admit(request, answer, play.session_id)
        )
        if not charged:
            await call(stream, stream.finish, play.presented, play.session_id, play.ip)
            return deny(403, Reason.BALANCE_EXHAUSTED.value)
    return _allowed(stream, answer, counted=play.session_id is not None)


def _meter(request: Request, answer: PlayAnswer, session: str, fields: dict[str, Any]) -> bool:
    """Viewing time and bytes of an ongoing session into the usage feed (memory only);
    False once the prepaid wallet pays for no more metered viewing."""
    feed = get_services(request).usage_feed
    duration = _count(fields.get("duration"))
    if feed is not None and answer.credential is not None and duration is not None:
        return feed.viewing(answer.credential, session, duration, _count(fields.get("bytes")))
    return True


async def _admit(request: Request, answer: PlayAnswer, session: str) -> bool:
    """A new session of a prepaid metered plan holds its first stretch of viewing."""
    feed = get_services(request).usage_feed
    if feed is None or answer.credential is None:
        return True
    return await run_in_threadpool(feed.admit, answer.credential, session)


def _count(raw: object) -> int | None:
    """A non-negative integer sent as a number or as digits (query strings and JSON)."""
    if isinstance(raw, str) and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    if type(raw) is int and 0 <= raw < 10**18:
        return raw
    return None


def _allowed(stream: StreamAuthorizer, answer: PlayAnswer, *, counted: bool) -> Response:
    decision = answer.decision
    # A counted session must be re-checked before the registry forgets it.
    ttl = stream.sessions.ttl if counted else None
    headers = {
        "X-UserId": decision.subscription_id or "",
        "X-Max-Sessions": str(decision.max_connections),
        "X-AuthDuration": str(auth_duration(decision.cache_for, ttl)),
    }
    return Response(JSON_BODY, 200, headers, media_type="application/json")
