"""A seeded simulation of an operator's life (TigerBeetle VOPR style, with Hypothesis): random
sign-ups, top-ups, payments, plan changes, pauses, cancellations, clock advances, billing runs
and billing runs that crash part-way. After every step the books must agree with themselves:

- every journal entry balances;
- each customer's receivable in the journal equals what their open invoices still owe;
- each wallet's kept balance equals its journal account, and is never negative;
- invoice numbers run 1..n without gaps, and no subscription period is invoiced twice.

Runs on SQLite (a fresh copy of a migrated template per example) so that many examples fit.
"""

from __future__ import annotations

import contextlib
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from operator_harness import Operator
from test_billing_run import all_invoices

from iptv_billing.domain import journal
from iptv_billing.domain.errors import BillingError
from iptv_billing.domain.money import Money
from iptv_billing.domain.proration import ProrationMode
from iptv_billing.services import invoicing, payments, subscriptions, wallets
from iptv_billing.services.billing_run import BillingRunner
from iptv_billing.services.ports import UnitOfWork, UnitOfWorkFactory

TEMPLATE: dict[str, Path] = {}


class SimulatedCrash(Exception):
    """The process died: the transaction in flight never commits."""


class CrashingUnitOfWork:
    """Delegates to a real unit of work, except that the n-th commit dies instead."""

    def __init__(self, inner: UnitOfWork, budget: list[int]) -> None:
        self._inner = inner
        self._budget = budget

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> CrashingUnitOfWork:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)

    def commit(self) -> None:
        self._budget[0] -= 1
        if self._budget[0] < 0:
            raise SimulatedCrash
        self._inner.commit()


def crashing_factory(factory: UnitOfWorkFactory, commits: int) -> Any:
    budget = [commits]
    return lambda *, read_only=False: CrashingUnitOfWork(factory(read_only=read_only), budget)


