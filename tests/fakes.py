"""An in-memory ``UnitOfWork`` for unit tests: dicts of frozen records, real transactions.

``MemoryDatabase().uow(read_only=...)`` behaves like the SQL adapter where tests can tell:
writers are serialized (like SQLite's ``BEGIN IMMEDIATE``), each unit of work works on its own
copy of the committed state, ``commit()`` publishes it, leaving the ``with`` block without
committing discards it, and readers see the state committed when they began.

Implemented: tenants, api_keys, idempotency, customers, catalog, wallets, journal, payments,
billing_runs. ``subscriptions`` and ``invoices`` are not yet: touching them fails loudly. To add a
repository, add its tables to ``MemoryState`` and a class taking that state, and bind it in
``MemoryUnitOfWork._bind``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from copy import copy as shallow
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

from iptv_billing.domain.errors import Conflict, InvariantViolated, NotFound
from iptv_billing.domain.journal import JournalEntry
from iptv_billing.services.access import ApiKeyScope, create_tenant, issue_api_key
from iptv_billing.services.clock import Clock
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import (
    ApiKeyRepository,
    BillingRunRepository,
    CatalogRepository,
    CustomerRepository,
    IdempotencyRepository,
    InvoiceRepository,
    JournalRepository,
    PaymentRepository,
    SubscriptionRepository,
    TenantRepository,
    TransparencyLogRepository,
    UnitOfWork,
    WalletRepository,
)
from iptv_billing.services.records import (
    ApiKeyRecord,
    BillingRunRecord,
    ChannelRecord,
    CustomerRecord,
    IdempotencyEntry,
    LogDraft,
    PackageRecord,
    Page,
    PaymentRecord,
    PlanRecord,
    TenantRecord,
    TermsRecord,
    WalletRecord,
)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=_HasId)


def page(
    rows: Iterable[R], limit: int, after: str | None, where: Callable[[R], bool] = lambda _: True
) -> Page[R]:
    """Keyset page by id ascending, as the SQL repositories page."""
    chosen = sorted((r for r in rows if where(r) and (after is None or r.id > after)), key=_id)
    return Page(tuple(chosen[:limit]), has_more=len(chosen) > limit)


def _id(record: _HasId) -> str:
    return record.id


@dataclass
class MemoryState:
    """The tables. Records are frozen, so copying the containers copies a transaction."""

    tenants: dict[str, TenantRecord] = field(default_factory=dict)
    api_keys: dict[str, ApiKeyRecord] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], IdempotencyEntry] = field(default_factory=dict)
    customers: dict[str, CustomerRecord] = field(default_factory=dict)
    channels: dict[str, ChannelRecord] = field(default_factory=dict)
    packages: dict[str, PackageRecord] = field(default_factory=dict)
    plans: dict[str, PlanRecord] = field(default_factory=dict)
    terms: dict[str, TermsRecord] = field(default_factory=dict)
    wallets: dict[str, WalletRecord] = field(default_factory=dict)
    journal: list[tuple[str, str, JournalEntry, str | None, datetime]] = field(
        default_factory=list
    )  # (tenant id, entry id, entry, reference id, at)
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    billing_runs: dict[str, BillingRunRecord] = field(default_factory=dict)
    billing_run_failures: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    log: list[tuple[str, LogDraft]] = field(default_factory=list)  # (tenant id, draft)

    def copy(self) -> MemoryState:
        return MemoryState(**{f.name: shallow(getattr(self, f.name)) for f in fields(self)})


def _unique(table: dict[Any, Any], key: Any, code: str, message: str) -> None:
    if key in table:
        raise Conflict(code, message)


class MemoryTenantRepository:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(self, tenant: TenantRecord) -> None:
        _unique(self._s.tenants, tenant.id, "tenant.duplicate", f"tenant {tenant.id} exists")
        self._s.tenants[tenant.id] = tenant

    def get(self, tenant_id: str) -> TenantRecord | None:
        return self._s.tenants.get(tenant_id)

    def list(self) -> Sequence[TenantRecord]:
        return sorted(self._s.tenants.values(), key=_id)

    def set_test_clock(self, tenant_id: str, now: datetime | None) -> None:
        if tenant_id in self._s.tenants:
            self._s.tenants[tenant_id] = replace(self._s.tenants[tenant_id], test_clock_now=now)


class MemoryApiKeyRepository:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(self, key: ApiKeyRecord) -> None:
        if any(k.key_hash == key.key_hash for k in self._s.api_keys.values()):
            raise Conflict("api_key.duplicate", "an API key with this hash exists")
        self._s.api_keys[key.id] = key

    def by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        return next((k for k in self._s.api_keys.values() if k.key_hash == key_hash), None)

    def list(self, tenant_id: str) -> Sequence[ApiKeyRecord]:
        return sorted((k for k in self._s.api_keys.values() if k.tenant_id == tenant_id), key=_id)

    def revoke(self, tenant_id: str, key_id: str, at: datetime) -> bool:
        key = self._s.api_keys.get(key_id)
        if key is None or key.tenant_id != tenant_id or key.revoked_at is not None:
            return False
        self._s.api_keys[key_id] = replace(key, revoked_at=at)
        return True


class MemoryIdempotencyRepository:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def get(self, tenant_id: str, key: str) -> IdempotencyEntry | None:
        return self._s.idempotency.get((tenant_id, key))

    def reserve(self, entry: IdempotencyEntry) -> bool:
        return self._s.idempotency.setdefault((entry.tenant_id, entry.key), entry) is entry

    def complete(self, tenant_id: str, key: str, status_code: int, body: str) -> None:
        entry = self._s.idempotency.get((tenant_id, key))
        if entry is not None:
            done = replace(entry, status_code=status_code, response_body=body)
            self._s.idempotency[(tenant_id, key)] = done

    def release_stale(self, tenant_id: str, key: str, started_before: datetime) -> bool:
        entry = self._s.idempotency.get((tenant_id, key))
        if entry is None or entry.status_code is not None or entry.created_at >= started_before:
            return False
        del self._s.idempotency[(tenant_id, key)]
        return True

    def purge(self, created_before: datetime) -> int:
        old = [k for k, e in self._s.idempotency.items() if e.created_at < created_before]
        for k in old:
            del self._s.idempotency[k]
        return len(old)

    def release(self, tenant_id: str, key: str) -> None:
        entry = self._s.idempotency.get((tenant_id, key))
        if entry is not None and entry.status_code is None:
            del self._s.idempotency[(tenant_id, key)]


class MemoryCustomerRepository:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(self, customer: CustomerRecord) -> None:
        _unique(self._s.customers, customer.id, "customer.duplicate", customer.id)
        self._s.customers[customer.id] = customer

    def get(self, tenant_id: str, customer_id: str) -> CustomerRecord | None:
        customer = self._s.customers.get(customer_id)
        return customer if customer is not None and customer.tenant_id == tenant_id else None

    def update(self, customer: CustomerRecord) -> None:
        current = self.get(customer.tenant_id, customer.id)
        if current is None:
            raise NotFound("customer.not_found", f"no customer {customer.id}")
        self._s.customers[customer.id] = replace(customer, created_at=current.created_at)

    def collection_methods(self, tenant_id: str, customer_ids: Sequence[str]) -> dict[str, str]:
        found = (self.get(tenant_id, i) for i in set(customer_ids))
        return {c.id: c.collection_method for c in found if c is not None}

    def list(
        self, tenant_id: str, limit: int, after: str | None, email: str | None = None
    ) -> Page[CustomerRecord]:
        return page(
            self._s.customers.values(),
            limit,
            after,
            lambda c: c.tenant_id == tenant_id and (email is None or c.email == email),
        )


class _Owned(Protocol):
    @property
    def tenant_id(self) -> str: ...


Owned = TypeVar("Owned", bound=_Owned)


def _of_tenant(table: dict[str, Owned], tenant_id: str, record_id: str) -> Owned | None:
    record = table.get(record_id)
    return record if record is not None and record.tenant_id == tenant_id else None


class MemoryCatalogRepository:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def _add_coded(self, table: dict[str, Any], record: Any, kind: str) -> None:
        if any(r.tenant_id == record.tenant_id and r.code == record.code for r in table.values()):
            raise Conflict(f"{kind}.duplicate_code", f"a {kind} with code {record.code!r} exists")
        table[record.id] = record

    def _by_codes(self, table: dict[str, Any], tenant_id: str, codes: Sequence[str]) -> list[Any]:
        wanted = set(codes)
        return sorted(
            (r for r in table.values() if r.tenant_id == tenant_id and r.code in wanted), key=_id
        )

    def add_channel(self, channel: ChannelRecord) -> None:
        self._add_coded(self._s.channels, channel, "channel")

    def get_channel(self, tenant_id: str, channel_id: str) -> ChannelRecord | None:
        return _of_tenant(self._s.channels, tenant_id, channel_id)

    def channels_by_code(self, tenant_id: str, codes: Sequence[str]) -> Sequence[ChannelRecord]:
        return self._by_codes(self._s.channels, tenant_id, codes)

    def list_channels(self, tenant_id: str, limit: int, after: str | None) -> Page[ChannelRecord]:
        return page(self._s.channels.values(), limit, after, lambda r: r.tenant_id == tenant_id)

    def add_package(self, package: PackageRecord) -> None:
        self._add_coded(self._s.packages, package, "package")

    def get_package(self, tenant_id: str, package_id: str) -> PackageRecord | None:
        return _of_tenant(self._s.packages, tenant_id, package_id)

    def packages_by_code(self, tenant_id: str, codes: Sequence[str]) -> Sequence[PackageRecord]:
        return self._by_codes(self._s.packages, tenant_id, codes)

    def list_packages(self, tenant_id: str, limit: int, after: str | None) -> Page[PackageRecord]:
        return page(self._s.packages.values(), limit, after, lambda r: r.tenant_id == tenant_id)

    def add_plan(self, plan: PlanRecord) -> None:
        self._add_coded(self._s.plans, plan, "plan")

    def get_plan(self, tenant_id: str, plan_id: str) -> PlanRecord | None:
        return _of_tenant(self._s.plans, tenant_id, plan_id)

    def plan_by_code(self, tenant_id: str, code: str) -> PlanRecord | None:
        found = self._by_codes(self._s.plans, tenant_id, [code])
        return found[0] if found else None

    def list_plans(self, tenant_id: str, limit: int, after: str | None) -> Page[PlanRecord]:
        return page(self._s.plans.values(), limit, after, lambda r: r.tenant_id == tenant_id)

    def add_terms(self, terms: TermsRecord) -> None:
        for other in self._s.terms.values():
            same_version = (other.plan_id, other.version) == (terms.plan_id, terms.version)
            same_hash = (other.tenant_id, other.terms_hash) == (terms.tenant_id, terms.terms_hash)
            if same_version or same_hash:
                raise Conflict("terms.duplicate", "these terms exist already")
        self._s.terms[terms.id] = terms

    def get_terms(self, tenant_id: str, terms_id: str) -> TermsRecord | None:
        return _of_tenant(self._s.terms, tenant_id, terms_id)

    def terms_by_ids(self, terms_ids: Sequence[str]) -> Sequence[TermsRecord]:
        return [self._s.terms[i] for i in sorted(set(terms_ids)) if i in self._s.terms]

    def terms_of_plan(self, tenant_id: str, plan_id: str) -> Sequence[TermsRecord]:
        found = (
            t for t in self._s.terms.values() if t.tenant_id == tenant_id and t.plan_id == plan_id
        )
        return sorted(found, key=lambda t: t.version)


class MemoryWalletRepository:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def get(self, tenant_id: str, customer_id: str, currency: str) -> WalletRecord | None:
        return next(
            (
                w
                for w in self._s.wallets.values()
                if (w.tenant_id, w.customer_id, w.currency) == (tenant_id, customer_id, currency)
            ),
            None,
        )

    def ensure(self, wallet: WalletRecord) -> WalletRecord:
        existing = self.get(wallet.tenant_id, wallet.customer_id, wallet.currency)
        if existing is not None:
            return existing
        self._s.wallets[wallet.id] = wallet
        return wallet

    def list(self, tenant_id: str, customer_id: str) -> Sequence[WalletRecord]:
        mine = (
            w
            for w in self._s.wallets.values()
            if w.tenant_id == tenant_id and w.customer_id == customer_id
        )
        return sorted(mine, key=lambda w: w.currency)

    def _move(self, wallet_id: str, minor: int, at: datetime) -> WalletRecord:
        if minor < 0:
            raise InvariantViolated(f"wallet amounts are never negative: {minor}")
        wallet = self._s.wallets.get(wallet_id)
        if wallet is None:
            raise NotFound("wallet.not_found", f"no wallet {wallet_id}")
        return replace(wallet, updated_at=at)

    def credit(self, wallet_id: str, minor: int, at: datetime) -> int:
        wallet = self._move(wallet_id, minor, at)
        self._s.wallets[wallet_id] = replace(wallet, balance_minor=wallet.balance_minor + minor)
        return wallet.balance_minor + minor

    def debit(self, wallet_id: str, minor: int, at: datetime) -> int | None:
        wallet = self._move(wallet_id, minor, at)
        if wallet.balance_minor < minor:
            return None
        self._s.wallets[wallet_id] = replace(wallet, balance_minor=wallet.balance_minor - minor)
        return wallet.balance_minor - minor

    def totals(self, tenant_id: str) -> dict[str, int]:
        totals: dict[str, int] = {}
        for w in self._s.wallets.values():
            if w.tenant_id == tenant_id:
                totals[w.currency] = totals.get(w.currency, 0) + w.balance_minor
        return totals


class MemoryJournalRepository:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(
        self, tenant_id: str, entries: Sequence[tuple[str, JournalEntry, str | None]], at: datetime
    ) -> None:
        self._s.journal.extend((tenant_id, i, entry, ref, at) for i, entry, ref in entries)

    def entries_for(self, tenant_id: str, reference_id: str) -> Sequence[JournalEntry]:
        return [e for t, _, e, ref, _ in self._s.journal if t == tenant_id and ref == reference_id]

    def account_balance(self, tenant_id: str, account: str, currency: str) -> int:
        return sum(
            p.amount.minor
            for t, _, entry, _, _ in self._s.journal
            if t == tenant_id
            for p in entry.postings
            if p.account == account and p.amount.code == currency
        )

    def imbalances(self, tenant_id: str) -> Sequence[tuple[str, str, int]]:
        return []  # JournalEntry refuses to exist unbalanced; SQL can hold bad rows, dicts not


class MemoryLogRepository:
    """Staging and appending only: the tree, tiles and proofs are tested on SQL."""

    def __init__(self, state: MemoryState) -> None:
        self._s = state
        self._staged: list[tuple[str, LogDraft]] = []

    def stage(self, tenant_id: str, drafts: Sequence[LogDraft]) -> None:
        self._staged.extend((tenant_id, d) for d in drafts)

    def append_staged(self) -> None:
        self._s.log.extend(self._staged)
        self._staged = []

    def discard_staged(self) -> None:
        self._staged = []

    def size(self, tenant_id: str) -> int:
        return sum(1 for t, _ in self._s.log if t == tenant_id)


class MemoryPaymentRepository:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(self, payment: PaymentRecord) -> None:
        _unique(self._s.payments, payment.id, "payment.duplicate", payment.id)
        self._s.payments[payment.id] = payment

    def get(
        self, tenant_id: str, payment_id: str, *, for_update: bool = False
    ) -> PaymentRecord | None:
        return _of_tenant(self._s.payments, tenant_id, payment_id)

    def by_provider_key(self, tenant_id: str, key: str) -> PaymentRecord | None:
        return next(
            (
                p
                for p in self._s.payments.values()
                if p.tenant_id == tenant_id and p.provider_idempotency_key == key
            ),
            None,
        )

    def update(self, payment: PaymentRecord) -> None:
        if self.get(payment.tenant_id, payment.id) is None:
            raise NotFound("payment.not_found", f"no payment {payment.id}")
        self._s.payments[payment.id] = payment

    def list(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        customer_id: str | None = None,
        invoice_id: str | None = None,
    ) -> Page[PaymentRecord]:
        def wanted(p: PaymentRecord) -> bool:
            return (
                p.tenant_id == tenant_id
                and customer_id in (None, p.customer_id)
                and invoice_id in (None, p.invoice_id)
            )

        return page(self._s.payments.values(), limit, after, wanted)

    def pending(self, tenant_id: str) -> Sequence[PaymentRecord]:
        mine = self._s.payments.values()
        return sorted(
            (p for p in mine if p.tenant_id == tenant_id and p.status == "pending"), key=_id
        )


class MemoryBillingRunRepository:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def add(self, run: BillingRunRecord) -> None:
        _unique(self._s.billing_runs, run.id, "billing_run.duplicate", run.id)
        self._s.billing_runs[run.id] = run

    def update(self, run: BillingRunRecord) -> None:
        if self.get(run.tenant_id, run.id) is None:
            raise NotFound("billing_run.not_found", f"no billing run {run.id}")
        self._s.billing_runs[run.id] = run

    def get(self, tenant_id: str, run_id: str) -> BillingRunRecord | None:
        return _of_tenant(self._s.billing_runs, tenant_id, run_id)

    def list(self, tenant_id: str, limit: int, after: str | None) -> Page[BillingRunRecord]:
        runs = self._s.billing_runs.values()
        return page(runs, limit, after, lambda r: r.tenant_id == tenant_id)

    def add_failure(
        self, run_id: str, tenant_id: str, subscription_id: str, code: str, message: str
    ) -> None:
        self._s.billing_run_failures.append((run_id, tenant_id, subscription_id, code, message))

    def failures(self, tenant_id: str, run_id: str) -> Sequence[tuple[str, str, str]]:
        return [
            (sub, code, message)
            for run, tenant, sub, code, message in self._s.billing_run_failures
            if (run, tenant) == (run_id, tenant_id)
        ]


class _NotInFake:
    """A repository the fake does not implement yet: any use fails with what to do."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        raise AssertionError(
            f"tests/fakes.py has no in-memory {self._name} repository yet "
            f"({self._name}.{attribute}); add one there"
        )


