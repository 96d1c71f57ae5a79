"""VOD rentals against a real database (SQLite and PostgreSQL): rentals from the wallet and
from external payments, every refusal changing nothing, the rental window honoured by stream
authorization and closed when it ends, refunds paid once even when asked twice at once, the
books and the log staying clean, the Xtream movie surface and the Ministra purchase hook."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from stream_harness import StreamOperator, Viewer
from stream_server_kit import MAC, register_box

from iptv_billing.domain.entitlement import AssetKind, Reason
from iptv_billing.domain.errors import BillingError
from iptv_billing.domain.money import Money
from iptv_billing.services import access, vod, wallets
from iptv_billing.services.audit import check_books
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ledger_audit import verify_log
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.stream_auth import PlayRequest, Presented

T = TypeVar("T")
IP = "198.51.100.9"
HOUR = 1 / 24
SOURCE = "http://origin.example.test/vod/big.mp4"


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url)
    with operator.database.uow() as uow:
        _, key = access.issue_api_key(
            uow, operator.ids, operator.system, operator.tenant_id, "vod tests", "admin"
        )
        uow.commit()
    operator.client.headers["Authorization"] = f"Bearer {key}"
    yield operator
    operator.close()


def transact(op: StreamOperator, work: Callable[[UnitOfWork, Context], T]) -> T:
    return op.database.transact(
        lambda uow: work(uow, load_context(uow, op.tenant_id, op.system, op.ids))
    )


def create_item(op: StreamOperator, code: str = "big-movie", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "name": "Big Movie",
        "source_url": SOURCE,
        "packages": ["sports"],  # basic viewers must rent it
        "rental": {
            "prices": [
                {"currency": "EUR", "amount": "3.99"},
                {"currency": "USD", "amount": "4.49"},
            ],
            "hours": 48,
        },
        **extra,
    }
    response = op.client.post("/v1/vod/items", json=body)
    assert response.status_code == 201, response.text
    op.sync()
    return dict(response.json())


def funded_viewer(op: StreamOperator, amount: str = "10.00") -> Viewer:
    viewer = op.viewer()
    customer = viewer.subscription.customer_id
    op.tx(lambda u, c: wallets.top_up(u, c, wallets.TopUp(customer, Money.of(amount, "EUR"))))
    return viewer


def balance(op: StreamOperator, viewer: Viewer) -> int:
    customer = viewer.subscription.customer_id
    wallet = op.read(lambda u, c: u.wallets.get(c.tenant_id, customer, "EUR"))
    return 0 if wallet is None else wallet.balance_minor


def rent(op: StreamOperator, item: dict[str, Any], viewer: Viewer, **body: Any) -> Any:
    payload = {"subscription_id": viewer.subscription.id, "payment": {"method": "wallet"}, **body}
    return op.client.post(f"/v1/vod/items/{item['id']}/rentals", json=payload)


def code_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json().get("code")


def books_are_clean(op: StreamOperator) -> None:
    books = op.read(lambda u, c: check_books(u, c.tenant_id))
    assert books.consistent, books.discrepancies
    audit = op.read(lambda u, c: verify_log(u, c.tenant_id))
    assert audit.consistent, audit.problems


def play(op: StreamOperator, viewer: Viewer, stream: str = "big-movie") -> Reason | None:
    op.sync()
    presented = Presented.line(viewer.username, viewer.password)
    request = PlayRequest(presented, stream, IP, kind=AssetKind.VOD)
    return op.authorizer.authorize(request).reason


def state(op: StreamOperator, viewer: Viewer) -> dict[str, Any]:
    def read(u: UnitOfWork, c: Context) -> dict[str, Any]:
        sub = viewer.subscription.id
        return {
            "balance": balance(op, viewer),
            "rentals": u.vod.list_rentals(c.tenant_id, 100, None, subscription_id=sub).items,
            "journal": sorted(u.journal.ids(c.tenant_id)),
            "log": u.log.size(c.tenant_id),
        }

    return op.read(read)


# --------------------------------------------------------------------------- rentals


def test_a_wallet_rental_takes_the_price_and_opens_the_window(op: StreamOperator) -> None:
    item = create_item(op)
    assert item["stream_id"] == 1
    renter, other = funded_viewer(op), funded_viewer(op)
    fan = op.viewer("sports")
    response = rent(op, item, renter)
    assert response.status_code == 201, response.text
    rental = response.json()
    assert rental["amount"] == {"amount": "3.99", "currency": "EUR", "minor": 399}
    assert rental["status"] == "paid"
    assert balance(op, renter) == 601
    entries = op.read(lambda u, c: u.journal.entries_for(c.tenant_id, rental["id"]))
    assert [e.kind for e in entries] == ["rental_purchased"]
    revenue = op.read(lambda u, c: u.journal.account_balance(c.tenant_id, "revenue:rental", "EUR"))
    assert revenue == -399
    listed = op.client.get(f"/v1/subscriptions/{renter.subscription.id}/rentals").json()
    assert [r["id"] for r in listed["data"]] == [rental["id"]]
    assert op.client.get(f"/v1/vod/rentals/{rental['id']}").json() == rental
    books_are_clean(op)
    # The renter watches (by code or stream id), the package holder too, no one else...
    assert play(op, renter) is None
    assert play(op, renter, "1") is None
    assert play(op, fan) is None
    assert play(op, other) is Reason.NOT_IN_PACKAGE
    # ...a second rental while the first runs is refused and changes nothing...
    before = state(op, renter)
    assert code_of(rent(op, item, renter)) == (409, "vod.already_rented")
    assert state(op, renter) == before
    # ...near the end it still plays, and the "yes" is not cached past the end...
    op.advance(47.5 * HOUR)
    assert play(op, renter) is None
    presented = Presented.line(renter.username, renter.password)
    answer = op.authorizer.authorize(PlayRequest(presented, "big-movie", IP, kind=AssetKind.VOD))
    assert answer.decision.cache_for.total_seconds() <= 30 * 60
    # ...and once it has ended, the renter is refused until renting again.
    op.advance(0.5 * HOUR)
    assert play(op, renter) is Reason.NOT_IN_PACKAGE
    assert play(op, fan) is None
    again = rent(op, item, renter)
    assert again.status_code == 201, again.text
    assert balance(op, renter) == 202
    assert play(op, renter) is None
    books_are_clean(op)


def test_insufficient_funds_changes_nothing(op: StreamOperator) -> None:
    item = create_item(op)
    poor, no_wallet = funded_viewer(op, "3.98"), op.viewer()
    before = state(op, poor)
    response = rent(op, item, poor)
    assert code_of(response) == (402, "wallet.insufficient_funds")
    assert response.headers["content-type"] == "application/problem+json"
    assert state(op, poor) == before
    assert code_of(rent(op, item, no_wallet)) == (402, "wallet.insufficient_funds")
    assert play(op, poor) is Reason.NOT_IN_PACKAGE
    books_are_clean(op)


def test_external_payments_and_refusals(op: StreamOperator) -> None:
    item = create_item(op)
    viewer = op.viewer()
    body = {"payment": {"method": "card", "reference": "ch_1"}, "currency": "USD"}
    response = rent(op, item, viewer, **body)
    assert response.status_code == 201, response.text
    assert response.json()["amount"]["minor"] == 449
    cash = op.read(lambda u, c: u.journal.account_balance(c.tenant_id, "cash:card", "USD"))
    assert cash == 449
    assert code_of(rent(op, item, op.viewer(), payment={"method": "manual"})) == (
        422,
        "vod.reference_required",
    )
    assert code_of(rent(op, item, op.viewer(), currency="GBP")) == (
        422,
        "vod.currency_not_offered",
    )
    free = create_item(op, "free-movie", rental=None, packages=["basic"])
    assert code_of(rent(op, free, viewer)) == (409, "vod.not_rentable")
    missing = {**item, "id": "vod_nope"}
    assert code_of(rent(op, missing, viewer)) == (404, "vod_item.not_found")
    duplicate = op.client.post("/v1/vod/items", json={"code": "big-movie", "name": "X",
                                                      "source_url": SOURCE})  # fmt: skip
    assert code_of(duplicate) == (409, "vod.duplicate_code")
    unknown = op.client.post("/v1/vod/items", json={"code": "x", "name": "X", "source_url": SOURCE,
                                                    "packages": ["nope"]})  # fmt: skip
    assert code_of(unknown) == (422, "vod.unknown_packages")
    assert op.client.get("/v1/vod/rentals/vodr_nope").json()["code"] == "vod_rental.not_found"
    listed = op.client.get("/v1/vod/items").json()["data"]
    assert sorted((i["code"], i["stream_id"]) for i in listed) == [
        ("big-movie", 1),
        ("free-movie", 2),
    ]
    books_are_clean(op)


def test_a_refund_asked_twice_at_once_pays_once(op: StreamOperator) -> None:
    item = create_item(op)
    viewer = funded_viewer(op)
    rental = rent(op, item, viewer).json()
    assert play(op, viewer) is None
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def attempt() -> None:
        start.wait()
        try:
            transact(op, lambda u, c: vod.refund_rental(u, c, rental["id"]))
            outcomes.append("ok")
        except BillingError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "vod.already_refunded"]
    again = op.client.post(f"/v1/vod/rentals/{rental['id']}/refund")
    assert code_of(again) == (409, "vod.already_refunded")
    assert balance(op, viewer) == 1000
    entries = op.read(lambda u, c: u.journal.entries_for(c.tenant_id, rental["id"]))
    assert sorted(e.kind for e in entries) == ["rental_purchased", "rental_refunded"]
    got = op.client.get(f"/v1/vod/rentals/{rental['id']}").json()
    assert got["status"] == "refunded"
    assert play(op, viewer) is Reason.NOT_IN_PACKAGE
    assert rent(op, item, viewer).status_code == 201  # a refunded rental does not block
    books_are_clean(op)


# --------------------------------------------------------------------------- players


def player(op: StreamOperator, viewer: Viewer, **query: str) -> Any:
    params = {"username": viewer.username, "password": viewer.password, **query}
    return op.client.get("/player_api.php", params=params).json()


def movie(op: StreamOperator, viewer: Viewer, stream: str, password: str | None = None) -> Any:
    secret = viewer.password if password is None else password
    url = f"/movie/{viewer.username}/{secret}/{stream}"
    return op.client.get(url, follow_redirects=False)


def test_xtream_lists_the_items_and_redirects_only_the_entitled(op: StreamOperator) -> None:
    item = create_item(op)
    create_item(op, "basic-doc", rental=None, packages=["basic"], category="Docs")
    create_item(op, "sports-only", rental=None, packages=["sports"])
    viewer = funded_viewer(op)
    categories = player(op, viewer, action="get_vod_categories")
    assert [c["category_name"] for c in categories] == ["Movies", "Docs"]
    streams = player(op, viewer, action="get_vod_streams")
    assert [(s["stream_id"], s["name"], s["stream_type"]) for s in streams] == [
        (1, "Big Movie", "movie"),
        (2, "Big Movie", "movie"),
    ]  # the rentable item and the basic package's; not the sports one
    info = player(op, viewer, action="get_vod_info", vod_id="1")
    assert info["movie_data"]["container_extension"] == "mp4"
    assert player(op, viewer, action="get_vod_info", vod_id="3") == []
    # Not rented: refused; the package's item plays; unknown and wrong password as /live.
    refused = movie(op, viewer, "1.mp4")
    assert (refused.status_code, refused.text.strip()) == (403, "not_in_package")
    assert movie(op, viewer, "2.mp4").status_code == 302
    assert movie(op, viewer, "3.mp4").status_code == 403
    assert movie(op, viewer, "99.mp4").status_code == 404
    assert movie(op, viewer, "1.mp4", password="wrong").status_code == 401
    assert rent(op, item, viewer).status_code == 201
    allowed = movie(op, viewer, "1.mp4")
    assert allowed.status_code == 302
    assert allowed.headers["location"] == SOURCE
    assert movie(op, viewer, "big-movie.mkv").status_code == 302
    op.advance(49 * HOUR)
    op.sync()
    assert movie(op, viewer, "1.mp4").status_code == 403


# --------------------------------------------------------------------------- Ministra


def ministra(op: StreamOperator, hook: str, **query: str) -> Any:
    return op.client.get(f"/integrations/ministra/{hook}", params=query).json()


def test_ministra_rents_from_the_wallet_and_returns_only_at_once(op: StreamOperator) -> None:
    item = create_item(op)
    viewer = funded_viewer(op)
    register_box(op, viewer)
    ok = {"status": "OK", "results": True}
    assert ministra(op, "subscribe", mac=MAC, package_id=item["code"]) == ok
    assert balance(op, viewer) == 601
    assert play(op, viewer) is None
    assert ministra(op, "subscribe", mac=MAC, package_id=item["code"]) == ok  # no charge
    assert balance(op, viewer) == 601
    assert ministra(op, "unsubscribe", mac=MAC, package_id=item["code"]) == ok  # at once
    assert balance(op, viewer) == 1000
    assert play(op, viewer) is Reason.NOT_IN_PACKAGE
    assert ministra(op, "subscribe", mac=MAC, package_id=item["code"]) == ok
    op.advance(10 / (24 * 60))
    op.sync()
    kept = ministra(op, "unsubscribe", mac=MAC, package_id=item["code"])
    assert kept["status"] == "ERROR"
    assert balance(op, viewer) == 601
    assert play(op, viewer) is None
    poor = funded_viewer(op, "1.00")
    register_box(op, poor, "00:1A:79:00:00:07")
    denied = {"status": "ERROR", "error": "Insufficient funds"}
    assert ministra(op, "subscribe", mac="00:1A:79:00:00:07", package_id=item["code"]) == denied
    assert balance(op, poor) == 100
    books_are_clean(op)
