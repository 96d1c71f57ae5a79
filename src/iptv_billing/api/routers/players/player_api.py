"""``player_api.php``: the account, the live and VOD categories and streams, VOD details and
the short EPG."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from iptv_billing.api.deps import AppServices, Services
from iptv_billing.api.routers.players._common import (
    NO_STORE,
    Param,
    Subscriber,
    base_url,
    one_line,
    router,
    stream_authorizer,
    subscriber_of,
)
from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.xtream import (
    LiveChannel,
    Movie,
    XtreamServer,
    archive_days,
    live_categories,
    live_streams,
    server_info,
    short_epg,
    user_info,
    vod_categories,
    vod_info,
    vod_streams,
    zone,
)
from iptv_billing.services import guide

NO_AUTH = {"user_info": {"auth": 0}}
SHORT_EPG_DEFAULT, SHORT_EPG_MAX = 4, 100
_MAX_FORM_FIELDS = 20


def _server(services: AppServices, request: Request, timezone: str) -> XtreamServer:
    url = urlsplit(base_url(services, request))
    secure = url.scheme == "https"
    try:
        port = url.port or (443 if secure else 80)
    except ValueError:  # a Host header with a nonsense port
        port = 443 if secure else 80
    protocol = "https" if secure else "http"
    return XtreamServer(url.hostname or "", port, port if secure else 443, protocol, timezone)


@dataclass(frozen=True, slots=True)
class PlayerQuery:
    username: str | None = None
    password: str | None = None
    action: str | None = None
    category_id: str | None = None
    stream_id: str | None = None
    limit: str | None = None
    vod_id: str | None = None

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> PlayerQuery:
        names = ("username", "password", "action", "category_id", "stream_id", "limit", "vod_id")
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
    vod_id: Param = None,
) -> Response:
    """The Xtream player API: the account (no action), `get_live_categories`,
    `get_live_streams` (`category_id`), `get_short_epg` (`stream_id`, `limit`),
    `get_vod_categories`, `get_vod_streams` (`category_id`: the items the line may watch or
    rent), `get_vod_info` (`vod_id`), and the series lists, empty: there is no series catalog.
    Wrong credentials answer 200 `{"user_info": {"auth": 0}}`."""
    query = PlayerQuery(username, password, action, category_id, stream_id, limit, vod_id)
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
    subscriber = subscriber_of(services, request, query.username, query.password)
    if isinstance(subscriber, Reason):
        status = 429 if subscriber is Reason.TOO_MANY_ATTEMPTS else 200
        return JSONResponse(NO_AUTH, status_code=status, headers=NO_STORE)
    answer = ACTIONS.get(query.action or "", _nothing)
    return JSONResponse(answer(services, request, subscriber, query), headers=NO_STORE)


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
            one_line(v.record.name),
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
    wanted = stream_authorizer(services).channel(
        subscriber.account.credential, query.stream_id or ""
    )
    if wanted is None or wanted not in subscriber.channels():
        return short_epg((), tz)
    limit = SHORT_EPG_DEFAULT
    if query.limit and query.limit.isdigit() and len(query.limit) <= 3:
        limit = min(max(int(query.limit), 1), SHORT_EPG_MAX)
    tenant_id, now = subscriber.access.tenant.id, subscriber.account.now
    with services.database.uow(read_only=True) as uow:
        programmes = guide.upcoming(uow, tenant_id, wanted.record, now, limit)
    return short_epg(programmes, tz)


def _movies(subscriber: Subscriber) -> list[Movie]:
    return [
        Movie(
            i.stream_id,
            one_line(i.item.name),
            i.item.category,
            i.created_at,
            i.item.source_url,
            i.item.poster_url,
            i.item.year,
            i.item.duration_minutes,
        )
        for i in subscriber.vod_items()
    ]


def _vod_categories(
    _s: AppServices, _r: Request, subscriber: Subscriber, _q: PlayerQuery
) -> object:
    return vod_categories(_movies(subscriber))


def _vod_streams(
    _s: AppServices, _r: Request, subscriber: Subscriber, query: PlayerQuery
) -> object:
    return vod_streams(_movies(subscriber), query.category_id or None)


def _vod_info(_s: AppServices, _r: Request, subscriber: Subscriber, query: PlayerQuery) -> object:
    """One listed item's details; ``[]`` (as for unknown lists) for any other id."""
    wanted = (query.vod_id or query.stream_id or "").strip()
    found = next((m for m in _movies(subscriber) if str(m.stream_id) == wanted), None)
    return [] if found is None else vod_info(found)


def _nothing(_s: AppServices, _r: Request, _sub: Subscriber, _q: PlayerQuery) -> object:
    """Series and unknown actions: empty lists (there is no series catalog)."""
    return []


ACTIONS: dict[str, Action] = {
    "": _account,
    "get_live_categories": _categories,
    "get_live_streams": _streams,
    "get_short_epg": _short_epg,
    "get_vod_categories": _vod_categories,
    "get_vod_streams": _vod_streams,
    "get_vod_info": _vod_info,
    "get_series_categories": _nothing,
    "get_series": _nothing,
}
