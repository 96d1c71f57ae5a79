"""Postpaid usage: rated usage becomes invoice lines at the period end, late events are
billed on the next invoice, thresholds invoice early without ever billing a unit twice, the
preview shows what the period-end invoice would hold, and a period's invoices add up to what
one invoice over all its events charges, however the events were batched."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from operator_harness import Operator

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.ledger.entries import moment
from iptv_billing.services import metrics, subscriptions, usage, usage_invoices
from iptv_billing.services.audit import check_books
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import InvoiceRecord, SubscriptionRecord

GRADUATED = {
    "model": "graduated",
    "unit_price": "0",
    "tiers": [
        {"up_to": "100", "unit_price": "0.02", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.01", "flat_fee": "0"},
    ],
    "package_size": "1",
    "included": "60",
}


def usage_plan(op: Operator, code: str = "metered", **extra: Any) -> None:
    op.tx(
        lambda u, c: metrics.create_metric(u, c, metrics.CreateMetric("minutes", "Minutes", "sum"))
    )
    charge = {
        "metric": "minutes",
        "name": "Viewing minutes",
        "aggregation": "sum",
        "prices": [{**GRADUATED, "currency": c} for c in ("EUR", "USD")],
    }
    op.plan(code, "5.00", usage_charges=[charge], **extra)


def send(op: Operator, sub: SubscriptionRecord, values: list[str], at: datetime, tag: str) -> int:
    events = [
        {
            "id": f"{tag}-{i}",
            "customer_id": sub.customer_id,
            "subscription_id": sub.id,
            "metric": "minutes",
            "value": value,
            "timestamp": moment(at),
        }
        for i, value in enumerate(values)
    ]
    return op.tx(lambda u, c: usage.ingest(u, c, events)).accepted


def prepaid(op: Operator) -> str:
    """A customer whose invoices are paid from a large wallet: no dunning gets in the way."""
    return op.customer(method="charge_wallet", top_up="1000.00").id


def now(op: Operator) -> datetime:
    return op.read(lambda u, c: c.now())


def invoices_of(op: Operator, sub_id: str) -> list[InvoiceRecord]:
    def full(u: UnitOfWork, c: Context) -> list[InvoiceRecord]:
        page = u.invoices.list(c.tenant_id, 100, None, subscription_id=sub_id)
        loaded = [u.invoices.get(c.tenant_id, i.id) for i in page.items]
        return sorted((i for i in loaded if i is not None), key=lambda i: (i.created_at, i.id))

    return op.read(full)


def usage_total(invoice: InvoiceRecord) -> int:
    return sum(line.amount.minor for line in invoice.lines if line.kind.value == "usage")


def books_consistent(op: Operator) -> bool:
    return bool(op.read(lambda u, c: check_books(u, c.tenant_id).consistent))


def test_the_period_end_invoice_bills_the_periods_usage(operator: Operator) -> None:
    usage_plan(operator)
    sub = operator.subscribe(prepaid(operator), "metered")
    operator.advance(days=3)
    # 60 free, 100 × 0.02, 90 × 0.01: 2.90
    assert send(operator, sub, ["100", "150"], now(operator) - timedelta(hours=1), "a") == 2
    operator.advance(days=29)
    operator.bill()
    renewal = invoices_of(operator, sub.id)[-1]
    assert renewal.billing_reason == "subscription_cycle"
    kinds = [line.kind.value for line in renewal.lines]
    assert kinds == ["subscription", "usage"]
    assert usage_total(renewal) == 290
    usage_line = renewal.lines[-1]
    assert usage_line.description == "Viewing minutes: 250"
    assert usage_line.period is not None
    assert usage_line.period.end == renewal.lines[0].period.start  # in arrears
    assert renewal.total_minor == 500 + 290
    assert books_consistent(operator)


def test_late_events_are_billed_on_the_next_invoice_and_only_once(operator: Operator) -> None:
    usage_plan(operator)
    sub = operator.subscribe(prepaid(operator), "metered")
    operator.advance(days=20)
    send(operator, sub, ["160"], now(operator), "on-time")  # 100 × 0.02 = 2.00
    operator.advance(days=9)  # the period's end (29 February)
    period_end = invoices_of(operator, sub.id)[0].period_end
    assert period_end == now(operator)
    operator.bill()
    assert usage_total(invoices_of(operator, sub.id)[-1]) == 200
    # Within the grace window, an event of the period already invoiced arrives.
    assert send(operator, sub, ["50"], period_end - timedelta(minutes=5), "late") == 1
    operator.bill()  # nothing new is due: the late event waits for the next invoice
    assert len(invoices_of(operator, sub.id)) == 2
    operator.advance(days=31)
    operator.bill()
    third = invoices_of(operator, sub.id)[-1]
    # The period is re-rated whole (210 minutes: 100 × 0.02 + 50 × 0.01 = 2.50) less 2.00.
    assert usage_total(third) == 50
    assert any(line.description == "Usage already invoiced this period" for line in third.lines)
    operator.advance(days=31)
    operator.bill()
    assert usage_total(invoices_of(operator, sub.id)[-1]) == 0  # never billed twice
    assert books_consistent(operator)


def test_thresholds_invoice_early_and_the_period_adds_up(operator: Operator) -> None:
    usage_plan(
        operator,
        usage_threshold=[{"currency": "EUR", "minor": 100}, {"currency": "USD", "minor": 100}],
        usage_cap=[{"currency": "EUR", "minor": 400}, {"currency": "USD", "minor": 400}],
    )
    sub = operator.subscribe(prepaid(operator), "metered")
    billed_early = []
    for day, value in enumerate(["100", "40", "90", "400", "2000"]):
        operator.advance(days=2)
        send(operator, sub, [value], now(operator) - timedelta(minutes=1), f"d{day}")
        operator.bill()
        billed_early = [
            i for i in invoices_of(operator, sub.id) if i.billing_reason == "usage_threshold"
        ]
    assert len(billed_early) >= 2
    assert all(i.total_minor >= 100 for i in billed_early)
    operator.advance(days=25)
    operator.bill()
    renewal = invoices_of(operator, sub.id)[-1]
    assert renewal.billing_reason == "subscription_cycle"
    period_total = sum(usage_total(i) for i in billed_early) + usage_total(renewal)
    # 2,630 minutes: 100 × 0.02 + 2,470 × 0.01 = 26.70, capped at 4.00.
    assert period_total == 400
    assert books_consistent(operator)


def test_the_preview_matches_the_invoice_that_follows(operator: Operator) -> None:
    usage_plan(operator)
    sub = operator.subscribe(prepaid(operator), "metered")
    operator.advance(days=10)
    send(operator, sub, ["75", "25.5"], now(operator), "p")
    preview = operator.read(lambda u, c: usage_invoices.upcoming(u, c, sub.id))
    assert [line.kind.value for line in preview.lines] == ["subscription", "usage"]
    assert preview.total_minor == 500 + 81  # 40.5 × 0.02 = 0.81
    operator.advance(days=22)
    operator.bill()
    renewal = invoices_of(operator, sub.id)[-1]
    assert renewal.total_minor == preview.total_minor
    assert [line.amount for line in renewal.lines] == [line.amount for line in preview.lines]


def test_cancelled_at_period_end_gets_a_final_usage_invoice(operator: Operator) -> None:
    usage_plan(operator)
    sub = operator.subscribe(prepaid(operator), "metered")
    operator.advance(days=5)
    send(operator, sub, ["160"], now(operator), "c")
    operator.tx(lambda u, c: subscriptions.cancel(u, c, sub.id, at_period_end=True))
    operator.advance(days=27)
    operator.bill()
    final = invoices_of(operator, sub.id)[-1]
    assert final.billing_reason == "subscription_final_usage"
    assert [line.kind.value for line in final.lines] == ["usage"]
    assert final.total_minor == 200
    operator.bill()
    assert len(invoices_of(operator, sub.id)) == 2  # the first invoice and the final one


@pytest.mark.parametrize("split", [[1], [3, 4], [1, 1, 1, 1, 1, 1, 1]])
def test_any_batch_split_gives_the_same_invoice(operator: Operator, split: list[int]) -> None:
    usage_plan(operator)
    values = ["12.5", "30", "0", "99.999999", "45", "7", "61"]
    sub = operator.subscribe(prepaid(operator), "metered")
    operator.advance(days=4)
    at, start = now(operator), 0
    while start < len(values):
        size = split[start % len(split)]
        send(operator, sub, values[start : start + size], at, f"s{start}")
        start += size
    operator.advance(days=28)
    operator.bill()
    total = sum(Decimal(v) for v in values) - 60  # 195.499999 billable minutes
    expected = Decimal(100) * Decimal("0.02") + (total - 100) * Decimal("0.01")
    assert usage_total(invoices_of(operator, sub.id)[-1]) == int(
        (expected * 100).quantize(Decimal(1))
    )


def test_terms_must_charge_metrics_the_tenant_defined(operator: Operator) -> None:
    charge = {"metric": "gigabytes", "name": "GB", "aggregation": "sum", "prices": []}
    with pytest.raises(InvalidInput):
        operator.plan("broken", "5.00", usage_charges=[charge])
    operator.tx(
        lambda u, c: metrics.create_metric(u, c, metrics.CreateMetric("gigabytes", "GB", "max"))
    )
    charge["prices"] = [{**GRADUATED, "currency": c} for c in ("EUR", "USD")]
    with pytest.raises(InvalidInput) as mismatch:
        operator.plan("broken", "5.00", usage_charges=[charge])
    assert mismatch.value.code == "terms.aggregation_mismatch"


def test_events_without_a_subscription_go_to_the_customers_only_one(operator: Operator) -> None:
    usage_plan(operator)
    single = prepaid(operator)
    sub = operator.subscribe(single, "metered")
    several = prepaid(operator)
    for _ in range(2):
        operator.subscribe(several, "metered")
    none = prepaid(operator)
    at = moment(now(operator))
    events = [
        {"id": f"u-{n}", "customer_id": c, "metric": "minutes", "value": 5, "timestamp": at}
        for n, c in enumerate((single, several, none))
    ]
    result = operator.tx(lambda u, c: usage.ingest(u, c, events))
    assert result.accepted == 1
    assert {(v.id, v.code) for v in result.verdicts} == {
        ("u-1", "usage.subscription_required"),
        ("u-2", "usage.no_subscription"),
    }
    stored = operator.read(lambda u, c: u.usage.events_of_batch(c.tenant_id, result.batch_id or ""))
    assert [(e.event_id, e.subscription_id) for e in stored] == [("u-0", sub.id)]


def test_an_immediate_cancellation_invoices_the_usage_so_far(operator: Operator) -> None:
    usage_plan(operator)
    sub = operator.subscribe(prepaid(operator), "metered")
    operator.advance(days=5)
    send(operator, sub, ["160"], now(operator), "gone")
    change = operator.tx(lambda u, c: subscriptions.cancel(u, c, sub.id, at_period_end=False))
    assert change.invoice is not None
    assert change.invoice.billing_reason == "subscription_final_usage"
    assert change.invoice.total_minor == 200
    assert change.invoice.status == "paid"  # from the prepaid wallet at once
    operator.advance(days=40)
    operator.bill()
    assert len(invoices_of(operator, sub.id)) == 2  # nothing billed twice after the end
    assert books_consistent(operator)