class MemoryUnitOfWork:
    """One transaction over a ``MemoryDatabase`` (see the module docstring)."""

    tenants: TenantRepository
    api_keys: ApiKeyRepository
    idempotency: IdempotencyRepository
    catalog: CatalogRepository
    customers: CustomerRepository
    subscriptions: SubscriptionRepository
    invoices: InvoiceRepository
    wallets: WalletRepository
    journal: JournalRepository
    payments: PaymentRepository
    billing_runs: BillingRunRepository
    log: TransparencyLogRepository

    def __init__(self, database: MemoryDatabase, *, read_only: bool = False) -> None:
        self._db = database
        self._read_only = read_only
        self._state: MemoryState | None = None
        self.subscriptions = cast(SubscriptionRepository, _NotInFake("subscriptions"))
        self.invoices = cast(InvoiceRepository, _NotInFake("invoices"))

    def __enter__(self) -> MemoryUnitOfWork:
        if not self._read_only:
            self._db.write_lock.acquire()
        self._begin()
        return self

    def __exit__(self, *exc: object) -> None:
        self._state = None
        if not self._read_only:
            self._db.write_lock.release()

    def commit(self) -> None:
        if self._state is None:
            raise InvariantViolated("the unit of work is used outside its `with` block")
        if not self._read_only:
            self.log.append_staged()
            self._db.state = self._state
            self._db.commits += 1
        self._begin()

    def rollback(self) -> None:
        self._begin()

    def _begin(self) -> None:
        self._state = self._db.state.copy()
        self._bind(self._state)

    def _bind(self, state: MemoryState) -> None:
        self.tenants = MemoryTenantRepository(state)
        self.api_keys = MemoryApiKeyRepository(state)
        self.idempotency = MemoryIdempotencyRepository(state)
        self.customers = MemoryCustomerRepository(state)
        self.catalog = MemoryCatalogRepository(state)
        self.wallets = MemoryWalletRepository(state)
        self.journal = MemoryJournalRepository(state)
        self.payments = MemoryPaymentRepository(state)
        self.billing_runs = MemoryBillingRunRepository(state)
        self.log = cast(TransparencyLogRepository, MemoryLogRepository(state))


