"""Customers and their prepaid wallets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from iptv_billing.api.deps import AdminWrite, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.money import MoneyIn, MoneyOut
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.services import customers, wallet_automation, wallets
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


class AutoTopUpOut(ApiModel):
    below: MoneyOut = Field(description="a top-up starts when the available balance is under this")
    amount: MoneyOut = Field(description="charged to the payment method at each top-up")
    payment_method: str
    pending_payment_id: str | None = Field(description="the top-up in flight, if any")
    retry_at: datetime | None = Field(
        description="after a decline, no new attempt before this (tenant time)"
    )


class WalletOut(ApiModel):
    object: Literal["wallet"] = "wallet"
    id: str
    customer_id: str
    balance: MoneyOut = Field(description="all the customer's money, held or not")
    pending: MoneyOut = Field(description="reserved by pending holds")
    available: MoneyOut = Field(description="what can be spent: balance minus pending")
    updated_at: datetime
    low_balance_threshold: MoneyOut | None = Field(
        default=None, description="a notice is sent when the available balance drops under it"
    )
    low_balance: bool = Field(
        default=False, description="under the threshold and notified (once per crossing)"
    )
    auto_top_up: AutoTopUpOut | None = None

    @classmethod
    def of(cls, r: WalletRecord) -> WalletOut:
        auto = None
        if r.auto_top_up_below_minor is not None and r.auto_top_up_amount_minor is not None:
            auto = AutoTopUpOut(
                below=MoneyOut.from_minor(r.auto_top_up_below_minor, r.currency),
                amount=MoneyOut.from_minor(r.auto_top_up_amount_minor, r.currency),
                payment_method=r.auto_top_up_payment_method or "",
                pending_payment_id=r.auto_top_up_payment_id,
                retry_at=r.auto_top_up_retry_at,
            )
        threshold = r.low_balance_threshold_minor
        return cls(
            id=r.id,
            customer_id=r.customer_id,
            balance=MoneyOut.from_minor(r.balance_minor, r.currency),
            pending=MoneyOut.from_minor(r.pending_minor, r.currency),
            available=MoneyOut.from_minor(r.available_minor, r.currency),
            updated_at=r.updated_at,
            low_balance_threshold=None
            if threshold is None
            else MoneyOut.from_minor(threshold, r.currency),
            low_balance=r.low_balance_notified,
            auto_top_up=auto,
        )


def _decimal_string(value: Any) -> Any:
    # As MoneyIn: a JSON number is a binary float or an int the client may not have meant.
    if isinstance(value, float):
        raise PydanticCustomError("money.float_refused", 'money is never a float; use "12.50"')
    if isinstance(value, int):
        raise PydanticCustomError("money.amount_not_string", 'an amount is a string: "12.50"')
    return value


class AutoTopUpIn(ApiModel):
    below: str = Field(max_length=40, examples=["5.00"])
    amount: str = Field(max_length=40, examples=["20.00"])
    payment_method: str = Field(min_length=1, max_length=100, examples=["pm_card_visa"])

    _strings = field_validator("below", "amount", mode="before")(_decimal_string)


class WalletSettingsIn(ApiModel):
    """Amounts are decimal strings in the wallet's currency; an omitted field is left as it
    is, null clears it."""

    low_balance_threshold: str | None = Field(default=None, max_length=40, examples=["5.00"])
    auto_top_up: AutoTopUpIn | None = None

    _strings = field_validator("low_balance_threshold", mode="before")(_decimal_string)


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


@router.patch("/v1/customers/{customer_id}/wallets/{currency}", response_model=WalletOut)
def configure_wallet(
    customer_id: ResourceId,
    currency: Annotated[str, Path(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")],
    body: WalletSettingsIn,
    caller: AdminWrite,
    services: Services,
) -> WalletOut:
    """Set or clear the low-balance threshold and the auto top-up (created if missing)."""
    sent = body.model_fields_set
    auto = body.auto_top_up
    cmd = wallet_automation.ConfigureWallet(
        customer_id,
        currency,
        set_threshold="low_balance_threshold" in sent,
        low_balance_threshold=body.low_balance_threshold,
        set_auto_top_up="auto_top_up" in sent,
        auto_top_up=None
        if auto is None
        else wallet_automation.AutoTopUpSettings(auto.below, auto.amount, auto.payment_method),
    )
    return WalletOut.of(
        write(services, caller, lambda u, c: wallet_automation.configure_wallet(u, c, cmd))
    )
