"""Provisioning: Xtream panels and webhook receivers that follow billing, and their deliveries.

See ``docs/provisioning.md``. Targets follow the tenant's log; the worker delivers on its own
schedule, so these routes configure targets and show (and replay) what was delivered.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from iptv_billing.api.deps import AdminWrite, AppServices, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import IdFilter, ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.errors import Unavailable
from iptv_billing.services import provisioning
from iptv_billing.services.credentials import Sealer
from iptv_billing.services.records import (
    ProvisioningAttemptRecord,
    ProvisioningDeliveryRecord,
    ProvisioningTargetRecord,
)

router = APIRouter(route_class=IdempotentRoute, tags=["provisioning"])

Name = Annotated[str, Field(min_length=1, max_length=200)]
Url = Annotated[
    str,
    Field(
        max_length=1000,
        pattern=r"^https?://[^\s]+$",
        examples=["http://panel.example.com:25500/admin"],
    ),
]
Secret = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[!-~]+$")]
PackageCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
BouquetId = Annotated[int, Field(ge=1, le=2**31 - 1)]
BouquetMap = Annotated[
    dict[PackageCode, Annotated[list[BouquetId], Field(max_length=1000)]],
    Field(max_length=1000, examples=[{"basic": [1, 2], "sports": [7]}]),
]
Status = Literal["pending", "delivered", "failed", "dead", "rejected"]


class TargetIn(ApiModel):
    kind: Literal["xtream", "webhook"]
    name: Name
    url: Url = Field(
        description="Xtream: the folder holding api.php (XC_VM: http://panel:port/admin); "
        "webhook: the receiver's URL"
    )
    secret: Secret | None = Field(
        default=None,
        description="Xtream: the panel's api_pass (required). Webhook: the signing secret "
        "(16+ characters); generated and shown once in the answer when absent",
    )
    bouquet_map: BouquetMap | None = Field(
        default=None, description="Xtream: package code → the panel's bouquet ids"
    )
    from_beginning: bool | None = Field(
        default=None,
        description="start from the first log entry (every existing subscription) rather "
        "than from now; default: true for Xtream, false for webhooks",
    )


class TargetPatch(ApiModel):
    name: Name | None = None
    url: Url | None = None
    secret: Secret | None = Field(default=None, description="a new api_pass or signing secret")
    bouquet_map: BouquetMap | None = None


class TargetOut(ApiModel):
    object: Literal["provisioning_target"] = "provisioning_target"
    id: str
    kind: Literal["xtream", "webhook"]
    name: str
    url: str
    bouquet_map: dict[str, list[int]] | None
    enabled: bool
    cursor: int = Field(description="the next log index this target reads")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: ProvisioningTargetRecord) -> TargetOut:
        return cls(
            id=r.id,
            kind=r.kind,  # the database CHECK keeps it to the two
            name=r.name,
            url=r.url,
            bouquet_map=None if r.bouquet_map is None else provisioning.bouquet_map_of(r),
            enabled=r.enabled,
            cursor=r.cursor,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class TargetCreated(TargetOut):
    secret: str | None = Field(
        description="the generated webhook signing secret, shown this once; null otherwise"
    )


class DeliveryOut(ApiModel):
    object: Literal["provisioning_delivery"] = "provisioning_delivery"
    id: str = Field(description="also the event id (Webhook-Id) receivers deduplicate on")
    target_id: str
    subscription_id: str | None = Field(
        description="the subscription concerned; null for customer-level events (wallet.*)"
    )
    event_type: str
    log_index: int = Field(description="the log entry that caused it (for syncs: the latest)")
    status: Status
    attempts: int = Field(description="attempts since it was last queued (replay resets it)")
    next_attempt_at: datetime | None = Field(description="when it is tried next, while open")
    last_error: str | None
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, r: ProvisioningDeliveryRecord) -> DeliveryOut:
        return cls(**_delivery_fields(r))


class AttemptOut(ApiModel):
    object: Literal["provisioning_attempt"] = "provisioning_attempt"
    id: str
    attempted_at: datetime
    status_code: int | None
    outcome: Literal["delivered", "retry", "rejected"]
    duration_ms: int
    response_excerpt: str
    error: str | None

    @classmethod
    def of(cls, r: ProvisioningAttemptRecord) -> AttemptOut:
        return cls(
            id=r.id,
            attempted_at=r.attempted_at,
            status_code=r.status_code,
            outcome=r.outcome,  # the database CHECK keeps it to the three
            duration_ms=r.duration_ms,
            response_excerpt=r.response_excerpt,
            error=r.error,
        )


class DeliveryDetailOut(DeliveryOut):
    attempt_log: list[AttemptOut] = Field(description="every attempt, oldest first")


def _delivery_fields(r: ProvisioningDeliveryRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "target_id": r.target_id,
        "subscription_id": r.subscription_id,
        "event_type": r.event_type,
        "log_index": r.log_index,
        "status": r.status,
        "attempts": r.attempts,
        "next_attempt_at": r.next_attempt_at if r.status in provisioning.OPEN_STATUSES else None,
        "last_error": r.last_error,
        "payload": json.loads(r.payload),
        "created_at": r.created_at,
        "delivered_at": r.delivered_at,
    }


def _sealer(services: AppServices) -> Sealer:
    if services.sealer is None:
        raise Unavailable("provisioning.unavailable", "this server keeps no secret key")
    return services.sealer


# -- targets ----------------------------------------------------------------------------------
@router.post("/v1/provisioning/targets", status_code=201, response_model=TargetCreated)
def create_target(body: TargetIn, caller: AdminWrite, services: Services) -> TargetCreated:
    """Connect an Xtream panel or a webhook receiver."""
    sealer, rnd = _sealer(services), services.random_bytes
    record, secret = write(
        services,
        caller,
        lambda u, c: provisioning.create_target(
            u,
            c,
            sealer,
            rnd,
            body.kind,
            body.name,
            body.url,
            body.secret,
            body.bouquet_map,
            from_beginning=body.from_beginning,
        ),
    )
    return TargetCreated(**TargetOut.of(record).model_dump(exclude={"object"}), secret=secret)


@router.get("/v1/provisioning/targets", response_model=ListResponse[TargetOut])
def list_targets(page: Pagination, caller: ReadAccess, services: Services) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: provisioning.list_targets(u, c, page.limit, page.starting_after),
    )
    return ListResponse.of(records, TargetOut.of)


@router.get("/v1/provisioning/targets/{target_id}", response_model=TargetOut)
def get_target(target_id: ResourceId, caller: ReadAccess, services: Services) -> Any:
    return TargetOut.of(
        read(services, caller, lambda u, c: provisioning.get_target(u, c, target_id))
    )


@router.patch("/v1/provisioning/targets/{target_id}", response_model=TargetOut)
def update_target(
    target_id: ResourceId, body: TargetPatch, caller: AdminWrite, services: Services
) -> Any:
    """Rename, move, re-key or re-map; replay rejected deliveries after fixing a mapping."""
    sealer = _sealer(services)
    record = write(
        services,
        caller,
        lambda u, c: provisioning.update_target(
            u,
            c,
            sealer,
            target_id,
            name=body.name,
            url=body.url,
            secret=body.secret,
            bouquet_map=body.bouquet_map,
        ),
    )
    return TargetOut.of(record)


@router.post("/v1/provisioning/targets/{target_id}/disable", response_model=TargetOut)
def disable_target(target_id: ResourceId, caller: AdminWrite, services: Services) -> Any:
    """Stop following and sending; enabled again, the target catches up."""
    record = write(services, caller, lambda u, c: provisioning.set_enabled(u, c, target_id, False))
    return TargetOut.of(record)


@router.post("/v1/provisioning/targets/{target_id}/enable", response_model=TargetOut)
def enable_target(target_id: ResourceId, caller: AdminWrite, services: Services) -> Any:
    record = write(services, caller, lambda u, c: provisioning.set_enabled(u, c, target_id, True))
    return TargetOut.of(record)


# -- deliveries -------------------------------------------------------------------------------
@router.get("/v1/provisioning/deliveries", response_model=ListResponse[DeliveryOut])
def list_deliveries(
    page: Pagination,
    caller: ReadAccess,
    services: Services,
    status: Annotated[Status | None, Query()] = None,
    target_id: IdFilter = None,
    subscription_id: IdFilter = None,
) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: provisioning.list_deliveries(
            u, c, page.limit, page.starting_after, status, target_id, subscription_id
        ),
    )
    return ListResponse.of(records, DeliveryOut.of)


@router.get("/v1/provisioning/deliveries/{delivery_id}", response_model=DeliveryDetailOut)
def get_delivery(delivery_id: ResourceId, caller: ReadAccess, services: Services) -> Any:
    record, attempts = read(
        services, caller, lambda u, c: provisioning.delivery_with_attempts(u, c, delivery_id)
    )
    return DeliveryDetailOut(
        **_delivery_fields(record), attempt_log=[AttemptOut.of(a) for a in attempts]
    )


@router.post("/v1/provisioning/deliveries/{delivery_id}/replay", response_model=DeliveryOut)
def replay_delivery(delivery_id: ResourceId, caller: AdminWrite, services: Services) -> Any:
    """Queue a delivered, dead or rejected delivery again (a failed one: due now)."""
    now = services.system_clock.now()  # deliveries run on real time, not a test clock
    record = write(services, caller, lambda u, c: provisioning.replay(u, c, delivery_id, now))
    return DeliveryOut.of(record)
