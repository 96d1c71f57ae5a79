"""VOD: the operator's catalog of items and subscribers' rentals of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import Field

from iptv_billing.api.deps import AdminWrite, AppServices, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.money import MoneyIn, MoneyOut
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.vod import MAX_RENTAL_HOURS, RentalTerms
from iptv_billing.services import vod
from iptv_billing.services.access import Principal
from iptv_billing.services.vod_records import VodItemRecord, VodRentalRecord

router = APIRouter(route_class=IdempotentRoute, tags=["vod"])
Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", examples=["big-movie"])]


class RentalTermsIn(ApiModel):
    prices: list[MoneyIn] = Field(min_length=1, max_length=50, description="one per currency")
    hours: int = Field(ge=1, le=MAX_RENTAL_HOURS, description="how long a rental lasts")

    def to_domain(self) -> RentalTerms:
        return RentalTerms(tuple(p.to_money() for p in self.prices), self.hours)


class ItemIn(ApiModel):
    code: Code
    name: str = Field(min_length=1, max_length=200)
    source_url: str = Field(
        max_length=1000,
        pattern=r"^(https?|rtmp|rtsp|srt)://[^\s]+$",
        description="where entitled players are sent; `{user}` and `{token}` may appear in it",
    )
    category: str = Field(default="Movies", min_length=1, max_length=100)
    poster_url: str | None = Field(default=None, max_length=1000, pattern=r"^https?://[^\s]+$")
    year: int | None = Field(default=None, ge=1870, le=2999)
    duration_minutes: int | None = Field(default=None, ge=1, le=1440)
    packages: list[Code] = Field(
        default_factory=list,
        max_length=50,
        description="package codes whose subscribers watch it without renting",
    )
    rental: RentalTermsIn | None = Field(default=None, description="absent: not for rent")

    def command(self) -> vod.CreateItem:
        return vod.CreateItem(
            code=self.code,
            name=self.name,
            source_url=self.source_url,
            category=self.category,
            poster_url=self.poster_url,
            year=self.year,
            duration_minutes=self.duration_minutes,
            packages=tuple(self.packages),
            rental=None if self.rental is None else self.rental.to_domain(),
        )


class RentalTermsOut(ApiModel):
    prices: list[MoneyOut]
    hours: int


class ItemOut(ApiModel):
    object: Literal["vod_item"] = "vod_item"
    id: str
    code: str
    name: str
    stream_id: int = Field(description="the Xtream number (`/movie/…/{stream_id}.mp4`)")
    source_url: str
    category: str
    poster_url: str | None
    year: int | None
    duration_minutes: int | None
    packages: list[str]
    rental: RentalTermsOut | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: VodItemRecord) -> ItemOut:
        i = r.item
        rental = None
        if i.rental is not None:
            prices = [MoneyOut.of(p) for p in i.rental.prices]
            rental = RentalTermsOut(prices=prices, hours=i.rental.hours)
        return cls(
            id=r.id,
            code=i.code,
            name=i.name,
            stream_id=r.stream_id,
            source_url=i.source_url,
            category=i.category,
            poster_url=i.poster_url,
            year=i.year,
            duration_minutes=i.duration_minutes,
            packages=list(i.packages),
            rental=rental,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class PaymentIn(ApiModel):
    method: Literal["wallet", "card", "manual", "bank_transfer"]
    reference: str | None = Field(
        default=None, min_length=1, max_length=200, description="required but for wallet"
    )


class RentalIn(ApiModel):
    subscription_id: str = Field(max_length=64)
    currency: str | None = Field(
        default=None, min_length=3, max_length=3, description="default: the subscription's"
    )
    payment: PaymentIn


class RentalOut(ApiModel):
    object: Literal["vod_rental"] = "vod_rental"
    id: str
    item_id: str
    subscription_id: str
    customer_id: str
    amount: MoneyOut
    method: str
    reference: str | None
    status: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    refunded_at: datetime | None

    @classmethod
    def of(cls, r: VodRentalRecord) -> RentalOut:
        return cls(
            id=r.id,
            item_id=r.item_id,
            subscription_id=r.subscription_id,
            customer_id=r.customer_id,
            amount=MoneyOut.from_minor(r.amount_minor, r.currency),
            method=r.method,
            reference=r.reference,
            status=r.status,
            starts_at=r.starts_at,
            ends_at=r.ends_at,
            created_at=r.created_at,
            refunded_at=r.refunded_at,
        )


def _learn(services: AppServices, caller: Principal) -> None:
    """This process's authorization index learns of a rental or refund now (other processes
    follow the log within a second). New items reach it through the catalog's fingerprint."""
    if services.stream is not None:
        services.stream.index.follow_now(caller.tenant_id)


# -- items -------------------------------------------------------------------------------------
@router.post("/v1/vod/items", status_code=201, response_model=ItemOut)
def create_item(body: ItemIn, caller: AdminWrite, services: Services) -> ItemOut:
    cmd = body.command()
    return ItemOut.of(write(services, caller, lambda u, c: vod.create_item(u, c, cmd)))


@router.get("/v1/vod/items", response_model=ListResponse[ItemOut])
def list_items(page: Pagination, caller: ReadAccess, services: Services) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.vod.list_items(c.tenant_id, page.limit, page.starting_after),
    )
    return ListResponse.of(records, ItemOut.of)


@router.get("/v1/vod/items/{item_id}", response_model=ItemOut)
def get_item(item_id: ResourceId, caller: ReadAccess, services: Services) -> ItemOut:
    return ItemOut.of(read(services, caller, lambda u, c: vod.get_item(u, c, item_id)))


# -- rentals -----------------------------------------------------------------------------------
@router.post(
    "/v1/vod/items/{item_id}/rentals",
    status_code=201,
    response_model=RentalOut,
    responses={402: {"description": "the wallet does not cover the price"}},
)
def rent(item_id: ResourceId, body: RentalIn, caller: AdminWrite, services: Services) -> RentalOut:
    """Rent the item for a subscription, from now for the item's rental hours: from its
    customer's wallet, or record an external payment (card, manual, bank transfer) with its
    reference. Refused (409 `vod.already_rented`) while a rental of it is still running."""
    cmd = vod.Rent(
        item_id, body.subscription_id, body.payment.method, body.currency, body.payment.reference
    )
    rented = write(services, caller, lambda u, c: vod.rent(u, c, cmd))
    _learn(services, caller)
    return RentalOut.of(rented)


@router.get("/v1/subscriptions/{subscription_id}/rentals", response_model=ListResponse[RentalOut])
def subscription_rentals(
    subscription_id: ResourceId, page: Pagination, caller: ReadAccess, services: Services
) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: vod.rentals_of_subscription(
            u, c, subscription_id, page.limit, page.starting_after
        ),
    )
    return ListResponse.of(records, RentalOut.of)


@router.get("/v1/vod/rentals/{rental_id}", response_model=RentalOut)
def get_rental(rental_id: ResourceId, caller: ReadAccess, services: Services) -> RentalOut:
    return RentalOut.of(read(services, caller, lambda u, c: vod.get_rental(u, c, rental_id)))


@router.post("/v1/vod/rentals/{rental_id}/refund", response_model=RentalOut)
def refund(rental_id: ResourceId, caller: AdminWrite, services: Services) -> RentalOut:
    """Refund a rental to where its money came from (the wallet, or the payment method),
    once; the right to watch ends with it."""
    refunded = write(services, caller, lambda u, c: vod.refund_rental(u, c, rental_id))
    _learn(services, caller)
    return RentalOut.of(refunded)
