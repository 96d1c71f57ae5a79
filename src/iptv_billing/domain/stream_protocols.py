"""What streaming servers' callbacks carry, parsed without trusting any of it.

Every server hands over the viewer's credentials differently: nginx-rtmp appends the player's
query to its form, Flussonic forwards it in ``qs``, SRS in ``param``, MediaMTX in ``user`` /
``password`` / ``token`` / ``query``, nginx ``auth_request`` only in the original URI, and
Ministra names a set-top box by its MAC. These helpers turn each into ``Offered`` credentials,
a stream name and a client address, or into nothing: a value no server would send (too long,
too many fields, not an address) is treated as absent, so the adapters answer their
protocol's "deny" instead of failing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from iptv_billing.domain.entitlement import WATCHING, Entitlement
from iptv_billing.domain.secure_links import SecureLinkSigner

MAX_FIELD = 1024  # longer than any credential, stream name or id a server sends
MAX_FIELDS = 200  # an nginx-rtmp form is ~15 fields plus the player's query
MAX_SESSION_PART = 128
# Flussonic's X-AuthDuration: how long it reuses a "yes" before asking again.
MIN_AUTH_DURATION = 30
MAX_AUTH_DURATION = 300

CredentialKind = Literal["line", "token", "device"]


@dataclass(frozen=True, slots=True)
class Offered:
    """Credentials as a protocol carried them, not yet checked."""

    kind: CredentialKind
    login: str
    password: str | None = None


def first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The first value of each name: nginx-rtmp puts its own fields before the player's
    query, which may repeat them (``?name=other&call=publish``)."""
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def parse_query(text: str | bytes) -> dict[str, str]:
    """A query string or urlencoded form (a leading ``?`` allowed) → first value per name;
    empty when it has too many fields to be one."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        pairs = parse_qsl(text.removeprefix("?"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        return {}
    return first_values(pairs)


def value(fields: Mapping[str, object], name: str) -> str | None:
    """A non-empty text field of sane length, else None (absent, empty, huge or not text)."""
    found = fields.get(name)
    if isinstance(found, str) and 0 < len(found) <= MAX_FIELD:
        return found
    return None


def offered(fields: Mapping[str, object]) -> Offered | None:
    """A line (``username``/``user`` + ``password``/``pass``), else a token, else a MAC."""
    username = value(fields, "username") or value(fields, "user")
    if username is not None:
        password = value(fields, "password") or value(fields, "pass")
        if password is not None:
            return Offered("line", username, password)
    token = value(fields, "token")
    if token is not None:
        return Offered("token", token)
    mac = value(fields, "mac")
    return None if mac is None else Offered("device", mac)


def client_ip(reported: str | None, fallback: str) -> str:
    """The viewer's address as the server reported it (the first of a forwarded list),
    normalised; ``fallback`` (the caller's own address) when absent or not an address.

    Failed logins are counted per this address, so it must be the viewer's, not the
    streaming server's: one viewer guessing must not lock out everyone behind that server.
    """
    if reported:
        candidate = reported.split(",", 1)[0].strip()
        if len(candidate) <= 64:
            try:
                return ipaddress.ip_address(candidate).compressed
            except ValueError:
                pass
    return fallback


def session_id(prefix: str, *parts: str | None) -> str | None:
    """``prefix:part:…``, the key a server's session is counted under; None when a part is
    missing or too long to be a server's id."""
    texts = [part for part in parts if part and len(part) <= MAX_SESSION_PART]
    return ":".join((prefix, *texts)) if len(texts) == len(parts) else None


def country_code(header: str | None) -> str | None:
    """ISO 3166-1 alpha-2 from a GeoIP/CDN header (``de`` → ``DE``); None otherwise."""
    if header and len(header) == 2 and header.isascii() and header.isalpha():
        return header.upper()
    return None


def auth_duration(cache_for: timedelta, session_ttl: timedelta | None = None) -> int:
    """Flussonic's ``X-AuthDuration`` in seconds: the decision's lifetime, kept within
    30..300 s and, for a counted session, within two thirds of the session TTL so that the
    re-check arrives before the session registry forgets the session."""
    seconds = int(cache_for.total_seconds())
    if session_ttl is not None:
        seconds = min(seconds, int(session_ttl.total_seconds() * 2 / 3))
    return max(MIN_AUTH_DURATION, min(MAX_AUTH_DURATION, seconds))


# -- nginx auth_request: the original URI ---------------------------------------------------

_PLAYLIST_OR_STREAM = frozenset({"m3u8", "mpd", "ts", "flv", "mp4"})


@dataclass(frozen=True, slots=True)
class OriginalUri:
    stream: str | None  # None: not one of the documented shapes
    fields: dict[str, str]  # the query's fields, plus credentials found in the path


def parse_original_uri(uri: str) -> OriginalUri:
    """The stream and credentials of the URI a player asked nginx for.

    Shapes (``…?token=T`` or ``…?username=U&password=P`` work with all but the first):

    * ``/live/{username}/{password}/{stream}.{ext}``: Xtream style, credentials in the path;
    * ``/{prefix}/{stream}/{file}``: nested HLS/DASH (nginx-rtmp ``hls_nested on``:
      ``/hls/news-1/index.m3u8``, ``/hls/news-1/17.ts``);
    * ``/{prefix}/{stream}.{m3u8|mpd|ts|flv|mp4}``: a flat playlist or a progressive stream
      (``/hls/news-1.m3u8``). nginx-rtmp's flat fragments (``news-1-17.ts``) cannot be told
      from a stream name: use ``hls_nested on``, or name the stream in ``X-Stream-Name``.
    """
    path, _, query = uri.partition("?")
    fields = parse_query(query)
    segments = [unquote(s) for s in path.split("/") if s]
    stream: str | None = None
    if len(segments) == 4 and segments[0] == "live":
        _, username, password, file = segments
        fields = {**fields, "username": username, "password": password}
        stream = _stem(file)
    elif len(segments) == 3:
        stream = segments[1]
    elif len(segments) == 2:
        stem, _, ext = segments[1].rpartition(".")
        stream = stem if stem and ext.lower() in _PLAYLIST_OR_STREAM else None
    return OriginalUri(stream or None, fields)


def _stem(file: str) -> str:
    stem, dot, _ = file.rpartition(".")
    return stem if dot else file


# -- Ministra ------------------------------------------------------------------------------


def watching(entitlement: Entitlement, at: datetime) -> bool:
    """Whether a set-top box may be switched on now (Ministra's account ``status`` 1): the
    credential enabled, the subscription in a watching state, its right not run out. What it
    may watch is decided per channel, by the streaming server's callback."""
    return entitlement.enabled and entitlement.status in WATCHING and at < entitlement.valid_until


INACTIVE = "Subscription is not active"
PURCHASES_DISABLED = "Purchases from the set-top box are not enabled"


def purchase_refusal(entitlement: Entitlement, at: datetime, package: str | None) -> str | None:
    """Ministra's ``on_subscribe_hook_url``: why the box may not add ``package``, or None.

    Buying on the box is not offered (billing would have to charge for it): only packages
    the subscription already carries, from its plan or an add-on, are approved.
    """
    if not watching(entitlement, at):
        return INACTIVE
    if package is None or package not in entitlement.packages:
        return PURCHASES_DISABLED
    return None


# -- signed links for servers without callbacks -------------------------------------------------


def signed_url(signer: SecureLinkSigner, source_url: str, expires: int, ip: str | None) -> str:
    """``source_url`` with ``md5`` and ``expires`` added, signed over its path as nginx's
    ``$uri`` sees it (percent-decoded), as ``secure_link_md5 "$secure_link_expires$uri
    $remote_addr secret"`` checks (without ``$remote_addr`` when ``ip`` is None)."""
    parts = urlsplit(source_url)
    path = parts.path or "/"
    signature = urlencode({"md5": signer.token(unquote(path), expires, ip), "expires": expires})
    query = f"{parts.query}&{signature}" if parts.query else signature
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))
