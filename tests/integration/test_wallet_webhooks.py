"""Wallet notices reach operators' webhook receivers by following the log, as customer-level
events (no subscription); Xtream panels never see them. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from provisioning_harness import ProvisioningOperator

from iptv_billing.adapters.payments.test_provider import TestCardProvider
from iptv_billing.domain.money import Money
from iptv_billing.services import wallet_automation, wallets
from iptv_billing.services.jobs import RecurringJobs


@pytest.fixture
def op(database_url: str) -> Iterator[ProvisioningOperator]:
    operator = ProvisioningOperator(database_url)
    yield operator
    operator.close()


def configure(op: ProvisioningOperator, cmd: wallet_automation.ConfigureWallet) -> None:
    op.tx(lambda u, c: wallet_automation.configure_wallet(u, c, cmd))


def test_low_balance_and_a_declined_top_up_reach_a_webhook_target(op: ProvisioningOperator) -> None:
    hook = op.webhook_target()
    panel = op.xtream_target()
    jobs = RecurringJobs(
        op.database.uow, op.system, op.ids, TestCardProvider(op.system, timedelta(seconds=5))
    )
    customer = op.customer(top_up="10.00")
    configure(op, wallet_automation.ConfigureWallet(customer.id, "EUR", True, "5.00"))
    debit = wallets.DebitWallet(customer.id, Money.of("7.50", "EUR"), "a film")
    op.tx(lambda u, c: wallets.debit(u, c, debit))

    jobs.tick()
    jobs.tick()
    op.tick()

    [received] = op.receiver.received
    assert received.problem is None  # signed
    event = received.event
    assert event["type"] == "wallet.low_balance"
    data = event["data"]
    assert (data["customer"], data["currency"], data["tenant"]) == (
        customer.id,
        "EUR",
        op.tenant_id,
    )
    assert data["available"] == {"amount": "2.50", "currency": "EUR", "minor": 250}
    assert data["threshold"] == {"amount": "5.00", "currency": "EUR", "minor": 500}
    [delivery] = op.deliveries(hook.id)
    assert (delivery.subscription_id, delivery.status, delivery.id) == (
        None,
        "delivered",
        event["id"],
    )
    assert op.deliveries(panel.id) == []  # panels sync subscriptions only

    auto = wallet_automation.AutoTopUpSettings("5.00", "20.00", "pm_card_declined")
    configure(
        op,
        wallet_automation.ConfigureWallet(
            customer.id, "EUR", set_auto_top_up=True, auto_top_up=auto
        ),
    )
    jobs.tick()
    op.tick()

    events = op.receiver.events()
    assert [e["type"] for e in events] == ["wallet.low_balance", "wallet.auto_top_up_failed"]
    failed = events[1]["data"]
    assert failed["amount"] == {"amount": "20.00", "currency": "EUR", "minor": 2000}
    assert failed["failure_code"] == "card_declined"
    assert failed["log_index"] > data["log_index"]

    listed = op.client.get(
        "/v1/provisioning/deliveries", params={"target_id": hook.id}, headers=op.auth()
    )
    assert listed.status_code == 200, listed.text
    assert [d["subscription_id"] for d in listed.json()["data"]] == [None, None]
