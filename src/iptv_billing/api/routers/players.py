"""The Xtream-Codes-compatible endpoints subscribers' apps call: ``player_api.php``,
``get.php`` (M3U), ``xmltv.php`` and the ``/live``, ``/timeshift`` and ``/play`` stream URLs.

Public routes: the line's username and password (or a play token) are the credentials, and
every login failure counts against the caller's IP (``StreamAuthorizer``). Choices where apps
and the reference leave room (``iptv-integration.md`` §2.1, §5):

* Wrong credentials on ``player_api.php`` answer HTTP 200 ``{"user_info": {"auth": 0}}``, the
  answer apps handle. XC_VM sends a fake nginx 404 page instead (reference §2.1), which apps
  show as "wrong server URL". An IP blocked for guessing gets the same body with 429.
* An account that is not Active (expired, disabled, banned) still logs in and sees its
  status, but its content lists are empty and its playlist and guide are refused (403).
* Unknown actions answer ``[]``, as Xtream servers do for lists they have nothing in; the
  numeric action aliases are not offered (the reference does not say which is which).
* Stream URLs answer 302 to the channel's ``source_url`` (``{user}``: the credential's login,
  ``{token}``: the secret presented, URL-quoted), or a short text naming the refusal: 401
  unknown credentials, 429 guessing, 404 unknown stream, 403 any other reason. They check
  without opening a session: the origin server counts sessions through its own callbacks.
* No short form ``/{user}/{pass}/{stream}``: three free path segments would catch every
  unknown three-segment path of the API (a 401 instead of a 404) and shadow future routes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from iptv_billing.api.deps import AppServices, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.domain.entitlement import AssetKind, Reason
from iptv_billing.domain.epg import GuideChannel, render_xmltv
from iptv_billing.domain.errors import NotFound, Unavailable
from iptv_billing.domain.playlists import PlaylistEntry, render_m3u
from iptv_billing.domain.xtream import (
    LiveChannel,
    XtreamServer,
    archive_days,
    catchup_source,
    fill_source,
    in_archive,
    live_categories,
    live_streams,
    server_info,
    short_epg,
    timeshift_start,
    user_info,
    xtream_status,
    zone,
)
from iptv_billing.services import guide
from iptv_billing.services.access_index import ChannelView, TenantAccess
from iptv_billing.services.records import SubscriptionRecord
from iptv_billing.services.stream_auth import (
    Account,
    PlayAnswer,
    PlayRequest,
    Presented,
    StreamAuthorizer,
)

router = APIRouter(route_class=IdempotentRoute, tags=["players"])

GENERATOR = "iptv-billing"
NO_AUTH = {"user_info": {"auth": 0}}
GUIDE_PAST, GUIDE_AHEAD = timedelta(days=1), timedelta(days=7)
SHORT_EPG_DEFAULT, SHORT_EPG_MAX = 4, 100
_MAX_FORM_FIELDS = 20
_NO_STORE = {"Cache-Control": "no-store"}  # answers carry credentials or per-viewer rights
_REFUSAL_STATUS = {
    Reason.UNKNOWN_CREDENTIAL: 401,
    Reason.TOO_MANY_ATTEMPTS: 429,
    Reason.UNKNOWN_STREAM: 404,
}
_OUTPUTS = {"ts": "ts", "m3u8": "m3u8", "hls": "m3u8"}
_PLAYLIST_TYPES = ("m3u_plus", "m3u")

# Apps send anything: parameters are taken as text and judged by the handlers.
Param = Annotated[str | None, Query()]
StreamFile = Annotated[
    str,
    Path(
        pattern=r"^([0-9]{1,9}|[a-z0-9][a-z0-9_.-]{0,63})\.(ts|m3u8)$",
        description="`{stream_id}.ts` or `{stream_id}.m3u8` (a channel code works too)",
        examples=["1.ts"],
    ),
]
_TEXT: dict[str, object] = {"text/plain": {}}
REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"description": "unknown credentials", "content": _TEXT},
    403: {"description": "refused; the body names the reason or status", "content": _TEXT},
    429: {"description": "this IP guessed wrong too often", "content": _TEXT},
}
STREAM_RESPONSES: dict[int | str, dict[str, object]] = {
    302: {"description": "to the channel's source (`Cache-Control: no-store`)"},
    404: {
        "description": "unknown stream (text), or a channel without a source (problem)",
        "content": {**_TEXT, "application/problem+json": {}},
    },
    **REFUSALS,
}


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A logged-in line with what it may see."""

    account: Account
    access: TenantAccess
    subscription: SubscriptionRecord

    @property
    def status(self) -> str:
        return xtream_status(self.account.entitlement, self.account.now)

    def channels(self) -> list[ChannelView]:
        """The channels of the subscriber's packages that apps can address; none unless the
        account is Active."""
        if self.status != "Active":
            return []
        packages = self.account.entitlement.packages
        return [
            v
            for v in self.access.catalog.ordered
            if v.record.stream_id is not None and v.packages & packages
        ]


