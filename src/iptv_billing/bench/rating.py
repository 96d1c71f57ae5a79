"""``iptv-billing bench rating``: usage events rated into invoices per second.

Seeds subscriptions on a metered plan (viewing minutes, graduated, with an allowance; distinct
channels, unique count, per unit) with events in their first period, then runs the billing
run, which rates each ended period in the database and puts the lines on the renewal
invoices. Every invoice's usage is checked against the same events rated in Python, so a fast
wrong answer does not count. Also reports the in-memory rating rate (mergeable partials).
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.engine import make_url

from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.repositories._bulk import insert_tuples
from iptv_billing.adapters.sql.uow import open_database
from iptv_billing.bench.billing_run import (
    START,
    fresh_sqlite,
    renew_in_worker,
    seed_subscriptions,
)
from iptv_billing.bench.machine import machine
from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, Period, PeriodUnit
from iptv_billing.domain.rating import Aggregation, Event, Price, PricingModel, Tier, partial_of
from iptv_billing.domain.usage import SCALE
from iptv_billing.domain.usage_charges import UsageCharge
from iptv_billing.domain.usage_rating import rate_period
from iptv_billing.services.clock import FixedClock
from iptv_billing.services.ids import TimeOrderedIds

EVENT_COLUMNS = (
    "tenant_id",
    "event_id",
    "batch_id",
    "customer_id",
    "metric_code",
    "value_scaled",
    "unique_key",
    "subscription_id",
    "occurred_at",
    "received_at",
    "properties",
)
PERIOD = Period(START - timedelta(days=31), START)


def metered_terms() -> BillingTerms:
    minutes = Price(
        PricingModel.GRADUATED,
        "EUR",
        tiers=(Tier(Decimal(600), Decimal("0.01")), Tier(None, Decimal("0.005"))),
        included=Decimal(120),
    )
    channels = Price(PricingModel.PER_UNIT, "EUR", unit_price=Decimal("0.10"), included=Decimal(5))
    return BillingTerms(
        plan_code="bench",
        version=1,
        name="Bench metered",
        interval=BillingInterval(PeriodUnit.MONTH),
        prices=(Money.of("4.99", "EUR"),),
        effective_from=START - timedelta(days=60),
        usage_charges=(
            UsageCharge("minutes", "Viewing minutes", Aggregation.SUM, (minutes,)),
            UsageCharge("channels", "Channels watched", Aggregation.UNIQUE_COUNT, (channels,)),
        ),
    )


def _seed_events(
    engine: Engine, tenant: str, per_subscription: int, rng: random.Random
) -> dict[str, list[tuple[str, Event]]]:
    with engine.begin() as c:
        for code, aggregation in (("minutes", "sum"), ("channels", "unique_count")):
            c.execute(
                insert(tables.BillableMetric),
                [
                    {
                        "id": f"bm_{code}",
                        "tenant_id": tenant,
                        "code": code,
                        "name": code,
                        "aggregation": aggregation,
                        "unit": "unit",
                        "archived": False,
                        "created_at": PERIOD.start,
                    }
                ],
            )
        subs = c.execute(
            select(tables.Subscription.id, tables.Subscription.customer_id).where(
                tables.Subscription.tenant_id == tenant
            )
        ).all()
    events: dict[str, list[tuple[str, Event]]] = {}
    rows: list[tuple[Any, ...]] = []
    span = int((PERIOD.end - PERIOD.start).total_seconds()) - 1
    for sub_id, customer_id in subs:
        mine = events[sub_id] = []
        for n in range(per_subscription):
            metric = "minutes" if n % 4 else "channels"
            scaled = rng.randrange(1, 90 * SCALE) if metric == "minutes" else SCALE
            channel = f"ch{rng.randrange(40)}"
            at = PERIOD.start + timedelta(seconds=rng.randrange(span))
            event_id = f"{sub_id}-{n}"
            mine.append((metric, Event(event_id, Decimal(scaled) / SCALE, channel)))
            rows.append(
                (
                    tenant,
                    event_id,
                    "ubat_bench",
                    customer_id,
                    metric,
                    scaled,
                    channel,
                    sub_id,
                    at,
                    at,
                    None,
                )
            )
        if len(rows) >= 50_000:
            _insert(engine, rows)
            rows = []
    _insert(engine, rows)
    return events


def _insert(engine: Engine, rows: list[tuple[Any, ...]]) -> None:
    with engine.begin() as c:
        insert_tuples(c, tables.UsageEvent.__table__, EVENT_COLUMNS, rows)  # type: ignore[arg-type]


def _expected_usage(terms: BillingTerms, events: dict[str, list[tuple[str, Event]]]) -> int:
    total = 0
    for mine in events.values():
        quantities = {
            "minutes": partial_of(e for m, e in mine if m == "minutes").value(Aggregation.SUM),
            "channels": partial_of(e for m, e in mine if m == "channels").value(
                Aggregation.UNIQUE_COUNT
            ),
        }
        total += rate_period(terms, "EUR", PERIOD, quantities).total.minor
    return total


def _billed_usage(engine: Engine, tenant: str) -> int:
    with engine.connect() as c:
        query = text(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM invoice_lines "
            "WHERE tenant_id = :tenant AND kind = 'usage'"
        )
        return int(c.execute(query, {"tenant": tenant}).scalar_one())


def run_benchmark(
    url: str, subscriptions: int, per_subscription: int, batch_size: int
) -> dict[str, Any]:
    if make_url(url).get_backend_name() == "sqlite":
        fresh_sqlite(url)
    database = open_database(url, migrate=True)
    terms = metered_terms()
    tenant = seed_subscriptions(
        database.engine, subscriptions, TimeOrderedIds(FixedClock(START)), terms
    )
    events = _seed_events(database.engine, tenant, per_subscription, random.Random(5))
    started = time.perf_counter()
    expected = _expected_usage(terms, events)
    in_memory = time.perf_counter() - started
    database.dispose()
    started = time.perf_counter()
    renewed, invoices, failures, peak = renew_in_worker(url, tenant, batch_size)
    seconds = time.perf_counter() - started
    database = open_database(url, migrate=False)
    billed = _billed_usage(database.engine, tenant)
    database.dispose()
    total_events = subscriptions * per_subscription
    return {
        "benchmark": "rating",
        "database": make_url(url).get_backend_name(),
        "subscriptions": subscriptions,
        "events": total_events,
        "invoices": invoices,
        "failures": failures,
        "seconds": round(seconds, 2),
        "events_rated_per_s": round(total_events / seconds) if seconds else None,
        "invoices_per_s": round(invoices / seconds, 1) if seconds else None,
        "in_memory_events_rated_per_s": round(total_events / in_memory) if in_memory else None,
        "usage_billed_minor": billed,
        "usage_correct": billed == expected and renewed == subscriptions,
        "peak_rss_mb": round(peak / 2**20, 1),
        "machine": machine(),
    }
