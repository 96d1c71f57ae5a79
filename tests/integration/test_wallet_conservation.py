"""Jepsen-style conservation on shared wallets: concurrent workers top up, place holds, post,
void, debit, buy and refund pay-per-view events and let holds lapse while the clock moves, and
a reader keeps taking snapshots.

Every snapshot must agree with itself (the books check: journal, kept balances, pending holds)
and never show spendable money below zero. At the end, what the workers saw succeed accounts
for every unit: nothing was created or lost.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from operator_harness import Operator

from iptv_billing.adapters.sql.uow import run_in_transaction
from iptv_billing.domain import journal
from iptv_billing.domain.errors import BillingError
from iptv_billing.domain.money import Money
from iptv_billing.services import catalog, ppv, ppv_refunds, test_clocks, wallet_holds, wallets
from iptv_billing.services.audit import check_books
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ports import UnitOfWork

WORKERS = 6
OPS_PER_WORKER = 40
CUSTOMERS = 3
SEED = 20261122
EVENTS = 40


@dataclass
class Ledger:
    """What the workers saw succeed, per customer, in minor units."""

    topped_up: Counter[str] = field(default_factory=Counter)
    charged: Counter[str] = field(default_factory=Counter)  # posted holds and debits
    outcomes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, outcome: str, customer: str = "", topped: int = 0, charged: int = 0) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.topped_up[customer] += topped
            self.charged[customer] += charged


class Workload:
    def __init__(self, op: Operator, customers: list[str]) -> None:
        self.op = op
        self.customers = customers
        self.subscriptions = {c: op.subscribe(c, "basic").id for c in customers}
        self.events = self._events(EVENTS)
        self.ledger = Ledger()
        self.snapshots = 0
        self.violations: list[str] = []
        self.done = threading.Event()

    def _events(self, count: int) -> list[str]:
        cmd = catalog.CreateChannel("ppv-1", "Arena", 1)
        channel = self.op.tx(lambda u, c: catalog.create_channel(u, c, cmd))
        start = self.op.read(lambda u, c: c.now()) + timedelta(days=7)
        ids = []
        for n in range(count):  # back to back on one channel, all on sale now
            at = start + timedelta(hours=3 * n)
            event = ppv.CreateEvent(
                f"fight-{n}",
                "Fight",
                channel.id,
                at,
                at + timedelta(hours=2),
                (Money.of(f"{1 + n % 5}.50", "EUR"),),
            )
            ids.append(self.op.tx(lambda u, c, e=event: ppv.create_event(u, c, e)).id)
        return ids

    def tx(self, work: Callable[[UnitOfWork, Context], object]) -> object:
        def unit(uow: UnitOfWork) -> object:
            return work(uow, load_context(uow, self.op.tenant_id, self.op.system, self.op.ids))

        return run_in_transaction(self.op.database.uow, unit, attempts=50)

    def step(self, rng: random.Random, mine: list[str], bought: list[str]) -> None:
        customer = rng.choice(self.customers)
        amount = Money.from_minor(rng.randint(1, 900), "EUR")
        choice = rng.random()
        try:
            if choice < 0.2:
                self.tx(lambda u, c: wallets.top_up(u, c, wallets.TopUp(customer, amount)))
                self.ledger.record("top_up", customer, topped=amount.minor)
            elif choice < 0.5:
                ttl = rng.choice([1, 5, 3600])
                cmd = wallet_holds.PlaceHold(customer, amount, "usage", ttl)
                hold = self.tx(lambda u, c: wallet_holds.place_hold(u, c, cmd))
                mine.append(hold.id)  # type: ignore[attr-defined]
                self.ledger.record("hold")
            elif choice < 0.7 and mine:
                self._post(rng, mine.pop(rng.randrange(len(mine))))
            elif choice < 0.8 and mine:
                hold_id = mine.pop(rng.randrange(len(mine)))
                self.tx(lambda u, c: wallet_holds.void_hold(u, c, hold_id))
                self.ledger.record("void")
            elif choice < 0.85:
                cmd_debit = wallets.DebitWallet(customer, amount, "one-off")
                self.tx(lambda u, c: wallets.debit(u, c, cmd_debit))
                self.ledger.record("debit", customer, charged=amount.minor)
            elif choice < 0.93:
                self._buy(rng, customer, bought)
            elif choice < 0.96 and bought:
                purchase_id = bought.pop(rng.randrange(len(bought)))
                done = self.tx(lambda u, c: ppv_refunds.refund_purchase(u, c, purchase_id))
                refunded = done.amount_minor  # type: ignore[attr-defined]
                self.ledger.record("ppv_refund", done.customer_id, charged=-refunded)  # type: ignore[attr-defined]
            else:
                expired = self.tx(lambda u, c: wallet_holds.expire_lapsed(u, c))
                self.ledger.record("expired_sweep" if expired else "empty_sweep")
        except BillingError as refused:  # a refusal is an outcome too; it must change nothing
            self.ledger.record(refused.code)

    def _buy(self, rng: random.Random, customer: str, bought: list[str]) -> None:
        cmd = ppv.Purchase(rng.choice(self.events), self.subscriptions[customer], "wallet")
        purchase = self.tx(lambda u, c: ppv.purchase(u, c, cmd))
        bought.append(purchase.id)  # type: ignore[attr-defined]
        self.ledger.record("ppv", customer, charged=purchase.amount_minor)  # type: ignore[attr-defined]

    def _post(self, rng: random.Random, hold_id: str) -> None:
        def post(u: UnitOfWork, c: Context) -> tuple[str, int]:
            hold = wallet_holds.get_hold(u, c, hold_id)
            part = Money.from_minor(rng.randint(1, hold.amount_minor), hold.currency)
            done = wallet_holds.post_hold(u, c, hold_id, part)
            return done.customer_id, done.posted_minor

        customer, posted = self.tx(post)  # type: ignore[misc]
        self.ledger.record("post", customer, charged=posted)

    def worker(self, index: int) -> None:
        rng = random.Random(SEED + index)
        mine: list[str] = []
        bought: list[str] = []
        for _ in range(OPS_PER_WORKER):
            self.step(rng, mine, bought)

    def clock(self) -> None:
        """Time moves while everyone works, so short holds lapse under the workers' feet."""
        while not self.done.wait(0.02):
            self.tx(
                lambda u, c: test_clocks.advance_to(u, c.tenant_id, c.now() + timedelta(seconds=2))
            )

    def reader(self) -> None:
        while not self.done.is_set():
            self._snapshot()

    def _snapshot(self) -> None:
        with self.op.database.uow(read_only=True) as uow:
            books = check_books(uow, self.op.tenant_id)
            kept = uow.wallets.balances(self.op.tenant_id)
        self.snapshots += 1
        if not books.consistent:
            self.violations.append(f"books disagree: {books.discrepancies}")
        for key, (balance, pending) in kept.items():
            if not 0 <= pending <= balance:
                self.violations.append(f"{key}: balance {balance}, pending {pending}")