def _authorizer(services: AppServices) -> StreamAuthorizer:
    if services.stream is None:
        raise Unavailable("stream.unavailable", "this server does not serve players")
    return services.stream


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _subscriber(
    services: AppServices, request: Request, username: str | None, password: str | None
) -> Subscriber | Reason:
    presented = Presented.line(username or "", password or "")
    account = _authorizer(services).account(presented, _ip(request))
    if isinstance(account, Reason):
        return account
    tenant_id = account.credential.tenant_id
    access = _authorizer(services).index.tenant(tenant_id)
    sub = access.subscriptions.get(account.credential.subscription_id) if access else None
    if access is None or sub is None:  # the index is reloading this tenant
        return Reason.UNKNOWN_CREDENTIAL
    return Subscriber(account, access, sub)


def _base_url(services: AppServices, request: Request) -> str:
    return (services.public_url or str(request.base_url)).rstrip("/")


def _server(services: AppServices, request: Request, timezone: str) -> XtreamServer:
    url = urlsplit(_base_url(services, request))
    secure = url.scheme == "https"
    try:
        port = url.port or (443 if secure else 80)
    except ValueError:  # a Host header with a nonsense port
        port = 443 if secure else 80
    protocol = "https" if secure else "http"
    return XtreamServer(url.hostname or "", port, port if secure else 443, protocol, timezone)


def _one_line(text: str) -> str:
    return " ".join(guide.printable(text).split())


def _text(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers=headers)


def _refusal(reason: Reason) -> Response:
    return _text(_REFUSAL_STATUS.get(reason, 403), reason.value)


def _status_refusal(subscriber: Subscriber) -> Response | None:
    """403 naming the status, for playlists and guides of accounts that cannot watch."""
    status = subscriber.status
    return None if status == "Active" else _text(403, status.lower())


# -- player_api.php ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlayerQuery:
    username: str | None = None
    password: str | None = None
    action: str | None = None
    category_id: str | None = None
    stream_id: str | None = None
    limit: str | None = None

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> PlayerQuery:
        names = ("username", "password", "action", "category_id", "stream_id", "limit")
        return cls(*(fields.get(name) for name in names))


@router.get("/player_api.php", response_class=JSONResponse)
def player_api(
    request: Request,
    services: Services,
    username: Param = None,
    password: Param = None,
    action: Param = None,
    category_id: Param = None,
    stream_id: Param = None,
    limit: Param = None,
) -> Response:
    """The Xtream player API: the account (no action), `get_live_categories`,
    `get_live_streams` (`category_id`), `get_short_epg` (`stream_id`, `limit`), and the VOD
    and series lists, empty: there is no VOD catalog yet. Wrong credentials answer 200
    `{"user_info": {"auth": 0}}`."""
    query = PlayerQuery(username, password, action, category_id, stream_id, limit)
    return _player_api(services, request, query)


