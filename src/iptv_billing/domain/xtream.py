"""The Xtream-Codes player API's account answer (``player_api.php`` without an action), so
that existing IPTV apps show a subscriber's status, expiry and connections unchanged.

Xtream apps expect numbers as strings ("1"), the expiry as a Unix-seconds string (or null for
"never"), and one of four statuses; the mapping from billing's states is explicit here.

Also the content answers (``get_live_*``, ``get_vod_*``, ``get_short_epg``)
and the small rules of the stream URLs (catch-up start times, origin URL templates), with the
field types apps parse: ids and timestamps as strings where Xtream sends strings.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iptv_billing.domain.entitlement import Entitlement
from iptv_billing.domain.epg import Programme
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.subscription import SubscriptionStatus

OUTPUT_FORMATS = ("m3u8", "ts")
XC_TIME = "%Y-%m-%d %H:%M:%S"
# The catch-up start in /timeshift/ URLs: "2028-01-31:20-15" (seconds tolerated).
TIMESHIFT_FORMATS = ("%Y-%m-%d:%H-%M", "%Y-%m-%d:%H-%M-%S")
GUIDE_SOURCE = "1"  # Xtream's epg_id names the guide source; billing keeps one guide


@dataclass(frozen=True, slots=True)
class XtreamServer:
    host: str
    port: int
    https_port: int
    protocol: str  # "http" or "https"
    timezone: str


def xtream_status(entitlement: Entitlement, now: datetime) -> str:
    if not entitlement.enabled:
        return "Disabled"
    if entitlement.status is SubscriptionStatus.SUSPENDED:
        return "Banned"
    if entitlement.status is SubscriptionStatus.PAUSED:
        return "Disabled"
    if entitlement.status in (SubscriptionStatus.CANCELLED, SubscriptionStatus.EXPIRED):
        return "Expired"
    return "Expired" if now >= entitlement.valid_until else "Active"


def user_info(
    username: str,
    password: str,
    entitlement: Entitlement,
    *,
    active_connections: int,
    created_at: datetime,
    now: datetime,
    message: str = "",
    expires_at: datetime | None = None,
) -> dict[str, object]:
    """``expires_at``: the date shown to the subscriber (the paid period's end); the
    entitlement's ``valid_until`` (which adds the renewal allowance) when absent."""
    expires = expires_at or entitlement.valid_until
    return {
        "username": username,
        "password": password,
        "message": message,
        "auth": 1,
        "status": xtream_status(entitlement, now),
        "exp_date": str(int(expires.timestamp())),
        "is_trial": "1" if entitlement.status is SubscriptionStatus.TRIALING else "0",
        "active_cons": str(active_connections),
        "created_at": str(int(created_at.timestamp())),
        "max_connections": str(entitlement.max_connections),
        "allowed_output_formats": list(OUTPUT_FORMATS),
    }


def server_info(server: XtreamServer, now: datetime) -> dict[str, object]:
    return {
        "url": server.host,
        "port": str(server.port),
        "https_port": str(server.https_port),
        "server_protocol": server.protocol,
        "rtmp_port": "",
        "timezone": server.timezone,
        "timestamp_now": int(now.timestamp()),
        "time_now": now.astimezone(zone(server.timezone)).strftime(XC_TIME),
    }


def zone(name: str) -> tzinfo:
    """The server's time zone (Xtream shows local times); UTC for a name not known here."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


# -- live channels -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LiveChannel:
    """A channel as ``get_live_streams`` lists it to one subscriber."""

    stream_id: int
    name: str
    category: str
    added: datetime
    icon: str | None = None
    epg_channel_id: str | None = None
    archive_days: int = 0  # what this subscriber may replay: see ``archive_days``


def category_id(name: str) -> str:
    """A numeric id for a category name. Categories are channel labels, not rows, so the id
    is derived: the same in every process and after restarts (apps cache it), and a positive
    31-bit number because some apps parse it as an int."""
    return str(zlib.crc32(name.encode("utf-8", "surrogatepass")) & 0x7FFFFFFF)


def live_categories(channels: Iterable[LiveChannel]) -> list[dict[str, object]]:
    """The categories of these channels, in the channels' order, each once."""
    names = dict.fromkeys(c.category for c in channels)
    return [{"category_id": category_id(n), "category_name": n, "parent_id": 0} for n in names]


def live_streams(
    channels: Sequence[LiveChannel], category: str | None = None
) -> list[dict[str, object]]:
    """``get_live_streams`` entries; ``num`` is the position in the whole list, so that a
    category filter does not renumber channels."""
    entries = []
    for num, channel in enumerate(channels, start=1):
        channel_category = category_id(channel.category)
        if category is None or category == channel_category:
            entries.append(_live_stream(num, channel, channel_category))
    return entries


def _live_stream(num: int, channel: LiveChannel, category: str) -> dict[str, object]:
    return {
        "num": num,
        "name": channel.name,
        "stream_type": "live",
        "stream_id": channel.stream_id,
        "stream_icon": channel.icon or "",
        "epg_channel_id": channel.epg_channel_id,
        "added": str(int(channel.added.timestamp())),
        "category_id": category,
        "custom_sid": "",
        "tv_archive": 1 if channel.archive_days > 0 else 0,
        "direct_source": "",
        "tv_archive_duration": channel.archive_days,
    }


def archive_days(channel_days: int, entitled_days: int) -> int:
    """How far back a subscriber may replay a channel: the channel's archive, at most what
    the subscription's catch-up covers."""
    return max(0, min(channel_days, entitled_days))


def in_archive(aired_at: datetime, now: datetime, days: int) -> bool:
    return days > 0 and aired_at <= now and now - aired_at <= timedelta(days=days)


# -- the short guide ------------------------------------------------------------------------
def short_epg(programmes: Iterable[Programme], tz: tzinfo) -> dict[str, object]:
    """``get_short_epg``: title and description base64 (as Xtream sends them), local start
    and end times, Unix timestamps as strings."""
    return {"epg_listings": [_listing(p, tz) for p in programmes]}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")


def _listing(programme: Programme, tz: tzinfo) -> dict[str, object]:
    start, stop = int(programme.start.timestamp()), int(programme.stop.timestamp())
    return {
        "id": str(start),  # unique within a channel's listing (one programme per start)
        "epg_id": GUIDE_SOURCE,
        "title": _b64(programme.title),
        "lang": programme.language,
        "start": programme.start.astimezone(tz).strftime(XC_TIME),
        "end": programme.stop.astimezone(tz).strftime(XC_TIME),
        "description": _b64(programme.description or ""),
        "channel_id": programme.channel_id,
        "start_timestamp": str(start),
        "stop_timestamp": str(stop),
    }


# -- stream URLs ----------------------------------------------------------------------------
def timeshift_start(text: str, tz: tzinfo) -> datetime:
    """The start of a catch-up request (``/timeshift/…/{start}/…``), in the server's time
    zone as Xtream servers read it."""
    for pattern in TIMESHIFT_FORMATS:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=tz)
        except ValueError:
            continue
    raise InvalidInput("timeshift.invalid_start", "the start is YYYY-MM-DD:HH-MM")


