"""Prepaid subscribers: when the wallet cannot pay the renewal, access stops at once (the
stream authorization refuses), and a top-up pays what is owed and lets them watch again."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from stream_harness import StreamOperator

from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.money import Money
from iptv_billing.ledger.entries import moment
from iptv_billing.services import credentials, metrics, usage, wallets
from iptv_billing.services.audit import check_books
from iptv_billing.services.stream_auth import PlayRequest, Presented

IP = "198.51.100.7"


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url)
    yield operator
    operator.close()


def test_an_empty_wallet_suspends_and_a_top_up_reactivates(op: StreamOperator) -> None:
    customer = op.customer(method="charge_wallet", top_up="10.00")  # one month of "basic"
    sub = op.subscribe(customer.id, "basic")
    line, password = op.tx(lambda u, c: credentials.issue_line(u, c, op.sealer, os.urandom, sub.id))
    op.sync()
    viewer = Presented.line(line.login, password)
    assert op.authorizer.authorize(PlayRequest(viewer, "news-1", IP)).allowed
    assert op.read(lambda u, c: u.wallets.get(c.tenant_id, customer.id, "EUR")).balance_minor == 0

    op.advance(days=30)
    op.bill()  # the renewal cannot be paid from the empty wallet: it falls due now
    op.advance(days=1 / 1440)
    op.bill()  # the next tick (a minute later) finds it overdue: no grace on this plan
    op.sync()
    refused = op.authorizer.authorize(PlayRequest(viewer, "news-1", IP))
    assert not refused.allowed
    assert refused.reason is Reason.SUSPENDED

    top_up = wallets.TopUp(customer.id, Money.of("25.00", "EUR"))
    wallet = op.tx(lambda u, c: wallets.top_up(u, c, top_up))
    assert wallet.balance_minor == 1500  # the open 10.00 was paid from the top-up
    op.sync()
    assert op.authorizer.authorize(PlayRequest(viewer, "news-1", IP)).allowed
    assert (
        op.read(lambda u, c: u.subscriptions.get(c.tenant_id, sub.id)).state.status.value
        == "active"
    )
    assert op.read(lambda u, c: check_books(u, c.tenant_id).consistent)


def test_a_top_up_that_does_not_cover_the_debt_pays_nothing(op: StreamOperator) -> None:
    customer = op.customer(method="charge_wallet", top_up="10.00")
    sub = op.subscribe(customer.id, "basic")
    op.advance(days=30)
    op.bill()
    op.advance(days=1 / 1440)
    op.bill()
    op.tx(lambda u, c: wallets.top_up(u, c, wallets.TopUp(customer.id, Money.of("4.00", "EUR"))))
    assert op.read(lambda u, c: u.wallets.get(c.tenant_id, customer.id, "EUR")).balance_minor == 400
    status = op.read(lambda u, c: u.subscriptions.get(c.tenant_id, sub.id)).state.status.value
    assert status != "active"
    assert op.read(lambda u, c: check_books(u, c.tenant_id).consistent)


def test_metered_prepaid_usage_is_charged_as_it_accrues_and_stops_at_zero(
    op: StreamOperator,
) -> None:
    """Pay as you watch: a plan whose usage threshold is the charging step. Each step is an
    invoice paid from the wallet at once; the step the wallet cannot pay stops access at the
    next tick, and a top-up pays it and reopens access."""
    op.tx(
        lambda u, c: metrics.create_metric(u, c, metrics.CreateMetric("minutes", "Minutes", "sum"))
    )
    per_minute = {
        "model": "per_unit",
        "unit_price": "0.05",
        "tiers": [],
        "package_size": "1",
        "included": "0",
    }
    op.plan(
        "payg",
        "0.00",
        package_codes=["basic"],
        grace_days=0,
        suspend_after_days=0,
        usage_charges=[
            {
                "metric": "minutes",
                "name": "Viewing minutes",
                "aggregation": "sum",
                "prices": [{**per_minute, "currency": c} for c in ("EUR", "USD")],
            }
        ],
        usage_threshold=[{"currency": c, "minor": 100} for c in ("EUR", "USD")],
    )
    customer = op.customer(method="charge_wallet", top_up="3.00")
    sub = op.subscribe(customer.id, "payg")
    line, password = op.tx(lambda u, c: credentials.issue_line(u, c, op.sealer, os.urandom, sub.id))
    viewer = Presented.line(line.login, password)

    def watch(minutes: int, tag: str) -> None:
        at = moment(op.read(lambda u, c: c.now()))
        event = {
            "id": tag,
            "customer_id": customer.id,
            "subscription_id": sub.id,
            "metric": "minutes",
            "value": minutes,
            "timestamp": at,
        }
        assert op.tx(lambda u, c: usage.ingest(u, c, [event])).accepted == 1
        op.advance(days=1 / 1440)
        op.bill()
        op.advance(days=1 / 1440)
        op.bill()
        op.sync()

    watch(30, "w1")  # 1.50: charged from the wallet (1.50 left)
    assert op.authorizer.authorize(PlayRequest(viewer, "news-1", IP)).allowed
    watch(40, "w2")  # 2.00 more than the 1.50 left: unpaid, access stops
    assert op.authorizer.authorize(PlayRequest(viewer, "news-1", IP)).reason is Reason.SUSPENDED
    wallet = op.tx(
        lambda u, c: wallets.top_up(u, c, wallets.TopUp(customer.id, Money.of("5", "EUR")))
    )
    assert wallet.balance_minor == 150 + 500 - 200
    op.sync()
    assert op.authorizer.authorize(PlayRequest(viewer, "news-1", IP)).allowed
    charged = op.read(
        lambda u, c: sum(
            i.total_minor
            for i in u.invoices.list(c.tenant_id, 100, None, subscription_id=sub.id).items
            if i.billing_reason == "usage_threshold"
        )
    )
    assert charged == 350  # 70 minutes at 0.05, each unit once
    assert op.read(lambda u, c: check_books(u, c.tenant_id).consistent)