def test_concurrent_wallet_traffic_conserves_every_unit(operator: Operator) -> None:
    operator.plan("basic", "0.00")
    customers = [operator.customer(top_up="20.00").id for _ in range(CUSTOMERS)]
    load = Workload(operator, customers)
    for customer in customers:
        load.ledger.record("seed", customer, topped=2000)
    with ThreadPoolExecutor(WORKERS + 2) as pool:
        background = [pool.submit(load.reader), pool.submit(load.clock)]
        list(pool.map(load.worker, range(WORKERS)))
        load.done.set()
        for task in background:
            task.result()
    # Let every hold still pending lapse, then account for each unit.
    operator.advance(days=1)
    if operator.tx(lambda u, c: wallet_holds.expire_lapsed(u, c, limit=10_000)):
        load.ledger.record("expired_sweep")  # holds still pending when the workers stopped
    load._snapshot()

    assert load.violations == []
    assert load.snapshots >= 3
    outcomes = load.ledger.outcomes
    # The workload really raced: holds were posted, voided, lapsed and refused.
    for outcome in (
        "hold",
        "post",
        "void",
        "debit",
        "ppv",
        "ppv_refund",
        "wallet.insufficient_funds",
        "expired_sweep",
    ):
        assert outcomes[outcome], outcome
    kept = operator.read(lambda u, c: u.wallets.balances(c.tenant_id))
    revenue = operator.read(lambda u, c: u.journal.balances_by_account(c.tenant_id, "revenue:"))
    cash = operator.read(lambda u, c: u.journal.balances_by_account(c.tenant_id, "cash:"))
    for customer in customers:
        balance, pending = kept[(customer, "EUR")]
        assert pending == 0
        assert balance == load.ledger.topped_up[customer] - load.ledger.charged[customer] >= 0
    assert -sum(revenue.values()) == sum(load.ledger.charged.values())
    assert sum(cash.values()) == sum(load.ledger.topped_up.values())
    held = operator.read(
        lambda u, c: u.journal.balances_by_account(c.tenant_id, journal.HELD_PREFIX)
    )
    assert all(total == 0 for total in held.values())