def fill_source(template: str, values: Mapping[str, str]) -> str:
    """The origin URL with ``{name}`` placeholders replaced by URL-quoted values; other
    braces are left alone (no ``str.format``: an origin URL may contain any text)."""
    url = template
    for name, value in values.items():
        url = url.replace("{" + name + "}", quote(value, safe=""))
    return url


def catchup_source(template: str, values: Mapping[str, str], start: datetime, seconds: int) -> str:
    """The origin URL of a catch-up request: ``{utc}`` (start, Unix seconds) and
    ``{duration}`` (seconds) filled; a template without ``{utc}`` gets them appended as
    ``utc=`` and ``duration=`` query parameters (the "append" catch-up convention)."""
    utc = str(int(start.timestamp()))
    url = fill_source(template, {**values, "utc": utc, "duration": str(seconds)})
    if "{utc}" in template:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}utc={utc}&duration={seconds}"


# -- VOD (movies) ---------------------------------------------------------------------------
MOVIE_EXTENSIONS = ("mp4", "mkv", "m3u8", "ts", "avi", "mov")
DEFAULT_MOVIE_EXTENSION = "mp4"


@dataclass(frozen=True, slots=True)
class Movie:
    """A VOD item as ``get_vod_streams`` lists it to one subscriber."""

    stream_id: int
    name: str
    category: str
    added: datetime
    source_url: str
    poster: str | None = None
    year: int | None = None
    duration_minutes: int | None = None

    @property
    def extension(self) -> str:
        """What apps put after ``/movie/…/{id}.``: the source's own, when it is a known one."""
        path = self.source_url.split("?", 1)[0].split("#", 1)[0]
        ext = path.rpartition("/")[2].rpartition(".")[2].lower()
        return ext if ext in MOVIE_EXTENSIONS else DEFAULT_MOVIE_EXTENSION


def vod_categories(movies: Iterable[Movie]) -> list[dict[str, object]]:
    names = dict.fromkeys(m.category for m in movies)
    return [{"category_id": category_id(n), "category_name": n, "parent_id": 0} for n in names]


def vod_streams(movies: Sequence[Movie], category: str | None = None) -> list[dict[str, object]]:
    """``get_vod_streams`` entries (``num`` is the position in the whole list)."""
    entries = []
    for num, movie in enumerate(movies, start=1):
        movie_category = category_id(movie.category)
        if category is None or category == movie_category:
            entries.append({
                "num": num,
                "name": movie.name,
                "stream_type": "movie",
                "stream_id": movie.stream_id,
                "stream_icon": movie.poster or "",
                "rating": "",
                "rating_5based": 0,
                "added": str(int(movie.added.timestamp())),
                "category_id": movie_category,
                "container_extension": movie.extension,
                "custom_sid": "",
                "direct_source": "",
            })  # fmt: skip
    return entries


def vod_info(movie: Movie) -> dict[str, object]:
    """``get_vod_info``: the details apps show, and ``movie_data`` to build the play URL."""
    minutes = movie.duration_minutes or 0
    return {
        "info": {
            "name": movie.name,
            "movie_image": movie.poster or "",
            "releasedate": "" if movie.year is None else str(movie.year),
            "duration_secs": minutes * 60,
            "duration": f"{minutes // 60:02d}:{minutes % 60:02d}:00",
            "plot": "",
            "genre": movie.category,
            "rating": "",
        },
        "movie_data": {
            "stream_id": movie.stream_id,
            "name": movie.name,
            "added": str(int(movie.added.timestamp())),
            "category_id": category_id(movie.category),
            "container_extension": movie.extension,
            "custom_sid": "",
            "direct_source": "",
        },
    }
