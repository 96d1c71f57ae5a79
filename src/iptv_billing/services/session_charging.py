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
from iptv_billing.services.ports import UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")
ATTEMPTS = 3


class SessionCharger:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        reserve_seconds: int = RESERVE_SECONDS,
        is_transient: Callable[[BaseException], bool] = lambda _error: False,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._is_transient = is_transient
        self.reserve_seconds = reserve_seconds

    def reserve(self, tenant_id: str, subscription_id: str, reference: str) -> Reservation:
        """A hold for the next stretch of viewing; ``InsufficientFunds`` when the wallet
        covers not a minute (nothing changed)."""
        seconds, ref = self.reserve_seconds, reference[:200]
        return self._transact(
            tenant_id, lambda u, c: metered_holds.reserve(u, c, subscription_id, seconds, ref)
        )

    def settle(self, tenant_id: str, hold_id: str) -> None:
        self._transact(tenant_id, lambda u, c: metered_holds.settle(u, c, hold_id))

    def _transact(self, tenant_id: str, work: Callable[[UnitOfWork, Context], T]) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._uow() as uow:
                    result = work(uow, load_context(uow, tenant_id, self._clock, self._ids))
                    uow.commit()
                    return result
            except Exception as error:
                if attempt == ATTEMPTS or not self._is_transient(error):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
