"""The billing run on SQLite and PostgreSQL: months of renewals, exactly one invoice per
period, a balanced journal, wallets that match their postings, dunning, and harmless reruns."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from operator_harness import Operator

from iptv_billing.services.records import InvoiceRecord
from iptv_billing.services.wallets import wallet_discrepancies


def all_invoices(op: Operator) -> list[InvoiceRecord]:
    found: list[InvoiceRecord] = []
    after = None
    while True:
        page = op.read(lambda u, c, a=after: u.invoices.list(c.tenant_id, 100, a))
        found += page.items
        if not page.has_more:
            return found
        after = page.items[-1].id


def _cycle_invoices(op: Operator) -> dict[str, list[tuple[datetime, datetime]]]:
    periods: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for invoice in all_invoices(op):
        if invoice.subscription_id and invoice.period_start and invoice.period_end:
            periods[invoice.subscription_id].append((invoice.period_start, invoice.period_end))
    return {k: sorted(v) for k, v in periods.items()}


def _assert_contiguous(periods: dict[str, list[tuple[datetime, datetime]]]) -> None:
    for sub_id, spans in periods.items():
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end == start, f"{sub_id}: gap or overlap between {end} and {start}"


def _journal_is_balanced(op: Operator) -> None:
    assert op.read(lambda u, c: u.journal.imbalances(c.tenant_id)) == []


def test_months_of_renewals_bill_each_period_once(operator: Operator) -> None:
    operator.plan("basic", "9.99")
    operator.plan("weekly", "2.49", unit="week")
    payers = [operator.customer("charge_wallet", top_up="500.00") for _ in range(17)]
    subs = [operator.subscribe(c.id, "basic") for c in payers[:12]]
    subs += [operator.subscribe(c.id, "weekly") for c in payers[12:]]
    for _ in range(8):  # through the end of February of a leap year and beyond
        operator.advance(17)
        operator.bill()
    periods = _cycle_invoices(operator)
    assert set(periods) == {s.id for s in subs}
    _assert_contiguous(periods)
    assert len(periods[subs[0].id]) == 5  # Jan 31 … May 31 (136 days from Jan 31)
    assert len(periods[subs[-1].id]) == 20  # 136 days of weekly billing, period 0 included
    _journal_is_balanced(operator)
    before = sum(len(v) for v in periods.values())
    rerun = operator.bill()
    assert rerun.invoices_created == 0
    assert sum(len(v) for v in _cycle_invoices(operator).values()) == before


def test_month_end_anchor_clamps_and_returns(operator: Operator) -> None:
    operator.plan("basic", "9.99")
    sub = operator.subscribe(operator.customer("charge_wallet", top_up="100.00").id, "basic")
    operator.advance(95)
    operator.bill()
    starts = [s for s, _ in _cycle_invoices(operator)[sub.id]]
    berlin = ZoneInfo("Europe/Berlin")
    local_days = [(s.month, s.day) for s in (x.astimezone(berlin) for x in starts)]
    assert local_days == [(1, 31), (2, 29), (3, 31), (4, 30)]


def test_wallet_customers_pay_from_balance_until_it_runs_out(operator: Operator) -> None:
    operator.plan("basic", "10.00")
    customer = operator.customer("charge_wallet", top_up="25.00")
    sub = operator.subscribe(customer.id, "basic")  # first period paid from the wallet
    for _ in range(4):
        operator.advance(31)
        operator.bill()
    wallets = operator.read(lambda u, c: u.wallets.list(c.tenant_id, customer.id))
    assert [w.balance_minor for w in wallets] == [500]  # 25 - 10 - 10; the third is unpaid
    assert operator.read(lambda u, c: wallet_discrepancies(u, c, customer.id)) == []
    final = operator.read(lambda u, c: u.subscriptions.get(c.tenant_id, sub.id))
    # Unpaid since late March: past due, suspended after 14 days, expired after 60.
    assert final is not None
    assert final.state.status.value == "expired"
    _journal_is_balanced(operator)


def test_dunning_moves_unpaid_subscriptions_to_past_due_then_suspended(operator: Operator) -> None:
    operator.plan("basic", "9.99", grace_days=3, suspend_after_days=10)
    sub = operator.subscribe(operator.customer().id, "basic")
    statuses = []
    for days in (2, 2, 8):
        operator.advance(days)
        operator.bill()
        record = operator.read(lambda u, c: u.subscriptions.get(c.tenant_id, sub.id))
        assert record is not None
        statuses.append(record.state.status.value)
    assert statuses == ["active", "past_due", "suspended"]


def test_two_runs_at_once_create_no_duplicates(operator: Operator) -> None:
    import threading

    operator.plan("basic", "9.99")
    for _ in range(40):
        operator.subscribe(operator.customer("charge_wallet", top_up="50.00").id, "basic")
    operator.advance(40)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            operator.bill(batch_size=7)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    periods = _cycle_invoices(operator)
    assert all(len(v) == 2 for v in periods.values())  # period 0 at signup + one renewal
    _journal_is_balanced(operator)
