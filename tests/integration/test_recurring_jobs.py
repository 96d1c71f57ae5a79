"""The service's recurring jobs: tenants on real time are billed without anyone asking, a
tenant on a frozen test clock is left alone, and card payments confirmed by the provider after
the request are settled."""

from __future__ import annotations

from datetime import timedelta

from operator_harness import Operator

from iptv_billing.adapters.payments.test_provider import TestCardProvider
from iptv_billing.services import payments, test_clocks
from iptv_billing.services.jobs import RecurringJobs


def test_tick_bills_real_time_tenants_and_settles_card_payments(operator: Operator) -> None:
    provider = TestCardProvider(operator.system, confirm_after=timedelta(seconds=30))
    jobs = RecurringJobs(operator.database.uow, operator.system, operator.ids, provider)
    operator.plan("basic", "9.99")
    sub = operator.subscribe(operator.customer().id, "basic")
    first = operator.read(lambda u, c: u.invoices.list(c.tenant_id, 5, None)).items[0]
    card = payments.ChargeCard(first.id, "pm_card_visa", "req-1")
    pending = operator.tx(lambda u, c: payments.charge_card(u, c, provider, card))
    assert pending.status == "pending"

    assert jobs.tick().tenants_billed == 0  # the test clock is frozen: nothing to do
    operator.tx(lambda u, c: test_clocks.unfreeze(u, c.tenant_id))
    operator.system.set(operator.system.now() + timedelta(days=35))
    report = jobs.tick()

    assert (report.tenants_billed, report.invoices_created, report.payments_settled) == (1, 1, 1)
    settled = operator.read(lambda u, c: u.payments.get(c.tenant_id, pending.id))
    assert settled is not None
    assert settled.status == "succeeded"
    invoices = operator.read(
        lambda u, c: u.invoices.list(c.tenant_id, 5, None, subscription_id=sub.id)
    )
    assert [i.status for i in invoices.items] == ["paid", "finalized"]
    assert jobs.tick().invoices_created == 0  # idempotent: nothing more is due
