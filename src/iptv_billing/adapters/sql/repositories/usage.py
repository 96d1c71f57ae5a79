"""Billable metrics and usage events.

Events are inserted set-based, and the primary key (tenant, event id) decides duplicates, so
two batches racing with the same id store it once and each learns exactly which ids it stored:

* PostgreSQL: COPY into a session-local staging table, then one ``INSERT … SELECT … ON
  CONFLICT DO NOTHING RETURNING event_id`` (in id order, so that two overlapping batches
  take their locks in the same order and cannot deadlock);
* SQLite: write transactions are serialized (``BEGIN IMMEDIATE``), so reading which ids exist
  and inserting the others is exact; ``OR IGNORE`` and the change count check it anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.repositories._bulk import copy_text, returned_ids
from iptv_billing.adapters.sql.repositories._common import (
    CUSTOMERS,
    SUBSCRIPTIONS,
    chunked,
    in_ids,
    insert_unique,
    is_postgresql,
    page,
    table,
    to_db,
    to_record,
    to_values,
)
from iptv_billing.adapters.sql.repositories.usage_totals import period_totals
from iptv_billing.domain.errors import InvariantViolated
from iptv_billing.domain.rating import Aggregation
from iptv_billing.services.records import Page
from iptv_billing.services.usage_records import EventRow, MetricRecord, StoredUsageEvent

METRICS = table(tables.BillableMetric)
ENDED_STATUSES = ("cancelled", "expired")  # a live subscription is none of these
EVENTS = table(tables.UsageEvent)
STAGE = "stage_usage_events"
# What each event brings, in ``EventRow`` order; tenant, batch and receipt time are the
# batch's, added in SQL.
_OWN = (
    "event_id",
    "customer_id",
    "metric_code",
    "value_scaled",
    "unique_key",
    "subscription_id",
    "occurred_at",
    "properties",
)
_ALL = ("tenant_id", "batch_id", *_OWN, "received_at")
NULL = "\\N"
_NULLABLE = (4, 5, 7)  # unique key, subscription, properties
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_TEXT_STAMPS: dict[datetime, str] = {}  # event time → its COPY text, process-wide (bounded)


def _metric(row: Row[Any]) -> MetricRecord:
    return to_record(MetricRecord, row)


def _copy_field(value: str | None) -> str:
    if value is None:
        return NULL
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


def _stamp(at: datetime) -> str:
    """The COPY text of an event time, cached: events share few distinct times."""
    text = _TEXT_STAMPS.get(at)
    if text is None:
        if len(_TEXT_STAMPS) >= 100_000:
            _TEXT_STAMPS.clear()
        text = _TEXT_STAMPS[at] = to_db(at).isoformat()
    return text


def copy_data(events: Sequence[EventRow]) -> str:
    """The events in COPY text format. Fields are written as they are, then the whole text is
    checked: one tab fewer than the fields a line, one newline a line, no carriage return, and
    a backslash only in each NULL marker prove that no field needed escaping (it never does
    for validated events). Otherwise every field is escaped."""
    stamp = _stamp
    lines = [
        f"{e}\t{c}\t{m}\t{v}\t{NULL if u is None else u}\t{NULL if s is None else s}\t"
        f"{stamp(at)}\t{NULL if p is None else p}"
        for e, c, m, v, u, s, at, p in events
    ]
    data = "\n".join(lines) + "\n"
    columns = list(zip(*events, strict=True))
    nulls = sum(columns[i].count(None) for i in _NULLABLE)
    n = len(events)
    if (
        data.count("\\") == nulls
        and data.count("\t") == n * (len(_OWN) - 1)
        and data.count("\n") == n
        and "\r" not in data
    ):
        return data
    field = _copy_field
    return "".join(
        f"{field(e)}\t{field(c)}\t{field(m)}\t{v}\t{field(u)}\t{field(s)}\t{stamp(at)}\t{field(p)}\n"
        for e, c, m, v, u, s, at, p in events
    )


def _stamper(render: Any) -> Any:
    """``render`` cached per instant: a batch holds few distinct times."""
    cache: dict[datetime, str] = {}

    def stamp(at: datetime) -> str:
        text = cache.get(at)
        if text is None:
            text = cache[at] = render(to_db(at))
        return text

    return stamp


class SqlUsageRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection
        self._staged = False  # whether this unit of work has used the staging table

    # -- metrics ---------------------------------------------------------------------------
    def add_metric(self, metric: MetricRecord) -> None:
        insert_unique(
            self._c,
            METRICS,
            to_values(metric),
            "metric.duplicate_code",
            f"a billable metric with code {metric.code!r} exists",
        )

    def get_metric(self, tenant_id: str, metric_id: str) -> MetricRecord | None:
        row = self._c.execute(
            select(METRICS).where(METRICS.c.tenant_id == tenant_id, METRICS.c.id == metric_id)
        ).first()
        return None if row is None else _metric(row)

    def list_metrics(self, tenant_id: str, limit: int, after: str | None) -> Page[MetricRecord]:
        query = select(METRICS).where(METRICS.c.tenant_id == tenant_id)
        return page(self._c, query, METRICS, limit, after, _metric)

    def metrics_by_code(self, tenant_id: str, codes: Sequence[str]) -> dict[str, MetricRecord]:
        found: dict[str, MetricRecord] = {}
        for part in chunked(codes):
            query = select(METRICS).where(
                METRICS.c.tenant_id == tenant_id, METRICS.c.code.in_(part)
            )
            found.update((r.code, r) for r in map(_metric, self._c.execute(query)))
        return found

    def set_archived(self, tenant_id: str, metric_id: str, archived: bool) -> None:
        self._c.execute(
            update(METRICS)
            .where(METRICS.c.tenant_id == tenant_id, METRICS.c.id == metric_id)
            .values(archived=archived)
        )

    # -- what events refer to --------------------------------------------------------------
    def known_customers(self, tenant_id: str, customer_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for part in chunked(customer_ids):
            query = select(CUSTOMERS.c.id).where(
                CUSTOMERS.c.tenant_id == tenant_id, in_ids(self._c, CUSTOMERS.c.id, part)
            )
            found.update(self._c.execute(query).scalars())
        return found

    def subscription_customers(
        self, tenant_id: str, subscription_ids: Sequence[str]
    ) -> dict[str, str]:
        found: dict[str, str] = {}
        for part in chunked(subscription_ids):
            query = select(SUBSCRIPTIONS.c.id, SUBSCRIPTIONS.c.customer_id).where(
                SUBSCRIPTIONS.c.tenant_id == tenant_id,
                in_ids(self._c, SUBSCRIPTIONS.c.id, part),
            )
            found.update((str(sid), str(cid)) for sid, cid in self._c.execute(query))
        return found

    def live_subscriptions(
        self, tenant_id: str, customer_ids: Sequence[str]
    ) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for part in chunked(customer_ids):
            query = select(SUBSCRIPTIONS.c.customer_id, SUBSCRIPTIONS.c.id).where(
                SUBSCRIPTIONS.c.tenant_id == tenant_id,
                in_ids(self._c, SUBSCRIPTIONS.c.customer_id, part),
                SUBSCRIPTIONS.c.status.not_in(ENDED_STATUSES),
            )
            for customer_id, sub_id in self._c.execute(query):
                found.setdefault(str(customer_id), []).append(str(sub_id))
        return found

    # -- events ----------------------------------------------------------------------------
    def insert_new_events(
        self, tenant_id: str, batch_id: str, received_at: datetime, events: Sequence[EventRow]
    ) -> set[str]:
        if not events:
            return set()
        if is_postgresql(self._c):
            return self._insert_postgresql(tenant_id, batch_id, received_at, events)
        return self._insert_sqlite(tenant_id, batch_id, received_at, events)

    def _insert_postgresql(
        self, tenant_id: str, batch_id: str, received_at: datetime, events: Sequence[EventRow]
    ) -> set[str]:
        """COPY into staging, then one INSERT … ON CONFLICT DO NOTHING: the unique index
        decides each row once, whatever the planner's statistics, and a batch racing this one
        waits for its commit, then skips the rows it stored. In id order, so that two
        overlapping batches take their locks in the same order and cannot deadlock. Staging
        holds the events' own columns only; tenant, batch and receipt time are parameters."""
        self._c.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(_OWN)} FROM usage_events WITH NO DATA"
        )
        if self._staged:  # emptied at commit; a second batch in one transaction empties it
            self._c.exec_driver_sql(f"TRUNCATE {STAGE}")
        self._staged = True
        copy_text(self._c, STAGE, _OWN, copy_data(events))
        own = ", ".join(_OWN)
        return returned_ids(
            self._c,
            f"INSERT INTO usage_events ({', '.join(_ALL)}) "
            f"SELECT %(tenant)s, %(batch)s, {own}, %(received)s FROM {STAGE} ORDER BY event_id "
            "ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id",
            {"tenant": tenant_id, "batch": batch_id, "received": to_db(received_at)},
        )

    def _insert_sqlite(
        self, tenant_id: str, batch_id: str, received_at: datetime, events: Sequence[EventRow]
    ) -> set[str]:
        ids = [e[0] for e in events]
        existing: set[str] = set()
        for part in chunked(ids):
            query = select(EVENTS.c.event_id).where(
                EVENTS.c.tenant_id == tenant_id, EVENTS.c.event_id.in_(part)
            )
            existing.update(self._c.execute(query).scalars())
        # The text SQLAlchemy's DateTime writes on SQLite (naive UTC), so Core reads it back.
        stamp = _stamper(lambda at: at.replace(tzinfo=None).isoformat(" ", "microseconds"))
        received = stamp(received_at)
        rows = [
            (tenant_id, batch_id, e, c, m, v, u, s, stamp(at), p, received)
            for e, c, m, v, u, s, at, p in events
            if e not in existing
        ]
        if rows:
            marks = ", ".join("?" * len(_ALL))
            statement = f"INSERT OR IGNORE INTO usage_events ({', '.join(_ALL)}) VALUES ({marks})"
            result = self._c.exec_driver_sql(statement, rows)
            if result.rowcount not in (-1, len(rows)):
                raise InvariantViolated("usage events changed under a write transaction")
        return {row[2] for row in rows}

    def events_of_batch(self, tenant_id: str, batch_id: str) -> Sequence[StoredUsageEvent]:
        query = select(EVENTS).where(EVENTS.c.tenant_id == tenant_id, EVENTS.c.batch_id == batch_id)
        rows = self._c.execute(query.order_by(EVENTS.c.event_id))
        return [to_record(StoredUsageEvent, row) for row in rows]

    def count_events(self, tenant_id: str) -> int:
        query = select(func.count()).select_from(EVENTS).where(EVENTS.c.tenant_id == tenant_id)
        return int(self._c.execute(query).scalar_one())

    def period_totals(
        self,
        tenant_id: str,
        customer_id: str,
        subscription_id: str,
        metrics: Mapping[str, Aggregation],
        start: datetime,
        end: datetime,
    ) -> dict[str, Decimal]:
        return period_totals(self._c, tenant_id, customer_id, subscription_id, metrics, start, end)
