"""The subscriber's own account, with the line's username and password (HTTP Basic): what
the line may watch, its set-top boxes, and resetting them after replacing a box.

Logins count against the caller's IP like every other player login, so these routes give a
guesser nothing the player API does not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from iptv_billing.api.deps import AppServices, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers._common import peer
from iptv_billing.api.routers.players._common import stream_authorizer
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.errors import TooManyRequests, Unauthorized
from iptv_billing.domain.xtream import xtream_status
from iptv_billing.services import credentials
from iptv_billing.services.context import load_context
from iptv_billing.services.credentials import DEVICE
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.stream_auth import Account, Presented

router = APIRouter(route_class=IdempotentRoute, tags=["subscriber account"])
_basic = HTTPBasic(auto_error=False, description="the line's username and password")


class DeviceOut(ApiModel):
    mac: str


class AccountOut(ApiModel):
    object: Literal["account"] = "account"
    username: str
    status: Literal["Active", "Expired", "Disabled", "Banned"]
    expires_at: datetime
    max_connections: int
    active_connections: int
    devices: list[DeviceOut]


class DevicesReset(ApiModel):
    object: Literal["devices_reset"] = "devices_reset"
    removed: int


def line_account(
    request: Request,
    services: Services,
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> Account:
    if basic is None:
        raise Unauthorized("account.credentials_required", "log in with the line's credentials")
    presented = Presented.line(basic.username, basic.password)
    found = stream_authorizer(services).account(presented, peer(request))
    if found is Reason.TOO_MANY_ATTEMPTS:
        raise TooManyRequests("account.too_many_attempts", "too many failed logins; wait")
    if isinstance(found, Reason):
        raise Unauthorized("account.unknown_credentials", "unknown username or password")
    return found


LineAccount = Annotated[Account, Depends(line_account)]


def _devices(services: AppServices, account: Account) -> list[DeviceOut]:
    index = stream_authorizer(services).index
    held = index.credentials_of(account.credential.tenant_id, account.credential.subscription_id)
    return [DeviceOut(mac=c.login) for c in held if c.kind == DEVICE]


@router.get("/account", response_model=AccountOut)
def get_account(account: LineAccount, services: Services) -> AccountOut:
    """The line's status as apps show it, its connections and its registered boxes."""
    entitlement = account.entitlement
    return AccountOut(
        username=account.credential.login,
        status=xtream_status(entitlement, account.now),
        expires_at=entitlement.valid_until,
        max_connections=entitlement.max_connections,
        active_connections=account.active_connections,
        devices=_devices(services, account),
    )


@router.post("/account/devices/reset", response_model=DevicesReset)
def reset_devices(account: LineAccount, services: Services) -> DevicesReset:
    """Forget every set-top box of the subscription, so that new ones can be registered."""
    tenant_id = account.credential.tenant_id
    sub_id = account.credential.subscription_id

    def work(uow: UnitOfWork) -> int:
        ctx = load_context(uow, tenant_id, services.system_clock, services.ids)
        return credentials.reset_devices(uow, ctx, sub_id)

    return DevicesReset(removed=services.database.transact(work))
