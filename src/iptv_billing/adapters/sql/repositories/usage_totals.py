"""A subscription's usage over a period, aggregated in the database: one grouped query for
count, sum, max and unique count of every metric, one ordered probe per ``latest`` metric.

Values are stored × 10**6 (``domain.usage.SCALE``), so sums and maxima are exact integers on
both engines and become ``Decimal`` only here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, Connection, distinct, func, select

from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.repositories._common import table, to_db
from iptv_billing.domain.rating import Aggregation
from iptv_billing.domain.usage import SCALE

EVENTS = table(tables.UsageEvent)
_SCALE = Decimal(SCALE)


def period_totals(
    connection: Connection,
    tenant_id: str,
    customer_id: str,
    subscription_id: str,
    metrics: Mapping[str, Aggregation],
    start: datetime,
    end: datetime,
) -> dict[str, Decimal]:
    """Metric code → the aggregate of the subscription's events in ``[start, end)``."""
    if not metrics:
        return {}
    e = EVENTS.c
    window = (
        e.tenant_id == tenant_id,  # ix_usage_events_rating: subscription, time
        e.subscription_id == subscription_id,
        e.customer_id == customer_id,
        e.metric_code.in_(sorted(metrics)),
        e.occurred_at >= to_db(start),
        e.occurred_at < to_db(end),
    )
    grouped = select(
        e.metric_code,
        func.count(),
        func.sum(e.value_scaled),
        func.max(e.value_scaled),
        func.count(distinct(e.unique_key)),
    ).where(*window)
    totals: dict[str, Decimal] = {code: Decimal(0) for code in metrics}
    for code, count, total, maximum, uniques in connection.execute(grouped.group_by(e.metric_code)):
        totals[code] = _pick(
            metrics[code], int(count), int(total or 0), int(maximum or 0), int(uniques)
        )
    for code, aggregation in metrics.items():
        if aggregation is Aggregation.LATEST:
            totals[code] = _latest(connection, window, code)
    return totals


def _pick(aggregation: Aggregation, count: int, total: int, maximum: int, uniques: int) -> Decimal:
    if aggregation is Aggregation.COUNT:
        return Decimal(count)
    if aggregation is Aggregation.UNIQUE_COUNT:
        return Decimal(uniques)
    if aggregation is Aggregation.MAX:
        return Decimal(maximum) / _SCALE
    return Decimal(total) / _SCALE  # SUM (LATEST is read separately)


def _latest(connection: Connection, window: tuple[ColumnElement[bool], ...], code: str) -> Decimal:
    # The same order as rating.Partial: the latest time, then the largest event id.
    e = EVENTS.c
    query = (
        select(e.value_scaled)
        .where(*window, e.metric_code == code)
        .order_by(e.occurred_at.desc(), e.event_id.desc())
        .limit(1)
    )
    value = connection.execute(query).scalar_one_or_none()
    return Decimal(0) if value is None else Decimal(int(value)) / _SCALE
