"""Access credentials of subscriptions: Xtream-style lines, play tokens and set-top boxes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import Field

from iptv_billing.api.deps import AdminWrite, AppServices, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.pagination import ListResponse
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.errors import Unavailable
from iptv_billing.services import credentials, lookup
from iptv_billing.services.credentials import Sealer
from iptv_billing.services.records import CredentialRecord, Page

router = APIRouter(route_class=IdempotentRoute, tags=["credentials"])
Label = Annotated[str | None, Field(default=None, max_length=200)]


class LineIn(ApiModel):
    username: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$",
        description="3-64 URL-safe characters; generated when absent",
    )
    label: Label = None


class TokenIn(ApiModel):
    label: Label = None


class DeviceIn(ApiModel):
    mac: str = Field(max_length=17, examples=["00:1A:79:12:34:56"])
    label: Label = None


class CredentialOut(ApiModel):
    object: Literal["credential"] = "credential"
    id: str
    subscription_id: str
    kind: Literal["line", "token", "device"]
    login: str = Field(description="username, MAC, or the first characters of a token")
    label: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: CredentialRecord) -> CredentialOut:
        return cls(
            id=r.id,
            subscription_id=r.subscription_id,
            kind=r.kind,  # the database CHECK keeps it to the three
            login=r.login,
            label=r.label,
            enabled=r.enabled,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class IssuedOut(CredentialOut):
    secret: str = Field(description="the password or token; ask again with GET …/secret")


class SecretOut(ApiModel):
    object: Literal["credential_secret"] = "credential_secret"
    id: str
    secret: str


class DevicesReset(ApiModel):
    object: Literal["devices_reset"] = "devices_reset"
    removed: int


def _sealer(services: AppServices) -> Sealer:
    if services.sealer is None:
        raise Unavailable("credentials.unavailable", "this server keeps no credential key")
    return services.sealer


def _issued(pair: tuple[CredentialRecord, str]) -> IssuedOut:
    record, secret = pair
    return IssuedOut(**CredentialOut.of(record).model_dump(exclude={"object"}), secret=secret)


@router.post("/v1/subscriptions/{subscription_id}/lines", status_code=201, response_model=IssuedOut)
def issue_line(
    subscription_id: ResourceId, body: LineIn, caller: AdminWrite, services: Services
) -> IssuedOut:
    """A username and password line, as Xtream apps and M3U playlists use."""
    sealer, rnd = _sealer(services), services.random_bytes
    return _issued(
        write(
            services,
            caller,
            lambda u, c: credentials.issue_line(
                u, c, sealer, rnd, subscription_id, body.username, body.label
            ),
        )
    )


@router.post(
    "/v1/subscriptions/{subscription_id}/tokens", status_code=201, response_model=IssuedOut
)
def issue_token(
    subscription_id: ResourceId, body: TokenIn, caller: AdminWrite, services: Services
) -> IssuedOut:
    """A play token for `?token=` URLs (nginx-rtmp, Flussonic, MediaMTX, SRS) and `/play/`."""
    sealer, rnd = _sealer(services), services.random_bytes
    return _issued(
        write(
            services,
            caller,
            lambda u, c: credentials.issue_token(u, c, sealer, rnd, subscription_id, body.label),
        )
    )


@router.post(
    "/v1/subscriptions/{subscription_id}/devices", status_code=201, response_model=CredentialOut
)
def register_device(
    subscription_id: ResourceId, body: DeviceIn, caller: AdminWrite, services: Services
) -> CredentialOut:
    """A set-top box (MAG/Ministra style), known by its MAC; one per connection of the plan."""
    record = write(
        services,
        caller,
        lambda u, c: credentials.register_device(u, c, subscription_id, body.mac, body.label),
    )
    return CredentialOut.of(record)


@router.post("/v1/subscriptions/{subscription_id}/devices/reset", response_model=DevicesReset)
def reset_devices(
    subscription_id: ResourceId, caller: AdminWrite, services: Services
) -> DevicesReset:
    removed = write(services, caller, lambda u, c: credentials.reset_devices(u, c, subscription_id))
    return DevicesReset(removed=removed)


@router.get(
    "/v1/subscriptions/{subscription_id}/credentials",
    response_model=ListResponse[CredentialOut],
)
def list_credentials(subscription_id: ResourceId, caller: ReadAccess, services: Services) -> Any:
    def work(u: Any, c: Any) -> Page[CredentialRecord]:
        lookup.get_subscription(u, c, subscription_id)
        return Page(tuple(u.credentials.of_subscription(c.tenant_id, subscription_id)), False)

    return ListResponse.of(read(services, caller, work), CredentialOut.of)


@router.get("/v1/credentials/{credential_id}", response_model=CredentialOut)
def get_credential(credential_id: ResourceId, caller: ReadAccess, services: Services) -> Any:
    record = read(services, caller, lambda u, c: credentials.get_credential(u, c, credential_id))
    return CredentialOut.of(record)


@router.get("/v1/credentials/{credential_id}/secret", response_model=SecretOut)
def reveal_secret(credential_id: ResourceId, caller: AdminWrite, services: Services) -> Any:
    """The line's password or the token again (for the subscriber's playlist URL)."""
    sealer = _sealer(services)
    secret = read(services, caller, lambda u, c: credentials.reveal(u, c, sealer, credential_id))
    return SecretOut(id=credential_id, secret=secret)


@router.post("/v1/credentials/{credential_id}/reset-secret", response_model=IssuedOut)
def reset_secret(credential_id: ResourceId, caller: AdminWrite, services: Services) -> Any:
    """A new password or token; the old one stops working within a second."""
    sealer, rnd = _sealer(services), services.random_bytes
    return _issued(
        write(
            services,
            caller,
            lambda u, c: credentials.reset_secret(u, c, sealer, rnd, credential_id),
        )
    )


@router.post("/v1/credentials/{credential_id}/disable", response_model=CredentialOut)
def disable(credential_id: ResourceId, caller: AdminWrite, services: Services) -> Any:
    record = write(
        services, caller, lambda u, c: credentials.set_enabled(u, c, credential_id, False)
    )
    return CredentialOut.of(record)


@router.post("/v1/credentials/{credential_id}/enable", response_model=CredentialOut)
def enable(credential_id: ResourceId, caller: AdminWrite, services: Services) -> Any:
    record = write(
        services, caller, lambda u, c: credentials.set_enabled(u, c, credential_id, True)
    )
    return CredentialOut.of(record)


@router.post("/v1/credentials/{credential_id}/remove", response_model=CredentialOut)
def remove(credential_id: ResourceId, caller: AdminWrite, services: Services) -> Any:
    record = write(services, caller, lambda u, c: credentials.remove(u, c, credential_id))
    return CredentialOut.of(record)
