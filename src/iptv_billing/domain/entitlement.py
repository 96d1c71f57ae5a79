"""May this viewer play this now? The pure decision streaming servers and panels ask for.

Billing derives an ``Entitlement`` from a subscription whenever the subscription changes
(``entitlement_of``); the stream-authorization path only looks it up and calls ``decide``, so
it never waits on billing. Every refusal names its reason, which the protocol adapters turn
into each server's own "deny" form.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from iptv_billing.domain.catalog import AddOnKind, BillingTerms
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.periods import require_aware
from iptv_billing.domain.subscription import SubscriptionState, SubscriptionStatus

# How long a streaming server may cache a "yes" (Flussonic X-AuthDuration, auth_request cache).
MAX_DECISION_TTL = timedelta(minutes=5)
MIN_DECISION_TTL = timedelta(seconds=10)
# A period that ended waits for the billing run to renew it; viewers keep watching meanwhile,
# unless the subscription is set to end with the period.
RENEWAL_ALLOWANCE = timedelta(days=1)

WATCHING = frozenset(
    {SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE}
)


class AssetKind(StrEnum):
    LIVE = "live"
    VOD = "vod"
    CATCHUP = "catchup"
    PPV = "ppv"


class Reason(StrEnum):
    """Why a viewer was refused; stable codes for logs, panels and the API."""

    UNKNOWN_CREDENTIAL = "unknown_credential"
    TOO_MANY_ATTEMPTS = "too_many_attempts"  # this IP guessed wrong too often
    UNKNOWN_STREAM = "unknown_stream"
    CREDENTIAL_DISABLED = "credential_disabled"
    EXPIRED = "expired"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    NOT_IN_PACKAGE = "not_in_package"
    CATCHUP_OUT_OF_WINDOW = "catchup_out_of_window"
    NOT_PURCHASED = "not_purchased"
    COUNTRY_NOT_ALLOWED = "country_not_allowed"
    OVER_CONNECTION_LIMIT = "over_connection_limit"
    BALANCE_EXHAUSTED = "balance_exhausted"  # the prepaid wallet pays for no more metered viewing


_STATUS_REASON = {
    SubscriptionStatus.PAUSED: Reason.PAUSED,
    SubscriptionStatus.SUSPENDED: Reason.SUSPENDED,
    SubscriptionStatus.CANCELLED: Reason.EXPIRED,
    SubscriptionStatus.EXPIRED: Reason.EXPIRED,
}


@dataclass(frozen=True, slots=True)
class Asset:
    """What is asked for: a live channel, a VOD item, a catch-up programme or a PPV event.

    ``packages`` are the packages that carry it (live, catch-up and VOD); a PPV event is
    entitled by purchase only. ``aired_at`` is when a catch-up programme was broadcast.
    """

    kind: AssetKind
    code: str
    packages: frozenset[str] = frozenset()
    aired_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.code:
            raise InvalidInput("asset.invalid_code", "an asset needs a code")
        if self.kind is AssetKind.CATCHUP and self.aired_at is None:
            raise InvalidInput("asset.missing_airtime", "a catch-up asset needs aired_at")
        if self.aired_at is not None:
            require_aware(self.aired_at)


@dataclass(frozen=True, slots=True)
class Window:
    """A purchased right to one PPV event or rental, from ``start`` to ``end``."""

    code: str
    start: datetime
    end: datetime

    def covers(self, code: str, at: datetime) -> bool:
        return self.code == code and self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class Entitlement:
    """What a subscription grants right now, as the authorization path sees it."""

    subscription_id: str
    status: SubscriptionStatus
    valid_until: datetime  # access ends here unless billing renews it first
    packages: frozenset[str]
    max_connections: int
    catchup_days: int = 7
    countries: frozenset[str] | None = None  # None: no country lock
    purchases: tuple[Window, ...] = ()
    enabled: bool = True  # a credential switched off by the operator or the subscriber

    def __post_init__(self) -> None:
        require_aware(self.valid_until)
        if self.max_connections < 1:
            raise InvalidInput("entitlement.invalid_connections", "at least one connection")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason | None
    max_connections: int = 0
    cache_for: timedelta = MIN_DECISION_TTL  # how long the answer may be reused
    subscription_id: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    asset: Asset
    at: datetime
    country: str | None = None  # ISO 3166-1 alpha-2 of the viewer's IP, when known
    active_sessions: int = 0  # the credential's other live sessions
    is_known_session: bool = False  # a heartbeat or reconnect of a session already counted


def entitlement_of(
    subscription_id: str,
    state: SubscriptionState,
    terms: BillingTerms,
    *,
    countries: Iterable[str] | None = None,
    purchases: Iterable[Window] = (),
    enabled: bool = True,
    renewal_allowance: timedelta = RENEWAL_ALLOWANCE,
) -> Entitlement:
    """The plan's packages and connections plus those of the add-ons bought."""
    bought = dict(state.addons)
    packages = set(terms.package_codes)
    connections = terms.max_connections
    for addon in terms.addons:
        quantity = bought.get(addon.code, 0)
        if not quantity:
            continue
        if addon.kind is AddOnKind.EXTRA_CONNECTION:
            connections += addon.connections * quantity
        else:
            packages.update(addon.package_codes)
    return Entitlement(
        subscription_id=subscription_id,
        status=state.status,
        valid_until=_valid_until(state, renewal_allowance),
        packages=frozenset(packages),
        max_connections=connections,
        countries=None if countries is None else frozenset(countries),
        purchases=tuple(purchases),
        enabled=enabled,
    )


