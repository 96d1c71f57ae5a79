"""Prepaid metered viewing charged in real time: a session holds the price of its next stretch
of viewing when it starts, each stretch is invoiced and paid from its hold, the session is
stopped when the wallet cannot pay for more, and a hold nobody charged lapses once while the
period's invoice bills the viewing. Driven through the nginx-rtmp and Flussonic callbacks."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from stream_harness import StreamOperator

from iptv_billing.domain.errors import Conflict
from iptv_billing.domain.money import Money
from iptv_billing.domain.rating import Aggregation
from iptv_billing.ledger.entries import moment
from iptv_billing.services import credentials, metrics, usage, usage_invoices, wallet_holds, wallets
from iptv_billing.services.audit import check_books
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ledger_audit import verify_log
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import CustomerRecord, SubscriptionRecord, WalletHoldRecord
from iptv_billing.services.session_charging import SessionCharger
from iptv_billing.services.usage_feed import UsageFeed

RTMP = "/integrations/nginx-rtmp"
FLUSSONIC = "/integrations/flussonic/auth"
RESERVE = 900  # seconds of viewing a reservation pays for
PER_SECOND = "0.001"  # 0.06 a minute, 0.90 a reservation


@pytest.fixture
def streaming(database_url: str) -> Iterator[tuple[StreamOperator, UsageFeed]]:
    op = StreamOperator(database_url)
    feed = new_feed(op)
    app: Any = op.client.app
    app.state.services = replace(app.state.services, usage_feed=feed)
    metric = metrics.CreateMetric("viewing_seconds", "Viewing", "sum", "second")
    op.tx(lambda u, c: metrics.create_metric(u, c, metric))
    pay_as_you_watch(op, "payg")
    yield op, feed
    op.close()


def pay_as_you_watch(op: StreamOperator, code: str, **extra: Any) -> None:
    """A plan with no fee that charges 0.001 a second of viewing, and no grace."""
    price = {"model": "per_unit", "unit_price": PER_SECOND, "tiers": [], "package_size": "1"}
    op.plan(
        code,
        "0.00",
        package_codes=["basic"],
        grace_days=0,
        suspend_after_days=0,
        usage_charges=[
            {
                "metric": "viewing_seconds",
                "name": "Viewing",
                "aggregation": "sum",
                "prices": [{**price, "included": "0", "currency": c} for c in ("EUR", "USD")],
            }
        ],
        **extra,
    )


def new_feed(op: StreamOperator) -> UsageFeed:
    charger = SessionCharger(op.database.transact, op.system, op.ids, RESERVE)
    return UsageFeed(
        op.index, op.database.uow, op.system, op.ids, op.authorizer.now_for, charger=charger
    )


def prepaid_viewer(
    op: StreamOperator, top_up: str | None
) -> tuple[CustomerRecord, SubscriptionRecord, dict[str, str]]:
    customer = op.customer(method="charge_wallet", top_up=top_up)
    sub = op.subscribe(customer.id, "payg")
    line, password = op.tx(lambda u, c: credentials.issue_line(u, c, op.sealer, os.urandom, sub.id))
    op.sync()
    fields = {
        "addr": "203.0.113.9",
        "clientid": "7",
        "app": "live",
        "name": "news-1",
        "username": line.login,
        "password": password,
    }
    return customer, sub, fields


def play(op: StreamOperator, fields: dict[str, str]) -> Any:
    return op.client.post(f"{RTMP}/play", data={**fields, "call": "play"})


def update(op: StreamOperator, fields: dict[str, str], played: int) -> Any:
    return op.client.post(
        f"{RTMP}/update", data={**fields, "call": "update_play", "time": str(played)}
    )


def done(op: StreamOperator, fields: dict[str, str]) -> None:
    assert op.client.post(f"{RTMP}/done", data={**fields, "call": "play_done"}).status_code == 200


def holds(op: StreamOperator, customer_id: str) -> list[WalletHoldRecord]:
    return list(op.read(lambda u, c: u.holds.list(c.tenant_id, customer_id, 100, None).items))


def wallet(op: StreamOperator, customer_id: str) -> tuple[int, int]:
    found = op.read(lambda u, c: u.wallets.get(c.tenant_id, customer_id, "EUR"))
    return found.balance_minor, found.pending_minor


def invoiced(op: StreamOperator, sub_id: str) -> list[tuple[str, int, int]]:
    """(reason, total, paid) of the subscription's invoices, oldest first."""
    found = op.read(
        lambda u, c: u.invoices.list(c.tenant_id, 100, None, subscription_id=sub_id).items
    )
    return sorted(
        ((i.billing_reason, i.total_minor, i.amount_paid_minor) for i in found if i.total_minor),
        key=str,
    )


def books_and_log_hold(op: StreamOperator) -> None:
    assert op.read(lambda u, c: check_books(u, c.tenant_id).consistent)
    audit = op.read(lambda u, c: verify_log(u, c.tenant_id))
    assert audit.consistent, audit.problems


