"""``get.php`` (the M3U playlist) and ``xmltv.php`` (the guide)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import Query, Request
from starlette.responses import Response

from iptv_billing.api.deps import Services
from iptv_billing.api.routers.players._common import (
    NO_STORE,
    REFUSALS,
    TEXT,
    Param,
    Subscriber,
    base_url,
    one_line,
    plain_text,
    refusal,
    router,
    subscriber_of,
)
from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.epg import GuideChannel, render_xmltv
from iptv_billing.domain.playlists import PlaylistEntry, render_m3u
from iptv_billing.domain.xtream import archive_days
from iptv_billing.services import guide
from iptv_billing.services.access_index import ChannelView

GENERATOR = "iptv-billing"
GUIDE_PAST, GUIDE_AHEAD = timedelta(days=1), timedelta(days=7)
_OUTPUTS = {"ts": "ts", "m3u8": "m3u8", "hls": "m3u8"}
_PLAYLIST_TYPES = ("m3u_plus", "m3u")


def _status_refusal(subscriber: Subscriber) -> Response | None:
    """403 naming the status, for playlists and guides of accounts that cannot watch."""
    status = subscriber.status
    return None if status == "Active" else plain_text(403, status.lower())


@router.get(
    "/get.php",
    response_class=Response,
    responses={
        200: {"content": {"audio/x-mpegurl": {}}, "description": "the playlist"},
        400: {"description": "an unsupported type or output", "content": TEXT},
        **REFUSALS,
    },
)
def playlist(
    request: Request,
    services: Services,
    username: Param = None,
    password: Param = None,
    kind: Annotated[
        str | None, Query(alias="type", description="m3u_plus (default) or m3u")
    ] = None,
    output: Annotated[str | None, Query(description="ts (default), m3u8 or hls")] = None,
) -> Response:
    """The subscriber's channels as an M3U playlist: `m3u_plus` with tvg-id, tvg-name,
    tvg-logo, group-title, catch-up (`catchup="xc"`: players derive the /timeshift/ URLs)
    and the guide's URL in `x-tvg-url`; `m3u` with names and URLs only."""
    playlist_type = kind or "m3u_plus"
    ext = _OUTPUTS.get(output or "ts")
    if playlist_type not in _PLAYLIST_TYPES or ext is None:
        return plain_text(400, "unsupported type or output")
    subscriber = subscriber_of(services, request, username, password)
    if isinstance(subscriber, Reason):
        return refusal(subscriber)
    refused = _status_refusal(subscriber)
    if refused is not None:
        return refused
    base, credential = base_url(services, request), subscriber.account.credential
    path = f"{base}/live/{quote(credential.login, safe='')}/{quote(password or '', safe='')}"
    plus = playlist_type == "m3u_plus"
    catchup = subscriber.account.entitlement.catchup_days
    entries = [
        _entry(v, f"{path}/{v.record.stream_id}.{ext}", catchup, plus)
        for v in subscriber.channels()
    ]
    guide_url = f"{base}/xmltv.php?{urlencode({'username': username, 'password': password})}"
    body = render_m3u(entries, guide_url if plus else None)
    headers = {**NO_STORE, "Content-Disposition": 'attachment; filename="playlist.m3u"'}
    return Response(body, media_type="audio/x-mpegurl", headers=headers)


def _entry(view: ChannelView, url: str, catchup: int, plus: bool) -> PlaylistEntry:
    record, name = view.record, one_line(view.record.name) or view.record.code
    if not plus:
        return PlaylistEntry(name, url)
    return PlaylistEntry(
        name,
        url,
        tvg_id=guide.guide_id(record),
        logo=record.logo_url,
        group=record.category,
        catchup_days=archive_days(record.catchup_days, catchup),
    )


@router.get(
    "/xmltv.php",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {}}, "description": "the XMLTV guide"},
        **REFUSALS,
    },
)
def xmltv(
    request: Request, services: Services, username: Param = None, password: Param = None
) -> Response:
    """The XMLTV guide of the subscriber's channels, from a day ago to a week ahead."""
    subscriber = subscriber_of(services, request, username, password)
    if isinstance(subscriber, Reason):
        return refusal(subscriber)
    refused = _status_refusal(subscriber)
    if refused is not None:
        return refused
    records = [v.record for v in subscriber.channels()]
    now = subscriber.account.now
    span = guide.Window(now - GUIDE_PAST, now + GUIDE_AHEAD)
    with services.database.uow(read_only=True) as uow:
        programmes = guide.programmes_of(uow, subscriber.access.tenant.id, records, span)
    channels = [
        GuideChannel(guide.guide_id(r), one_line(r.name) or r.code, r.logo_url) for r in records
    ]
    body = render_xmltv(channels, programmes, GENERATOR)
    return Response(body, media_type="application/xml", headers=NO_STORE)
