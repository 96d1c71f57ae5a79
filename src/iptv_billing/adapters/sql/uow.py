"""The SQL unit of work: one connection, one transaction, every repository on it.

``run_in_transaction`` retries a whole unit of work when the database asks for it
(PostgreSQL serialization failures and deadlocks, SQLite busy), never on other errors.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from iptv_billing.adapters.sql.engine import create_engine_for, normalize_url, read_only
from iptv_billing.adapters.sql.migrate import upgrade_database
from iptv_billing.adapters.sql.repositories import (
    SqlApiKeyRepository,
    SqlBillingRunRepository,
    SqlCatalogRepository,
    SqlCredentialRepository,
    SqlCustomerRepository,
    SqlGuideRepository,
    SqlIdempotencyRepository,
    SqlInvoiceRepository,
    SqlJournalRepository,
    SqlLogRepository,
    SqlPaymentRepository,
    SqlPpvRepository,
    SqlProvisioningRepository,
    SqlSubscriptionRepository,
    SqlTenantRepository,
    SqlUsageRepository,
    SqlVodRepository,
    SqlWalletAutomationRepository,
    SqlWalletHoldRepository,
    SqlWalletRepository,
    TileCache,
)
from iptv_billing.domain.errors import InvariantViolated
from iptv_billing.services.ports import (
    ApiKeyRepository,
    BillingRunRepository,
    CatalogRepository,
    CredentialRepository,
    CustomerRepository,
    GuideRepository,
    IdempotencyRepository,
    InvoiceRepository,
    JournalRepository,
    PaymentRepository,
    PpvRepository,
    ProvisioningRepository,
    SubscriptionRepository,
    TenantRepository,
    TransparencyLogRepository,
    UnitOfWork,
    UnitOfWorkFactory,
    UsageRepository,
    VodRepository,
    WalletAutomationRepository,
    WalletHoldRepository,
    WalletRepository,
)

T = TypeVar("T")

# serialization_failure, deadlock_detected: the transaction lost a race and may simply rerun.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
RETRY_BASE_DELAY = 0.02
RETRY_MAX_DELAY = 1.0


class SqlUnitOfWork:
    """A ``UnitOfWork`` on one connection; ``__exit__`` rolls back whatever was not committed."""

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
    credentials: CredentialRepository
    guide: GuideRepository
    provisioning: ProvisioningRepository
    holds: WalletHoldRepository
    usage: UsageRepository
    ppv: PpvRepository
    wallet_automation: WalletAutomationRepository
    vod: VodRepository

    def __init__(
        self,
        engine: Engine,
        *,
        read_only: bool = False,
        random_bytes: Callable[[int], bytes] = os.urandom,
        tile_cache: TileCache | None = None,
    ) -> None:
        self._engine = engine
        self._read_only = read_only
        self._random_bytes = random_bytes
        self._tile_cache = tile_cache or TileCache()
        self._connection: Connection | None = None

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise InvariantViolated("the unit of work is used outside its `with` block")
        return self._connection

    def __enter__(self) -> SqlUnitOfWork:
        connection = self._engine.connect()
        try:
            if self._read_only:
                with read_only(connection):  # SQLite: BEGIN DEFERRED, so readers never queue
                    connection.begin()
                if connection.dialect.name == "postgresql":
                    # One snapshot for the whole read, as SQLite's WAL readers get: totals
                    # summed over several statements (books checks, reports) then agree.
                    connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            else:
                connection.begin()
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._bind(connection)
        return self

    def __exit__(self, *exc: object) -> None:
        connection, self._connection = self.connection, None
        try:
            connection.rollback()  # a no-op after commit
        finally:
            connection.close()

    def commit(self) -> None:
        # The log goes last: its sequencer row stays locked only from here to the commit.
        self.log.append_staged()
        self.connection.commit()

    def rollback(self) -> None:
        self.log.discard_staged()
        self.connection.rollback()

    def _bind(self, connection: Connection) -> None:
        self.tenants = SqlTenantRepository(connection)
        self.api_keys = SqlApiKeyRepository(connection)
        self.idempotency = SqlIdempotencyRepository(connection)
        self.catalog = SqlCatalogRepository(connection)
        self.customers = SqlCustomerRepository(connection)
        self.subscriptions = SqlSubscriptionRepository(connection)
        self.invoices = SqlInvoiceRepository(connection)
        self.wallets = SqlWalletRepository(connection)
        self.journal = SqlJournalRepository(connection)
        self.payments = SqlPaymentRepository(connection)
        self.billing_runs = SqlBillingRunRepository(connection)
        self.log = SqlLogRepository(connection, self._random_bytes, self._tile_cache)
        self.credentials = SqlCredentialRepository(connection)
        self.guide = SqlGuideRepository(connection)
        self.provisioning = SqlProvisioningRepository(connection)
        self.holds = SqlWalletHoldRepository(connection)
        self.usage = SqlUsageRepository(connection)
        self.ppv = SqlPpvRepository(connection)
        self.wallet_automation = SqlWalletAutomationRepository(connection)
        self.vod = SqlVodRepository(connection)


class SqlUnitOfWorkFactory:
    """A ``UnitOfWorkFactory``: ``factory(read_only=...)`` is a fresh unit of work."""

    def __init__(self, engine: Engine, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.engine = engine
        self._random_bytes = random_bytes
        self._tile_cache = TileCache()

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(
            self.engine,
            read_only=read_only,
            random_bytes=self._random_bytes,
            tile_cache=self._tile_cache,
        )


class Database:
    """An engine and the units of work on it; ``uow`` itself is a ``UnitOfWorkFactory``."""

    def __init__(self, url: str, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        """``random_bytes`` salts log entries: a CSPRNG in production (the salts hide records
        from readers of the public log); tests may inject a seeded source."""
        self.url = normalize_url(url)
        self.engine = create_engine_for(self.url)
        self.dialect_name = self.engine.dialect.name
        self._factory = SqlUnitOfWorkFactory(self.engine, random_bytes)

    def uow(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return self._factory(read_only=read_only)

    def transact(self, fn: Callable[[UnitOfWork], T]) -> T:
        """``fn`` in one committed unit of work, rerun on serialization failures, deadlocks
        and a busy SQLite (see ``run_in_transaction``)."""
        return run_in_transaction(self._factory, fn)

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, migrate: bool = True) -> Database:
    if migrate:
        upgrade_database(url)
    return Database(url)


if TYPE_CHECKING:  # mypy proves that the classes satisfy the ports' protocols

    def _conforms(
        engine: Engine, database: Database
    ) -> tuple[UnitOfWork, UnitOfWorkFactory, UnitOfWorkFactory]:
        return SqlUnitOfWork(engine), SqlUnitOfWorkFactory(engine), database.uow


# -- retries ---------------------------------------------------------------------------------------
def is_transient(error: BaseException) -> bool:
    """Whether rerunning the same transaction may well succeed."""
    if not isinstance(error, DBAPIError):
        return False
    original = error.orig
    if isinstance(original, sqlite3.OperationalError):
        name = getattr(original, "sqlite_errorname", "")
        return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(original)
    return getattr(original, "sqlstate", None) in TRANSIENT_SQLSTATES


def backoff_delay(attempt: int) -> float:
    """Exponential (capped) with jitter, so that the retrying losers do not collide again."""
    ceiling = min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def run_in_transaction(
    factory: UnitOfWorkFactory,
    fn: Callable[[UnitOfWork], T],
    *,
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn(uow)`` in a fresh unit of work, committed; rerun from scratch on transient errors.

    ``fn`` may run more than once, so it must not have effects outside the transaction.
    """
    for attempt in range(1, attempts + 1):
        try:
            with factory() as uow:
                result = fn(uow)
                uow.commit()
                return result
        except DBAPIError as error:
            if attempt >= attempts or not is_transient(error):
                raise
        sleep(backoff_delay(attempt))
    raise InvariantViolated(f"run_in_transaction needs at least one attempt, not {attempts}")
