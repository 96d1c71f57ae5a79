"""Two-phase wallet holds through the API: reserve, post part, void, lapse; what is held cannot
be spent, every ending happens once, and the books agree at every step."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from operator_harness import Operator

from iptv_billing.adapters.payments.test_provider import TestCardProvider
from iptv_billing.adapters.sql.uow import is_transient, run_in_transaction
from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices
from iptv_billing.services import access, wallet_holds
from iptv_billing.services.audit import check_books
from iptv_billing.services.context import load_context
from iptv_billing.services.jobs import RecurringJobs
from iptv_billing.services.ports import UnitOfWork


class Api:
    def __init__(self, op: Operator) -> None:
        self.op = op
        services = AppServices(op.database, op.ids, op.system, is_transient)
        self.client = TestClient(create_app(services), raise_server_exceptions=False)
        with op.database.uow() as uow:
            _, key = access.issue_api_key(uow, op.ids, op.system, op.tenant_id, "ops", "admin")
            uow.commit()
        self.key = key
        self._n = 0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        self._n += 1
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": f"k{self._n}"}
        return self.client.request(method, path, json=body, headers=headers)

    def wallet(self, customer_id: str) -> dict[str, Any]:
        wallets = self.call("GET", f"/v1/customers/{customer_id}/wallets").json()["data"]
        assert len(wallets) == 1
        return {k: wallets[0][k]["amount"] for k in ("balance", "pending", "available")}

    def hold(self, customer_id: str, amount: str, **extra: Any) -> Any:
        body = {"amount": {"amount": amount, "currency": "EUR"}, "purpose": "usage", **extra}
        return self.call("POST", f"/v1/customers/{customer_id}/wallet/holds", body)

    def books_consistent(self) -> bool:
        return bool(self.op.read(lambda u, c: check_books(u, c.tenant_id).consistent))


@pytest.fixture
def api(operator: Operator) -> Api:
    return Api(operator)


def test_held_money_is_kept_but_cannot_be_spent(api: Api) -> None:
    customer = api.op.customer(top_up="10.00")
    placed = api.hold(customer.id, "6.00", reference="session-1")
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert (hold["status"], hold["amount"]["amount"], hold["reference"]) == (
        "pending",
        "6.00",
        "session-1",
    )
    assert api.wallet(customer.id) == {"balance": "10.00", "pending": "6.00", "available": "4.00"}
    # Neither a second hold nor a debit may take what the first one holds.
    short = api.hold(customer.id, "4.01")
    assert short.status_code == 402
    assert short.json()["code"] == "wallet.insufficient_funds"
    debit = {"amount": {"amount": "4.01", "currency": "EUR"}, "description": "film"}
    refused = api.call("POST", f"/v1/customers/{customer.id}/wallet/debits", debit)
    assert refused.status_code == 402
    assert api.wallet(customer.id)["available"] == "4.00"
    assert api.books_consistent()


def test_a_post_charges_what_was_used_and_releases_the_rest(api: Api) -> None:
    customer = api.op.customer(top_up="10.00")
    hold_id = api.hold(customer.id, "6.00").json()["id"]
    too_much = api.call(
        "POST",
        f"/v1/wallet-holds/{hold_id}/post",
        {"amount": {"amount": "6.01", "currency": "EUR"}},
    )
    assert too_much.status_code == 422
    assert too_much.json()["code"] == "wallet_hold.post_exceeds_hold"
    posted = api.call(
        "POST",
        f"/v1/wallet-holds/{hold_id}/post",
        {"amount": {"amount": "2.50", "currency": "EUR"}},
    )
    assert posted.status_code == 200, posted.text
    assert (posted.json()["status"], posted.json()["posted"]["amount"]) == ("posted", "2.50")
    assert api.wallet(customer.id) == {"balance": "7.50", "pending": "0.00", "available": "7.50"}
    again = api.call("POST", f"/v1/wallet-holds/{hold_id}/void")
    assert again.status_code == 409
    assert again.json()["code"] == "wallet_hold.not_pending"
    assert api.wallet(customer.id)["balance"] == "7.50"
    assert api.books_consistent()


def test_a_void_releases_everything_and_lists_show_each_state(api: Api) -> None:
    customer = api.op.customer(top_up="5.00")
    first = api.hold(customer.id, "2.00").json()["id"]
    second = api.hold(customer.id, "1.00").json()["id"]
    assert api.call("POST", f"/v1/wallet-holds/{first}/void").json()["status"] == "voided"
    assert api.wallet(customer.id) == {"balance": "5.00", "pending": "1.00", "available": "4.00"}
    pending = api.call("GET", f"/v1/customers/{customer.id}/wallet/holds?status=pending").json()
    assert [h["id"] for h in pending["data"]] == [second]
    assert api.call("GET", f"/v1/wallet-holds/{first}").json()["status"] == "voided"
    missing = api.call("GET", "/v1/wallet-holds/hold_nope")
    assert (missing.status_code, missing.json()["code"]) == (404, "wallet_hold.not_found")
    assert api.books_consistent()


def test_bad_holds_are_refused_and_change_nothing(api: Api) -> None:
    customer = api.op.customer(top_up="5.00")
    for body, status in [
        ({"amount": {"amount": "1.00", "currency": "EUR"}, "purpose": "gift"}, 422),
        ({"amount": {"amount": "-1.00", "currency": "EUR"}, "purpose": "usage"}, 422),
        (
            {
                "amount": {"amount": "1.00", "currency": "EUR"},
                "purpose": "usage",
                "expires_in_seconds": 0,
            },
            422,
        ),
        ({"amount": "lots", "purpose": "usage"}, 422),
    ]:
        answer = api.call("POST", f"/v1/customers/{customer.id}/wallet/holds", body)
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    unknown = api.hold("cus_nope", "1.00")
    assert unknown.status_code == 404
    assert api.wallet(customer.id) == {"balance": "5.00", "pending": "0.00", "available": "5.00"}
    assert api.call("GET", f"/v1/customers/{customer.id}/wallet/holds").json()["data"] == []


def test_a_crash_between_hold_and_post_leaves_a_hold_that_lapses_once(api: Api) -> None:
    """The session that placed the hold died: nobody posts or voids. When its time runs out,
    concurrent sweepers release it exactly once and a late post is refused."""
    op = api.op
    customer = op.customer(top_up="10.00")
    hold_id = api.hold(customer.id, "4.00", expires_in_seconds=60).json()["id"]
    op.advance(days=1 / 24)
    assert api.call("POST", f"/v1/wallet-holds/{hold_id}/post").json()["code"] == (
        "wallet_hold.expired"
    )
    start = threading.Barrier(4)

    def sweep(_: int) -> int:
        start.wait()

        def work(uow: UnitOfWork) -> int:
            ctx = load_context(uow, op.tenant_id, op.system, op.ids)
            return wallet_holds.expire_lapsed(uow, ctx)

        return run_in_transaction(op.database.uow, work, attempts=20)

    with ThreadPoolExecutor(4) as pool:
        released = sum(pool.map(sweep, range(4)))
    assert released == 1
    assert api.call("GET", f"/v1/wallet-holds/{hold_id}").json()["status"] == "expired"
    assert api.wallet(customer.id) == {"balance": "10.00", "pending": "0.00", "available": "10.00"}
    expiries = op.read(
        lambda u, c: [
            e
            for e in u.journal.entries_for(c.tenant_id, hold_id)
            if e.kind == "wallet_hold_expired"
        ]
    )
    assert len(expiries) == 1
    assert api.books_consistent()


def test_the_recurring_jobs_release_lapsed_holds(api: Api) -> None:
    op = api.op
    customer = op.customer(top_up="3.00")
    for _ in range(3):
        api.hold(customer.id, "1.00", expires_in_seconds=30)
    op.advance(days=1 / 24 / 60)  # one minute
    jobs = RecurringJobs(op.database.uow, op.system, op.ids, TestCardProvider(op.system))
    assert jobs.tick().holds_expired == 3
    assert jobs.tick().holds_expired == 0
    assert api.wallet(customer.id)["available"] == "3.00"
    assert api.books_consistent()


def test_a_hold_lapses_on_the_tenants_clock_not_before(api: Api) -> None:
    """A hold's expiry is on the tenant's clock: advancing it less than the ttl keeps it."""
    op = api.op
    customer = op.customer(top_up="3.00")
    hold_id = api.hold(customer.id, "1.00", expires_in_seconds=3600).json()["id"]
    op.advance(days=0.5 / 24)
    assert op.tx(lambda u, c: wallet_holds.expire_lapsed(u, c)) == 0
    posted = api.call("POST", f"/v1/wallet-holds/{hold_id}/post")
    assert posted.json()["status"] == "posted"
    assert api.wallet(customer.id) == {"balance": "2.00", "pending": "0.00", "available": "2.00"}
