"""Pay-per-view end to end, over HTTP against a real ``iptv-billing serve`` (SQLite and
PostgreSQL): an operator schedules an event on a channel, a subscriber buys it from the
wallet, and nginx's ``auth_request`` callback (the route nginx would ask) lets the buyer
watch inside the window and refuses a non-buyer; after the end and the replay the buyer is
refused too; cancelling the event refunds the buyer exactly once, however often it is
cancelled. The test clock moves time; the server learns of every change from its log
follower (about a second).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api_client import ApiClient, assert_problem, money, money_out
from server_harness import E2EServer

START = "2030-05-01T18:00:00Z"
FOLLOW_SECONDS = 15.0


@dataclass
class Viewer:
    customer_id: str
    subscription_id: str
    username: str
    password: str


def _eventually(check: Callable[[], bool], timeout: float = FOLLOW_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def _catalog(api: ApiClient) -> dict[str, Any]:
    channel = api.create("/v1/channels", {"code": "arena", "name": "Arena", "number": 1})
    api.create("/v1/packages", {"code": "basic", "name": "Basic", "channel_codes": ["arena"]})
    terms = {
        "name": "Basic",
        "interval": {"unit": "month"},
        "prices": [money("5.00")],
        "package_codes": ["basic"],
    }
    api.create("/v1/plans", {"code": "basic", "name": "Basic", "terms": terms})
    return channel


def _viewer(api: ApiClient, n: int, top_up: str | None) -> Viewer:
    customer = api.create(
        "/v1/customers", {"name": f"Fan {n}", "email": f"fan{n}@example.com", "currency": "EUR"}
    )
    if top_up:
        api.create(f"/v1/customers/{customer['id']}/wallet/top-ups", {"amount": money(top_up)})
    plan = api.read("/v1/plans")["data"][0]
    sub = api.create("/v1/subscriptions", {"customer_id": customer["id"], "plan_id": plan["id"]})
    # The first period is invoiced; pay it by transfer so the wallet keeps the top-up.
    invoice = sub["latest_invoice"]
    if invoice and invoice["status"] != "paid":
        api.action(f"/v1/invoices/{invoice['id']}/pay", {"method": "bank_transfer"})
    line = api.create(f"/v1/subscriptions/{sub['id']}/lines", {})
    return Viewer(customer["id"], sub["id"], line["login"], line["secret"])


def _watch(api: ApiClient, viewer: Viewer, country: str | None = None) -> tuple[int, str]:
    """nginx's auth_request for the buyer's HLS playlist: (status, deny reason)."""
    headers = {
        "X-Original-URI": f"/hls/arena/index.m3u8?username={viewer.username}"
        f"&password={viewer.password}"
    }
    if country:
        headers["X-Country-Code"] = country
    response = api.http.get("/integrations/nginx/auth", headers=headers)
    return response.status_code, response.headers.get("X-Deny-Reason", "")


def _advance(api: ApiClient, to: str) -> None:
    api.action("/v1/test-clock/advance", {"to": to, "run_billing": False})


def test_buy_watch_in_the_window_refused_after_cancel_refunds_once(
    e2e_server: E2EServer,
) -> None:
    tenant = e2e_server.fresh_tenant()
    api = e2e_server.client(tenant)
    api.action("/v1/test-clock/freeze", {"at": START})
    channel = _catalog(api)
    buyer, other = _viewer(api, 1, "20.00"), _viewer(api, 2, "20.00")
    event = api.create(
        "/v1/ppv/events",
        {
            "code": "title-fight",
            "name": "Title fight",
            "channel_id": channel["id"],
            "starts_at": "2030-05-01T20:00:00Z",
            "ends_at": "2030-05-01T22:00:00Z",
            "replay_hours": 2,
            "prices": [money("15.00")],
            "blackout_countries": ["FR"],
        },
    )
    assert event["status"] == "scheduled"
    assert event["viewing_ends_at"].startswith("2030-05-02T00:00:00")
    assert event["sale_ends_at"].startswith("2030-05-01T22:00:00")

    purchase = api.create(
        f"/v1/ppv/events/{event['id']}/purchases",
        {"subscription_id": buyer.subscription_id, "payment": {"method": "wallet"}},
    )
    assert purchase["amount"] == money_out("15.00")
    assert api.wallet_balance(buyer.customer_id) == money_out("5.00")
    # a second purchase of the same event is refused and charges nothing
    again = api.request(
        "POST",
        f"/v1/ppv/events/{event['id']}/purchases",
        json={"subscription_id": buyer.subscription_id, "payment": {"method": "wallet"}},
    )
    assert_problem(again, 409, "ppv.already_purchased")
    # a purchase the wallet cannot cover: 402, nothing changed
    poor = _viewer(api, 3, "1.00")
    short = api.request(
        "POST",
        f"/v1/ppv/events/{event['id']}/purchases",
        json={"subscription_id": poor.subscription_id, "payment": {"method": "wallet"}},
    )
    assert_problem(short, 402, "wallet.insufficient_funds")
    assert api.wallet_balance(poor.customer_id) == money_out("1.00")
    assert api.read(f"/v1/ppv/events/{event['id']}")["sold"] == 1

    # Inside the window: the buyer watches, the others are refused.
    _advance(api, "2030-05-01T20:30:00Z")
    assert _eventually(lambda: _watch(api, buyer) == (200, ""))
    assert _eventually(lambda: _watch(api, other) == (403, "not_purchased"))
    assert _watch(api, buyer, "FR") == (403, "country_not_allowed")
    # During the replay the buyer still watches...
    _advance(api, "2030-05-01T23:30:00Z")
    assert _eventually(lambda: _watch(api, buyer) == (200, ""))
    # ...after the end and the replay, the purchase no longer covers anything.
    assert _watch(api, other) == (403, "not_purchased")
    _advance(api, "2030-05-02T00:00:01Z")
    assert _eventually(lambda: _watch(api, other) == (200, ""))  # the channel is basic again
    assert _watch(api, buyer) == (200, "")

    # Cancel: the buyer is refunded exactly once, however often cancel is called.
    cancelled = api.action(f"/v1/ppv/events/{event['id']}/cancel")
    assert cancelled["status"] == "cancelled"
    assert cancelled["sold"] == 0
    assert api.wallet_balance(buyer.customer_id) == money_out("20.00")
    assert api.action(f"/v1/ppv/events/{event['id']}/cancel")["status"] == "cancelled"
    assert api.wallet_balance(buyer.customer_id) == money_out("20.00")
    purchases = api.list_all(f"/v1/ppv/events/{event['id']}/purchases")
    assert [(p["id"], p["status"]) for p in purchases] == [(purchase["id"], "refunded")]
    mine = api.list_all(f"/v1/subscriptions/{buyer.subscription_id}/purchases")
    assert [p["status"] for p in mine] == ["refunded"]
    refund_again = api.request("POST", f"/v1/ppv/purchases/{purchase['id']}/refund")
    assert_problem(refund_again, 409, "ppv.already_refunded")
    assert api.wallet_balance(buyer.customer_id) == money_out("20.00")


def test_a_purchase_during_the_event_lets_the_buyer_in_promptly(e2e_server: E2EServer) -> None:
    tenant = e2e_server.fresh_tenant()
    api = e2e_server.client(tenant)
    api.action("/v1/test-clock/freeze", {"at": START})
    channel = _catalog(api)
    late = _viewer(api, 1, "50.00")
    event = api.create(
        "/v1/ppv/events",
        {
            "code": "concert",
            "name": "Concert",
            "channel_id": channel["id"],
            "starts_at": "2030-05-01T18:30:00Z",
            "ends_at": "2030-05-01T20:00:00Z",
            "prices": [money("9.50")],
        },
    )
    _advance(api, "2030-05-01T19:00:00Z")
    assert _eventually(lambda: _watch(api, late) == (403, "not_purchased"))
    api.create(
        f"/v1/ppv/events/{event['id']}/purchases",
        {"subscription_id": late.subscription_id, "payment": {"method": "wallet"}},
    )
    assert _eventually(lambda: _watch(api, late) == (200, ""))
    assert api.wallet_balance(late.customer_id) == money_out("40.50")
