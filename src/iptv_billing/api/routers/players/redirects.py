"""The stream URLs: ``/live``, ``/play`` and ``/timeshift`` redirect to the channel's source,
``/movie`` to a VOD item's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Request
from starlette.responses import RedirectResponse, Response

from iptv_billing.api.deps import Services
from iptv_billing.api.routers._common import peer
from iptv_billing.api.routers.players._common import (
    NO_STORE,
    REFUSALS,
    TEXT,
    refusal,
    router,
    stream_authorizer,
)
from iptv_billing.domain.entitlement import AssetKind, Reason
from iptv_billing.domain.errors import NotFound
from iptv_billing.domain.xtream import (
    catchup_source,
    fill_source,
    in_archive,
    timeshift_start,
    zone,
)
from iptv_billing.services.stream_auth import PlayAnswer, PlayRequest, Presented

StreamFile = Annotated[
    str,
    Path(
        pattern=r"^([0-9]{1,9}|[a-z0-9][a-z0-9_.-]{0,63})\.(ts|m3u8)$",
        description="`{stream_id}.ts` or `{stream_id}.m3u8` (a channel code works too)",
        examples=["1.ts"],
    ),
]
MovieFile = Annotated[
    str,
    Path(
        pattern=r"^([0-9]{1,9}|[a-z0-9][a-z0-9_.-]{0,63})\.(mp4|mkv|m3u8|ts|avi|mov)$",
        description="`{stream_id}.{container_extension}` of `get_vod_streams` (a code works too)",
        examples=["1.mp4"],
    ),
]
STREAM_RESPONSES: dict[int | str, dict[str, object]] = {
    302: {"description": "to the channel's source (`Cache-Control: no-store`)"},
    404: {
        "description": "unknown stream (text), or a channel without a source (problem)",
        "content": {**TEXT, "application/problem+json": {}},
    },
    **REFUSALS,
}


def _stream_key(file: str) -> str:
    return file.rpartition(".")[0]


@router.get(
    "/live/{username}/{password}/{stream}",
    status_code=302,
    response_class=RedirectResponse,
    responses=STREAM_RESPONSES,
)
def live(
    request: Request, services: Services, username: str, password: str, stream: StreamFile
) -> Response:
    """A live channel, by Xtream stream id (or code); redirects to its source."""
    presented = Presented.line(username, password)
    answer = stream_authorizer(services).authorize(
        PlayRequest(presented, _stream_key(stream), peer(request))
    )
    return _redirect(answer, password, None)


@router.get(
    "/movie/{username}/{password}/{stream}",
    status_code=302,
    response_class=RedirectResponse,
    responses=STREAM_RESPONSES,
)
def movie(
    request: Request, services: Services, username: str, password: str, stream: MovieFile
) -> Response:
    """A VOD item, by its Xtream stream id (or code): let in by the line's packages or a
    rental covering now; redirects to its source."""
    presented = Presented.line(username, password)
    answer = stream_authorizer(services).authorize(
        PlayRequest(presented, _stream_key(stream), peer(request), kind=AssetKind.VOD)
    )
    return _redirect(answer, password, None)


@router.get(
    "/play/{token}/{stream}",
    status_code=302,
    response_class=RedirectResponse,
    responses=STREAM_RESPONSES,
)
def play(request: Request, services: Services, token: str, stream: StreamFile) -> Response:
    """A live channel for a play token; redirects to its source."""
    answer = stream_authorizer(services).authorize(
        PlayRequest(Presented.token(token), _stream_key(stream), peer(request))
    )
    return _redirect(answer, token, None)


@router.get(
    "/timeshift/{username}/{password}/{duration}/{start}/{stream}",
    status_code=302,
    response_class=RedirectResponse,
    responses=STREAM_RESPONSES,
)
def timeshift(
    request: Request,
    services: Services,
    username: str,
    password: str,
    duration: Annotated[int, Path(ge=1, le=1440, description="minutes")],
    start: Annotated[
        str,
        Path(
            pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}:[0-9]{2}-[0-9]{2}(-[0-9]{2})?$",
            description="YYYY-MM-DD:HH-MM in the server's time zone (server_info.timezone)",
            examples=["2028-01-31:20-15"],
        ),
    ],
    stream: StreamFile,
) -> Response:
    """Catch-up: the programme that aired at `start`, inside the channel's archive and the
    subscription's catch-up window; redirects to the source with `utc` and `duration`."""
    authorizer, ip = stream_authorizer(services), peer(request)
    presented = Presented.line(username, password)
    found = authorizer.login(presented, ip)
    if isinstance(found, Reason):
        return refusal(found)
    access = authorizer.index.tenant(found.tenant_id)
    aired_at = timeshift_start(start, zone(access.tenant.timezone if access else "UTC"))
    request_ = PlayRequest(
        presented, _stream_key(stream), ip, kind=AssetKind.CATCHUP, aired_at=aired_at
    )
    answer = authorizer.authorize(request_)
    if answer.allowed and answer.channel is not None:
        now = authorizer.now_for(found.tenant_id)
        if not in_archive(aired_at, now, answer.channel.record.catchup_days):
            return refusal(Reason.CATCHUP_OUT_OF_WINDOW)
    return _redirect(answer, password, (aired_at, duration * 60))


def _redirect(answer: PlayAnswer, secret: str, catchup: tuple[datetime, int] | None) -> Response:
    target = answer.vod.item if answer.vod else answer.channel.record if answer.channel else None
    if not answer.allowed or target is None or answer.credential is None:
        return refusal(answer.reason or Reason.UNKNOWN_STREAM)
    source = target.source_url
    if not source:
        raise NotFound("channel.no_source", "this channel has no source to play yet")
    values = {"user": answer.credential.login, "token": secret}
    if catchup is None:
        url = fill_source(source, values)
    else:
        url = catchup_source(source, values, *catchup)
    return RedirectResponse(url, status_code=302, headers=NO_STORE)
