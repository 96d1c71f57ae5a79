"""Customers of an operator: who pays, in which currency and language, and how."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from babel import Locale, UnknownLocaleError

from iptv_billing.domain.errors import InvalidInput, NotFound
from iptv_billing.domain.money import currency
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import CustomerRecord

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")
COLLECTION_METHODS = ("charge_wallet", "send_invoice")


@dataclass(frozen=True, slots=True)
class CreateCustomer:
    name: str
    email: str
    currency: str
    country: str | None = None
    language: str = "en"
    tax_id: str | None = None
    collection_method: str = "send_invoice"


UPDATABLE = frozenset(
    {"name", "email", "country", "language", "tax_id", "collection_method", "status"}
)
CLEARABLE = frozenset({"country", "tax_id"})


@dataclass(frozen=True, slots=True)
class UpdateCustomer:
    """A JSON Merge Patch (RFC 7396): the fields given change; ``None`` clears a field that
    may be empty and is refused for one that may not."""

    changes: tuple[tuple[str, str | None], ...]


def _validate(record: CustomerRecord) -> None:
    if not record.name.strip():
        raise InvalidInput("customer.invalid_name", "a customer needs a name")
    if not _EMAIL.fullmatch(record.email):
        raise InvalidInput("customer.invalid_email", f"not an email address: {record.email!r}")
    currency(record.currency)
    if record.country is not None and not _is_country(record.country):
        raise InvalidInput("customer.invalid_country", f"not an ISO 3166 country: {record.country}")
    if not _is_language(record.language):
        raise InvalidInput("customer.invalid_language", f"unknown language: {record.language}")
    if record.collection_method not in COLLECTION_METHODS:
        raise InvalidInput("customer.invalid_collection_method", record.collection_method)
    if record.status not in ("active", "closed"):
        raise InvalidInput("customer.invalid_status", record.status)


def _is_country(code: str) -> bool:
    return bool(re.fullmatch(r"[A-Z]{2}", code)) and code in Locale("en").territories


def _is_language(tag: str) -> bool:
    try:
        Locale.parse(tag, sep="-" if "-" in tag else "_")
    except (UnknownLocaleError, ValueError):
        return False
    return True


def create_customer(uow: UnitOfWork, ctx: Context, cmd: CreateCustomer) -> CustomerRecord:
    record = CustomerRecord(
        id=ctx.ids.new("cus"),
        tenant_id=ctx.tenant_id,
        name=cmd.name,
        email=cmd.email,
        country=cmd.country,
        currency=cmd.currency,
        language=cmd.language,
        tax_id=cmd.tax_id,
        status="active",
        collection_method=cmd.collection_method,
        created_at=ctx.now(),
    )
    _validate(record)
    uow.customers.add(record)
    return record


def update_customer(
    uow: UnitOfWork, ctx: Context, customer_id: str, cmd: UpdateCustomer
) -> CustomerRecord:
    current = get_customer(uow, ctx, customer_id)
    changes = dict(cmd.changes)
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise InvalidInput("customer.not_updatable", f"cannot change {sorted(unknown)}")
    required = sorted(k for k, v in changes.items() if v is None and k not in CLEARABLE)
    if required:
        raise InvalidInput("customer.field_required", f"cannot clear {required}")
    updated = replace(current, **changes)  # type: ignore[arg-type]  # keys checked above
    _validate(updated)
    uow.customers.update(updated)
    return updated


def get_customer(uow: UnitOfWork, ctx: Context, customer_id: str) -> CustomerRecord:
    customer = uow.customers.get(ctx.tenant_id, customer_id)
    if customer is None:
        raise NotFound("customer.not_found", f"no customer {customer_id}")
    return customer
