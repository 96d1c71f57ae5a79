"""Customers and their prepaid wallets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from iptv_billing.api.deps import AdminWrite, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.money import MoneyIn, MoneyOut
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.services import customers, wallets
from iptv_billing.services.records import CustomerRecord, WalletRecord

router = APIRouter(route_class=IdempotentRoute, tags=["customers"])
Collection = Literal["charge_wallet", "send_invoice"]


class CustomerIn(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=320, examples=["ana@example.com"])
    currency: str = Field(min_length=3, max_length=3, examples=["EUR"])
    country: str | None = Field(default=None, min_length=2, max_length=2, examples=["DE"])
    language: str = Field(default="en", max_length=35, examples=["de"])
    tax_id: str | None = Field(default=None, max_length=64)
    collection_method: Collection = "send_invoice"


class CustomerPatch(ApiModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    country: str | None = Field(default=None, min_length=2, max_length=2)
    language: str | None = Field(default=None, max_length=35)
    tax_id: str | None = Field(default=None, max_length=64)
    collection_method: Collection | None = None
    status: Literal["active", "closed"] | None = None


class CustomerOut(ApiModel):
    object: Literal["customer"] = "customer"
    id: str
    name: str
    email: str
    currency: str
    country: str | None
    language: str
    tax_id: str | None
    status: str
    collection_method: str
    created_at: datetime

    @classmethod
    def of(cls, r: CustomerRecord) -> CustomerOut:
        return cls(
            id=r.id,
            name=r.name,
            email=r.email,
            currency=r.currency,
            country=r.country,
            language=r.language,
            tax_id=r.tax_id,
            status=r.status,
            collection_method=r.collection_method,
            created_at=r.created_at,
        )


class WalletOut(ApiModel):
    object: Literal["wallet"] = "wallet"
    id: str
    customer_id: str
    balance: MoneyOut
    updated_at: datetime

    @classmethod
    def of(cls, r: WalletRecord) -> WalletOut:
        return cls(
            id=r.id,
            customer_id=r.customer_id,
            balance=MoneyOut.from_minor(r.balance_minor, r.currency),
            updated_at=r.updated_at,
        )


class TopUpIn(ApiModel):
    amount: MoneyIn
    method: Literal["manual", "bank_transfer", "card"] = "manual"


class DebitIn(ApiModel):
    amount: MoneyIn
    description: str = Field(min_length=1, max_length=500)


@router.post("/v1/customers", status_code=201, response_model=CustomerOut)
def create_customer(body: CustomerIn, caller: AdminWrite, services: Services) -> CustomerOut:
    cmd = customers.CreateCustomer(**body.model_dump())
    return CustomerOut.of(
        write(services, caller, lambda u, c: customers.create_customer(u, c, cmd))
    )


@router.get("/v1/customers", response_model=ListResponse[CustomerOut])
def list_customers(
    page: Pagination,
    caller: ReadAccess,
    services: Services,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.customers.list(c.tenant_id, page.limit, page.starting_after, email=email),
    )
    return ListResponse.of(records, CustomerOut.of)


@router.get("/v1/customers/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: ResourceId, caller: ReadAccess, services: Services) -> CustomerOut:
    return CustomerOut.of(
        read(services, caller, lambda u, c: customers.get_customer(u, c, customer_id))
    )


@router.patch("/v1/customers/{customer_id}", response_model=CustomerOut)
def update_customer(
    customer_id: ResourceId, body: CustomerPatch, caller: AdminWrite, services: Services
) -> CustomerOut:
    cmd = customers.UpdateCustomer(tuple(body.model_dump(exclude_unset=True).items()))
    return CustomerOut.of(
        write(services, caller, lambda u, c: customers.update_customer(u, c, customer_id, cmd))
    )


@router.get("/v1/customers/{customer_id}/wallets", response_model=ListResponse[WalletOut])
def list_wallets(customer_id: ResourceId, caller: ReadAccess, services: Services) -> Any:
    records = read(services, caller, lambda u, c: wallets.wallets_of(u, c, customer_id))
    return ListResponse(data=[WalletOut.of(w) for w in records], has_more=False)


@router.post(
    "/v1/customers/{customer_id}/wallet/top-ups", status_code=201, response_model=WalletOut
)
def top_up(
    customer_id: ResourceId, body: TopUpIn, caller: AdminWrite, services: Services
) -> WalletOut:
    cmd = wallets.TopUp(customer_id, body.amount.to_money(), body.method)
    return WalletOut.of(write(services, caller, lambda u, c: wallets.top_up(u, c, cmd)))


@router.post("/v1/customers/{customer_id}/wallet/debits", status_code=201, response_model=WalletOut)
def debit(
    customer_id: ResourceId, body: DebitIn, caller: AdminWrite, services: Services
) -> WalletOut:
    """Charge a one-off to the prepaid balance; 402 if the balance does not cover it."""
    cmd = wallets.DebitWallet(customer_id, body.amount.to_money(), body.description)
    return WalletOut.of(write(services, caller, lambda u, c: wallets.debit(u, c, cmd)))
