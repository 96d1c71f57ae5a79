"""Recurring work a running service does by itself: billing runs for tenants on real time
(a tenant on a frozen test clock bills when its clock is advanced), settling card payments
that the provider confirmed asynchronously, releasing wallet holds that lapsed, and wallet
automation (auto top-ups, low-balance notices)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from iptv_billing.domain.errors import BillingError
from iptv_billing.services import idempotency, payments, wallet_holds
from iptv_billing.services.billing_run import BillingRunner
from iptv_billing.services.clock import Clock
from iptv_billing.services.context import load_context
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import UnitOfWorkFactory
from iptv_billing.services.ppv_refunds import finish_tenant_cancellations
from iptv_billing.services.providers import PaymentProvider
from iptv_billing.services.wallet_automation import WalletAutomation

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TickReport:
    tenants_billed: int
    invoices_created: int
    payments_settled: int
    failures: int
    holds_expired: int = 0
    wallet_notices: int = 0  # low-balance notices logged
    auto_top_ups: int = 0  # auto top-up charges made (pending or settled at once)


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
        self._automation = WalletAutomation(uow, clock, ids, provider, is_transient)

    def tick(self) -> TickReport:
        """One pass over every tenant; one tenant's failure never stops the others."""
        idempotency.purge_expired(self._uow, self._clock)
        with self._uow(read_only=True) as uow:
            tenants = list(uow.tenants.list())
        billed = invoices = settled = failures = expired = notices = top_ups = 0
        for tenant in tenants:
            try:
                settled += self._settle_payments(tenant.id)
                # Cancelled PPV events whose refunds were interrupted are finished here.
                finish_tenant_cancellations(self._uow, tenant.id, self._clock, self._ids)
                expired += self._expire_holds(tenant.id)
                automation = self._automation.run(tenant.id)
                notices += automation.notices
                top_ups += automation.top_ups_charged
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
        return TickReport(billed, invoices, settled, failures, expired, notices, top_ups)

    def _expire_holds(self, tenant_id: str) -> int:
        """Release lapsed holds in bounded transactions (on the tenant's own clock)."""
        total = 0
        while True:
            with self._uow() as uow:
                ctx = load_context(uow, tenant_id, self._clock, self._ids)
                expired = wallet_holds.expire_lapsed(uow, ctx)
                uow.commit()
            total += expired
            if expired < wallet_holds.EXPIRY_BATCH:
                return total

    def _settle_payments(self, tenant_id: str) -> int:
        with self._uow() as uow:
            ctx = load_context(uow, tenant_id, self._clock, self._ids)
            settled = payments.reconcile_pending(uow, ctx, self._provider)
            uow.commit()
        return settled
