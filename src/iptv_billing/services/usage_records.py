"""Records of usage metering: billable metrics, and usage events as storage holds them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# An event on its way into storage: (event id, customer id, metric code, value × 10**6,
# unique key, subscription id, time, properties as JSON text). Plain tuples: a batch holds
# 10,000 of them and ingestion runs at 150,000 a second.
EventRow = tuple[str, str, str, int, str | None, str | None, datetime, str | None]


@dataclass(frozen=True, slots=True)
class MetricRecord:
    id: str
    tenant_id: str
    code: str
    name: str
    aggregation: str  # domain.rating.Aggregation
    unit: str
    archived: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredUsageEvent:
    tenant_id: str
    event_id: str
    batch_id: str
    customer_id: str
    metric_code: str
    value_scaled: int  # the value × 10**6 (domain.usage.SCALE)
    unique_key: str | None
    subscription_id: str | None
    occurred_at: datetime
    received_at: datetime
    properties: str | None
