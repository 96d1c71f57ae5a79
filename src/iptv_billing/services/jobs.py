"""Recurring work a running service does by itself: billing runs for tenants on real time
(a tenant on a frozen test clock bills when its clock is advanced) and settling card payments
that the provider confirmed asynchronously."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from iptv_billing.domain.errors import BillingError
from iptv_billing.services import idempotency, payments
from iptv_billing.services.billing_run import BillingRunner
from iptv_billing.services.clock import Clock
from iptv_billing.services.context import load_context
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import UnitOfWorkFactory
from iptv_billing.services.providers import PaymentProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TickReport:
    tenants_billed: int
    invoices_created: int
    payments_settled: int
    failures: int


class RecurringJobs:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        provider: PaymentProvider,
        *,
        is_transient: Callable[[BaseException], bool] = lambda _error: False,
        after_run: Callable[[str], None] | None = None,
    ) -> None:
        self._uow = uow
        self._after_run = after_run
        self._clock = clock
        self._ids = ids
        self._provider = provider
        self._is_transient = is_transient

    def tick(self) -> TickReport:
        """One pass over every tenant; one tenant's failure never stops the others."""
        idempotency.purge_expired(self._uow, self._clock)
        with self._uow(read_only=True) as uow:
            tenants = list(uow.tenants.list())
        billed = invoices = settled = failures = 0
        for tenant in tenants:
            try:
                settled += self._settle_payments(tenant.id)
                if tenant.test_clock_now is None:
                    runner = BillingRunner(
                        self._uow,
                        self._clock,
                        self._ids,
                        is_transient=self._is_transient,
                        after_run=self._after_run,
                    )
                    run = runner.run(tenant.id)
                    billed, invoices = billed + 1, invoices + run.invoices_created
            except BillingError as error:
                failures += 1
                log.warning("recurring work for %s failed: %s", tenant.id, error)
        return TickReport(billed, invoices, settled, failures)

    def _settle_payments(self, tenant_id: str) -> int:
        with self._uow() as uow:
            ctx = load_context(uow, tenant_id, self._clock, self._ids)
            settled = payments.reconcile_pending(uow, ctx, self._provider)
            uow.commit()
        return settled
