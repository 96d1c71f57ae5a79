"""A realistic demo operator: channels, ~10 packages, plans in three currencies, 1,000
subscribers with mixed plans, collection methods and prepaid balances, then three months of
billing on a test clock with customers paying, topping up, pausing, changing plan and leaving.
Seeded, so the same seed gives the same operator."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from iptv_billing.domain.errors import BillingError
from iptv_billing.domain.money import Money
from iptv_billing.domain.proration import ProrationMode
from iptv_billing.services import (
    access,
    catalog,
    credentials,
    customers,
    demo_usage,
    payments,
    subscriptions,
    test_clocks,
    wallets,
)
from iptv_billing.services.billing_run import BillingRunner
from iptv_billing.services.clock import Clock
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import UnitOfWork, UnitOfWorkFactory
from iptv_billing.services.records import ApiKeyRecord

CURRENCIES = ("EUR", "USD", "GBP")
LANGUAGES = ("en", "de", "fr", "es", "ar", "tr")
COUNTRIES = {"EUR": ("DE", "FR", "ES", "NL"), "USD": ("US", "CA"), "GBP": ("GB",)}
DEMO_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
PACKAGES = (
    ("news", "News"),
    ("sports", "Sports"),
    ("sports-plus", "Sports Plus"),
    ("cinema", "Cinema"),
    ("series", "Series"),
    ("kids", "Kids"),
    ("music", "Music"),
    ("docs", "Documentaries"),
    ("international", "International"),
    ("adult-free", "Family"),
)
# code, name, unit, count, price (EUR, USD, GBP), trial days, setup fee, connections, packages
PLANS: tuple[
    tuple[str, str, str, int, tuple[str, str, str], int, str, int, tuple[str, ...]], ...
] = (
    ("basic", "Basic", "month", 1, ("9.99", "10.99", "8.99"), 7, "0", 1, ("news", "kids")),
    (
        "family",
        "Family",
        "month",
        1,
        ("19.99", "21.99", "17.99"),
        14,
        "5.00",
        3,
        ("news", "kids", "series", "adult-free", "music"),
    ),
    (
        "sports",
        "Sports",
        "month",
        1,
        ("29.99", "32.99", "26.99"),
        0,
        "10.00",
        2,
        ("news", "sports", "sports-plus"),
    ),
    ("cinema", "Cinema", "month", 1, ("24.99", "27.99", "21.99"), 7, "0", 2, ("cinema", "series")),
    (
        "premium",
        "Premium",
        "month",
        1,
        ("49.99", "54.99", "44.99"),
        0,
        "0",
        4,
        tuple(p[0] for p in PACKAGES),
    ),
    (
        "quarterly",
        "Basic Quarterly",
        "month",
        3,
        ("26.99", "29.99", "23.99"),
        0,
        "0",
        1,
        ("news", "kids", "docs"),
    ),
    (
        "yearly",
        "Premium Yearly",
        "year",
        1,
        ("499.00", "549.00", "449.00"),
        0,
        "0",
        4,
        tuple(p[0] for p in PACKAGES),
    ),
    ("weekly", "Weekly Pass", "week", 1, ("3.99", "4.49", "3.49"), 0, "0", 1, ("news", "sports")),
)


@dataclass
class DemoResult:
    tenant_id: str
    api_key: str
    summary: dict[str, Any] = field(default_factory=dict)
    # A watching subscriber's line (username, password), to try the player API with.
    sample_line: tuple[str, str] | None = None


class DemoSeeder:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        seed: int = 7,
        sealer: credentials.Sealer | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._sealer = sealer  # every subscriber gets a line when set
        self._random_bytes = random_bytes
        self._rng = random.Random(seed)
        self.tenant_id = ""
        self.plan_ids: dict[str, str] = {}
        # How long each customer takes to pay an invoice, in days; None never pays.
        self.pays_after: dict[str, int | None] = {}

    def _tx(self, work: Callable[[UnitOfWork, Context], Any]) -> Any:
        with self._uow() as uow:
            result = work(uow, load_context(uow, self.tenant_id, self._clock, self._ids))
            uow.commit()
            return result

    def seed(
        self,
        subscribers: int = 1000,
        days: int = 92,
        api_key: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> DemoResult:
        say = progress or (lambda _m: None)
        secret = self._tenant(api_key)
        say("catalog")
        self._tx(self._catalog)
        say(f"{subscribers} subscribers")
        for start in range(0, subscribers, 100):
            self._tx(partial(self._subscribers, count=min(100, subscribers - start)))
        # Usage, pay-per-view and rentals come with full-size demos (one viewer per 33
        # subscribers); a small demo stays a subscriptions-only operator.
        extras = self._tx(partial(demo_usage.seed_catalog, start=DEMO_START))
        viewers = self._tx(
            partial(
                demo_usage.seed_viewers,
                rng=self._rng,
                plan_id=extras["plan"],
                count=subscribers // 33,
            )
        )
        runner = BillingRunner(self._uow, self._clock, self._ids, batch_size=500)
        for day in range(1, days + 1):
            self._tx(partial(_advance, to=DEMO_START + timedelta(days=day)))
            if viewers:
                self._tx(partial(demo_usage.watch_a_day, rng=self._rng, subs=viewers, day=day))
            runner.run(self.tenant_id)
            self._tx(self._customer_behaviour)
            if viewers and day == days - 10:
                self._shop(extras["event"])
            if day % 15 == 0:
                say(f"day {day} of {days}")
        return DemoResult(self.tenant_id, secret, sample_line=self._tx(self._sample_line))

    def _shop(self, event_id: str) -> None:
        for sub_id in self._tx(demo_usage.shoppers):
            film = self._rng.choice(demo_usage.FILMS)[0]
            buy = partial(
                demo_usage.buy_one,
                sub_id=sub_id,
                roll=self._rng.random(),
                film=film,
                event_id=event_id,
            )
            _try(partial(self._tx, buy))

    def _sample_line(self, uow: UnitOfWork, ctx: Context) -> tuple[str, str] | None:
        if self._sealer is None:
            return None
        for status in ("active", "trialing", "past_due"):
            page = uow.subscriptions.list(ctx.tenant_id, 1, None, status=status)
            for sub in page.items:
                for cred in uow.credentials.of_subscription(ctx.tenant_id, sub.id):
                    if cred.kind == "line":
                        return cred.login, credentials.reveal(uow, ctx, self._sealer, cred.id)
        return None

    def _tenant(self, api_key: str | None) -> str:
        with self._uow() as uow:
            tenant = access.create_tenant(
                uow, self._ids, self._clock, "Demo IPTV", "Europe/Berlin", "EUR", "DEMO-"
            )
            self.tenant_id = tenant.id
            test_clocks.freeze(uow, tenant.id, DEMO_START, self._clock.now())
            if api_key:  # a fixed key for scripted demos: IPTV_BILLING_DEMO_API_KEY
                secret = api_key
                uow.api_keys.add(
                    ApiKeyRecord(
                        self._ids.new("key"),
                        tenant.id,
                        "demo admin",
                        "admin",
                        access.hash_secret(api_key),
                        api_key[:12],
                        self._clock.now(),
                    )
                )
            else:
                _, secret = access.issue_api_key(
                    uow, self._ids, self._clock, tenant.id, "demo admin", "admin"
                )
            uow.commit()
        return secret

    def _catalog(self, uow: UnitOfWork, ctx: Context) -> None:
        number = 100
        for code, name in PACKAGES:
            channel_codes = []
            for i in range(1, 5):
                number += 1
                channel = catalog.CreateChannel(
                    f"{code}-{i}",
                    f"{name} {i}",
                    number,
                    category=name,
                    epg_id=f"{code}-{i}.demo",
                    catchup_days=7 if i == 1 else 0,
                )
                channel_codes.append(catalog.create_channel(uow, ctx, channel).code)
            catalog.create_package(
                uow, ctx, catalog.CreatePackage(code, name, tuple(channel_codes))
            )
        for plan in PLANS:
            record, _ = catalog.create_plan(uow, ctx, plan[0], plan[1], _terms(plan))
            self.plan_ids[plan[0]] = record.id

    def _subscribers(self, uow: UnitOfWork, ctx: Context, count: int) -> None:
        rng = self._rng
        for _ in range(count):
            code = rng.choice(CURRENCIES)
            n = rng.randrange(10**6)
            method = "charge_wallet" if rng.random() < 0.4 else "send_invoice"
            customer = customers.create_customer(
                uow,
                ctx,
                customers.CreateCustomer(
                    name=f"Subscriber {n:06d}",
                    email=f"subscriber{n:06d}@example.com",
                    currency=code,
                    country=rng.choice(COUNTRIES[code]),
                    language=rng.choice(LANGUAGES),
                    collection_method=method,
                ),
            )
            persona = rng.random()
            self.pays_after[customer.id] = (
                0 if persona < 0.75 else rng.randrange(4, 20) if persona < 0.92 else None
            )
            if method == "charge_wallet":
                amount = Money.of(str(rng.choice((20, 50, 100, 200))), code)
                wallets.top_up(uow, ctx, wallets.TopUp(customer.id, amount, "card"))
            plan = rng.choices(list(self.plan_ids), weights=(30, 20, 15, 10, 8, 7, 4, 6))[0]
            addons = (("extra-screen", 1),) if rng.random() < 0.1 else ()
            change = subscriptions.create_subscription(
                uow,
                ctx,
                subscriptions.CreateSubscription(
                    customer.id,
                    self.plan_ids[plan],
                    trial=rng.random() < 0.7,
                    addons=addons,
                ),
            )
            if self._sealer is not None:
                sub_id = change.subscription.id
                credentials.issue_line(uow, ctx, self._sealer, self._random_bytes, sub_id)

    def _customer_behaviour(self, uow: UnitOfWork, ctx: Context) -> None:
        """Each day some customers pay, top up, pause, change plan or leave."""
        rng = self._rng
        self._pay_open_invoices(uow, ctx)
        subs = uow.subscriptions.list(ctx.tenant_id, 100, self._random_cursor(), status="active")
        for sub in subs.items[:3]:
            roll = rng.random()
            if roll < 0.3:
                _try(partial(subscriptions.cancel, uow, ctx, sub.id, at_period_end=True))
            elif roll < 0.4:
                _try(partial(subscriptions.pause, uow, ctx, sub.id))
            elif roll < 0.7:
                target = self.plan_ids[rng.choice(("premium", "sports", "family"))]
                change = subscriptions.ChangePlan(target, rng.choice(list(ProrationMode)))
                _try(partial(subscriptions.change_plan, uow, ctx, sub.id, change))

    def _pay_open_invoices(self, uow: UnitOfWork, ctx: Context) -> None:
        after: str | None = None
        while True:
            page = uow.invoices.list(ctx.tenant_id, 100, after, status="finalized")
            for invoice in page.items:
                delay = self.pays_after.get(invoice.customer_id)
                opened = invoice.finalized_at or invoice.created_at
                if delay is not None and ctx.now() - opened >= timedelta(days=delay):
                    due = Money.from_minor(invoice.amount_due_minor, invoice.currency)
                    cmd = payments.RecordPayment(
                        invoice.customer_id, due, "bank_transfer", invoice.id
                    )
                    _try(partial(payments.record_payment, uow, ctx, cmd))
            if not page.has_more:
                return
            after = page.items[-1].id

    def _random_cursor(self) -> str | None:
        return None if self._rng.random() < 0.5 else f"sub_{self._rng.randrange(32**2):03x}"


def _advance(uow: UnitOfWork, ctx: Context, to: datetime) -> datetime:
    return test_clocks.advance_to(uow, ctx.tenant_id, to)


def _try(action: Callable[[], object]) -> None:
    # A customer action refused (e.g. changing to the same plan) is part of realistic traffic.
    with contextlib.suppress(BillingError):
        action()


def _terms(plan: tuple[Any, ...]) -> catalog.PublishTerms:
    _code, _name, unit, count, prices, trial, setup, connections, packages = plan
    money = [
        {"currency": c, "minor": Money.of(p, c).minor}
        for c, p in zip(CURRENCIES, prices, strict=True)
    ]
    fees = (
        []
        if setup == "0"
        else [{"currency": c, "minor": Money.of(setup, c).minor} for c in CURRENCIES]
    )
    screen = {
        "code": "extra-screen",
        "name": "Extra screen",
        "kind": "extra_connection",
        "prices": [{"currency": c, "minor": Money.of("3.00", c).minor} for c in CURRENCIES],
        "connections": 1,
        "package_codes": [],
    }
    return catalog.PublishTerms(
        {
            "name": _name,
            "interval": {"unit": unit, "count": count},
            "prices": money,
            "setup_fees": fees,
            "trial_days": trial,
            "max_connections": connections,
            "package_codes": list(packages),
            "addons": [screen],
            "payment_due_days": 7,
        }
    )


def summarize(uow: UnitOfWork, tenant_id: str) -> dict[str, Any]:
    """What an operator wants to see first: who is in which state, what was billed and paid."""
    totals = uow.invoices.totals_by_currency(tenant_id)
    return {
        "subscriptions_by_status": uow.subscriptions.count_by_status(tenant_id),
        "invoices_by_status": uow.invoices.count_by_status(tenant_id),
        "invoiced_by_status": {s: _major(t) for s, t in totals.items()},
        "revenue_paid": _major(totals.get("paid", {})),
        "wallet_balances": _major(uow.wallets.totals(tenant_id)),
    }


def _major(by_currency: dict[str, int]) -> dict[str, str]:
    return {c: str(Money.from_minor(m, c).amount) for c, m in sorted(by_currency.items())}
