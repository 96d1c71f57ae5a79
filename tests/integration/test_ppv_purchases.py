"""Pay-per-view against a real database (SQLite and PostgreSQL): purchases from the wallet and
from external payments, every refusal changing nothing, capacity under concurrent buyers,
cancellations refunding every buyer exactly once (even when cancelled twice at once), the
books and the log staying clean, stream authorization and the Ministra purchase hook."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from stream_harness import StreamOperator, Viewer
from stream_server_kit import MAC, register_box

from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.errors import BillingError
from iptv_billing.domain.money import Money
from iptv_billing.domain.ppv import SubscriberDiscount
from iptv_billing.services import access, ppv, ppv_refunds, wallets
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ledger_audit import verify_log
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.ppv_records import PpvEventRecord
from iptv_billing.services.stream_auth import PlayRequest, Presented

T = TypeVar("T")
IP = "198.51.100.7"
EVENT_CHANNEL = "news-1"  # in the basic package: outside the event, basic viewers watch it


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url)
    with operator.database.uow() as uow:
        _, key = access.issue_api_key(
            uow, operator.ids, operator.system, operator.tenant_id, "ppv tests", "admin"
        )
        uow.commit()
    operator.client.headers["Authorization"] = f"Bearer {key}"
    yield operator
    operator.close()


def transact(op: StreamOperator, work: Callable[[UnitOfWork, Context], T]) -> T:
    """``work`` the way the API runs it: committed, retried on transient conflicts."""
    return op.database.transact(
        lambda uow: work(uow, load_context(uow, op.tenant_id, op.system, op.ids))
    )


def create_event(op: StreamOperator, code: str = "final", **extra: Any) -> PpvEventRecord:
    now = op.read(lambda u, c: c.now())
    channel = op.read(lambda u, c: u.catalog.channels_by_code(c.tenant_id, [EVENT_CHANNEL]))[0]
    fields: dict[str, Any] = {
        "code": code,
        "name": "The Final",
        "channel_id": channel.id,
        "starts_at": now + timedelta(hours=1),
        "ends_at": now + timedelta(hours=3),
        "prices": (Money.of("15.00", "EUR"), Money.of("18.00", "USD")),
        "replay_hours": 2,
        **extra,
    }
    return op.tx(lambda u, c: ppv.create_event(u, c, ppv.CreateEvent(**fields)))


def funded_viewer(op: StreamOperator, amount: str = "20.00") -> Viewer:
    viewer = op.viewer()
    customer = viewer.subscription.customer_id
    op.tx(lambda u, c: wallets.top_up(u, c, wallets.TopUp(customer, Money.of(amount, "EUR"))))
    return viewer


def balance(op: StreamOperator, viewer: Viewer) -> int:
    customer = viewer.subscription.customer_id
    wallet = op.read(lambda u, c: u.wallets.get(c.tenant_id, customer, "EUR"))
    return 0 if wallet is None else wallet.balance_minor


def buy(op: StreamOperator, event: PpvEventRecord, viewer: Viewer, **body: Any) -> Any:
    payload = {"subscription_id": viewer.subscription.id, "payment": {"method": "wallet"}, **body}
    return op.client.post(f"/v1/ppv/events/{event.id}/purchases", json=payload)


def books_are_clean(op: StreamOperator, *viewers: Viewer) -> None:
    for viewer in viewers:
        customer = viewer.subscription.customer_id
        assert op.read(lambda u, c, x=customer: wallets.wallet_discrepancies(u, c, x)) == []
    audit = op.read(lambda u, c: verify_log(u, c.tenant_id))
    assert audit.consistent, audit.problems


def state(op: StreamOperator, event: PpvEventRecord, viewer: Viewer) -> dict[str, Any]:
    """Everything a refused purchase must leave as it was."""

    def read(u: UnitOfWork, c: Context) -> dict[str, Any]:
        return {
            "balance": balance(op, viewer),
            "sold": ppv.get_event(u, c, event.id).sold,
            "purchases": u.ppv.list_purchases(c.tenant_id, 100, None).items,
            "journal": sorted(u.journal.ids(c.tenant_id)),
            "log": u.log.size(c.tenant_id),
        }

    return op.read(read)


def play(op: StreamOperator, viewer: Viewer, country: str | None = None) -> Reason | None:
    op.sync()
    presented = Presented.line(viewer.username, viewer.password)
    answer = op.authorizer.authorize(PlayRequest(presented, EVENT_CHANNEL, IP, country=country))
    return answer.reason


def code_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json().get("code")


# --------------------------------------------------------------------------- purchases


def test_a_wallet_purchase_takes_the_price_and_opens_the_window(op: StreamOperator) -> None:
    event = create_event(op)
    buyer, other = funded_viewer(op), funded_viewer(op)
    response = buy(op, event, buyer)
    assert response.status_code == 201, response.text
    bought = response.json()
    assert bought["amount"] == {"amount": "15.00", "currency": "EUR", "minor": 1500}
    assert bought["status"] == "paid"
    assert balance(op, buyer) == 500
    entries = op.read(lambda u, c: u.journal.entries_for(c.tenant_id, bought["id"]))
    assert [e.kind for e in entries] == ["ppv_purchased"]
    revenue = op.read(lambda u, c: u.journal.account_balance(c.tenant_id, "revenue:ppv", "EUR"))
    assert revenue == -1500
    assert op.read(lambda u, c: ppv.get_event(u, c, event.id)).sold == 1
    listed = op.client.get(f"/v1/subscriptions/{buyer.subscription.id}/purchases").json()
    assert [p["id"] for p in listed["data"]] == [bought["id"]]
    books_are_clean(op, buyer, other)
    # Before the event both watch the channel through their packages...
    assert play(op, buyer) is None
    assert play(op, other) is None
    # ...during it (and its replay) only the buyer...
    op.advance(1.5 / 24)
    assert play(op, buyer) is None
    assert play(op, other) is Reason.NOT_PURCHASED
    op.advance(3 / 24)  # 4.5 h after creation: the replay (until 5 h) still runs
    assert play(op, buyer) is None
    # ...and after the replay, the channel is the packages' again.
    op.advance(1 / 24)
    assert play(op, buyer) is None
    assert play(op, other) is None


def test_a_blacked_out_viewer_is_refused(op: StreamOperator) -> None:
    event = create_event(op, blackout_countries=("FR",))
    buyer = funded_viewer(op)
    assert code_of(buy(op, event, buyer, country="FR")) == (409, "ppv.blacked_out")
    assert buy(op, event, buyer, country="ES").status_code == 201
    op.advance(1.5 / 24)
    assert play(op, buyer, "ES") is None
    assert play(op, buyer, "FR") is Reason.COUNTRY_NOT_ALLOWED
    assert play(op, buyer) is None  # a server that sends no country cannot be checked


def test_an_external_payment_is_recorded_as_received(op: StreamOperator) -> None:
    event = create_event(op)
    viewer = op.viewer()
    body = {"payment": {"method": "card", "reference": "ch_123"}, "currency": "USD"}
    response = buy(op, event, viewer, **body)
    assert response.status_code == 201, response.text
    assert response.json()["amount"]["minor"] == 1800
    cash = op.read(lambda u, c: u.journal.account_balance(c.tenant_id, "cash:card", "USD"))
    assert cash == 1800
    missing = buy(op, event, op.viewer(), payment={"method": "manual"})
    assert code_of(missing) == (422, "ppv.reference_required")
    books_are_clean(op, viewer)


def test_a_package_discount(op: StreamOperator) -> None:
    discounts = (SubscriberDiscount("basic", Decimal(20)),)
    event = create_event(op, discounts=discounts)
    viewer = funded_viewer(op)
    assert buy(op, event, viewer).json()["amount"]["minor"] == 1200


def test_insufficient_funds_changes_nothing(op: StreamOperator) -> None:
    event = create_event(op, capacity=5)
    poor = funded_viewer(op, "14.99")
    no_wallet = op.viewer()
    before = state(op, event, poor)
    response = buy(op, event, poor)
    assert code_of(response) == (402, "wallet.insufficient_funds")
    assert response.headers["content-type"] == "application/problem+json"
    assert state(op, event, poor) == before
    assert code_of(buy(op, event, no_wallet)) == (402, "wallet.insufficient_funds")
    assert state(op, event, poor) == before
    books_are_clean(op, poor)


def test_sale_window_double_purchase_and_unknown_ids(op: StreamOperator) -> None:
    now = op.read(lambda u, c: c.now())
    later = create_event(op, "later", sale_starts_at=now + timedelta(minutes=30))
    viewer = funded_viewer(op, "100.00")
    assert code_of(buy(op, later, viewer)) == (409, "ppv.sale_not_open")
    event = create_event(
        op, "soon", starts_at=now + timedelta(hours=4), ends_at=now + timedelta(hours=5)
    )
    assert buy(op, event, viewer).status_code == 201
    assert code_of(buy(op, event, viewer)) == (409, "ppv.already_purchased")
    op.advance(5 / 24)
    assert code_of(buy(op, event, funded_viewer(op))) == (409, "ppv.sale_closed")
    missing = op.client.post("/v1/ppv/events/ppv_nope/purchases", json={
        "subscription_id": viewer.subscription.id, "payment": {"method": "wallet"}
    })  # fmt: skip
    assert code_of(missing) == (404, "ppv_event.not_found")
    assert balance(op, viewer) == 10_000 - 1500


def test_concurrent_buyers_never_exceed_the_capacity(op: StreamOperator) -> None:
    event = create_event(op, capacity=3)
    viewers = [funded_viewer(op) for _ in range(8)]
    outcomes: list[str] = []
    start = threading.Barrier(len(viewers))

    def attempt(viewer: Viewer) -> None:
        cmd = ppv.Purchase(event.id, viewer.subscription.id, "wallet")
        start.wait()
        try:
            transact(op, lambda u, c: ppv.purchase(u, c, cmd))
            outcomes.append("ok")
        except BillingError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt, args=(v,)) for v in viewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] * 3 + ["ppv.sold_out"] * 5
    assert op.read(lambda u, c: ppv.get_event(u, c, event.id)).sold == 3
    assert sorted(balance(op, v) for v in viewers) == [500] * 3 + [2000] * 5
    books_are_clean(op, *viewers)


# --------------------------------------------------------------------------- refunds


def test_cancelling_twice_at_once_refunds_every_buyer_exactly_once(op: StreamOperator) -> None:
    event = create_event(op)
    buyers = [funded_viewer(op) for _ in range(7)]
    for viewer in buyers[:5]:
        assert buy(op, event, viewer).status_code == 201
    external = {"payment": {"method": "bank_transfer", "reference": "wire-1"}}
    for viewer in buyers[5:]:
        assert buy(op, event, viewer, **external).status_code == 201
    start = threading.Barrier(2)

    def cancel() -> None:
        start.wait()
        ppv_refunds.cancel(lambda w: transact(op, w), event.id)
        ppv_refunds.finish_cancellation(lambda w: transact(op, w), event.id, chunk=2)

    threads = [threading.Thread(target=cancel) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    again = op.client.post(f"/v1/ppv/events/{event.id}/cancel")  # a third: changes nothing
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "cancelled"
    assert again.json()["sold"] == 0
    assert [balance(op, v) for v in buyers] == [2000] * 7
    purchases = op.client.get(f"/v1/ppv/events/{event.id}/purchases").json()["data"]
    assert sorted(p["status"] for p in purchases) == ["refunded"] * 7
    for purchase in purchases:
        kinds = [
            e.kind
            for e in op.read(lambda u, c, p=purchase: u.journal.entries_for(c.tenant_id, p["id"]))
        ]
        assert sorted(kinds) == ["ppv_purchased", "ppv_refunded"]
    for account in ("revenue:ppv", "cash:bank_transfer"):
        total = op.read(lambda u, c, a=account: u.journal.account_balance(c.tenant_id, a, "EUR"))
        assert total == 0
    books_are_clean(op, *buyers)
    # the channel is the packages' again for everyone
    op.advance(1.5 / 24)
    assert all(play(op, v) is None for v in buyers)


def test_an_interrupted_cancellation_is_finished_by_the_recurring_job(
    op: StreamOperator,
) -> None:
    event = create_event(op)
    buyers = [funded_viewer(op) for _ in range(3)]
    for viewer in buyers:
        buy(op, event, viewer)
    ppv_refunds.cancel(lambda w: transact(op, w), event.id)
    transact(op, lambda u, c: ppv_refunds.refund_batch(u, c, event.id, limit=1))  # then a crash
    assert sorted(balance(op, v) for v in buyers) == [500, 500, 2000]
    refunded = ppv_refunds.finish_tenant_cancellations(
        op.database.uow, op.tenant_id, op.system, op.ids
    )
    assert refunded == 2
    assert [balance(op, v) for v in buyers] == [2000] * 3
    books_are_clean(op, *buyers)


def test_a_single_refund_goes_back_where_it_came_from_once(op: StreamOperator) -> None:
    event = create_event(op)
    viewer = funded_viewer(op)
    bought = buy(op, event, viewer).json()
    op.advance(1.5 / 24)
    assert play(op, viewer) is None
    first = op.client.post(f"/v1/ppv/purchases/{bought['id']}/refund")
    assert first.status_code == 200
    assert first.json()["status"] == "refunded"
    assert code_of(op.client.post(f"/v1/ppv/purchases/{bought['id']}/refund")) == (
        409,
        "ppv.already_refunded",
    )
    assert balance(op, viewer) == 2000
    assert play(op, viewer) is Reason.NOT_PURCHASED
    books_are_clean(op, viewer)


# --------------------------------------------------------------------------- Ministra


def ministra(op: StreamOperator, hook: str, **query: str) -> Any:
    return op.client.get(f"/integrations/ministra/{hook}", params=query).json()


def test_ministra_buys_from_the_wallet_and_returns_before_the_start(op: StreamOperator) -> None:
    event = create_event(op)
    viewer = funded_viewer(op)
    register_box(op, viewer)
    ok = {"status": "OK", "results": True}
    op.sync()
    assert ministra(op, "subscribe", mac=MAC, package_id=event.code) == ok
    assert balance(op, viewer) == 500
    # the index knows at once: a second ask approves without charging again
    assert ministra(op, "subscribe", mac=MAC, package_id=event.code) == ok
    assert balance(op, viewer) == 500
    assert ministra(op, "unsubscribe", mac=MAC, package_id=event.code) == ok
    assert balance(op, viewer) == 2000
    poor = funded_viewer(op, "1.00")
    register_box(op, poor, "00:1A:79:00:00:07")
    op.sync()
    denied = {"status": "ERROR", "error": "Insufficient funds"}
    assert ministra(op, "subscribe", mac="00:1A:79:00:00:07", package_id=event.code) == denied
    assert balance(op, poor) == 100
    books_are_clean(op, viewer, poor)


def test_ministra_keeps_a_started_event(op: StreamOperator) -> None:
    event = create_event(op)
    viewer = funded_viewer(op)
    register_box(op, viewer)
    op.sync()
    ministra(op, "subscribe", mac=MAC, package_id=event.code)
    op.advance(1.5 / 24)
    op.sync()
    answer = ministra(op, "unsubscribe", mac=MAC, package_id=event.code)
    assert answer["status"] == "ERROR"
    assert balance(op, viewer) == 500
    assert play(op, viewer) is None
