"""Run a use case for the caller's tenant in one unit of work, read-only or committed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from iptv_billing.api.deps import AppServices
from iptv_billing.services.access import Principal
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ports import UnitOfWork

T = TypeVar("T")
Work = Callable[[UnitOfWork, Context], T]


def write(services: AppServices, caller: Principal, work: Work[T]) -> T:
    with services.database.uow() as uow:
        ctx = load_context(uow, caller.tenant_id, services.system_clock, services.ids)
        result = work(uow, ctx)
        uow.commit()
        return result


def read(services: AppServices, caller: Principal, work: Work[T]) -> T:
    with services.database.uow(read_only=True) as uow:
        ctx = load_context(uow, caller.tenant_id, services.system_clock, services.ids)
        return work(uow, ctx)
