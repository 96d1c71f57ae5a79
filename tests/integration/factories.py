"""Records and seeded rows for the storage integration tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from iptv_billing.adapters.sql.uow import Database, open_database
from iptv_billing.domain.invoice import InvoiceLine, LineKind
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import Period
from iptv_billing.domain.subscription import SubscriptionState, SubscriptionStatus
from iptv_billing.services.records import (
    CustomerRecord,
    InvoiceRecord,
    PlanRecord,
    SubscriptionRecord,
    TenantRecord,
    TermsRecord,
    WalletRecord,
)

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
MONTH = timedelta(days=31)


@contextmanager
def opened(url: str) -> Iterator[Database]:
    database = open_database(url, migrate=False)  # the fixture's database is migrated already
    try:
        yield database
    finally:
        database.dispose()


def tenant(tenant_id: str = "ten_a") -> TenantRecord:
    return TenantRecord(
        id=tenant_id,
        name=f"Tenant {tenant_id}",
        timezone="Europe/Madrid",
        default_currency="EUR",
        invoice_prefix="INV-",
        test_clock_now=None,
        created_at=NOW,
    )


def customer(tenant_id: str, customer_id: str, *, email: str | None = None) -> CustomerRecord:
    return CustomerRecord(
        id=customer_id,
        tenant_id=tenant_id,
        name=f"Customer {customer_id}",
        email=email or f"{customer_id}@example.test",
        country="ES",
        currency="EUR",
        language="es",
        tax_id=None,
        status="active",
        collection_method="send_invoice",
        created_at=NOW,
    )


def plan(tenant_id: str, plan_id: str) -> PlanRecord:
    return PlanRecord(id=plan_id, tenant_id=tenant_id, code=plan_id, name="Plan", created_at=NOW)


def terms(tenant_id: str, plan_id: str, terms_id: str, version: int = 1) -> TermsRecord:
    document = f'{{"plan":"{plan_id}","version":{version}}}'
    return TermsRecord(
        id=terms_id,
        tenant_id=tenant_id,
        plan_id=plan_id,
        version=version,
        terms_hash=hashlib.sha256(document.encode()).hexdigest(),
        document=document,
        effective_from=NOW,
        created_at=NOW,
    )


def subscription(
    seed: Seed,
    subscription_id: str,
    *,
    period_end: datetime = NOW + MONTH,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
) -> SubscriptionRecord:
    state = SubscriptionState(
        status=status,
        currency="EUR",
        terms_hash=seed.terms_hash,
        anchor=period_end - MONTH,
        period_index=0,
        current_period=Period(period_end - MONTH, period_end),
    )
    return SubscriptionRecord(
        id=subscription_id,
        tenant_id=seed.tenant_id,
        customer_id=seed.customer_id,
        plan_id=seed.plan_id,
        terms_id=seed.terms_id,
        pending_terms_id=None,
        state=state,
        created_at=NOW,
        updated_at=NOW,
    )


def line(minor: int, quantity: int = 1, period: Period | None = None) -> InvoiceLine:
    unit = Money.from_minor(minor, "EUR")
    amount = Money.from_minor(minor * quantity, "EUR")
    return InvoiceLine(LineKind.SUBSCRIPTION, "Monthly plan", quantity, unit, amount, period)


def invoice(
    seed: Seed,
    invoice_id: str,
    *,
    cycle_start: datetime | None = NOW,
    lines: tuple[InvoiceLine, ...] = (),
    status: str = "draft",
    number: int | None = None,
    due_at: datetime | None = None,
    subscription_id: str | None = None,
) -> InvoiceRecord:
    total = sum(item.amount.minor for item in lines)
    return InvoiceRecord(
        id=invoice_id,
        tenant_id=seed.tenant_id,
        customer_id=seed.customer_id,
        subscription_id=subscription_id or seed.subscription_id,
        terms_hash=seed.terms_hash,
        billing_reason="subscription_cycle",
        cycle_start=cycle_start,
        series="INV-",
        number=number,
        status=status,
        currency="EUR",
        subtotal_minor=total,
        total_minor=total,
        amount_paid_minor=0,
        period_start=cycle_start,
        period_end=cycle_start + MONTH if cycle_start else None,
        created_at=NOW,
        due_at=due_at,
        lines=lines,
    )


def wallet(seed: Seed, wallet_id: str, balance: int = 0) -> WalletRecord:
    return WalletRecord(
        id=wallet_id,
        tenant_id=seed.tenant_id,
        customer_id=seed.customer_id,
        currency="EUR",
        balance_minor=balance,
        updated_at=NOW,
    )


@dataclass(frozen=True)
class Seed:
    """Ids of one tenant's customer, plan, terms and subscription."""

    tenant_id: str
    customer_id: str
    plan_id: str
    terms_id: str
    terms_hash: str
    subscription_id: str


def seed(database: Database, tenant_id: str = "ten_a") -> Seed:
    """A tenant with one customer, one plan with terms v1, and one active subscription."""
    suffix = tenant_id.removeprefix("ten_")
    first_terms = terms(tenant_id, f"plan_{suffix}", f"terms_{suffix}")
    result = Seed(
        tenant_id,
        f"cus_{suffix}",
        f"plan_{suffix}",
        first_terms.id,
        first_terms.terms_hash,
        f"sub_{suffix}",
    )
    with database.uow() as uow:
        uow.tenants.add(tenant(tenant_id))
        uow.customers.add(customer(tenant_id, result.customer_id))
        uow.catalog.add_plan(plan(tenant_id, result.plan_id))
        uow.catalog.add_terms(first_terms)
        uow.subscriptions.add(subscription(result, result.subscription_id))
        uow.commit()
    return result
