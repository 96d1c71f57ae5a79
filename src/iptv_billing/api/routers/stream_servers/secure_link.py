"""Signed links for servers that cannot call billing back (nginx ``secure_link``, Ministra's
``nginx_secure_link``): the subscriber's player asks here, billing authorizes the play once
and sends the player on to the channel's ``source_url`` signed for a limited time.

Nothing is counted against the connection limit (no server reports when the play ends); the
link stays valid until it expires even if the subscription ends first, so keep the lifetime
(``IPTV_BILLING_SECURE_LINK_TTL_SECONDS``) short.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from iptv_billing.api.deps import get_services
from iptv_billing.api.errors import problem
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers.stream_servers._common import (
    answers,
    authorizer,
    call,
    peer,
    presented,
    query_doc,
    query_fields,
)
from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.errors import Unavailable
from iptv_billing.domain.stream_protocols import offered, signed_url, value
from iptv_billing.services.stream_auth import PlayRequest

router = APIRouter(route_class=IdempotentRoute, tags=["stream servers"])
FIELDS = ("username", "password", "token", "stream", "ip_bound", "format")
NO_STORE = {"Cache-Control": "no-store"}
STATUS = {Reason.UNKNOWN_CREDENTIAL: 401, Reason.UNKNOWN_STREAM: 404}


@router.get(
    "/integrations/secure-link",
    openapi_extra=query_doc(*FIELDS),
    responses={
        302: {"description": "to the signed URL"},
        **answers(
            s200='with format=json: {"url": …, "expires": <unix seconds>}',
            s401="unknown credentials (problem+json)",
            s403="refused (problem+json, code stream.<reason>)",
            s404="no such stream, or it has no source_url",
            s503="IPTV_BILLING_SECURE_LINK_SECRET is not set",
        ),
    },
)
async def secure_link(request: Request) -> Response:
    services = get_services(request)
    signer = services.secure_link_signer
    if signer is None:
        raise Unavailable("secure_link.not_configured", "signed links need a secure_link_secret")
    stream = authorizer(request)
    fields = query_fields(request)
    # The subscriber's own address: run uvicorn with --proxy-headers behind a proxy.
    ip = peer(request)
    play = PlayRequest(presented(offered(fields)), value(fields, "stream") or "", ip)
    answer = await call(stream, stream.authorize, play)
    if not answer.allowed or answer.channel is None:
        reason = answer.reason or Reason.UNKNOWN_STREAM
        status = STATUS.get(reason, 403)
        return problem(request, status, f"stream.{reason}", _detail(reason), NO_STORE)
    source = answer.channel.record.source_url
    if not source:
        detail = "the channel has no source_url to sign"
        return problem(request, 404, "stream.no_source", detail, NO_STORE)
    expires = int(services.system_clock.now().timestamp()) + services.secure_link_ttl_seconds
    bound = ip if value(fields, "ip_bound") in ("1", "true") else None
    url = signed_url(signer, source, expires, bound)
    if value(fields, "format") == "json":
        return JSONResponse({"url": url, "expires": expires}, headers=NO_STORE)
    return RedirectResponse(url, 302, headers=NO_STORE)


def _detail(reason: Reason) -> str:
    return f"this play is refused: {reason.value.replace('_', ' ')}"
