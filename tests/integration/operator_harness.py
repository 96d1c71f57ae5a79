"""An operator driven through the services against a real database: the integration tests'
way to build a catalog, sign up subscribers, move a test clock and run billing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from iptv_billing.adapters.sql.uow import Database, open_database
from iptv_billing.domain.money import Money
from iptv_billing.services import access, catalog, customers, subscriptions, test_clocks, wallets
from iptv_billing.services.billing_run import BillingRunner
from iptv_billing.services.clock import FixedClock
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ids import TimeOrderedIds
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import BillingRunRecord, CustomerRecord, SubscriptionRecord

T = TypeVar("T")
START = datetime(2028, 1, 31, 10, 0, tzinfo=UTC)  # a month end in a leap year


def money_docs(amount: str) -> list[dict[str, Any]]:
    return [{"currency": c, "minor": Money.of(amount, c).minor} for c in ("EUR", "USD")]


class Operator:
    def __init__(self, url: str, timezone: str = "Europe/Berlin") -> None:
        self.database: Database = open_database(url, migrate=False)
        self.system = FixedClock(START)
        self.ids = TimeOrderedIds(self.system)
        with self.database.uow() as uow:
            tenant = access.create_tenant(uow, self.ids, self.system, "Op", timezone, "EUR")
            test_clocks.freeze(uow, tenant.id, START, START)
            uow.commit()
        self.tenant_id = tenant.id
        self.plans: dict[str, str] = {}

    def tx(self, work: Callable[[UnitOfWork, Context], T]) -> T:
        with self.database.uow() as uow:
            result = work(uow, load_context(uow, self.tenant_id, self.system, self.ids))
            uow.commit()
            return result

    def read(self, work: Callable[[UnitOfWork, Context], T]) -> T:
        with self.database.uow(read_only=True) as uow:
            return work(uow, load_context(uow, self.tenant_id, self.system, self.ids))

    def plan(
        self, code: str, price: str, unit: str = "month", trial_days: int = 0, **extra: Any
    ) -> str:
        terms = {
            "name": code.title(),
            "interval": {"unit": unit, "count": 1},
            "prices": money_docs(price),
            "trial_days": trial_days,
            **extra,
        }
        record, _ = self.tx(
            lambda u, c: catalog.create_plan(u, c, code, code.title(), catalog.PublishTerms(terms))
        )
        self.plans[code] = record.id
        return record.id

    def customer(
        self, method: str = "send_invoice", currency: str = "EUR", top_up: str | None = None
    ) -> CustomerRecord:
        n = self.ids.new("x")
        cmd = customers.CreateCustomer("C", f"{n}@example.com", currency, collection_method=method)
        record = self.tx(lambda u, c: customers.create_customer(u, c, cmd))
        if top_up:
            amount = Money.of(top_up, currency)
            self.tx(lambda u, c: wallets.top_up(u, c, wallets.TopUp(record.id, amount)))
        return record

    def subscribe(self, customer_id: str, plan: str, trial: bool = False) -> SubscriptionRecord:
        cmd = subscriptions.CreateSubscription(customer_id, self.plans[plan], trial)
        return self.tx(lambda u, c: subscriptions.create_subscription(u, c, cmd)).subscription

    def advance(self, days: float) -> None:
        now = self.read(lambda u, c: c.now())
        self.tx(lambda u, c: test_clocks.advance_to(u, c.tenant_id, now + timedelta(days=days)))

    def bill(self, batch_size: int = 50) -> BillingRunRecord:
        return BillingRunner(self.database.uow, self.system, self.ids, batch_size=batch_size).run(
            self.tenant_id
        )

    def close(self) -> None:
        self.database.dispose()
