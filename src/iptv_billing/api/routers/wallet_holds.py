"""Wallet holds: two-phase charging of prepaid balances (reserve, then post or void)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import Field

from iptv_billing.api.deps import AdminWrite, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.money import MoneyIn, MoneyOut
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.wallet_holds import MAX_TTL, HoldStatus
from iptv_billing.services import wallet_holds
from iptv_billing.services.records import WalletHoldRecord

router = APIRouter(route_class=IdempotentRoute, tags=["wallets"])
Purpose = Literal["usage", "ppv", "rental", "purchase"]  # = domain PURPOSES (unit-tested)


class HoldIn(ApiModel):
    amount: MoneyIn
    purpose: Purpose
    expires_in_seconds: int | None = Field(
        default=None,
        ge=1,
        le=int(MAX_TTL.total_seconds()),
        description="how long the hold lasts unless posted or voided (default 15 minutes)",
    )
    reference: str | None = Field(default=None, max_length=200, examples=["session-8812"])
    description: str = Field(default="", max_length=500)


class PostIn(ApiModel):
    amount: MoneyIn | None = Field(
        default=None, description="what to charge, at most the hold; the whole hold if absent"
    )


class HoldOut(ApiModel):
    object: Literal["wallet_hold"] = "wallet_hold"
    id: str
    customer_id: str
    wallet_id: str
    amount: MoneyOut
    posted: MoneyOut
    status: HoldStatus
    purpose: str
    reference: str | None
    description: str
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None
    subscription_id: str | None = Field(
        description="a streaming session's hold: the subscription whose metered viewing it "
        "reserves for (charged by a usage invoice it pays)"
    )
    period_start: datetime | None = Field(description="the metered period it reserves for")

    @classmethod
    def of(cls, r: WalletHoldRecord) -> HoldOut:
        return cls(
            id=r.id,
            customer_id=r.customer_id,
            wallet_id=r.wallet_id,
            amount=MoneyOut.from_minor(r.amount_minor, r.currency),
            posted=MoneyOut.from_minor(r.posted_minor, r.currency),
            status=HoldStatus(r.status),
            purpose=r.purpose,
            reference=r.reference,
            description=r.description,
            created_at=r.created_at,
            expires_at=r.expires_at,
            resolved_at=r.resolved_at,
            subscription_id=r.subscription_id,
            period_start=r.period_start,
        )


@router.post("/v1/customers/{customer_id}/wallet/holds", status_code=201, response_model=HoldOut)
def place(customer_id: ResourceId, body: HoldIn, caller: AdminWrite, services: Services) -> HoldOut:
    """Reserve part of the prepaid balance; 402 when the available balance does not cover it."""
    cmd = wallet_holds.PlaceHold(
        customer_id,
        body.amount.to_money(),
        body.purpose,
        body.expires_in_seconds,
        body.reference,
        body.description,
    )
    return HoldOut.of(write(services, caller, lambda u, c: wallet_holds.place_hold(u, c, cmd)))


@router.get("/v1/customers/{customer_id}/wallet/holds", response_model=ListResponse[HoldOut])
def list_holds(
    customer_id: ResourceId,
    page: Pagination,
    caller: ReadAccess,
    services: Services,
    status: Annotated[HoldStatus | None, Query()] = None,
) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: wallet_holds.holds_of(
            u, c, customer_id, page.limit, page.starting_after, status
        ),
    )
    return ListResponse.of(records, HoldOut.of)


@router.get("/v1/wallet-holds/{hold_id}", response_model=HoldOut)
def get(hold_id: ResourceId, caller: ReadAccess, services: Services) -> HoldOut:
    return HoldOut.of(read(services, caller, lambda u, c: wallet_holds.get_hold(u, c, hold_id)))


@router.post("/v1/wallet-holds/{hold_id}/post", response_model=HoldOut)
def post(
    hold_id: ResourceId,
    caller: AdminWrite,
    services: Services,
    body: Annotated[PostIn | None, Body()] = None,
) -> HoldOut:
    """Charge the hold (or part of it) and release the rest; 409 if it already ended."""
    amount = None if body is None or body.amount is None else body.amount.to_money()
    return HoldOut.of(
        write(services, caller, lambda u, c: wallet_holds.post_hold(u, c, hold_id, amount))
    )


@router.post("/v1/wallet-holds/{hold_id}/void", response_model=HoldOut)
def void(hold_id: ResourceId, caller: AdminWrite, services: Services) -> HoldOut:
    """Release the whole hold; 409 if it already ended."""
    return HoldOut.of(write(services, caller, lambda u, c: wallet_holds.void_hold(u, c, hold_id)))
