"""``bench billing-run``: N subscriptions fall due at once; renew them all and measure.

Seeding writes rows in bulk (COPY-like executemany chunks) straight through SQLAlchemy Core so
that only the billing run itself is timed. Each renewal is what production does: a finalized,
numbered invoice with its lines, a balanced journal entry with its postings, and the new
subscription state.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from sqlalchemy import Engine, insert
from sqlalchemy.engine import make_url

from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.uow import is_transient, open_database
from iptv_billing.bench.machine import machine
from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit
from iptv_billing.services.billing_run import BillingRunner
from iptv_billing.services.clock import FixedClock
from iptv_billing.services.ids import TimeOrderedIds

START = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 20_000


class RssSampler:
    """Peak RSS during the timed part only, sampled every 50 ms."""

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def fresh_sqlite(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(database + suffix):
                os.remove(database + suffix)


def _terms() -> BillingTerms:
    return BillingTerms(
        plan_code="bench",
        version=1,
        name="Bench monthly",
        interval=BillingInterval(PeriodUnit.MONTH),
        prices=(Money.of("9.99", "EUR"),),
        effective_from=START - timedelta(days=60),
    )


def seed_subscriptions(
    engine: Engine, n: int, ids: TimeOrderedIds, terms: BillingTerms | None = None
) -> str:
    """A tenant with ``n`` monthly subscriptions whose first period ends at ``START``."""
    terms = terms or _terms()
    tenant, plan, terms_id = ids.new("ten"), ids.new("plan"), ids.new("terms")
    anchor = START - timedelta(days=31)  # Dec 1 → period 0 ends Jan 1, the run renews period 1
    with engine.begin() as c:
        c.execute(
            insert(tables.Tenant),
            [
                {
                    "id": tenant,
                    "name": "bench",
                    "timezone": "UTC",
                    "default_currency": "EUR",
                    "invoice_prefix": "B-",
                    "test_clock_now": START,
                    "created_at": anchor,
                }
            ],
        )
        c.execute(
            insert(tables.Plan),
            [
                {
                    "id": plan,
                    "tenant_id": tenant,
                    "code": "bench",
                    "name": "Bench",
                    "created_at": anchor,
                }
            ],
        )
        c.execute(
            insert(tables.TermsVersion),
            [
                {
                    "id": terms_id,
                    "tenant_id": tenant,
                    "plan_id": plan,
                    "version": 1,
                    "terms_hash": terms.terms_hash,
                    "document": terms.canonical().decode(),
                    "effective_from": terms.effective_from,
                    "created_at": anchor,
                }
            ],
        )
    for chunk in chunks(n):
        customers = [customer_row(ids, tenant, anchor) for _ in chunk]
        subs = [
            subscription_row(ids, tenant, c["id"], plan, terms_id, terms.terms_hash, anchor)
            for c in customers
        ]
        with engine.begin() as c:
            c.execute(insert(tables.Customer), customers)
            c.execute(insert(tables.Subscription), subs)
    return tenant


def chunks(n: int) -> Iterator[range]:
    for start in range(0, n, CHUNK):
        yield range(start, min(n, start + CHUNK))


def customer_row(ids: TimeOrderedIds, tenant: str, at: datetime) -> dict[str, Any]:
    cid = ids.new("cus")
    return {
        "id": cid,
        "tenant_id": tenant,
        "name": "Bench",
        "email": f"{cid}@example.com",
        "country": "DE",
        "currency": "EUR",
        "language": "de",
        "tax_id": None,
        "status": "active",
        "collection_method": "send_invoice",
        "created_at": at,
    }


def subscription_row(
    ids: TimeOrderedIds,
    tenant: str,
    customer: str,
    plan: str,
    terms_id: str,
    terms_hash: str,
    anchor: datetime,
) -> dict[str, Any]:
    return {
        "id": ids.new("sub"),
        "tenant_id": tenant,
        "customer_id": customer,
        "plan_id": plan,
        "terms_id": terms_id,
        "terms_hash": terms_hash,
        "pending_terms_id": None,
        "status": "active",
        "currency": "EUR",
        "anchor": anchor,
        "period_index": 0,
        "current_period_start": anchor,
        "current_period_end": START,
        "trial_end": None,
        "cancel_at_period_end": False,
        "addons": "[]",
        "paused_at": None,
        "ended_at": None,
        "created_at": anchor,
        "updated_at": anchor,
        "version": 1,
    }


def renew_in_worker(url: str, tenant: str, batch_size: int) -> tuple[int, int, int, int]:
    """One worker process of a shared run: (renewed, invoices, failures, peak RSS bytes)."""
    database = open_database(url, migrate=False)
    clock = FixedClock(START)
    runner = BillingRunner(
        database.uow, clock, TimeOrderedIds(clock), batch_size=batch_size, is_transient=is_transient
    )
    with RssSampler() as rss:
        run = runner.run(tenant)
    database.dispose()
    return run.subscriptions_seen, run.invoices_created, run.failures, rss.peak


def _renew(url: str, tenant: str, batch_size: int, workers: int) -> tuple[int, int, int, int]:
    if workers == 1:
        return renew_in_worker(url, tenant, batch_size)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(renew_in_worker, url, tenant, batch_size) for _ in range(workers)]
        results = [f.result() for f in futures]
    return (
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        sum(r[2] for r in results),
        max(r[3] for r in results),
    )


def run_benchmark(url: str, n: int, batch_size: int, workers: int = 1) -> dict[str, Any]:
    if make_url(url).get_backend_name() == "sqlite":
        fresh_sqlite(url)
    database = open_database(url, migrate=True)
    clock = FixedClock(START)
    seed_started = time.perf_counter()
    tenant = seed_subscriptions(database.engine, n, TimeOrderedIds(clock))
    seed_seconds = time.perf_counter() - seed_started
    database.dispose()
    started = time.perf_counter()
    renewed, invoices, failures, peak = _renew(url, tenant, batch_size, workers)
    seconds = time.perf_counter() - started
    return {
        "benchmark": "billing-run",
        "database": make_url(url).get_backend_name(),
        "subscriptions": n,
        "batch_size": batch_size,
        "workers": workers,
        "renewed": renewed,
        "invoices": invoices,
        "failures": failures,
        "seconds": round(seconds, 2),
        "renewals_per_s": round(invoices / seconds, 1) if seconds else None,
        "peak_rss_mb": round(peak / 2**20, 1),
        "seed_seconds": round(seed_seconds, 2),
        "machine": machine(),
    }