T = TypeVar("T")


class MemoryDatabase:
    """The in-memory stand-in for ``adapters.sql.uow.Database``."""

    def __init__(self) -> None:
        self.state = MemoryState()
        self.write_lock = threading.Lock()  # one writer at a time, as SQLite
        self.commits = 0

    def uow(self, *, read_only: bool = False) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self, read_only=read_only)

    def transact(self, fn: Callable[[UnitOfWork], T]) -> T:
        """One committed unit of work (memory has no transient failures to retry)."""
        with self.uow() as uow:
            result = fn(uow)
            uow.commit()
            return result


class _Database(Protocol):
    def uow(self, *, read_only: bool = False) -> UnitOfWork: ...


@dataclass(frozen=True)
class SeededTenant:
    tenant: TenantRecord
    secrets: dict[ApiKeyScope, str]  # one live key per scope

    @property
    def id(self) -> str:
        return self.tenant.id

    def auth(self, scope: ApiKeyScope = ApiKeyScope.ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[scope]}"}


def seed_tenant(
    database: _Database, ids: IdGenerator, clock: Clock, name: str = "Acme TV"
) -> SeededTenant:
    """A tenant with one API key of each scope, through the real services."""
    with database.uow() as uow:
        tenant = create_tenant(uow, ids, clock, name, "Europe/Paris", "EUR")
        secrets = {
            scope: issue_api_key(uow, ids, clock, tenant.id, f"{scope} key", scope)[1]
            for scope in ApiKeyScope
        }
        uow.commit()
    return SeededTenant(tenant, secrets)