def _valid_until(state: SubscriptionState, allowance: timedelta) -> datetime:
    end = state.current_period.end
    renews = state.status in WATCHING and not state.cancel_at_period_end
    return end + allowance if renews else end


def decide(entitlement: Entitlement | None, request: Request) -> Decision:
    """Allow or refuse one play, with the reason; pure and total."""
    if entitlement is None:
        return Decision(False, Reason.UNKNOWN_CREDENTIAL)
    refusal = _refusal(entitlement, request)
    if refusal is not None:
        return Decision(False, refusal, subscription_id=entitlement.subscription_id)
    remaining = entitlement.valid_until - request.at
    ttl = max(MIN_DECISION_TTL, min(MAX_DECISION_TTL, remaining))
    return Decision(
        True,
        None,
        entitlement.max_connections,
        ttl,
        entitlement.subscription_id,
    )


def _refusal(entitlement: Entitlement, request: Request) -> Reason | None:
    if not entitlement.enabled:
        return Reason.CREDENTIAL_DISABLED
    if entitlement.status in _STATUS_REASON:
        return _STATUS_REASON[entitlement.status]
    asset, at = request.asset, request.at
    purchased = any(w.covers(asset.code, at) for w in entitlement.purchases)
    if not purchased and at >= entitlement.valid_until:
        return Reason.EXPIRED
    if entitlement.countries is not None and request.country not in entitlement.countries:
        return Reason.COUNTRY_NOT_ALLOWED
    content = _content_refusal(entitlement, asset, at, purchased)
    if content is not None:
        return content
    if not request.is_known_session and request.active_sessions >= entitlement.max_connections:
        return Reason.OVER_CONNECTION_LIMIT
    return None


def _content_refusal(
    entitlement: Entitlement, asset: Asset, at: datetime, purchased: bool
) -> Reason | None:
    if asset.kind is AssetKind.PPV:
        return None if purchased else Reason.NOT_PURCHASED
    if purchased:  # a rental of a VOD item outside the packages
        return None
    if entitlement.status not in WATCHING:
        return Reason.EXPIRED
    if not asset.packages & entitlement.packages:
        return Reason.NOT_IN_PACKAGE
    if asset.kind is AssetKind.CATCHUP:
        aired = asset.aired_at
        if aired is None or aired > at or at - aired > timedelta(days=entitlement.catchup_days):
            return Reason.CATCHUP_OUT_OF_WINDOW
    return None
