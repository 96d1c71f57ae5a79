"""Invoices: drafts, finalization, void, uncollectible, payment; listing with filters."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from iptv_billing.api.deps import AdminWrite, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.money import MoneyIn, MoneyOut
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import IdFilter, ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.invoice import InvoiceLine, LineKind, format_invoice_number, line
from iptv_billing.services import invoicing
from iptv_billing.services.records import InvoiceRecord

router = APIRouter(route_class=IdempotentRoute, tags=["invoices"])
Status = Literal["draft", "finalized", "paid", "void", "uncollectible"]


class LineIn(ApiModel):
    description: str = Field(min_length=1, max_length=500)
    unit_amount: MoneyIn
    quantity: int = Field(default=1, ge=1, le=100_000)


class InvoiceIn(ApiModel):
    customer_id: str = Field(max_length=64)
    currency: str = Field(min_length=3, max_length=3)
    lines: list[LineIn] = Field(min_length=1, max_length=invoicing.MAX_LINES)


class FinalizeIn(ApiModel):
    due_days: int = Field(default=0, ge=0, le=90)


class LineOut(ApiModel):
    kind: str
    description: str
    quantity: int
    unit_amount: MoneyOut
    amount: MoneyOut
    period_start: datetime | None
    period_end: datetime | None

    @classmethod
    def of(cls, item: InvoiceLine) -> LineOut:
        period = item.period
        return cls(
            kind=item.kind.value,
            description=item.description,
            quantity=item.quantity,
            unit_amount=MoneyOut.of(item.unit_amount),
            amount=MoneyOut.of(item.amount),
            period_start=period.start if period else None,
            period_end=period.end if period else None,
        )


class InvoiceOut(ApiModel):
    object: Literal["invoice"] = "invoice"
    id: str
    number: str | None
    status: str
    customer_id: str
    subscription_id: str | None
    terms_hash: str | None
    billing_reason: str
    currency: str
    subtotal: MoneyOut
    total: MoneyOut
    amount_paid: MoneyOut
    amount_due: MoneyOut
    period_start: datetime | None
    period_end: datetime | None
    created_at: datetime
    finalized_at: datetime | None
    due_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    lines: list[LineOut] | None = Field(default=None, description="present on single reads")

    @classmethod
    def of(cls, r: InvoiceRecord) -> InvoiceOut:
        money = partial(_money, currency=r.currency)
        number = format_invoice_number(r.series, r.number) if r.number is not None else None
        return cls(
            id=r.id,
            number=number,
            status=r.status,
            customer_id=r.customer_id,
            subscription_id=r.subscription_id,
            terms_hash=r.terms_hash,
            billing_reason=r.billing_reason,
            currency=r.currency,
            subtotal=money(r.subtotal_minor),
            total=money(r.total_minor),
            amount_paid=money(r.amount_paid_minor),
            amount_due=money(r.amount_due_minor),
            period_start=r.period_start,
            period_end=r.period_end,
            created_at=r.created_at,
            finalized_at=r.finalized_at,
            due_at=r.due_at,
            paid_at=r.paid_at,
            voided_at=r.voided_at,
            lines=[LineOut.of(item) for item in r.lines] if r.lines else None,
        )


@router.post("/v1/invoices", status_code=201, response_model=InvoiceOut)
def create_draft(body: InvoiceIn, caller: AdminWrite, services: Services) -> InvoiceOut:
    """A one-off draft invoice; it gets its number when finalized."""
    lines = tuple(
        line(LineKind.ADJUSTMENT, item.description, item.unit_amount.to_money(), item.quantity)
        for item in body.lines
    )
    draft = invoicing.InvoiceDraft(body.customer_id, body.currency, lines)
    return InvoiceOut.of(write(services, caller, lambda u, c: invoicing.create_draft(u, c, draft)))


@router.get("/v1/invoices", response_model=ListResponse[InvoiceOut])
def list_invoices(
    page: Pagination,
    caller: ReadAccess,
    services: Services,
    customer_id: IdFilter = None,
    subscription_id: IdFilter = None,
    status: Annotated[Status | None, Query()] = None,
) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.invoices.list(
            c.tenant_id,
            page.limit,
            page.starting_after,
            customer_id=customer_id,
            status=status,
            subscription_id=subscription_id,
        ),
    )
    return ListResponse.of(records, InvoiceOut.of)


@router.get("/v1/invoices/{invoice_id}", response_model=InvoiceOut)
def get_invoice(invoice_id: ResourceId, caller: ReadAccess, services: Services) -> InvoiceOut:
    return InvoiceOut.of(
        read(services, caller, lambda u, c: invoicing.get_invoice(u, c, invoice_id))
    )


@router.post("/v1/invoices/{invoice_id}/finalize", response_model=InvoiceOut)
def finalize(
    invoice_id: ResourceId, caller: AdminWrite, services: Services, body: FinalizeIn | None = None
) -> InvoiceOut:
    days = body.due_days if body else 0
    return InvoiceOut.of(
        write(services, caller, lambda u, c: invoicing.finalize(u, c, invoice_id, days))
    )


@router.post("/v1/invoices/{invoice_id}/void", response_model=InvoiceOut)
def void(invoice_id: ResourceId, caller: AdminWrite, services: Services) -> InvoiceOut:
    return InvoiceOut.of(write(services, caller, lambda u, c: invoicing.void(u, c, invoice_id)))


@router.post("/v1/invoices/{invoice_id}/mark-uncollectible", response_model=InvoiceOut)
def mark_uncollectible(
    invoice_id: ResourceId, caller: AdminWrite, services: Services
) -> InvoiceOut:
    return InvoiceOut.of(
        write(services, caller, lambda u, c: invoicing.mark_uncollectible(u, c, invoice_id))
    )


def _money(minor: int, currency: str) -> MoneyOut:
    return MoneyOut.from_minor(minor, currency)
