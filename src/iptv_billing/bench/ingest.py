"""``bench ingest``: usage events ingested per second, duplicates included.

Batches of 10,000 events (viewing seconds and delivered bytes of many customers, a few
decimal strings among the integers, about 5% ids repeated from the batch before) go through
``services.usage.ingest``, the function the API calls: per-event validation, the customer and
metric checks, deduplication against the stored events and the batch's log entry, one
committed transaction per batch. Batches are built before the clock starts. With
``workers`` > 1, processes ingest disjoint shares of the batches at once (duplicates then
race across processes, which the unique key settles). ``http`` also times the same batches
through the app in process (orjson bodies over ASGI, no network).
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import make_url

from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.uow import is_transient, open_database
from iptv_billing.bench.billing_run import fresh_sqlite, seed_subscriptions
from iptv_billing.bench.machine import machine, peak_rss_mb
from iptv_billing.services import access
from iptv_billing.services.clock import FixedClock
from iptv_billing.services.context import load_context
from iptv_billing.services.ids import TimeOrderedIds
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.usage import IngestResult, ingest

START = datetime(2026, 3, 1, 12, tzinfo=UTC)
Owner = tuple[str, str]  # (customer id, subscription id)
METRICS = (("viewing_seconds", "sum", "second"), ("delivered_bytes", "sum", "byte"))


def _seed(engine: Engine, customers: int, ids: TimeOrderedIds) -> tuple[str, list[Owner]]:
    """A tenant with the two feed metrics and ``customers`` customers with one subscription
    each (usage is billed per subscription, so events name theirs, as the feeds do)."""
    tenant = seed_subscriptions(engine, customers, ids)
    with engine.begin() as c:
        c.execute(
            update(tables.Tenant).where(tables.Tenant.id == tenant).values(test_clock_now=START)
        )
        rows = [
            {
                "id": ids.new("bm"),
                "tenant_id": tenant,
                "code": code,
                "name": code,
                "aggregation": aggregation,
                "unit": unit,
                "archived": False,
                "created_at": START,
            }
            for code, aggregation, unit in METRICS
        ]
        c.execute(insert(tables.BillableMetric), rows)
        owners = c.execute(
            select(tables.Subscription.customer_id, tables.Subscription.id).where(
                tables.Subscription.tenant_id == tenant
            )
        ).all()
    return tenant, [(str(customer), str(sub)) for customer, sub in owners]


def make_batches(
    customers: list[Owner],
    events: int,
    batch: int,
    duplicate_share: float,
    seed: int = 7,
    prefix: str = "ev",
    lag: int = 1,
) -> list[list[dict[str, Any]]]:
    """``events`` new events in batches; ``duplicate_share`` of each batch repeats events of
    the batch ``lag`` batches before (a client's retry of a batch already answered)."""
    rng = random.Random(seed)
    stamps = [
        (START - timedelta(seconds=s)).isoformat().replace("+00:00", "Z") for s in range(3600)
    ]
    batches: list[list[dict[str, Any]]] = []
    serial = 0
    sent: list[list[dict[str, Any]]] = []
    while serial < events:
        size = min(batch, events - serial)
        previous = sent[-lag] if len(sent) >= lag else []
        repeats = rng.sample(previous, min(len(previous), int(size * duplicate_share)))
        fresh: list[dict[str, Any]] = []
        for _ in range(size - len(repeats)):
            serial += 1
            viewing = rng.random() < 0.5
            value: int | str = rng.randint(1, 60) if viewing else rng.randint(1, 10**9)
            if rng.random() < 0.1:
                value = f"{rng.randint(0, 999)}.{rng.randint(0, 999_999):06d}"
            customer, subscription = rng.choice(customers)
            fresh.append(
                {
                    "id": f"{prefix}-{serial:012d}",
                    "customer_id": customer,
                    "subscription_id": subscription,
                    "metric": "viewing_seconds" if viewing else "delivered_bytes",
                    "value": value,
                    "timestamp": rng.choice(stamps),
                }
            )
        merged = fresh + repeats
        rng.shuffle(merged)
        batches.append(merged)
        sent.append(fresh)
    return batches


def _ingest_share(
    url: str, tenant: str, batches: list[list[dict[str, Any]]]
) -> tuple[int, int, int, float]:
    """(accepted, duplicates, rejected, seconds) of one process's share."""
    # The prepared batches stand for request bodies, which a server frees after each call:
    # keep them out of the cyclic collector's full passes (as the server does its index).
    gc.collect()
    gc.freeze()
    database = open_database(url, migrate=False)
    clock = FixedClock(START)
    ids = TimeOrderedIds(clock)
    accepted = duplicates = rejected = 0
    started = time.perf_counter()
    for events in batches:

        def work(uow: UnitOfWork, events: list[dict[str, Any]] = events) -> IngestResult:
            return ingest(uow, load_context(uow, tenant, clock, ids), events)

        result = database.transact(work)
        accepted += result.accepted
        duplicates += result.duplicates
        rejected += result.rejected
    seconds = time.perf_counter() - started
    database.dispose()
    return accepted, duplicates, rejected, seconds


def _run_workers(
    url: str, tenant: str, batches: list[list[dict[str, Any]]], workers: int
) -> tuple[int, int, int, float]:
    if workers == 1:
        return _ingest_share(url, tenant, batches)
    shares = [batches[i::workers] for i in range(workers)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        # Warm the processes (imports, connections) before the clock starts.
        list(pool.map(_noop, range(workers)))
        started = time.perf_counter()
        futures = [pool.submit(_ingest_share, url, tenant, share) for share in shares]
        results = [f.result() for f in futures]
        seconds = time.perf_counter() - started
    return (
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        sum(r[2] for r in results),
        seconds,
    )


def _noop(_: int) -> None:
    import iptv_billing.services.usage  # noqa: F401


def _http(url: str, tenant: str, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Batches like the others (fresh ids) POSTed to the app in process (ASGI, no network)."""
    from fastapi.testclient import TestClient

    from iptv_billing.api.app import create_app
    from iptv_billing.api.deps import AppServices

    database = open_database(url, migrate=False)
    clock = FixedClock(START)
    ids = TimeOrderedIds(clock)
    with database.uow() as uow:
        _, key = access.issue_api_key(uow, ids, clock, tenant, "bench", "integration")
        uow.commit()
    services = AppServices(database, ids, clock, is_transient)
    bodies = [orjson.dumps({"events": events}) for events in batches]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    processed = 0
    with TestClient(create_app(services)) as client:
        started = time.perf_counter()
        for body in bodies:
            answer = client.post("/v1/usage/events", content=body, headers=headers)
            figures = answer.json()
            processed += figures["accepted"] + figures["duplicates"]
        seconds = time.perf_counter() - started
    database.dispose()
    return {
        "http_events": processed,
        "http_seconds": round(seconds, 2),
        "http_events_per_s": round(processed / seconds) if seconds else None,
    }


def run_benchmark(
    url: str,
    events: int,
    batch: int = 10_000,
    duplicate_share: float = 0.05,
    customers: int = 10_000,
    workers: int = 1,
    http: bool = False,
) -> dict[str, Any]:
    if make_url(url).get_backend_name() == "sqlite":
        fresh_sqlite(url)
    database = open_database(url, migrate=True)
    tenant, owners = _seed(database.engine, customers, TimeOrderedIds(FixedClock(START)))
    database.dispose()
    # Workers take every n-th batch: a repeat of the batch n before is one the same worker
    # has committed, as a client's retry would be.
    batches = make_batches(owners, events, batch, duplicate_share, lag=workers)
    sent = sum(len(b) for b in batches)
    accepted, duplicates, rejected, seconds = _run_workers(url, tenant, batches, workers)
    figures: dict[str, Any] = {
        "benchmark": "ingest",
        "database": make_url(url).get_backend_name(),
        "events_sent": sent,
        "batch": batch,
        "workers": workers,
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": rejected,
        "seconds": round(seconds, 2),
        "events_per_s": round((accepted + duplicates) / seconds) if seconds else None,
        "accepted_per_s": round(accepted / seconds) if seconds else None,
    }
    if http:
        again = make_batches(owners, events, batch, duplicate_share, seed=8, prefix="http")
        figures |= _http(url, tenant, again)
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["machine"] = machine()
    return figures
