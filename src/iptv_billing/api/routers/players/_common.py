"""What the player routes share: logging a line in, and the plain-text refusals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import PlainTextResponse, Response

from iptv_billing.api.deps import AppServices
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers._common import peer
from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.errors import Unavailable
from iptv_billing.domain.vod import rented
from iptv_billing.domain.xtream import xtream_status
from iptv_billing.services import guide
from iptv_billing.services.access_index import ChannelView, TenantAccess
from iptv_billing.services.records import SubscriptionRecord
from iptv_billing.services.stream_auth import Account, Presented, StreamAuthorizer
from iptv_billing.services.vod_records import VodItemRecord

# The package's one router: ``player_api``, ``playlists`` and ``redirects`` add their routes
# to it, in that order (``__init__`` imports them so). One router keeps the routes flat in
# ``router.routes``, where ``create_app`` checks that POST routes are idempotent.
router = APIRouter(route_class=IdempotentRoute, tags=["players"])

NO_STORE = {"Cache-Control": "no-store"}  # answers carry credentials or per-viewer rights
_REFUSAL_STATUS = {
    Reason.UNKNOWN_CREDENTIAL: 401,
    Reason.TOO_MANY_ATTEMPTS: 429,
    Reason.UNKNOWN_STREAM: 404,
}

# Apps send anything: parameters are taken as text and judged by the handlers.
Param = Annotated[str | None, Query()]
TEXT: dict[str, object] = {"text/plain": {}}
REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"description": "unknown credentials", "content": TEXT},
    403: {"description": "refused; the body names the reason or status", "content": TEXT},
    429: {"description": "this IP guessed wrong too often", "content": TEXT},
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

    def vod_items(self) -> list[VodItemRecord]:
        """The VOD items the subscriber may watch (its packages', or rented now) or rent:
        rentable ones are listed too, so that apps and boxes can offer them (playing one not
        rented is refused ``not_purchased``-style until it is). None unless Active."""
        if self.status != "Active":
            return []
        entitlement, now = self.account.entitlement, self.account.now
        return [
            i
            for i in self.access.catalog.vod_ordered
            if i.item.rentable
            or set(i.item.packages) & entitlement.packages
            or rented(entitlement.purchases, i.code, now) is not None
        ]


def stream_authorizer(services: AppServices) -> StreamAuthorizer:
    if services.stream is None:
        raise Unavailable("stream.unavailable", "this server does not serve players")
    return services.stream


def subscriber_of(
    services: AppServices, request: Request, username: str | None, password: str | None
) -> Subscriber | Reason:
    presented = Presented.line(username or "", password or "")
    account = stream_authorizer(services).account(presented, peer(request))
    if isinstance(account, Reason):
        return account
    tenant_id = account.credential.tenant_id
    access = stream_authorizer(services).index.tenant(tenant_id)
    sub = access.subscriptions.get(account.credential.subscription_id) if access else None
    if access is None or sub is None:  # the index is reloading this tenant
        return Reason.UNKNOWN_CREDENTIAL
    return Subscriber(account, access, sub)


def base_url(services: AppServices, request: Request) -> str:
    return (services.public_url or str(request.base_url)).rstrip("/")


def one_line(text: str) -> str:
    return " ".join(guide.printable(text).split())


def plain_text(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers=headers)


def refusal(reason: Reason) -> Response:
    return plain_text(_REFUSAL_STATUS.get(reason, 403), reason.value)
