"""Billing runs and the tenant's test clock."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import AwareDatetime, Field

from iptv_billing.api.deps import AdminWrite, AppServices, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.errors import NotFound
from iptv_billing.services import test_clocks
from iptv_billing.services.audit import check_books
from iptv_billing.services.billing_run import BillingRunner
from iptv_billing.services.records import BillingRunRecord

router = APIRouter(route_class=IdempotentRoute, tags=["billing"])


class RunFailureOut(ApiModel):
    subscription_id: str
    code: str
    message: str


class BillingRunOut(ApiModel):
    object: Literal["billing_run"] = "billing_run"
    id: str
    status: str
    as_of: datetime
    started_at: datetime
    finished_at: datetime | None
    subscriptions_seen: int
    invoices_created: int
    transitions: int
    failures: int
    failure_details: list[RunFailureOut] | None = None

    @classmethod
    def of(cls, r: BillingRunRecord) -> BillingRunOut:
        return cls(
            id=r.id,
            status=r.status,
            as_of=r.as_of,
            started_at=r.started_at,
            finished_at=r.finished_at,
            subscriptions_seen=r.subscriptions_seen,
            invoices_created=r.invoices_created,
            transitions=r.transitions,
            failures=r.failures,
        )


class ClockOut(ApiModel):
    object: Literal["test_clock"] = "test_clock"
    frozen: bool
    now: datetime


class FreezeIn(ApiModel):
    at: AwareDatetime


class AdvanceIn(ApiModel):
    to: AwareDatetime
    run_billing: bool = Field(default=True, description="run billing at the new time")


def _run(services: AppServices, tenant_id: str) -> BillingRunRecord:
    publisher = services.publisher
    runner = BillingRunner(
        services.database.uow,
        services.system_clock,
        services.ids,
        is_transient=services.is_transient,
        # A checkpoint at once; cosignatures and anchors come from the scheduler, so that a
        # slow witness never holds the request.
        after_run=None if publisher is None else publisher.checkpoint_quietly,
    )
    return runner.run(tenant_id)


@router.post("/v1/billing-runs", status_code=201, response_model=BillingRunOut)
def start_run(caller: AdminWrite, services: Services) -> BillingRunOut:
    """Renew every due subscription up to now and apply dunning; safe to repeat."""
    return BillingRunOut.of(_run(services, caller.tenant_id))


@router.get("/v1/billing-runs", response_model=ListResponse[BillingRunOut])
def list_runs(page: Pagination, caller: ReadAccess, services: Services) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.billing_runs.list(c.tenant_id, page.limit, page.starting_after),
    )
    return ListResponse.of(records, BillingRunOut.of)


@router.get("/v1/billing-runs/{run_id}", response_model=BillingRunOut)
def get_run(run_id: ResourceId, caller: ReadAccess, services: Services) -> BillingRunOut:
    def work(u: Any, c: Any) -> BillingRunOut:
        run = u.billing_runs.get(c.tenant_id, run_id)
        if run is None:
            raise NotFound("billing_run.not_found", f"no billing run {run_id}")
        out = BillingRunOut.of(run)
        out.failure_details = [
            RunFailureOut(subscription_id=s, code=code, message=m)
            for s, code, m in u.billing_runs.failures(c.tenant_id, run_id)
        ]
        return out

    return read(services, caller, work)


class DiscrepancyOut(ApiModel):
    check: str
    subject: str
    currency: str | None
    expected: int = Field(description="minor units (or, for numbering, the highest number)")
    found: int


class BooksCheckOut(ApiModel):
    object: Literal["books_check"] = "books_check"
    consistent: bool
    discrepancies: list[DiscrepancyOut]


@router.get("/v1/books/check", response_model=BooksCheckOut)
def books_check(caller: ReadAccess, services: Services) -> BooksCheckOut:
    """Does the journal balance and agree with wallets, open invoices and invoice numbering?"""
    report = read(services, caller, lambda u, c: check_books(u, c.tenant_id))
    found = [DiscrepancyOut(**dataclasses.asdict(d)) for d in report.discrepancies]
    return BooksCheckOut(consistent=report.consistent, discrepancies=found)


@router.get("/v1/test-clock", response_model=ClockOut)
def get_clock(caller: ReadAccess, services: Services) -> ClockOut:
    return read(
        services,
        caller,
        lambda u, c: ClockOut(frozen=c.tenant.test_clock_now is not None, now=c.now()),
    )


@router.post("/v1/test-clock/freeze", response_model=ClockOut)
def freeze(body: FreezeIn, caller: AdminWrite, services: Services) -> ClockOut:
    """Freeze this tenant's time at ``at``; from then on it moves only when advanced."""
    at = write(services, caller, lambda u, c: test_clocks.freeze(u, c.tenant_id, body.at, c.now()))
    return ClockOut(frozen=True, now=at)


@router.post("/v1/test-clock/advance", response_model=ClockOut)
def advance(body: AdvanceIn, caller: AdminWrite, services: Services) -> ClockOut:
    """Move the test clock forward; renewals, trial ends and dunning due by then happen."""
    at = write(services, caller, lambda u, c: test_clocks.advance_to(u, c.tenant_id, body.to))
    if body.run_billing:
        _run(services, caller.tenant_id)
    return ClockOut(frozen=True, now=at)


@router.post("/v1/test-clock/unfreeze", response_model=ClockOut)
def unfreeze(caller: AdminWrite, services: Services) -> ClockOut:
    write(services, caller, lambda u, c: test_clocks.unfreeze(u, c.tenant_id))
    return ClockOut(frozen=False, now=services.system_clock.now())
