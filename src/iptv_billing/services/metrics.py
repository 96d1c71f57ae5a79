"""Billable metrics: the tenant's catalog of what it meters (Lago's billable metrics).

A metric's code is what usage events name and is unique per tenant; its aggregation (count,
sum, max, unique count, latest) says how a period's events add up for rating. Metrics are
never edited or deleted, only archived: an archived metric takes no new events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from iptv_billing.domain.catalog import check_code
from iptv_billing.domain.errors import InvalidInput, NotFound
from iptv_billing.domain.rating import Aggregation
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.usage_records import MetricRecord

MAX_NAME = 200
MAX_UNIT = 40
# Codes the streaming-server feeds emit to, for tenants that create these metrics.
VIEWING_SECONDS = "viewing_seconds"
DELIVERED_BYTES = "delivered_bytes"


@dataclass(frozen=True, slots=True)
class CreateMetric:
    code: str
    name: str
    aggregation: str
    unit: str = "unit"


def create_metric(uow: UnitOfWork, ctx: Context, cmd: CreateMetric) -> MetricRecord:
    code = check_code(cmd.code, "a metric code")
    if not cmd.name.strip() or len(cmd.name) > MAX_NAME:
        raise InvalidInput("metric.invalid_name", f"a name is 1..{MAX_NAME} characters")
    if not cmd.unit.strip() or len(cmd.unit) > MAX_UNIT or not cmd.unit.isprintable():
        raise InvalidInput("metric.invalid_unit", f"a unit is 1..{MAX_UNIT} characters")
    try:
        aggregation = Aggregation(cmd.aggregation)
    except ValueError:
        allowed = ", ".join(a.value for a in Aggregation)
        raise InvalidInput(
            "metric.invalid_aggregation", f"aggregation is one of {allowed}"
        ) from None
    metric = MetricRecord(
        id=ctx.ids.new("bm"),
        tenant_id=ctx.tenant_id,
        code=code,
        name=cmd.name,
        aggregation=aggregation.value,
        unit=cmd.unit,
        archived=False,
        created_at=ctx.now(),
    )
    uow.usage.add_metric(metric)
    return metric


def get_metric(uow: UnitOfWork, ctx: Context, metric_id: str) -> MetricRecord:
    metric = uow.usage.get_metric(ctx.tenant_id, metric_id)
    if metric is None:
        raise NotFound("metric.not_found", f"no billable metric {metric_id}")
    return metric


def archive_metric(uow: UnitOfWork, ctx: Context, metric_id: str) -> MetricRecord:
    """Stop taking events for the metric; events already stored stay billable."""
    metric = get_metric(uow, ctx, metric_id)
    if not metric.archived:
        uow.usage.set_archived(ctx.tenant_id, metric.id, True)
    return replace(metric, archived=True)
