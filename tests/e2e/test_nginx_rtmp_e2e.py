"""Stream authorization end to end with real servers: Debian's nginx with the rtmp module asks
a real ``iptv-billing serve`` on every ``on_play`` / ``on_update`` / ``on_play_done``; ffmpeg
publishes a short test card and ffmpeg players watch it.

Everything about the viewers is set up over the public API: the catalog, a plan for one
screen that suspends at the first unpaid renewal, subscriptions and their lines. The server
learns of each change through its log follower (about a second), then:

* a paying subscriber's player decodes frames;
* a wrong password, an ended (cancelled) subscription and a channel outside the packages are
  refused at ``on_play``;
* a second screen over the one-connection limit is refused, and plays once the first ended;
* a suspension by dunning during playback (the test clock passes the period end and the
  billing run finds the renewal unpaid) ends the playing session at the next ``on_update``;
* a prepaid pay-as-you-watch session holds what the wallet can pay at ``on_play`` and is
  dropped at the ``on_update`` after it has played it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from api_client import ApiClient, money
from nginx_rtmp import NginxRtmp, running_nginx_rtmp, wait_for_exit
from server_harness import E2EServer

pytestmark = pytest.mark.slow

STREAM = "live-1"
UPDATE_SECONDS = 2
START = "2030-03-01T12:00:00Z"
FOLLOW_SECONDS = 10.0  # generous: the follower reads the log every second


@dataclass
class Line:
    subscription_id: str
    username: str
    password: str

    def query(self, password: str | None = None) -> str:
        return urlencode({"username": self.username, "password": password or self.password})


def _catalog(api: ApiClient) -> dict[str, Any]:
    for number, (code, category) in enumerate((("live-1", "News"), ("sport-1", "Sports")), 1):
        api.create(
            "/v1/channels", {"code": code, "name": code, "number": number, "category": category}
        )
    api.create("/v1/packages", {"code": "basic", "name": "Basic", "channel_codes": ["live-1"]})
    api.create("/v1/packages", {"code": "sports", "name": "Sports", "channel_codes": ["sport-1"]})
    terms = {
        "name": "One screen",
        "interval": {"unit": "month", "count": 1},
        "prices": [money("9.00")],
        "max_connections": 1,
        "package_codes": ["basic"],
        "grace_days": 0,
        "suspend_after_days": 0,
    }
    return api.create("/v1/plans", {"code": "one", "name": "One", "terms": terms})


def _subscriber(api: ApiClient, plan: dict[str, Any], n: int) -> Line:
    customer = api.create(
        "/v1/customers", {"name": f"Viewer {n}", "email": f"v{n}@example.com", "currency": "EUR"}
    )
    sub = api.create(
        "/v1/subscriptions", {"customer_id": customer["id"], "plan_id": plan["id"], "trial": False}
    )
    line = api.create(f"/v1/subscriptions/{sub['id']}/lines", {})
    return Line(sub["id"], line["login"], line["secret"])


@dataclass
class World:
    nginx: NginxRtmp
    api: ApiClient
    paid: Line
    ended: Line
    second_screen: Line


def _eventually(check: Callable[[], bool], timeout: float = FOLLOW_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False


@pytest.fixture(scope="module")
def world(e2e_server: E2EServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tenant = e2e_server.fresh_tenant()
    api = e2e_server.client(tenant)
    api.action("/v1/test-clock/freeze", {"at": START})
    plan = _catalog(api)
    paid, ended, second = (_subscriber(api, plan, n) for n in range(3))
    api.action(f"/v1/subscriptions/{ended.subscription_id}/cancel", {"at_period_end": False})
    work = tmp_path_factory.mktemp("nginx-rtmp")
    callback = f"{e2e_server.base_url}/integrations/nginx-rtmp"
    with running_nginx_rtmp(callback, Path(work), update_seconds=UPDATE_SECONDS) as nginx:
        publisher = nginx.publish(STREAM)
        nginx.wait_until_published(STREAM, timeout=20)
        world = World(nginx, api, paid, ended, second)
        # The server learns of the new lines from its log follower.
        assert _eventually(lambda: nginx.play(STREAM, paid.query(), seconds=0.5).ok, 30)
        yield world
        publisher.terminate()


def test_a_paying_subscriber_watches(world: World) -> None:
    result = world.nginx.play(STREAM, world.paid.query(), seconds=2.0)
    assert result.ok, result.stderr[-500:]
    assert result.frames > 10


@pytest.mark.parametrize("case", ["wrong password", "ended subscription", "not in package"])
def test_refused_at_on_play(world: World, case: str) -> None:
    stream, query = {
        "wrong password": (STREAM, world.paid.query(password="not-the-password")),
        "ended subscription": (STREAM, world.ended.query()),
        "not in package": ("sport-1", world.paid.query()),
    }[case]
    result = world.nginx.play(stream, query, seconds=1.0, timeout=15)
    assert not result.ok
    assert result.frames == 0


def test_a_second_screen_over_the_limit_is_refused(world: World) -> None:
    line = world.second_screen
    first = world.nginx.play_in_background(STREAM, line.query())
    try:
        assert _eventually(lambda: world.nginx.frames(first) > 0)
        second = world.nginx.play(STREAM, line.query(), seconds=1.0, timeout=15)
        assert not second.ok
        assert second.frames == 0
    finally:
        first.terminate()
        wait_for_exit(first, 10)
    # on_play_done freed the slot.
    assert _eventually(lambda: world.nginx.play(STREAM, line.query(), seconds=0.5).ok)


def test_a_suspension_ends_playback_at_the_next_update(
    e2e_server: E2EServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tenant = e2e_server.fresh_tenant()  # its own clock: advancing it touches nobody else
    api = e2e_server.client(tenant)
    api.action("/v1/test-clock/freeze", {"at": START})
    viewer = _subscriber(api, _catalog(api), 9)
    work = tmp_path_factory.mktemp("nginx-rtmp-suspend")
    callback = f"{e2e_server.base_url}/integrations/nginx-rtmp"
    with running_nginx_rtmp(callback, Path(work), update_seconds=UPDATE_SECONDS) as nginx:
        nginx.publish(STREAM)
        nginx.wait_until_published(STREAM, timeout=20)
        assert _eventually(lambda: nginx.play(STREAM, viewer.query(), seconds=0.5).ok, 30)
        player = nginx.play_in_background(STREAM, viewer.query())
        assert _eventually(lambda: nginx.frames(player) > 0)
        time.sleep(UPDATE_SECONDS * 1.5)  # it survives heartbeats while paid up
        assert player.poll() is None
        # A month later the renewal is unpaid: grace 0, suspension at once.
        api.action("/v1/test-clock/advance", {"to": "2030-04-02T12:00:00Z", "run_billing": True})
        status = api.read(f"/v1/subscriptions/{viewer.subscription_id}")["status"]
        assert status == "suspended"
        assert wait_for_exit(player, FOLLOW_SECONDS + 2 * UPDATE_SECONDS) is not None
        refused = nginx.play(STREAM, viewer.query(), seconds=0.5, timeout=15)
        assert not refused.ok


def _pay_as_you_watch(api: ApiClient) -> Line:
    """A prepaid viewer of a plan that charges 0.001 a second of viewing, with one minute's
    worth (0.06) in the wallet."""
    _catalog(api)
    api.create(
        "/v1/metrics",
        {"code": "viewing_seconds", "name": "Viewing", "aggregation": "sum", "unit": "second"},
    )
    price = {"model": "per_unit", "unit_price": "0.001", "tiers": [], "package_size": "1"}
    terms = {
        "name": "Pay as you watch",
        "interval": {"unit": "month", "count": 1},
        "prices": [money("0.00")],
        "package_codes": ["basic"],
        "grace_days": 0,
        "suspend_after_days": 0,
        "usage_charges": [
            {
                "metric": "viewing_seconds",
                "name": "Viewing",
                "aggregation": "sum",
                "prices": [{**price, "included": "0", "currency": "EUR"}],
            }
        ],
    }
    plan = api.create("/v1/plans", {"code": "payg", "name": "PAYG", "terms": terms})
    customer = api.create(
        "/v1/customers",
        {
            "name": "Prepaid viewer",
            "email": "prepaid@example.com",
            "currency": "EUR",
            "collection_method": "charge_wallet",
        },
    )
    api.create(f"/v1/customers/{customer['id']}/wallet/top-ups", {"amount": money("0.06")})
    sub = api.create(
        "/v1/subscriptions", {"customer_id": customer["id"], "plan_id": plan["id"], "trial": False}
    )
    line = api.create(f"/v1/subscriptions/{sub['id']}/lines", {})
    return Line(sub["id"], line["login"], line["secret"])


def test_a_prepaid_metered_session_stops_when_its_wallet_is_spent(
    e2e_server: E2EServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``on_play`` holds the viewing the wallet can pay (one minute); when it has played it,
    the minute is invoiced and paid from the hold, no further minute can be held, and the
    next ``on_update`` is refused, so nginx drops the player. A new play is refused."""
    tenant = e2e_server.fresh_tenant()
    api = e2e_server.client(tenant)
    api.action("/v1/test-clock/freeze", {"at": START})
    viewer = _pay_as_you_watch(api)
    customer_id = api.read(f"/v1/subscriptions/{viewer.subscription_id}")["customer_id"]
    work = tmp_path_factory.mktemp("nginx-rtmp-prepaid")
    callback = f"{e2e_server.base_url}/integrations/nginx-rtmp"
    with running_nginx_rtmp(callback, Path(work), update_seconds=UPDATE_SECONDS) as nginx:
        nginx.publish(STREAM)
        nginx.wait_until_published(STREAM, timeout=20)
        # Known to the server once its follower read the log; the probe's hold is voided
        # when nginx reports its end (it holds the whole wallet until then).
        assert _eventually(lambda: nginx.play(STREAM, viewer.query(), seconds=0.5).ok, 30)
        wallets = f"/v1/customers/{customer_id}/wallets"
        assert _eventually(lambda: api.read(wallets)["data"][0]["pending"]["minor"] == 0)
        player = nginx.play_in_background(STREAM, viewer.query())
        assert _eventually(lambda: nginx.frames(player) > 0)
        holds = api.read(f"/v1/customers/{customer_id}/wallet/holds", status="pending")["data"]
        assert [h["amount"]["minor"] for h in holds] == [6]
        # The minute plays out, then at most a flush and two heartbeats pass.
        assert wait_for_exit(player, 60 + 1 + 3 * UPDATE_SECONDS + 10) is not None
        assert not nginx.play(STREAM, viewer.query(), seconds=0.5, timeout=15).ok
    wallet = api.read(wallets)["data"][0]
    assert (wallet["balance"]["minor"], wallet["pending"]["minor"]) == (0, 0)
    invoices = api.read("/v1/invoices", customer_id=customer_id)["data"]
    paid = [(i["billing_reason"], i["total"]["minor"], i["status"]) for i in invoices]
    assert ("usage_session", 6, "paid") in paid
