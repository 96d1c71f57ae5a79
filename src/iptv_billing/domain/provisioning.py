"""Pure rules for telling panels about subscription changes (the Freeside queue pattern).

A subscription change becomes an outbox entry; a worker pushes the *desired state* of each
line (``PanelLine``) to every panel and records the outcome. This module decides everything that
needs no I/O:

* ``PanelLine`` / ``RemoteLine`` and ``line_differences``: what we want on a panel, what the
  panel reports, and which fields differ (so a sync edits only when needed);
* ``bouquets_for`` / ``panel_line_for``: our package codes to a panel's bouquet ids;
* webhook signatures (``sign`` / ``verify``), Stripe-style:
  ``Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``,
  several ``v1=`` values while a secret is rotated;
* the retry schedule (``next_attempt``) and the outcome of one attempt (``outcome_of``).

Retry schedule, in seconds after the n-th failed attempt: 10, 30, 120, 600, 1800, 3600, then
7200 (2 h) for every later one, each stretched by up to +20 % with the caller's jitter.
``MAX_ATTEMPTS`` is 24: the last attempt starts about 35.7 h (≈ 1.5 days; up to ≈ 43 h with
jitter) after the first, so a panel down over a night or a long maintenance still catches up.
After that ``next_attempt`` answers ``None``: the entry is dead and waits for an operator (it is
never dropped).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeGuard

from iptv_billing.domain.credentials import normalise_mac
from iptv_billing.domain.entitlement import WATCHING, Entitlement
from iptv_billing.domain.errors import InvalidInput, Unauthorized
from iptv_billing.domain.periods import require_aware
from iptv_billing.domain.subscription import SubscriptionStatus

# --- Lines -----------------------------------------------------------------------------------

# The fields a sync compares and an edit sends; identity (username, password, mac) is not one.
SYNCED_FIELDS = ("enabled", "exp_date", "max_connections", "bouquets", "is_trial")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class PanelLine:
    """The desired state of one line on one panel.

    ``exp_date`` is aware (stored in UTC; ``None``: never expires). ``max_connections`` is at
    least 1: Xtream reads 0 as "unlimited", which billing never grants. ``bouquets`` are the
    panel's ids, stored sorted and without duplicates. With a ``mac`` the line is a MAG box
    (Xtream ``action=stb``): the panel identifies it by MAC and picks its own username and
    password, so those two may then be empty. The password is kept out of ``repr``.
    """

    username: str
    password: str = field(repr=False)
    enabled: bool
    exp_date: datetime | None
    max_connections: int
    bouquets: tuple[int, ...] = ()
    is_trial: bool = False
    mac: str | None = None

    def __post_init__(self) -> None:
        for name in ("username", "password"):
            value = getattr(self, name)
            if not isinstance(value, str) or _CONTROL.search(value):
                raise InvalidInput(f"provisioning.invalid_{name}", f"a line's {name} is text")
            if self.mac is None and not value:
                raise InvalidInput(f"provisioning.invalid_{name}", f"a line needs a {name}")
        if self.exp_date is not None:
            object.__setattr__(self, "exp_date", require_aware(self.exp_date, "exp_date"))
        if not _is_int(self.max_connections) or self.max_connections < 1:
            raise InvalidInput(
                "provisioning.invalid_connections",
                "max_connections is at least 1 (panels read 0 as unlimited)",
            )
        object.__setattr__(self, "bouquets", _bouquet_ids(self.bouquets))
        if self.mac is not None:
            object.__setattr__(self, "mac", normalise_mac(self.mac))

    @property
    def exp_unix(self) -> int | None:
        """The expiry in Unix seconds, as panels store it (fractions dropped)."""
        return _unix(self.exp_date)


@dataclass(frozen=True, slots=True)
class RemoteLine:
    """A line as a panel reports it. ``max_connections`` may be 0 (unlimited there);
    ``admin_enabled`` False is a ban set on the panel, which billing reports but never lifts."""

    username: str
    password: str = field(repr=False)
    enabled: bool
    exp_date: datetime | None
    max_connections: int
    bouquets: tuple[int, ...]
    is_trial: bool
    mac: str | None = None
    admin_enabled: bool = True
    panel_id: int | None = None


def line_differences(desired: PanelLine, remote: RemoteLine) -> tuple[str, ...]:
    """Names of the ``SYNCED_FIELDS`` whose values differ (expiry compared in whole seconds)."""
    changed: list[str] = []
    if desired.enabled != remote.enabled:
        changed.append("enabled")
    if desired.exp_unix != _unix(remote.exp_date):
        changed.append("exp_date")
    if desired.max_connections != remote.max_connections:
        changed.append("max_connections")
    if desired.bouquets != tuple(sorted(set(remote.bouquets))):
        changed.append("bouquets")
    if desired.is_trial != remote.is_trial:
        changed.append("is_trial")
    return tuple(changed)


def bouquets_for(
    package_codes: Iterable[str], mapping: Mapping[str, Sequence[int]]
) -> tuple[int, ...]:
    """The panel's bouquet ids for our packages, sorted and unique.

    Every package must appear in the target's ``mapping`` (an empty list there means "nothing
    on this panel", a deliberate choice). A missing one raises ``InvalidInput`` with code
    ``provisioning.unmapped_package`` and ``details["packages"]``: provisioning fewer bouquets
    than were sold would be a silent under-delivery, so the operator fixes the mapping and
    replays instead.
    """
    codes = sorted(set(package_codes))
    missing = [code for code in codes if code not in mapping]
    if missing:
        raise InvalidInput(
            "provisioning.unmapped_package",
            f"no bouquet mapping on this panel for: {', '.join(missing)}",
            packages=missing,
        )
    return _bouquet_ids(bouquet for code in codes for bouquet in mapping[code])


def panel_line_for(
    entitlement: Entitlement,
    *,
    username: str,
    password: str,
    mapping: Mapping[str, Sequence[int]],
    mac: str | None = None,
) -> PanelLine:
    """The line an entitlement asks for: enabled only while the subscription may watch
    (trialing, active, past due in grace) and the credential is switched on."""
    return PanelLine(
        username=username,
        password=password,
        enabled=entitlement.enabled and entitlement.status in WATCHING,
        exp_date=entitlement.valid_until,
        max_connections=entitlement.max_connections,
        bouquets=bouquets_for(entitlement.packages, mapping),
        is_trial=entitlement.status is SubscriptionStatus.TRIALING,
        mac=mac,
    )


def _bouquet_ids(values: Iterable[object]) -> tuple[int, ...]:
    ids: set[int] = set()
    for value in values:
        if not _is_int(value) or value < 1:
            raise InvalidInput("provisioning.invalid_bouquet", f"not a bouquet id: {value!r}")
        ids.add(value)
    return tuple(sorted(ids))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _unix(moment: datetime | None) -> int | None:
    return None if moment is None else math.floor(moment.timestamp())


# --- Webhook signatures ----------------------------------------------------------------------

SIGNATURE_HEADER = "Webhook-Signature"
DEFAULT_TOLERANCE_SECONDS = 300
MIN_SECRET_BYTES = 16
# Bounds that keep a hostile header cheap to refuse.
_MAX_HEADER_CHARS = 4096
_MAX_SIGNATURES = 8
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_SCHEME = re.compile(r"[A-Za-z0-9_-]{1,16}")

Secrets = bytes | Sequence[bytes]


def sign(secret: Secrets, body: bytes, at_unix: int) -> str:
    """``t=<at_unix>,v1=<hex>``; one ``v1`` per secret given (old and new while rotating)."""
    keys = _secret_list(secret)
    if not _is_int(at_unix) or at_unix < 0:
        raise InvalidInput("webhook.invalid_timestamp", "the timestamp is Unix seconds, >= 0")
    signatures = ",".join(f"v1={_hmac_hex(key, body, at_unix)}" for key in keys)
    return f"t={at_unix},{signatures}"


def verify(
    secret: Secrets,
    body: bytes,
    header: str,
    now_unix: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Accept ``header`` when one of its ``v1`` values signs ``body`` with one of the secrets
    and its timestamp is within ``tolerance_seconds`` of ``now_unix``; raise otherwise.

    Raises ``Unauthorized`` with code ``webhook.malformed_signature`` (no ``t``, no ``v1``,
    bad syntax), ``webhook.bad_signature``, ``webhook.timestamp_too_old`` or
    ``webhook.timestamp_in_future``. Unknown schemes (``v0=``, ``v2=``) are ignored, as Stripe
    does. Comparison is constant-time; the signature is checked before the clock, so a changed
    timestamp reads as a bad signature.
    """
    keys = _secret_list(secret)
    timestamp, candidates = _parse_header(header)
    matched = False
    for key in keys:
        expected = _hmac_hex(key, body, timestamp)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise Unauthorized("webhook.bad_signature", "no signature matches the body")
    if now_unix - timestamp > tolerance_seconds:
        raise Unauthorized("webhook.timestamp_too_old", "the signature is too old (replay?)")
    if timestamp - now_unix > tolerance_seconds:
        raise Unauthorized("webhook.timestamp_in_future", "the signature is from the future")


