"""What every use case is handed besides its unit of work: who, when, and how to name things."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from iptv_billing.domain.errors import NotFound
from iptv_billing.services.clock import Clock, FixedClock
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import TenantRecord


@dataclass(frozen=True, slots=True)
class Context:
    tenant: TenantRecord
    clock: Clock
    ids: IdGenerator

    @property
    def tenant_id(self) -> str:
        return self.tenant.id

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.tenant.timezone)

    def now(self) -> datetime:
        return self.clock.now()


def tenant_clock(tenant: TenantRecord, system: Clock) -> Clock:
    """A tenant with a test clock lives at its frozen instant; every other one at real time."""
    return FixedClock(tenant.test_clock_now) if tenant.test_clock_now else system


def get_tenant(uow: UnitOfWork, tenant_id: str) -> TenantRecord:
    tenant = uow.tenants.get(tenant_id)
    if tenant is None:
        raise NotFound("tenant.not_found", f"no tenant {tenant_id}")
    return tenant


def load_context(uow: UnitOfWork, tenant_id: str, system: Clock, ids: IdGenerator) -> Context:
    tenant = get_tenant(uow, tenant_id)
    return Context(tenant, tenant_clock(tenant, system), ids)
