"""The database side of charging metered sessions from prepaid wallets (``metered_holds``),
as the usage feed calls it: each step in its own transaction, in the tenant's time, rerun
when the database reports a transient conflict (a deadlock, a serialization failure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from iptv_billing.services import metered_holds
from iptv_billing.services.clock import Clock
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.metered_holds import RESERVE_SECONDS, Reservation
from iptv_billing.services.ports import Transact, UnitOfWork

T = TypeVar("T")


class SessionCharger:
    def __init__(
        self,
        transact: Transact,
        clock: Clock,
        ids: IdGenerator,
        reserve_seconds: int = RESERVE_SECONDS,
    ) -> None:
        self._transact = transact
        self._clock = clock
        self._ids = ids
        self.reserve_seconds = reserve_seconds

    def reserve(self, tenant_id: str, subscription_id: str, reference: str) -> Reservation:
        """A hold for the next stretch of viewing; ``InsufficientFunds`` when the wallet
        covers not a minute (nothing changed)."""
        seconds, ref = self.reserve_seconds, reference[:200]
        return self._in_tenant(
            tenant_id, lambda u, c: metered_holds.reserve(u, c, subscription_id, seconds, ref)
        )

    def settle(self, tenant_id: str, hold_id: str) -> None:
        self._in_tenant(tenant_id, lambda u, c: metered_holds.settle(u, c, hold_id))

    def _in_tenant(self, tenant_id: str, work: Callable[[UnitOfWork, Context], T]) -> T:
        return self._transact(
            lambda uow: work(uow, load_context(uow, tenant_id, self._clock, self._ids))
        )