def _parse_header(header: object) -> tuple[int, tuple[str, ...]]:
    def malformed(why: str) -> Unauthorized:
        return Unauthorized("webhook.malformed_signature", f"malformed signature header: {why}")

    if not isinstance(header, str) or not header or len(header) > _MAX_HEADER_CHARS:
        raise malformed("empty or too long")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        scheme, sep, value = part.strip().partition("=")
        if not sep or not _SCHEME.fullmatch(scheme):
            raise malformed("expected scheme=value pairs")
        if scheme == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(value):
                raise malformed("one t=<unix seconds> expected")
            timestamp = int(value)
        elif scheme == "v1":
            if not _HEX_SHA256.fullmatch(value):
                raise malformed("v1 is 64 hex digits")
            candidates.append(value.lower())
    if timestamp is None:
        raise malformed("no t=")
    if not candidates or len(candidates) > _MAX_SIGNATURES:
        raise malformed(f"1 to {_MAX_SIGNATURES} v1 signatures expected")
    return timestamp, tuple(candidates)


def _secret_list(secret: Secrets) -> tuple[bytes, ...]:
    keys = (secret,) if isinstance(secret, bytes | bytearray) else tuple(secret)
    if not keys or any(
        not isinstance(key, bytes | bytearray) or len(key) < MIN_SECRET_BYTES for key in keys
    ):
        raise InvalidInput(
            "webhook.weak_secret", f"webhook secrets are bytes, at least {MIN_SECRET_BYTES}"
        )
    return tuple(bytes(key) for key in keys)


