"""Subscriptions and their actions: change plan, pause, resume, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from iptv_billing.api.deps import AdminWrite, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import IdFilter, ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.routers.invoices import InvoiceOut
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.proration import ProrationMode
from iptv_billing.services import lookup, subscriptions
from iptv_billing.services.records import SubscriptionRecord
from iptv_billing.services.subscriptions import SubscriptionChange

router = APIRouter(route_class=IdempotentRoute, tags=["subscriptions"])
Status = Literal["trialing", "active", "past_due", "paused", "suspended", "cancelled", "expired"]


class AddOnQuantity(ApiModel):
    code: str = Field(max_length=64)
    quantity: int = Field(default=1, ge=1, le=100)


class SubscriptionIn(ApiModel):
    customer_id: str = Field(max_length=64)
    plan_id: str = Field(max_length=64)
    trial: bool = Field(default=True, description="start with the plan's trial, if it has one")
    addons: list[AddOnQuantity] = Field(default_factory=list, max_length=20)


class ChangePlanIn(ApiModel):
    plan_id: str = Field(max_length=64)
    proration: Literal["none", "prorate_now", "at_period_end"] = Field(
        description="none: switch now, no charge; prorate_now: credit the unused part of the "
        "old plan and charge the rest of the period on the new one; at_period_end: switch at "
        "the next renewal"
    )


class AddOnsIn(ApiModel):
    addons: list[AddOnQuantity] = Field(
        max_length=20, description="the full set of add-ons wanted; [] drops them all"
    )
    proration: Literal["none", "prorate_now"] = Field(
        default="prorate_now",
        description="prorate_now: charge added units and credit dropped ones for the rest of "
        "the period; none: the new quantities count from the next renewal",
    )


class CancelIn(ApiModel):
    at_period_end: bool = True


class SubscriptionOut(ApiModel):
    object: Literal["subscription"] = "subscription"
    id: str
    customer_id: str
    plan_id: str
    terms_id: str
    terms_hash: str
    pending_terms_id: str | None
    status: str
    currency: str
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None
    cancel_at_period_end: bool
    addons: list[AddOnQuantity]
    paused_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    latest_invoice: InvoiceOut | None = None

    @classmethod
    def of(cls, r: SubscriptionRecord) -> SubscriptionOut:
        s = r.state
        return cls(
            id=r.id,
            customer_id=r.customer_id,
            plan_id=r.plan_id,
            terms_id=r.terms_id,
            terms_hash=s.terms_hash,
            pending_terms_id=r.pending_terms_id,
            status=s.status.value,
            currency=s.currency,
            current_period_start=s.current_period.start,
            current_period_end=s.current_period.end,
            trial_end=s.trial_end,
            cancel_at_period_end=s.cancel_at_period_end,
            addons=[AddOnQuantity(code=c, quantity=q) for c, q in s.addons],
            paused_at=s.paused_at,
            ended_at=s.ended_at,
            created_at=r.created_at,
        )

    @classmethod
    def of_change(cls, change: SubscriptionChange) -> SubscriptionOut:
        out = cls.of(change.subscription)
        out.latest_invoice = InvoiceOut.of(change.invoice) if change.invoice else None
        return out


@router.post("/v1/subscriptions", status_code=201, response_model=SubscriptionOut)
def create(body: SubscriptionIn, caller: AdminWrite, services: Services) -> SubscriptionOut:
    cmd = subscriptions.CreateSubscription(
        body.customer_id, body.plan_id, body.trial, tuple((a.code, a.quantity) for a in body.addons)
    )
    return SubscriptionOut.of_change(
        write(services, caller, lambda u, c: subscriptions.create_subscription(u, c, cmd))
    )


@router.get("/v1/subscriptions", response_model=ListResponse[SubscriptionOut])
def list_subscriptions(
    page: Pagination,
    caller: ReadAccess,
    services: Services,
    customer_id: IdFilter = None,
    status: Annotated[Status | None, Query()] = None,
) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.subscriptions.list(
            c.tenant_id, page.limit, page.starting_after, customer_id=customer_id, status=status
        ),
    )
    return ListResponse.of(records, SubscriptionOut.of)


@router.get("/v1/subscriptions/{subscription_id}", response_model=SubscriptionOut)
def get(subscription_id: ResourceId, caller: ReadAccess, services: Services) -> SubscriptionOut:
    return SubscriptionOut.of(
        read(services, caller, lambda u, c: lookup.get_subscription(u, c, subscription_id))
    )


@router.post("/v1/subscriptions/{subscription_id}/change-plan", response_model=SubscriptionOut)
def change_plan(
    subscription_id: ResourceId, body: ChangePlanIn, caller: AdminWrite, services: Services
) -> SubscriptionOut:
    cmd = subscriptions.ChangePlan(body.plan_id, ProrationMode(body.proration))
    return SubscriptionOut.of_change(
        write(services, caller, lambda u, c: subscriptions.change_plan(u, c, subscription_id, cmd))
    )


@router.post("/v1/subscriptions/{subscription_id}/addons", response_model=SubscriptionOut)
def change_addons(
    subscription_id: ResourceId, body: AddOnsIn, caller: AdminWrite, services: Services
) -> SubscriptionOut:
    """Buy or drop add-ons such as extra connections in the middle of a period."""
    wanted = tuple((a.code, a.quantity) for a in body.addons)
    cmd = subscriptions.ChangeAddons(wanted, ProrationMode(body.proration))
    return SubscriptionOut.of_change(
        write(
            services, caller, lambda u, c: subscriptions.change_addons(u, c, subscription_id, cmd)
        )
    )


@router.post("/v1/subscriptions/{subscription_id}/pause", response_model=SubscriptionOut)
def pause(subscription_id: ResourceId, caller: AdminWrite, services: Services) -> SubscriptionOut:
    return SubscriptionOut.of_change(
        write(services, caller, lambda u, c: subscriptions.pause(u, c, subscription_id))
    )


@router.post("/v1/subscriptions/{subscription_id}/resume", response_model=SubscriptionOut)
def resume(subscription_id: ResourceId, caller: AdminWrite, services: Services) -> SubscriptionOut:
    return SubscriptionOut.of_change(
        write(services, caller, lambda u, c: subscriptions.resume(u, c, subscription_id))
    )


@router.post("/v1/subscriptions/{subscription_id}/cancel", response_model=SubscriptionOut)
def cancel(
    subscription_id: ResourceId, body: CancelIn, caller: AdminWrite, services: Services
) -> SubscriptionOut:
    return SubscriptionOut.of_change(
        write(
            services,
            caller,
            lambda u, c: subscriptions.cancel(u, c, subscription_id, body.at_period_end),
        )
    )
