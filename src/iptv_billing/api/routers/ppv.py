"""Pay-per-view: the operator's events, subscribers' purchases, cancellations and refunds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, Field

from iptv_billing.api.deps import AdminWrite, AppServices, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.money import MoneyIn, MoneyOut
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import Work, read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.ppv import SubscriberDiscount, parse_percent
from iptv_billing.services import ppv, ppv_refunds
from iptv_billing.services.access import Principal
from iptv_billing.services.ppv_records import PpvEventRecord, PpvPurchaseRecord

router = APIRouter(route_class=IdempotentRoute, tags=["pay-per-view"])
Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", examples=["final-2030"])]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", examples=["FR"])]
Percent = Annotated[str, Field(pattern=r"^\d{1,3}(\.\d{1,4})?$", examples=["20"])]


class DiscountIn(ApiModel):
    """For subscribers holding ``package_code``: ``percent`` off, or fixed ``prices``."""

    package_code: Code
    percent: Percent | None = None
    prices: list[MoneyIn] = Field(default_factory=list, max_length=50)

    def to_domain(self) -> SubscriberDiscount:
        prices = tuple(p.to_money() for p in self.prices)
        return SubscriberDiscount(self.package_code, parse_percent(self.percent), prices)


class DiscountOut(ApiModel):
    package_code: str
    percent: str | None
    prices: list[MoneyOut]

    @classmethod
    def of(cls, d: SubscriberDiscount) -> DiscountOut:
        percent = None if d.percent is None else format(d.percent, "f")
        return cls(
            package_code=d.package_code, percent=percent, prices=[MoneyOut.of(p) for p in d.prices]
        )


class EventIn(ApiModel):
    code: Code
    name: str = Field(min_length=1, max_length=200)
    channel_id: str = Field(max_length=64, description="the channel the event airs on")
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    prices: list[MoneyIn] = Field(min_length=1, max_length=50, description="one per currency")
    sale_starts_at: AwareDatetime | None = Field(default=None, description="default: now")
    sale_ends_at: AwareDatetime | None = Field(default=None, description="default: ends_at")
    replay_hours: int = Field(default=0, ge=0, le=720, description="watchable after the end")
    blackout_countries: list[Country] = Field(default_factory=list, max_length=250)
    capacity: int | None = Field(default=None, ge=1, le=1_000_000_000)
    subscriber_discounts: list[DiscountIn] = Field(default_factory=list, max_length=50)

    def command(self) -> ppv.CreateEvent:
        return ppv.CreateEvent(
            code=self.code,
            name=self.name,
            channel_id=self.channel_id,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            prices=tuple(p.to_money() for p in self.prices),
            sale_starts_at=self.sale_starts_at,
            sale_ends_at=self.sale_ends_at,
            replay_hours=self.replay_hours,
            blackout_countries=tuple(self.blackout_countries),
            capacity=self.capacity,
            discounts=tuple(d.to_domain() for d in self.subscriber_discounts),
        )


class EventOut(ApiModel):
    object: Literal["ppv_event"] = "ppv_event"
    id: str
    code: str
    name: str
    channel_id: str
    status: str
    starts_at: datetime
    ends_at: datetime
    viewing_ends_at: datetime
    sale_starts_at: datetime | None
    sale_ends_at: datetime
    replay_hours: int
    prices: list[MoneyOut]
    blackout_countries: list[str]
    capacity: int | None
    sold: int = Field(description="purchases paid and not refunded")
    subscriber_discounts: list[DiscountOut]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: PpvEventRecord) -> EventOut:
        e = r.event
        return cls(
            id=r.id,
            code=e.code,
            name=e.name,
            channel_id=e.channel_id,
            status=e.status.value,
            starts_at=e.starts_at,
            ends_at=e.ends_at,
            viewing_ends_at=e.viewing_ends_at,
            sale_starts_at=e.sale_starts_at,
            sale_ends_at=e.sale_end,
            replay_hours=e.replay_hours,
            prices=[MoneyOut.of(p) for p in e.prices],
            blackout_countries=list(e.blackout_countries),
            capacity=e.capacity,
            sold=r.sold,
            subscriber_discounts=[DiscountOut.of(d) for d in e.discounts],
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class PaymentIn(ApiModel):
    method: Literal["wallet", "card", "manual", "bank_transfer"]
    reference: str | None = Field(
        default=None, min_length=1, max_length=200, description="required but for wallet"
    )


class PurchaseIn(ApiModel):
    subscription_id: str = Field(max_length=64)
    currency: str | None = Field(
        default=None, min_length=3, max_length=3, description="default: the subscription's"
    )
    payment: PaymentIn
    country: Country | None = Field(default=None, description="the buyer's, for blackouts")


class PurchaseOut(ApiModel):
    object: Literal["ppv_purchase"] = "ppv_purchase"
    id: str
    event_id: str
    subscription_id: str
    customer_id: str
    amount: MoneyOut
    method: str
    reference: str | None
    country: str | None
    status: str
    created_at: datetime
    refunded_at: datetime | None

    @classmethod
    def of(cls, r: PpvPurchaseRecord) -> PurchaseOut:
        return cls(
            id=r.id,
            event_id=r.event_id,
            subscription_id=r.subscription_id,
            customer_id=r.customer_id,
            amount=MoneyOut.from_minor(r.amount_minor, r.currency),
            method=r.method,
            reference=r.reference,
            country=r.country,
            status=r.status,
            created_at=r.created_at,
            refunded_at=r.refunded_at,
        )


def _learn(services: AppServices, caller: Principal) -> None:
    """This process's authorization index learns of a purchase or refund now (other
    processes follow the log within a second)."""
    if services.stream is not None:
        services.stream.index.follow_now(caller.tenant_id)


# -- events ------------------------------------------------------------------------------------
@router.post("/v1/ppv/events", status_code=201, response_model=EventOut)
def create_event(body: EventIn, caller: AdminWrite, services: Services) -> EventOut:
    cmd = body.command()
    return EventOut.of(write(services, caller, lambda u, c: ppv.create_event(u, c, cmd)))


@router.get("/v1/ppv/events", response_model=ListResponse[EventOut])
def list_events(
    page: Pagination,
    caller: ReadAccess,
    services: Services,
    status: Annotated[Literal["scheduled", "cancelled"] | None, Query()] = None,
) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.ppv.list_events(c.tenant_id, page.limit, page.starting_after, status),
    )
    return ListResponse.of(records, EventOut.of)


@router.get("/v1/ppv/events/{event_id}", response_model=EventOut)
def get_event(event_id: ResourceId, caller: ReadAccess, services: Services) -> EventOut:
    return EventOut.of(read(services, caller, lambda u, c: ppv.get_event(u, c, event_id)))


@router.post("/v1/ppv/events/{event_id}/cancel", response_model=EventOut)
def cancel_event(event_id: ResourceId, caller: AdminWrite, services: Services) -> EventOut:
    """Cancel the event and refund every buyer exactly once, in bounded transactions.
    Cancelling again finishes refunds an interruption left; it never refunds twice."""

    def transact(work: Work[Any]) -> Any:
        return write(services, caller, work)

    ppv_refunds.cancel(transact, event_id)
    ppv_refunds.finish_cancellation(transact, event_id)
    _learn(services, caller)
    return EventOut.of(read(services, caller, lambda u, c: ppv.get_event(u, c, event_id)))


# -- purchases ---------------------------------------------------------------------------------
@router.post(
    "/v1/ppv/events/{event_id}/purchases",
    status_code=201,
    response_model=PurchaseOut,
    responses={402: {"description": "the wallet does not cover the price"}},
)
def purchase(
    event_id: ResourceId, body: PurchaseIn, caller: AdminWrite, services: Services
) -> PurchaseOut:
    """Buy the event for a subscription: from its customer's wallet, or record an external
    payment (card, manual, bank transfer) with its reference."""
    cmd = ppv.Purchase(
        event_id,
        body.subscription_id,
        body.payment.method,
        body.currency,
        body.payment.reference,
        body.country,
    )
    bought = write(services, caller, lambda u, c: ppv.purchase(u, c, cmd))
    _learn(services, caller)
    return PurchaseOut.of(bought)


@router.get("/v1/ppv/events/{event_id}/purchases", response_model=ListResponse[PurchaseOut])
def event_purchases(
    event_id: ResourceId, page: Pagination, caller: ReadAccess, services: Services
) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: ppv.purchases_of_event(u, c, event_id, page.limit, page.starting_after),
    )
    return ListResponse.of(records, PurchaseOut.of)


@router.get(
    "/v1/subscriptions/{subscription_id}/purchases", response_model=ListResponse[PurchaseOut]
)
def subscription_purchases(
    subscription_id: ResourceId, page: Pagination, caller: ReadAccess, services: Services
) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: ppv.purchases_of_subscription(
            u, c, subscription_id, page.limit, page.starting_after
        ),
    )
    return ListResponse.of(records, PurchaseOut.of)


@router.get("/v1/ppv/purchases/{purchase_id}", response_model=PurchaseOut)
def get_purchase(purchase_id: ResourceId, caller: ReadAccess, services: Services) -> PurchaseOut:
    return PurchaseOut.of(read(services, caller, lambda u, c: ppv.get_purchase(u, c, purchase_id)))


@router.post("/v1/ppv/purchases/{purchase_id}/refund", response_model=PurchaseOut)
def refund(purchase_id: ResourceId, caller: AdminWrite, services: Services) -> PurchaseOut:
    """Refund one purchase to where its money came from (the wallet, or the payment method)."""
    refunded = write(services, caller, lambda u, c: ppv_refunds.refund_purchase(u, c, purchase_id))
    _learn(services, caller)
    return PurchaseOut.of(refunded)