def _hmac_hex(key: bytes, body: bytes, at_unix: int) -> str:
    return hmac.new(key, b"%d." % at_unix + body, hashlib.sha256).hexdigest()


# --- Retries and outcomes --------------------------------------------------------------------

# Seconds to wait after the 1st, 2nd, ... failed attempt; the last value repeats.
RETRY_DELAYS = (10, 30, 120, 600, 1800, 3600, 7200)
MAX_ATTEMPTS = 24
JITTER_SPREAD = 0.2  # a delay grows by up to 20 %, so a panel's backlog does not retry in step


def next_attempt(attempts: int, now: datetime, jitter: float) -> datetime | None:
    """When to try again after ``attempts`` tries (all failed); ``None`` once ``MAX_ATTEMPTS``
    is reached: the entry is dead and needs an operator. ``attempts == 0`` means "now".

    ``jitter`` in [0, 1] comes from the caller (the domain draws no random numbers).
    """
    moment = require_aware(now, "now")
    if not _is_int(attempts) or attempts < 0:
        raise InvalidInput("provisioning.invalid_attempts", "attempts is a count, >= 0")
    if not isinstance(jitter, int | float) or not 0.0 <= jitter <= 1.0:
        raise InvalidInput("provisioning.invalid_jitter", "jitter is a number in [0, 1]")
    if attempts >= MAX_ATTEMPTS:
        return None
    if attempts == 0:
        return moment
    base = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    return moment + timedelta(seconds=base * (1.0 + JITTER_SPREAD * jitter))


class Outcome(StrEnum):
    """What one delivery attempt came to. REJECTED entries stay visible and replayable."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


# 408 timeout, 425 too early, 429 rate limited: the receiver asks us to come back.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


def outcome_of(status: int | None) -> Outcome:
    """``None`` (no HTTP answer: refused, reset, timed out) and 408/425/429/5xx retry; 2xx is
    delivered; any other status (other 4xx, redirects, nonsense) is rejected."""
    if status is None:
        return Outcome.RETRY
    if 200 <= status <= 299:
        return Outcome.DELIVERED
    if status in RETRYABLE_STATUSES or 500 <= status <= 599:
        return Outcome.RETRY
    return Outcome.REJECTED
