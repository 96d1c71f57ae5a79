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
    """One committed unit of work, rerun whole when the database reports a transient conflict
    (a deadlock, a serialization failure, a busy SQLite) instead of answering 500."""

    def attempt(uow: UnitOfWork) -> T:
        ctx = load_context(uow, caller.tenant_id, services.system_clock, services.ids)
        return work(uow, ctx)

    return services.database.transact(attempt)


def read(services: AppServices, caller: Principal, work: Work[T]) -> T:
    with services.database.uow(read_only=True) as uow:
        ctx = load_context(uow, caller.tenant_id, services.system_clock, services.ids)
        return work(uow, ctx)
