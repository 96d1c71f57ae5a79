"""nginx-rtmp ``on_play`` / ``on_update`` / ``on_play_done`` (``notify_method post`` or get).

nginx-rtmp lets a player on 2xx and drops it on anything else (3xx would redirect it, so this
never answers 3xx). ``on_update`` repeats every ``notify_update_timeout`` for every session,
publishers included: a refused ``update_play`` drops the viewer (how a suspension ends a
playing session), while ``update_publish`` is always 200 or nginx would drop the operator's
own encoder. Sessions are named ``rtmp:{server}:{app}:{clientid}``: a client id is only unique
within one nginx, so ``server`` is the nginx's address, or the ``?server=`` name its callback
URLs carry (needed behind a load balancer).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from iptv_billing.api.deps import get_services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers.stream_servers._common import (
    MALFORMED,
    PUBLISH_REFUSED,
    authorizer,
    body_doc,
    call,
    deny,
    empty_answers,
    form_fields,
    peer,
    presented,
    query_doc,
    server_name,
)
from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.stream_protocols import client_ip, offered, session_id, value
from iptv_billing.services.stream_auth import PlayAnswer, PlayRequest

router = APIRouter(route_class=IdempotentRoute, tags=["stream servers"])
PREFIX = "/integrations/nginx-rtmp"
FIELDS = ("call", "app", "name", "addr", "clientid", "username", "password", "token")
SERVER = ("server",)  # in the configured callback URL
FORM = "application/x-www-form-urlencoded"
EMPTY = empty_answers(s200="allowed (empty body)", s403="refused; X-Deny-Reason says why")
DONE = empty_answers(s200="always (empty body)")


def _allowed() -> Response:
    return Response(status_code=200)


def _play(request: Request, fields: dict[str, str]) -> PlayRequest | None:
    """The play the form describes; None without a stream name or a session."""
    name = value(fields, "name")
    server = server_name(request)
    sid = session_id("rtmp", server, value(fields, "app"), value(fields, "clientid"))
    if name is None or sid is None:
        return None
    ip = client_ip(value(fields, "addr"), peer(request))
    return PlayRequest(presented(offered(fields)), name, ip, session_id=sid)


@router.get(f"{PREFIX}/play", openapi_extra=query_doc(*FIELDS, *SERVER), **EMPTY)
@router.post(f"{PREFIX}/play", openapi_extra=body_doc(FORM, *FIELDS, query=SERVER), **EMPTY)
async def on_play(request: Request) -> Response:
    """``on_play``: a player starts; its session counts against the connection limit."""
    stream = authorizer(request)
    fields = await form_fields(request)
    kind = value(fields, "call")
    if kind != "play":  # on_publish pointed here: encoders are let in by nginx's allow rules
        return deny(403, PUBLISH_REFUSED if kind == "publish" else MALFORMED)
    play = _play(request, fields)
    if play is None:
        return deny(403, MALFORMED)
    answer = await call(stream, stream.authorize, play)
    if not answer.allowed:
        return deny(403, str(answer.reason))
    if not await _admitted(request, answer, play):
        await call(stream, stream.finish, play.presented, play.session_id or "", play.ip)
        return deny(403, Reason.BALANCE_EXHAUSTED.value)
    return _allowed()


async def _admitted(request: Request, answer: PlayAnswer, play: PlayRequest) -> bool:
    """A prepaid metered plan holds the session's first stretch of viewing (one write)."""
    feed = get_services(request).usage_feed
    if feed is None or answer.credential is None or play.session_id is None:
        return True
    return await run_in_threadpool(feed.admit, answer.credential, play.session_id)


@router.get(f"{PREFIX}/update", openapi_extra=query_doc(*FIELDS, *SERVER), **EMPTY)
@router.post(f"{PREFIX}/update", openapi_extra=body_doc(FORM, *FIELDS, query=SERVER), **EMPTY)
async def on_update(request: Request) -> Response:
    """``on_update``: the session's heartbeat; a refusal makes nginx drop the viewer."""
    stream = authorizer(request)
    fields = await form_fields(request)
    if value(fields, "call") == "update_publish":  # publishers are not billed here
        return _allowed()
    play = _play(request, fields)
    if play is None:
        return deny(403, MALFORMED)
    answer = await call(stream, stream.heartbeat, play)
    if not answer.allowed:
        return deny(403, str(answer.reason))
    feed = get_services(request).usage_feed
    played = value(fields, "time")
    if feed is None or answer.credential is None or not played or not played.isdigit():
        return _allowed()
    # Memory only; False once the prepaid wallet pays for no more metered viewing.
    if not feed.viewing(answer.credential, play.session_id or "", int(played[:12])):
        return deny(403, Reason.BALANCE_EXHAUSTED.value)
    return _allowed()


@router.get(f"{PREFIX}/done", openapi_extra=query_doc(*FIELDS, *SERVER), **DONE)
@router.post(f"{PREFIX}/done", openapi_extra=body_doc(FORM, *FIELDS, query=SERVER), **DONE)
async def on_play_done(request: Request) -> Response:
    """``on_play_done``: the session ends and frees its slot. Always 200 (nginx ignores it)."""
    stream = authorizer(request)
    play = _play(request, await form_fields(request))
    if play is not None and play.presented is not None and play.session_id is not None:
        ended = await call(stream, stream.finish, play.presented, play.session_id, play.ip)
        feed = get_services(request).usage_feed
        if ended and feed is not None:
            feed.ended(play.session_id)  # the last partial minute; memory only
    return _allowed()