@router.post("/player_api.php", include_in_schema=False)
async def player_api_form(request: Request, services: Services) -> Response:
    """The same as a form post (some apps): form fields over query parameters. Not in the
    OpenAPI document: as a POST it runs through ``IdempotentRoute``, so an ``Idempotency-Key``
    header (which no player sends) would ask for an API key."""
    fields = dict(request.query_params)
    fields.update(_form(await request.body()))
    # The answer may read the guide from the database: off the event loop.
    return await run_in_threadpool(_player_api, services, request, PlayerQuery.of(fields))


def _form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode("utf-8", "replace"), max_num_fields=_MAX_FORM_FIELDS)
    except ValueError:  # more fields than any app sends
        return {}
    return dict(pairs)


def _player_api(services: AppServices, request: Request, query: PlayerQuery) -> Response:
    subscriber = _subscriber(services, request, query.username, query.password)
    if isinstance(subscriber, Reason):
        status = 429 if subscriber is Reason.TOO_MANY_ATTEMPTS else 200
        return JSONResponse(NO_AUTH, status_code=status, headers=_NO_STORE)
    answer = ACTIONS.get(query.action or "", _nothing)
    return JSONResponse(answer(services, request, subscriber, query), headers=_NO_STORE)


Action = Callable[[AppServices, Request, Subscriber, PlayerQuery], object]


def _account(
    services: AppServices, request: Request, subscriber: Subscriber, query: PlayerQuery
) -> object:
    account, sub = subscriber.account, subscriber.subscription
    user = user_info(
        query.username or "",
        query.password or "",
        account.entitlement,
        active_connections=account.active_connections,
        created_at=sub.created_at,
        now=account.now,
        expires_at=sub.state.current_period.end,
    )
    server = _server(services, request, subscriber.access.tenant.timezone)
    return {"user_info": user, "server_info": server_info(server, account.now)}


def _live_channels(subscriber: Subscriber) -> list[LiveChannel]:
    catchup = subscriber.account.entitlement.catchup_days
    return [
        LiveChannel(
            v.record.stream_id or 0,  # channels() keeps only those with a stream id
            _one_line(v.record.name),
            v.record.category,
            v.record.created_at,
            v.record.logo_url,
            guide.guide_id(v.record),
            archive_days(v.record.catchup_days, catchup),
        )
        for v in subscriber.channels()
    ]


def _categories(_s: AppServices, _r: Request, subscriber: Subscriber, _q: PlayerQuery) -> object:
    return live_categories(_live_channels(subscriber))


def _streams(_s: AppServices, _r: Request, subscriber: Subscriber, query: PlayerQuery) -> object:
    return live_streams(_live_channels(subscriber), query.category_id or None)


def _short_epg(
    services: AppServices, _r: Request, subscriber: Subscriber, query: PlayerQuery
) -> object:
    tz = zone(subscriber.access.tenant.timezone)
    wanted = _authorizer(services).channel(subscriber.account.credential, query.stream_id or "")
    if wanted is None or wanted not in subscriber.channels():
        return short_epg((), tz)
    limit = SHORT_EPG_DEFAULT
    if query.limit and query.limit.isdigit() and len(query.limit) <= 3:
        limit = min(max(int(query.limit), 1), SHORT_EPG_MAX)
    tenant_id, now = subscriber.access.tenant.id, subscriber.account.now
    with services.database.uow(read_only=True) as uow:
        programmes = guide.upcoming(uow, tenant_id, wanted.record, now, limit)
    return short_epg(programmes, tz)


def _nothing(_s: AppServices, _r: Request, _sub: Subscriber, _q: PlayerQuery) -> object:
    """VOD, series and unknown actions: empty lists (there is no VOD catalog yet)."""
    return []


ACTIONS: dict[str, Action] = {
    "": _account,
    "get_live_categories": _categories,
    "get_live_streams": _streams,
    "get_short_epg": _short_epg,
    "get_vod_categories": _nothing,
    "get_vod_streams": _nothing,
    "get_series_categories": _nothing,
    "get_series": _nothing,
}


