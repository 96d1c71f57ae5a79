"""Billable metrics and usage events.

``POST /v1/usage/events`` takes up to 10,000 events a call. The body is parsed with orjson and
checked as plain dicts, not as a pydantic model per event (ten times the cost at these
volumes); OpenAPI still documents its schema. Each event gets its own verdict: the response
counts accepted, duplicate and rejected events, and ``results`` lists only the events that
were *not* accepted (index into the request, id, status, code), so a clean batch answers in a
few bytes. Only a body that is not a batch at all is refused whole (400/413/422).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from iptv_billing.api.deps import AdminWrite, IntegrationAccess, ReadAccess, Services
from iptv_billing.api.errors import problem
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.rating import Aggregation
from iptv_billing.domain.usage import (
    MAX_BATCH,
    MAX_CODE,
    MAX_ID,
    MAX_PROPERTIES_BYTES,
    MAX_REF,
    MAX_UNIQUE_KEY,
)
from iptv_billing.services import metrics, usage
from iptv_billing.services.usage_records import MetricRecord

router = APIRouter(route_class=IdempotentRoute, tags=["usage"])
EVENTS_PATH = "/v1/usage/events"
# 10,000 events with ids, properties and all run to a few MB; other routes keep 1 MiB.
MAX_BODY_BYTES = 16 * 1024 * 1024


class MetricIn(ApiModel):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", examples=["viewing_seconds"])
    name: str = Field(min_length=1, max_length=metrics.MAX_NAME)
    aggregation: Aggregation
    unit: str = Field(default="unit", min_length=1, max_length=metrics.MAX_UNIT)


class MetricOut(ApiModel):
    object: Literal["billable_metric"] = "billable_metric"
    id: str
    code: str
    name: str
    aggregation: Aggregation
    unit: str
    archived: bool
    created_at: datetime

    @classmethod
    def of(cls, r: MetricRecord) -> MetricOut:
        return cls(
            id=r.id,
            code=r.code,
            name=r.name,
            aggregation=Aggregation(r.aggregation),
            unit=r.unit,
            archived=r.archived,
            created_at=r.created_at,
        )


class EventResultOut(ApiModel):
    index: int = Field(description="the event's position in the request")
    id: str | None
    status: Literal["duplicate", "rejected"]
    code: str = Field(examples=["usage.unknown_metric"])
    message: str


class IngestOut(ApiModel):
    object: Literal["usage_batch"] = "usage_batch"
    batch_id: str | None = Field(description="names the batch's log entry; null if none")
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResultOut] = Field(description="the events not accepted, by index")


@router.post("/v1/metrics", status_code=201, response_model=MetricOut)
def create_metric(body: MetricIn, caller: AdminWrite, services: Services) -> MetricOut:
    cmd = metrics.CreateMetric(body.code, body.name, body.aggregation.value, body.unit)
    return MetricOut.of(write(services, caller, lambda u, c: metrics.create_metric(u, c, cmd)))


@router.get("/v1/metrics", response_model=ListResponse[MetricOut])
def list_metrics(page: Pagination, caller: ReadAccess, services: Services) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.usage.list_metrics(c.tenant_id, page.limit, page.starting_after),
    )
    return ListResponse.of(records, MetricOut.of)


@router.get("/v1/metrics/{metric_id}", response_model=MetricOut)
def get_metric(metric_id: ResourceId, caller: ReadAccess, services: Services) -> MetricOut:
    return MetricOut.of(read(services, caller, lambda u, c: metrics.get_metric(u, c, metric_id)))


@router.post("/v1/metrics/{metric_id}/archive", response_model=MetricOut)
def archive_metric(metric_id: ResourceId, caller: AdminWrite, services: Services) -> MetricOut:
    """The metric takes no new events; those stored stay billable."""
    return MetricOut.of(
        write(services, caller, lambda u, c: metrics.archive_metric(u, c, metric_id))
    )


def _string(max_length: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length, **extra}


_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "customer_id", "metric", "value", "timestamp"],
    "properties": {
        "id": _string(MAX_ID, description="the client's event id: the deduplication key"),
        "customer_id": _string(MAX_REF),
        "metric": _string(MAX_CODE, description="a billable metric code"),
        "value": {
            "oneOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\d{1,19}(\.\d{1,6})?$"},
            ],
            "description": "exact: a decimal string, or a JSON number of at most 15 digits",
        },
        "timestamp": {"type": "string", "format": "date-time"},
        "unique_key": _string(MAX_UNIQUE_KEY, description="what unique_count metrics count"),
        "subscription_id": _string(MAX_REF),
        "properties": {
            "type": "object",
            "description": f"at most {MAX_PROPERTIES_BYTES} bytes as JSON",
        },
    },
}
_BATCH_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["events"],
                    "properties": {
                        "events": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            "items": _EVENT_SCHEMA,
                        }
                    },
                }
            }
        },
    }
}


@router.post(EVENTS_PATH, responses={200: {"model": IngestOut}}, openapi_extra=_BATCH_DOC)
async def ingest_events(
    request: Request, caller: IntegrationAccess, services: Services
) -> Response:
    """Up to 10,000 usage events: each accepted, reported duplicate (its id was seen before,
    in this batch or an earlier one) or rejected with a code; the valid ones are stored with
    one log entry for the batch. Events may be up to ``usage_grace_seconds`` late and 5
    minutes early."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return problem(request, 400, "request.malformed_json", "the body is not valid JSON")
    events = usage.check_batch(body)
    grace = timedelta(seconds=services.usage_grace_seconds)
    result = await run_in_threadpool(
        write, services, caller, lambda u, c: usage.ingest(u, c, events, grace)
    )
    return Response(orjson.dumps(_rendered(result)), media_type="application/json")


def _rendered(result: usage.IngestResult) -> dict[str, Any]:
    return {
        "object": "usage_batch",
        "batch_id": result.batch_id,
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "results": [
            {"index": v.index, "id": v.id, "status": v.status, "code": v.code, "message": v.message}
            for v in result.verdicts
        ],
    }