class OperatorSimulation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.op: Operator | None = None
        self.customers: list[str] = []
        self.subs: list[str] = []

    @initialize()
    def open_books(self) -> None:
        path = TEMPLATE["dir"] / f"sim-{id(self)}.db"
        shutil.copy(TEMPLATE["file"], path)
        self.op = Operator(f"sqlite:///{path}")
        self.op.plan("basic", "9.99", trial_days=7)
        self.op.plan("plus", "19.99", setup_fees=[{"currency": "EUR", "minor": 500}])
        self.op.plan("weekly", "2.49", unit="week")

    def teardown(self) -> None:
        if self.op is not None:
            self.op.close()

    @property
    def o(self) -> Operator:
        assert self.op is not None
        return self.op

    def _try(self, work: Any) -> Any:
        try:
            return self.o.tx(work)
        except BillingError:
            return None  # a refused action changes nothing; the invariants check that

    # -- rules --------------------------------------------------------------------------------
    @rule(wallet=st.booleans(), top_up=st.sampled_from([None, "5.00", "30.00", "200.00"]))
    def sign_up(self, wallet: bool, top_up: str | None) -> None:
        customer = self.o.customer("charge_wallet" if wallet else "send_invoice", top_up=top_up)
        self.customers.append(customer.id)

    @precondition(lambda self: self.customers)
    @rule(data=st.data(), plan=st.sampled_from(["basic", "plus", "weekly"]), trial=st.booleans())
    def subscribe(self, data: st.DataObject, plan: str, trial: bool) -> None:
        customer = data.draw(st.sampled_from(self.customers))
        cmd = subscriptions.CreateSubscription(customer, self.o.plans[plan], trial)
        change = self._try(lambda u, c: subscriptions.create_subscription(u, c, cmd))
        if change is not None:
            self.subs.append(change.subscription.id)

    @precondition(lambda self: self.customers)
    @rule(data=st.data(), amount=st.sampled_from(["1.00", "9.99", "50.00"]))
    def top_up(self, data: st.DataObject, amount: str) -> None:
        cmd = wallets.TopUp(data.draw(st.sampled_from(self.customers)), Money.of(amount, "EUR"))
        self._try(lambda u, c: wallets.top_up(u, c, cmd))

    @rule(
        data=st.data(), share=st.sampled_from([1, 2, 3]), method=st.sampled_from(["bank", "wallet"])
    )
    def pay_an_open_invoice(self, data: st.DataObject, share: int, method: str) -> None:
        owed = [i for i in all_invoices(self.o) if i.amount_due_minor > 0]
        if not owed:
            return
        invoice = data.draw(st.sampled_from(owed))
        if method == "wallet":
            self._try(
                lambda u, c: invoicing.pay_from_wallet(
                    u, c, invoicing.get_invoice(u, c, invoice.id, for_update=True)
                )
            )
            return
        # share 1: all due; 2: half; 3: all due plus an overpayment that goes to the wallet
        minor = {
            1: invoice.amount_due_minor,
            2: max(invoice.amount_due_minor // 2, 1),
            3: invoice.amount_due_minor + 250,
        }[share]
        cmd = payments.RecordPayment(
            invoice.customer_id, Money.from_minor(minor, "EUR"), "bank_transfer", invoice.id
        )
        self._try(lambda u, c: payments.record_payment(u, c, cmd))

    @precondition(lambda self: self.subs)
    @rule(
        data=st.data(),
        plan=st.sampled_from(["basic", "plus", "weekly"]),
        mode=st.sampled_from(list(ProrationMode)),
    )
    def change_plan(self, data: st.DataObject, plan: str, mode: ProrationMode) -> None:
        sub = data.draw(st.sampled_from(self.subs))
        cmd = subscriptions.ChangePlan(self.o.plans[plan], mode)
        self._try(lambda u, c: subscriptions.change_plan(u, c, sub, cmd))

    @precondition(lambda self: self.subs)
    @rule(data=st.data(), action=st.sampled_from(["pause", "resume", "cancel", "cancel_later"]))
    def lifecycle(self, data: st.DataObject, action: str) -> None:
        sub = data.draw(st.sampled_from(self.subs))
        work = {
            "pause": lambda u, c: subscriptions.pause(u, c, sub),
            "resume": lambda u, c: subscriptions.resume(u, c, sub),
            "cancel": lambda u, c: subscriptions.cancel(u, c, sub, at_period_end=False),
            "cancel_later": lambda u, c: subscriptions.cancel(u, c, sub, at_period_end=True),
        }[action]
        self._try(work)

    @rule(days=st.sampled_from([0.5, 3, 8, 16, 31, 45]))
    def time_passes_and_billing_runs(self, days: float) -> None:
        self.o.advance(days)
        self.o.bill(batch_size=3)

    @rule(days=st.sampled_from([3, 16, 31]), commits=st.integers(0, 6))
    def billing_run_crashes(self, days: float, commits: int) -> None:
        self.o.advance(days)
        factory = crashing_factory(self.o.database.uow, commits)
        runner = BillingRunner(factory, self.o.system, self.o.ids, batch_size=2)
        with contextlib.suppress(SimulatedCrash):  # the next billing run is the restart
            runner.run(self.o.tenant_id)

    # -- invariants ---------------------------------------------------------------------------
    @invariant()
    def books_agree(self) -> None:
        if self.op is None:
            return
        op = self.o
        assert op.read(lambda u, c: u.journal.imbalances(c.tenant_id)) == []
        invoices = all_invoices(op)
        numbers = sorted(i.number for i in invoices if i.number is not None)
        assert numbers == list(range(1, len(numbers) + 1))
        cycles = Counter((i.subscription_id, i.cycle_start) for i in invoices if i.cycle_start)
        assert all(n == 1 for n in cycles.values())
        owed: Counter[str] = Counter()
        for invoice in invoices:
            owed[invoice.customer_id] += invoice.amount_due_minor
        for customer in self.customers:
            self._customer_agrees(customer, owed[customer])

    def _customer_agrees(self, customer: str, owed: int) -> None:
        def books(u: UnitOfWork, c: Any) -> tuple[int, int, list[int]]:
            receivable = u.journal.account_balance(c.tenant_id, journal.receivable(customer), "EUR")
            wallet = u.journal.account_balance(c.tenant_id, journal.wallet(customer), "EUR")
            kept = [w.balance_minor for w in u.wallets.list(c.tenant_id, customer)]
            return receivable, wallet, kept

        receivable, wallet_posted, kept = self.o.read(books)
        assert receivable == owed, f"{customer}: journal says {receivable}, invoices {owed}"
        assert sum(kept) == -wallet_posted, f"{customer}: wallet {kept} vs journal {wallet_posted}"
        assert all(balance >= 0 for balance in kept)


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iptv_billing.adapters.sql.migrate import upgrade_database

    path = tmp_path_factory.mktemp("sim") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    return path


def test_the_books_always_agree(sqlite_template: Path, tmp_path: Path) -> None:
    TEMPLATE.update(file=sqlite_template, dir=tmp_path)
    run_state_machine_as_test(
        OperatorSimulation,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
