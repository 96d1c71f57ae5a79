"""The upcoming invoice of a subscription: what its period-end invoice would hold right now."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import Field

from iptv_billing.api.deps import ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.money import MoneyOut
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import read
from iptv_billing.api.routers.invoices import LineOut
from iptv_billing.api.schemas import ApiModel
from iptv_billing.services import usage_invoices
from iptv_billing.services.usage_invoices import UpcomingInvoice

router = APIRouter(route_class=IdempotentRoute, tags=["subscriptions"])


class UpcomingInvoiceOut(ApiModel):
    object: Literal["upcoming_invoice"] = "upcoming_invoice"
    subscription_id: str
    customer_id: str
    lines: list[LineOut]
    subtotal: MoneyOut
    total: MoneyOut
    invoiced_at: datetime | None = Field(
        description="when it will be issued: the current period's end (null: never again)"
    )
    period_start: datetime
    period_end: datetime

    @classmethod
    def of(cls, r: UpcomingInvoice) -> UpcomingInvoiceOut:
        return cls(
            subscription_id=r.subscription_id,
            customer_id=r.customer_id,
            lines=[LineOut.of(item) for item in r.lines],
            subtotal=MoneyOut.from_minor(r.subtotal_minor, r.currency),
            total=MoneyOut.from_minor(r.total_minor, r.currency),
            invoiced_at=r.invoiced_at.end if r.invoiced_at else None,
            period_start=r.period.start,
            period_end=r.period.end,
        )


@router.get(
    "/v1/subscriptions/{subscription_id}/upcoming-invoice", response_model=UpcomingInvoiceOut
)
def upcoming_invoice(
    subscription_id: ResourceId, caller: ReadAccess, services: Services
) -> UpcomingInvoiceOut:
    """A preview, stored nowhere: the next fee and the period's usage not billed yet, rated
    as the billing run would rate it if the period ended now."""
    return UpcomingInvoiceOut.of(
        read(services, caller, lambda u, c: usage_invoices.upcoming(u, c, subscription_id))
    )
