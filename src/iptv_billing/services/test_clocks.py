"""Test clocks, as Stripe's: a tenant freezes its time, then advances it, and everything that
falls due in between (renewals, trial ends, dunning) happens, so a year passes in seconds."""

from __future__ import annotations

from datetime import datetime, timedelta

from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.services.context import get_tenant
from iptv_billing.services.ports import UnitOfWork

MAX_ADVANCE = timedelta(days=3 * 366)


def freeze(uow: UnitOfWork, tenant_id: str, at: datetime, now: datetime) -> datetime:
    """Freeze the tenant's time at ``at``; ``now`` is its time before (frozen or real).

    Only a tenant with no subscriptions yet may start in the past (a demo, a simulation
    replaying history); afterwards time never runs backwards, or periods would be billed twice.
    """
    if at.tzinfo is None:
        raise InvalidInput("time.naive_datetime", "give the time with a UTC offset")
    get_tenant(uow, tenant_id)
    if at < now and uow.subscriptions.list(tenant_id, 1, None).items:
        raise Conflict("clock.backwards", "a test clock only moves forward")
    uow.tenants.set_test_clock(tenant_id, at)
    return at


def advance_to(uow: UnitOfWork, tenant_id: str, to: datetime) -> datetime:
    tenant = get_tenant(uow, tenant_id)
    if tenant.test_clock_now is None:
        raise Conflict("clock.not_frozen", "freeze the tenant's clock first")
    if to.tzinfo is None:
        raise InvalidInput("time.naive_datetime", "give the time with a UTC offset")
    if to <= tenant.test_clock_now:
        raise Conflict("clock.backwards", "a test clock only moves forward")
    if to - tenant.test_clock_now > MAX_ADVANCE:
        raise InvalidInput("clock.advance_too_far", "advance at most three years at a time")
    uow.tenants.set_test_clock(tenant_id, to)
    return to


def unfreeze(uow: UnitOfWork, tenant_id: str) -> None:
    get_tenant(uow, tenant_id)
    uow.tenants.set_test_clock(tenant_id, None)
