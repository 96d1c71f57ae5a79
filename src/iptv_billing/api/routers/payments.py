"""Payments: record one, pay an invoice (wallet, manual, bank transfer, card), refresh a
pending card payment, list."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from iptv_billing.api.deps import AdminWrite, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.money import MoneyIn, MoneyOut
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import IdFilter, ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.routers.invoices import InvoiceOut
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.errors import InvalidInput, InvariantViolated
from iptv_billing.domain.money import Money
from iptv_billing.services import invoicing, payments
from iptv_billing.services.providers import PaymentProvider
from iptv_billing.services.records import InvoiceRecord, PaymentRecord

router = APIRouter(route_class=IdempotentRoute, tags=["payments"])


class PaymentIn(ApiModel):
    customer_id: str = Field(max_length=64)
    amount: MoneyIn
    method: Literal["manual", "bank_transfer"]
    invoice_id: str | None = Field(default=None, max_length=64)
    reference: str | None = Field(default=None, max_length=200)


class PayInvoiceIn(ApiModel):
    method: Literal["wallet", "manual", "bank_transfer", "card"]
    amount: MoneyIn | None = Field(default=None, description="partial payment; default: all due")
    payment_method: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^pm_[A-Za-z0-9_]+$",
        description="the provider's payment-method token (card only); never card numbers",
    )
    reference: str | None = Field(default=None, max_length=200)


class PaymentOut(ApiModel):
    object: Literal["payment"] = "payment"
    id: str
    customer_id: str
    invoice_id: str | None
    method: str
    status: str
    amount: MoneyOut
    applied: MoneyOut
    credited_to_wallet: MoneyOut
    provider: str | None
    provider_payment_id: str | None
    failure_code: str | None
    reference: str | None
    created_at: datetime
    updated_at: datetime
    invoice: InvoiceOut | None = None

    @classmethod
    def of(cls, r: PaymentRecord) -> PaymentOut:
        money = partial(_money, currency=r.currency)
        return cls(
            id=r.id,
            customer_id=r.customer_id,
            invoice_id=r.invoice_id,
            method=r.method,
            status=r.status,
            amount=money(r.amount_minor),
            applied=money(r.applied_minor),
            credited_to_wallet=money(r.excess_minor),
            provider=r.provider,
            provider_payment_id=r.provider_payment_id,
            failure_code=r.failure_code,
            reference=r.reference,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


def _provider(request: Request) -> PaymentProvider:
    provider: PaymentProvider = request.app.state.payment_provider
    return provider


@router.post("/v1/payments", status_code=201, response_model=PaymentOut)
def record_payment(body: PaymentIn, caller: AdminWrite, services: Services) -> PaymentOut:
    """Record money received outside the platform; beyond what the invoice owes goes to the
    customer's wallet."""
    cmd = payments.RecordPayment(
        body.customer_id, body.amount.to_money(), body.method, body.invoice_id, body.reference
    )
    return PaymentOut.of(write(services, caller, lambda u, c: payments.record_payment(u, c, cmd)))


@router.post("/v1/invoices/{invoice_id}/pay", response_model=PaymentOut)
def pay_invoice(
    invoice_id: ResourceId,
    body: PayInvoiceIn,
    request: Request,
    caller: AdminWrite,
    services: Services,
) -> PaymentOut:
    provider = _provider(request)
    key = request.headers.get("idempotency-key") or services.ids.new("req")

    def work(u: Any, c: Any) -> PaymentOut:
        invoice = invoicing.get_invoice(u, c, invoice_id, for_update=True)
        if body.method == "wallet":
            paid = invoicing.settle_from_wallet(u, c, invoice)[1]
            if paid is None:  # required=True raises instead of returning no payment
                raise InvariantViolated("a required wallet payment returned no payment")
        elif body.method == "card":
            if not body.payment_method:
                raise InvalidInput("payment.method_required", "a card payment needs payment_method")
            amount = body.amount.to_money() if body.amount else None
            card = payments.ChargeCard(invoice_id, body.payment_method, key, amount)
            paid = payments.charge_card(u, c, provider, card)
        else:
            amount = body.amount.to_money() if body.amount else _due(invoice)
            paid = payments.record_payment(
                u,
                c,
                payments.RecordPayment(
                    invoice.customer_id, amount, body.method, invoice_id, body.reference
                ),
            )
        out = PaymentOut.of(paid)
        out.invoice = InvoiceOut.of(invoicing.get_invoice(u, c, invoice_id))
        return out

    return write(services, caller, work)


def _due(invoice: InvoiceRecord) -> Money:
    return Money.from_minor(invoice.amount_due_minor, invoice.currency)


@router.post("/v1/payments/{payment_id}/refresh", response_model=PaymentOut)
def refresh(
    payment_id: ResourceId, request: Request, caller: AdminWrite, services: Services
) -> PaymentOut:
    """Ask the provider what became of a pending card payment, and settle it."""
    provider = _provider(request)
    return PaymentOut.of(
        write(
            services, caller, lambda u, c: payments.refresh_card_payment(u, c, provider, payment_id)
        )
    )


@router.get("/v1/payments", response_model=ListResponse[PaymentOut])
def list_payments(
    page: Pagination,
    caller: ReadAccess,
    services: Services,
    customer_id: IdFilter = None,
    invoice_id: IdFilter = None,
) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.payments.list(
            c.tenant_id,
            page.limit,
            page.starting_after,
            customer_id=customer_id,
            invoice_id=invoice_id,
        ),
    )
    return ListResponse.of(records, PaymentOut.of)


@router.get("/v1/payments/{payment_id}", response_model=PaymentOut)
def get_payment(payment_id: ResourceId, caller: ReadAccess, services: Services) -> PaymentOut:
    return PaymentOut.of(
        read(services, caller, lambda u, c: payments.get_payment(u, c, payment_id))
    )


def _money(minor: int, currency: str) -> MoneyOut:
    return MoneyOut.from_minor(minor, currency)
