"""Wallet automation through the API and the recurring jobs: one low-balance notice per
crossing, auto top-ups from a saved card charged once (however often or concurrently the jobs
run), a declined card left alone for a day, and the books consistent after each scenario.
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from operator_harness import Operator

from iptv_billing.adapters.payments.test_provider import TestCardProvider
from iptv_billing.adapters.sql.uow import is_transient
from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices
from iptv_billing.domain.money import Money
from iptv_billing.services import access, wallet_automation, wallet_holds, wallets
from iptv_billing.services.audit import check_books
from iptv_billing.services.context import load_context
from iptv_billing.services.jobs import RecurringJobs, TickReport
from iptv_billing.services.ledger_audit import verify_log
from iptv_billing.services.providers import ProviderCharge
from iptv_billing.services.records import PaymentRecord
from iptv_billing.services.wallet_automation import WALLET_SETTINGS
from iptv_billing.services.wallet_notices import WALLET_NOTICE


class CountingProvider:
    """The test card provider, counting the charges it is asked for (retries included)."""

    name = "test"

    def __init__(self, inner: TestCardProvider) -> None:
        self.inner = inner
        self.charges = 0
        self.charge_ids: set[str] = set()  # what the provider really created
        self._lock = threading.Lock()

    def charge(
        self, *, idempotency_key: str, amount_minor: int, currency: str, payment_method: str
    ) -> ProviderCharge:
        charge = self.inner.charge(
            idempotency_key=idempotency_key,
            amount_minor=amount_minor,
            currency=currency,
            payment_method=payment_method,
        )
        with self._lock:
            self.charges += 1
            self.charge_ids.add(charge.id)
        return charge

    def retrieve(self, charge_id: str) -> ProviderCharge:
        return self.inner.retrieve(charge_id)


class World:
    def __init__(self, op: Operator) -> None:
        self.op = op
        services = AppServices(op.database, op.ids, op.system, is_transient)
        self.client = TestClient(create_app(services), raise_server_exceptions=False)
        with op.database.uow() as uow:
            _, self.key = access.issue_api_key(uow, op.ids, op.system, op.tenant_id, "ops", "admin")
            uow.commit()
        self.provider = CountingProvider(
            TestCardProvider(op.system, confirm_after=timedelta(seconds=30))
        )
        self._n = 0

    def jobs(self) -> RecurringJobs:
        return RecurringJobs(
            self.op.database.uow,
            self.op.system,
            self.op.ids,
            self.provider,
            is_transient=is_transient,
        )

    def tick(self, times: int = 1) -> TickReport:
        report = self.jobs().tick()
        for _ in range(times - 1):
            report = self.jobs().tick()
        return report

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self._n += 1
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": f"k{self._n}"}
        return self.client.request(method, path, json=body, headers=headers)

    def configure(self, customer_id: str, body: dict[str, Any], currency: str = "EUR") -> Any:
        response = self.call("PATCH", f"/v1/customers/{customer_id}/wallets/{currency}", body)
        assert response.status_code == 200, response.text
        return response.json()

    def wallet(self, customer_id: str) -> dict[str, Any]:
        found = self.call("GET", f"/v1/customers/{customer_id}/wallets").json()["data"]
        assert len(found) == 1
        wallet: dict[str, Any] = found[0]
        return wallet

    def available(self, customer_id: str) -> str:
        return str(self.wallet(customer_id)["available"]["amount"])

    def debit(self, customer_id: str, amount: str) -> None:
        cmd = wallets.DebitWallet(customer_id, Money.of(amount, "EUR"), "a film")
        self.op.tx(lambda u, c: wallets.debit(u, c, cmd))

    def top_up(self, customer_id: str, amount: str) -> None:
        cmd = wallets.TopUp(customer_id, Money.of(amount, "EUR"))
        self.op.tx(lambda u, c: wallets.top_up(u, c, cmd))

    def notices(self, customer_id: str) -> list[dict[str, Any]]:
        entries = self.op.read(lambda u, c: u.log.entries_about(c.tenant_id, [customer_id]))
        return [json.loads(e.record) for e in entries if e.kind == WALLET_NOTICE]

    def payments(self, customer_id: str) -> list[PaymentRecord]:
        page = self.op.read(
            lambda u, c: u.payments.list(c.tenant_id, 100, None, customer_id=customer_id)
        )
        return sorted(page.items, key=lambda p: (p.created_at, p.id))

    def books_consistent(self) -> bool:
        """The books balance and ``ledger verify`` is clean (notices are log entries too)."""
        books = self.op.read(lambda u, c: check_books(u, c.tenant_id).consistent)
        log = self.op.read(lambda u, c: verify_log(u, c.tenant_id).consistent)
        return bool(books and log)


@pytest.fixture
def world(operator: Operator) -> World:
    return World(operator)


def auto(below: str, amount: str, method: str) -> dict[str, Any]:
    return {"auto_top_up": {"below": below, "amount": amount, "payment_method": method}}


# --- low-balance notices ----------------------------------------------------------------------


def test_a_debit_under_the_threshold_is_notified_once(world: World) -> None:
    customer = world.op.customer(top_up="10.00")
    shown = world.configure(customer.id, {"low_balance_threshold": "5.00"})
    assert shown["low_balance_threshold"]["amount"] == "5.00"
    assert shown["low_balance"] is False
    world.tick()
    assert world.notices(customer.id) == []  # 10.00 is not low

    world.debit(customer.id, "6.00")
    assert world.tick(3).wallet_notices == 0  # the first of the three notified

    [notice] = world.notices(customer.id)
    assert (notice["notice"], notice["available"], notice["threshold"]) == ("low_balance", 400, 500)
    assert (notice["customer"], notice["currency"]) == (customer.id, "EUR")
    assert world.wallet(customer.id)["low_balance"] is True
    assert world.books_consistent()


def test_a_hold_crosses_too_and_a_top_up_rearms_the_notice(world: World) -> None:
    customer = world.op.customer(top_up="10.00")
    world.configure(customer.id, {"low_balance_threshold": "5.00"})
    hold = wallet_holds.PlaceHold(customer.id, Money.of("6.00", "EUR"), "usage")
    world.op.tx(lambda u, c: wallet_holds.place_hold(u, c, hold))
    assert world.tick().wallet_notices == 1
    world.tick(2)
    assert len(world.notices(customer.id)) == 1

    world.top_up(customer.id, "10.00")  # available 14.00: back above
    world.tick()
    assert world.wallet(customer.id)["low_balance"] is False
    assert len(world.notices(customer.id)) == 1

    world.debit(customer.id, "12.00")  # available 2.00: a new crossing
    world.tick(2)
    notices = world.notices(customer.id)
    assert [(n["notice"], n["available"]) for n in notices] == [
        ("low_balance", 400),
        ("low_balance", 200),
    ]
    assert world.books_consistent()


def test_clearing_the_threshold_stops_the_notices(world: World) -> None:
    customer = world.op.customer(top_up="1.00")
    world.configure(customer.id, {"low_balance_threshold": "5.00"})
    shown = world.configure(customer.id, {"low_balance_threshold": None})
    assert shown["low_balance_threshold"] is None
    world.tick()
    assert world.notices(customer.id) == []


def test_each_change_of_the_settings_is_logged_and_a_repeat_is_not(world: World) -> None:
    customer = world.op.customer(top_up="1.00")

    def logged() -> list[dict[str, Any]]:
        entries = world.op.read(lambda u, c: u.log.entries_about(c.tenant_id, [customer.id]))
        return [json.loads(e.record) for e in entries if e.kind == WALLET_SETTINGS]

    world.configure(customer.id, {"low_balance_threshold": "5.00"})
    world.configure(customer.id, {"low_balance_threshold": "5.00"})  # no change, no entry
    world.configure(customer.id, auto("2.00", "20.00", "pm_card_visa"))
    first, second = logged()
    assert (first["low_balance_threshold_minor"], first["auto_top_up_amount_minor"]) == (500, None)
    assert (second["auto_top_up_below_minor"], second["auto_top_up_amount_minor"]) == (200, 2000)
    assert second["auto_top_up_payment_method"] == "pm_card_visa"
    assert world.books_consistent()


# --- auto top-up --------------------------------------------------------------------------------


def test_an_instant_card_tops_up_once_however_often_the_jobs_run(world: World) -> None:
    customer = world.op.customer(top_up="1.00")
    world.configure(
        customer.id, {"low_balance_threshold": "5.00", **auto("5.00", "20.00", "pm_card_instant")}
    )

    report = world.tick()
    world.tick(2)

    assert report.auto_top_ups == 1
    assert world.available(customer.id) == "21.00"
    [payment] = world.payments(customer.id)
    assert (payment.method, payment.status, payment.invoice_id) == ("card", "succeeded", None)
    assert (payment.amount_minor, payment.excess_minor, payment.reference) == (
        2000,
        2000,
        "auto_top_up",
    )
    assert world.provider.charges == 1
    # Topped up before the notice pass: the customer is not told of a balance already fixed.
    assert [n["notice"] for n in world.notices(customer.id)] == ["auto_topped_up"]
    assert world.wallet(customer.id)["auto_top_up"]["pending_payment_id"] is None
    assert world.books_consistent()


def test_concurrent_ticks_charge_once(world: World) -> None:
    customers = [world.op.customer(top_up="1.00") for _ in range(3)]
    for customer in customers:
        world.configure(customer.id, auto("5.00", "20.00", "pm_card_instant"))
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            world.jobs().tick()
            world.jobs().tick()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    for customer in customers:
        assert world.available(customer.id) == "21.00"
        assert [p.status for p in world.payments(customer.id)] == ["succeeded"]
        assert [n["notice"] for n in world.notices(customer.id)] == ["auto_topped_up"]
    assert world.books_consistent()


def test_a_crash_between_charge_and_commit_is_recovered_by_the_providers_dedup(
    world: World,
) -> None:
    customer = world.op.customer(top_up="1.00")
    wallet_id = world.configure(customer.id, auto("5.00", "20.00", "pm_card_instant"))["id"]
    with world.op.database.uow() as uow:  # charged, then gone before the commit
        ctx = load_context(uow, world.op.tenant_id, world.op.system, world.op.ids)
        assert wallet_automation.top_up_step(uow, ctx, world.provider, wallet_id).charged
    assert world.payments(customer.id) == []

    world.tick(2)

    [payment] = world.payments(customer.id)
    assert world.provider.charges == 2  # asked again with the same key ...
    assert world.provider.charge_ids == {payment.provider_payment_id}  # ... one charge
    assert world.available(customer.id) == "21.00"
    assert world.books_consistent()


def test_a_card_that_confirms_later_is_not_charged_twice(world: World) -> None:
    customer = world.op.customer(top_up="1.00")
    world.configure(customer.id, auto("5.00", "20.00", "pm_card_visa"))

    world.tick(3)

    [pending] = world.payments(customer.id)
    assert pending.status == "pending"
    assert world.available(customer.id) == "1.00"
    assert world.wallet(customer.id)["auto_top_up"]["pending_payment_id"] == pending.id
    assert world.provider.charges == 1

    world.op.system.set(world.op.system.now() + timedelta(seconds=31))  # the provider confirms
    world.tick(2)

    [paid] = world.payments(customer.id)
    assert (paid.id, paid.status) == (pending.id, "succeeded")
    assert world.available(customer.id) == "21.00"
    assert world.wallet(customer.id)["auto_top_up"]["pending_payment_id"] is None
    assert [n["notice"] for n in world.notices(customer.id)] == ["auto_topped_up"]
    assert world.provider.charges == 1
    assert world.books_consistent()


def test_a_declined_card_is_not_hammered(world: World) -> None:
    customer = world.op.customer(top_up="1.00")
    world.configure(customer.id, auto("5.00", "20.00", "pm_card_declined"))

    world.tick(3)

    [failed] = world.payments(customer.id)
    assert (failed.status, failed.failure_code, failed.invoice_id) == (
        "failed",
        "card_declined",
        None,
    )
    [notice] = world.notices(customer.id)
    assert (notice["notice"], notice["payment"], notice["failure_code"]) == (
        "auto_top_up_failed",
        failed.id,
        "card_declined",
    )
    assert world.wallet(customer.id)["auto_top_up"]["retry_at"] is not None
    world.op.advance(days=23 / 24)
    world.tick()
    assert len(world.payments(customer.id)) == 1  # still backing off

    world.op.advance(days=2 / 24)  # a day has passed: one more try, declined again
    world.tick(2)
    assert [p.status for p in world.payments(customer.id)] == ["failed", "failed"]
    assert len(world.notices(customer.id)) == 2

    world.configure(customer.id, auto("5.00", "20.00", "pm_card_instant"))  # a new card
    world.tick()
    assert world.available(customer.id) == "21.00"
    assert sorted(p.status for p in world.payments(customer.id)) == [
        "failed",
        "failed",
        "succeeded",
    ]
    assert world.provider.charges == 3
    assert world.books_consistent()


def test_a_manual_top_up_ends_the_back_off(world: World) -> None:
    customer = world.op.customer(top_up="1.00")
    world.configure(customer.id, auto("5.00", "20.00", "pm_card_declined"))
    world.tick()
    world.top_up(customer.id, "10.00")  # back above below
    world.tick()
    assert world.wallet(customer.id)["auto_top_up"]["retry_at"] is None
    world.debit(customer.id, "9.00")  # under again: tried at once, not a day later
    world.tick()
    assert len(world.payments(customer.id)) == 2


# --- the settings API ---------------------------------------------------------------------------


def problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.json()


def test_settings_create_the_wallet_and_null_clears(world: World) -> None:
    customer = world.op.customer()
    shown = world.configure(
        customer.id,
        {"low_balance_threshold": "2.50", **auto("1.00", "10.00", "pm_card_visa")},
        currency="USD",
    )
    assert (shown["balance"]["amount"], shown["balance"]["currency"]) == ("0.00", "USD")
    assert shown["auto_top_up"]["below"]["amount"] == "1.00"
    assert shown["auto_top_up"]["amount"]["minor"] == 1000
    assert shown["auto_top_up"]["payment_method"] == "pm_card_visa"

    kept = world.configure(customer.id, {"auto_top_up": None}, currency="USD")
    assert kept["auto_top_up"] is None
    assert kept["low_balance_threshold"]["amount"] == "2.50"  # omitted: unchanged


def test_bad_settings_are_refused(world: World) -> None:
    customer = world.op.customer()
    path = f"/v1/customers/{customer.id}/wallets/EUR"

    def patch(body: Any, where: str = path) -> Any:
        return world.call("PATCH", where, body)

    problem(patch({"low_balance_threshold": "0.00"}), 422, "wallet.invalid_threshold")
    problem(patch({"low_balance_threshold": "-1.00"}), 422, "wallet.invalid_threshold")
    problem(patch({"low_balance_threshold": 5.0}), 422, "money.float_refused")
    problem(patch({"low_balance_threshold": "2000000"}), 422, "wallet.threshold_too_large")
    problem(patch({"low_balance_threshold": "1.001"}), 422, "money.too_precise")
    problem(patch(auto("9999999", "10.00", "pm_card_visa")), 422, "wallet.threshold_too_large")
    problem(patch(auto("5.00", "0", "pm_card_visa")), 422, "wallet.invalid_auto_top_up")
    problem(patch(auto("5.00", "500000", "pm_card_visa")), 422, "wallet.top_up_too_large")
    problem(
        patch(auto("5.00", "10.00", "4242 4242 4242 4242")), 422, "wallet.invalid_payment_method"
    )
    problem(patch({"auto_top_up": {"below": "5.00"}}), 422, "request.invalid")
    problem(patch({"surprise": 1}), 422, "request.invalid")
    problem(patch({}, f"/v1/customers/{customer.id}/wallets/ZZZ"), 422, "money.unknown_currency")
    problem(patch({}, "/v1/customers/cus_nobody/wallets/EUR"), 404, "customer.not_found")
    assert world.call("GET", f"/v1/customers/{customer.id}/wallets").json()["data"] == []