# -- get.php and xmltv.php ----------------------------------------------------------------------
@router.get(
    "/get.php",
    response_class=Response,
    responses={
        200: {"content": {"audio/x-mpegurl": {}}, "description": "the playlist"},
        400: {"description": "an unsupported type or output", "content": _TEXT},
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
        return _text(400, "unsupported type or output")
    subscriber = _subscriber(services, request, username, password)
    if isinstance(subscriber, Reason):
        return _refusal(subscriber)
    refused = _status_refusal(subscriber)
    if refused is not None:
        return refused
    base, credential = _base_url(services, request), subscriber.account.credential
    path = f"{base}/live/{quote(credential.login, safe='')}/{quote(password or '', safe='')}"
    plus = playlist_type == "m3u_plus"
    catchup = subscriber.account.entitlement.catchup_days
    entries = [
        _entry(v, f"{path}/{v.record.stream_id}.{ext}", catchup, plus)
        for v in subscriber.channels()
    ]
    guide_url = f"{base}/xmltv.php?{urlencode({'username': username, 'password': password})}"
    body = render_m3u(entries, guide_url if plus else None)
    headers = {**_NO_STORE, "Content-Disposition": 'attachment; filename="playlist.m3u"'}
    return Response(body, media_type="audio/x-mpegurl", headers=headers)


def _entry(view: ChannelView, url: str, catchup: int, plus: bool) -> PlaylistEntry:
    record, name = view.record, _one_line(view.record.name) or view.record.code
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
    subscriber = _subscriber(services, request, username, password)
    if isinstance(subscriber, Reason):
        return _refusal(subscriber)
    refused = _status_refusal(subscriber)
    if refused is not None:
        return refused
    records = [v.record for v in subscriber.channels()]
    now = subscriber.account.now
    span = guide.Window(now - GUIDE_PAST, now + GUIDE_AHEAD)
    with services.database.uow(read_only=True) as uow:
        programmes = guide.programmes_of(uow, subscriber.access.tenant.id, records, span)
    channels = [
        GuideChannel(guide.guide_id(r), _one_line(r.name) or r.code, r.logo_url) for r in records
    ]
    body = render_xmltv(channels, programmes, GENERATOR)
    return Response(body, media_type="application/xml", headers=_NO_STORE)


# -- stream URLs ---------------------------------------------------------------------------------
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
    answer = _authorizer(services).authorize(
        PlayRequest(presented, _stream_key(stream), _ip(request))
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
    answer = _authorizer(services).authorize(
        PlayRequest(Presented.token(token), _stream_key(stream), _ip(request))
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
    authorizer, ip = _authorizer(services), _ip(request)
    presented = Presented.line(username, password)
    found = authorizer.login(presented, ip)
    if isinstance(found, Reason):
        return _refusal(found)
    access = authorizer.index.tenant(found.tenant_id)
    aired_at = timeshift_start(start, zone(access.tenant.timezone if access else "UTC"))
    request_ = PlayRequest(
        presented, _stream_key(stream), ip, kind=AssetKind.CATCHUP, aired_at=aired_at
    )
    answer = authorizer.authorize(request_)
    if answer.allowed and answer.channel is not None:
        now = authorizer.now_for(found.tenant_id)
        if not in_archive(aired_at, now, answer.channel.record.catchup_days):
            return _refusal(Reason.CATCHUP_OUT_OF_WINDOW)
    return _redirect(answer, password, (aired_at, duration * 60))


def _redirect(answer: PlayAnswer, secret: str, catchup: tuple[datetime, int] | None) -> Response:
    if not answer.allowed or answer.channel is None or answer.credential is None:
        return _refusal(answer.reason or Reason.UNKNOWN_STREAM)
    source = answer.channel.record.source_url
    if not source:
        raise NotFound("channel.no_source", "this channel has no source to play yet")
    values = {"user": answer.credential.login, "token": secret}
    if catchup is None:
        url = fill_source(source, values)
    else:
        url = catchup_source(source, values, *catchup)
    return RedirectResponse(url, status_code=302, headers=_NO_STORE)
