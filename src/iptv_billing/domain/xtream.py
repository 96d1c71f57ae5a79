"""The Xtream-Codes player API's account answer (``player_api.php`` without an action), so
that existing IPTV apps show a subscriber's status, expiry and connections unchanged.

Xtream apps expect numbers as strings ("1"), the expiry as a Unix-seconds string (or null for
"never"), and one of four statuses; the mapping from billing's states is explicit here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from iptv_billing.domain.entitlement import Entitlement
from iptv_billing.domain.subscription import SubscriptionStatus

OUTPUT_FORMATS = ("m3u8", "ts")


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
) -> dict[str, object]:
    return {
        "username": username,
        "password": password,
        "message": message,
        "auth": 1,
        "status": xtream_status(entitlement, now),
        "exp_date": str(int(entitlement.valid_until.timestamp())),
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
        "time_now": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