def test_a_session_holds_its_viewing_then_pays_what_it_played(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    op, feed = streaming
    customer, sub, fields = prepaid_viewer(op, top_up="2.00")
    assert play(op, fields).status_code == 200
    (hold,) = holds(op, customer.id)
    assert (hold.status, hold.amount_minor, hold.subscription_id) == ("pending", 90, sub.id)
    assert wallet(op, customer.id) == (200, 90)  # 1.10 can still be spent elsewhere

    assert update(op, fields, 130).status_code == 200
    done(op, fields)
    feed.flush()  # the viewing first, then the charge that pays for it

    (hold,) = holds(op, customer.id)
    assert (hold.status, hold.posted_minor) == ("posted", 13)  # 130 seconds
    assert invoiced(op, sub.id) == [("usage_session", 13, 13)]
    assert wallet(op, customer.id) == (187, 0)
    feed.flush()  # nothing left to do: charging again changes nothing
    assert wallet(op, customer.id) == (187, 0)

    op.advance(days=32)  # the period ends: its invoice nets what the session paid
    op.bill()
    assert sum(total for _, total, _ in invoiced(op, sub.id)) == 13
    books_and_log_hold(op)


def test_a_long_session_is_charged_stretch_by_stretch_until_the_wallet_is_empty(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    op, feed = streaming
    customer, sub, fields = prepaid_viewer(op, top_up="1.00")
    assert play(op, fields).status_code == 200
    played, refused = 0, None
    while refused is None and played < 3600:
        played += 30
        answer = update(op, fields, played)
        if answer.status_code != 200:
            refused = answer
        feed.flush()
    assert refused is not None
    assert refused.status_code == 403
    assert refused.headers["X-Deny-Reason"] == "balance_exhausted"
    done(op, fields)  # nginx drops the viewer and reports the end
    feed.flush()

    balance, pending = wallet(op, customer.id)
    assert pending == 0
    assert 0 <= balance < 6  # less than a minute's price is left
    viewing = op.read(
        lambda u, c: u.usage.period_totals(
            c.tenant_id,
            customer.id,
            sub.id,
            {"viewing_seconds": Aggregation.SUM},
            sub.state.current_period.start,
            sub.state.current_period.end,
        )
    )["viewing_seconds"]
    charges = invoiced(op, sub.id)
    assert {reason for reason, _, _ in charges} == {"usage_session"}
    assert all(total == paid for _, total, paid in charges)  # each stretch paid in full
    assert sum(paid for _, _, paid in charges) == 100 - balance  # from the wallet alone
    held = holds(op, customer.id)
    assert "pending" not in {h.status for h in held}
    assert sum(h.posted_minor for h in held) == 100 - balance
    assert play(op, fields).status_code == 403  # not even a minute is left
    # What played after the last charge (until nginx dropped the viewer) is not lost: the
    # period's invoice bills it, and every second is billed once.
    op.advance(days=32)
    op.bill()
    assert sum(total for _, total, _ in invoiced(op, sub.id)) == int(viewing) // 10
    books_and_log_hold(op)


def test_an_empty_wallet_is_refused_at_the_start_and_a_top_up_lets_it_play(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    op, _ = streaming
    customer, _, fields = prepaid_viewer(op, top_up=None)
    refused = play(op, fields)
    assert (refused.status_code, refused.headers["X-Deny-Reason"]) == (403, "balance_exhausted")
    assert holds(op, customer.id) == []
    op.tx(lambda u, c: wallets_top_up(u, c, customer.id, "0.10"))
    assert play(op, fields).status_code == 200  # a minute (0.06) is held, not 15 (0.90)
    (hold,) = holds(op, customer.id)
    assert hold.amount_minor == 6


def test_a_postpaid_customer_plays_without_a_hold_and_is_invoiced_at_the_period_end(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    op, feed = streaming
    customer = op.customer(method="send_invoice")
    sub = op.subscribe(customer.id, "payg")
    line, password = op.tx(lambda u, c: credentials.issue_line(u, c, op.sealer, os.urandom, sub.id))
    op.sync()
    fields = {"addr": "203.0.113.9", "clientid": "8", "app": "live", "name": "news-1"}
    fields |= {"username": line.login, "password": password}
    assert play(op, fields).status_code == 200
    assert update(op, fields, 7200).status_code == 200  # two hours, whatever the wallet holds
    done(op, fields)
    feed.flush()
    assert holds(op, customer.id) == []
    op.advance(days=32)
    op.bill()
    assert [total for _, total, _ in invoiced(op, sub.id)] == [720]


def test_a_viewer_who_restarts_the_player_gets_the_last_sessions_money_back_first(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    op, _ = streaming
    customer, _, fields = prepaid_viewer(op, top_up="0.90")  # one reservation's worth
    assert play(op, fields).status_code == 200
    done(op, fields)  # its hold is only queued for the flusher...
    assert play(op, fields).status_code == 200  # ...and released before the next is held
    assert sorted(h.status for h in holds(op, customer.id)) == ["pending", "voided"]


def test_flussonic_sessions_are_held_too(streaming: tuple[StreamOperator, UsageFeed]) -> None:
    op, _ = streaming
    customer, _, fields = prepaid_viewer(op, top_up=None)
    ask = {
        "name": "news-1",
        "ip": "203.0.113.9",
        "session_id": "6217fd62-16da-4206-9da9-0173d7552a14",
        "request_type": "new_session",
        "qs": f"username={fields['username']}&password={fields['password']}",
    }
    refused = op.client.get(FLUSSONIC, params=ask)
    assert (refused.status_code, refused.headers["X-Deny-Reason"]) == (403, "balance_exhausted")
    op.tx(lambda u, c: wallets_top_up(u, c, customer.id, "1.00"))
    assert op.client.get(FLUSSONIC, params=ask).status_code == 200
    assert [h.amount_minor for h in holds(op, customer.id)] == [90]


def test_a_hold_nobody_charges_lapses_once_and_the_period_invoice_bills_the_viewing(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    op, feed = streaming
    customer, sub, fields = prepaid_viewer(op, top_up="2.00")
    assert play(op, fields).status_code == 200
    assert update(op, fields, 300).status_code == 200
    feed.flush()  # five minutes stored; then the process dies before the session ends
    assert wallet(op, customer.id) == (200, 90)

    op.advance(days=1 / 48)  # 30 minutes: past the reservation and its margin
    for _ in range(2):  # two sweepers: released once
        op.tx(lambda u, c: wallet_holds.expire_lapsed(u, c))
    (hold,) = holds(op, customer.id)
    assert hold.status == "expired"
    assert wallet(op, customer.id) == (200, 0)

    late = new_feed(op)  # a restarted process settles nothing it does not know
    late.flush()
    op.advance(days=32)
    op.bill()
    assert invoiced(op, sub.id) == [("subscription_cycle", 30, 30)]  # 300 seconds, once
    assert wallet(op, customer.id) == (170, 0)
    books_and_log_hold(op)


def wallets_top_up(uow: UnitOfWork, ctx: Context, customer_id: str, amount: str) -> None:
    wallets.top_up(uow, ctx, wallets.TopUp(customer_id, Money.of(amount, "EUR")))


def test_concurrent_sessions_and_threshold_passes_bill_every_second_once(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    """Four sessions of one subscription reserve, play and settle at once while threshold
    passes invoice the same period: each second is billed once, the wallet pays exactly what
    was charged, and no reservation is left pending."""
    op, _ = streaming
    pay_as_you_watch(op, "payg-step", usage_threshold=[{"currency": "EUR", "minor": 30}])
    customer = op.customer(method="charge_wallet", top_up="10.00")
    sub = op.subscribe(customer.id, "payg-step")
    charger = SessionCharger(op.database.transact, op.system, op.ids, 120)
    errors: list[BaseException] = []

    def session(worker: int) -> None:
        try:
            for stretch in range(5):
                reservation = charger.reserve(op.tenant_id, sub.id, f"s{worker}")
                assert reservation.hold_id is not None
                events = [
                    {
                        "id": f"w{worker}-{stretch}-{minute}",
                        "customer_id": customer.id,
                        "subscription_id": sub.id,
                        "metric": "viewing_seconds",
                        "value": 60,
                        "timestamp": moment(op.read(lambda u, c: c.now())),
                    }
                    for minute in range(2)
                ]
                op.database.transact(
                    lambda u, events=events: usage.ingest(
                        u, load_context(u, op.tenant_id, op.system, op.ids), events
                    )
                )
                charger.settle(op.tenant_id, reservation.hold_id)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    def thresholds() -> None:
        try:
            for _ in range(10):
                op.database.transact(
                    lambda u: usage_invoices.invoice_thresholds(
                        u, load_context(u, op.tenant_id, op.system, op.ids)
                    )
                )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=session, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=thresholds))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    assert "pending" not in {h.status for h in holds(op, customer.id)}
    op.advance(days=32)
    op.bill()
    charges = invoiced(op, sub.id)
    assert sum(total for _, total, _ in charges) == 4 * 5 * 2 * 6  # 40 minutes at 0.06
    balance, pending = wallet(op, customer.id)
    assert pending == 0
    assert 1000 - balance == sum(paid for _, _, paid in charges) == 240
    books_and_log_hold(op)


def test_a_session_hold_cannot_be_posted_by_hand_and_nothing_changes(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    op, _ = streaming
    customer, _, fields = prepaid_viewer(op, top_up="2.00")
    assert play(op, fields).status_code == 200
    (hold,) = holds(op, customer.id)
    with pytest.raises(Conflict) as refused:
        op.tx(lambda u, c: wallet_holds.post_hold(u, c, hold.id))
    assert refused.value.code == "wallet_hold.session_hold"
    assert [(h.status, h.posted_minor) for h in holds(op, customer.id)] == [("pending", 0)]
    assert wallet(op, customer.id) == (200, 90)
    op.tx(lambda u, c: wallet_holds.void_hold(u, c, hold.id))  # releasing it is allowed
    assert wallet(op, customer.id) == (200, 0)
