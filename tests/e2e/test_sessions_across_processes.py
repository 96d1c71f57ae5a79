"""The connection limit holds across API processes: three ``iptv-billing serve`` processes on one
database share sessions through a real Redis, and nginx-rtmp callbacks for one subscriber are
spread over all three at once.

A plan allows two screens: of thirty simultaneous ``on_play`` calls exactly two are let in,
whichever process answers; heartbeats go on through any process; an ``on_play_done`` through a
third frees a slot for the next viewer; the player API of every process counts the same two.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_client import ApiClient, money
from server_harness import running_server, seed_tenants

pytestmark = pytest.mark.slow

PROCESSES = 3
SCREENS = 2
ATTEMPTS = 30


@dataclass
class Cluster:
    urls: list[str]
    api: ApiClient
    username: str
    password: str

    def callback(self, server: int, kind: str, clientid: int) -> int:
        form = {
            "app": "live",
            "name": "live-1",
            "addr": "203.0.113.50",
            "clientid": str(clientid),
            "call": {"play": "play", "update": "update_play", "done": "play_done"}[kind],
            "username": self.username,
            "password": self.password,
        }
        url = f"{self.urls[server % len(self.urls)]}/integrations/nginx-rtmp/{kind}"
        return httpx.post(url, data=form, timeout=10, trust_env=False).status_code

    def active_cons(self, server: int) -> int:
        params = {"username": self.username, "password": self.password}
        answer = httpx.get(f"{self.urls[server]}/player_api.php", params=params, trust_env=False)
        return int(answer.json()["user_info"]["active_cons"])


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            if check():
                return True
        time.sleep(0.2)
    return False


def _line(api: ApiClient) -> tuple[str, str]:
    api.create("/v1/channels", {"code": "live-1", "name": "Live", "number": 1})
    api.create("/v1/packages", {"code": "basic", "name": "Basic", "channel_codes": ["live-1"]})
    terms: dict[str, Any] = {
        "name": "Two screens",
        "interval": {"unit": "month", "count": 1},
        "prices": [money("12.00")],
        "max_connections": SCREENS,
        "package_codes": ["basic"],
    }
    plan = api.create("/v1/plans", {"code": "duo", "name": "Duo", "terms": terms})
    customer = api.create(
        "/v1/customers", {"name": "Family", "email": "family@example.com", "currency": "EUR"}
    )
    sub = api.create(
        "/v1/subscriptions", {"customer_id": customer["id"], "plan_id": plan["id"], "trial": False}
    )
    line = api.create(f"/v1/subscriptions/{sub['id']}/lines", {})
    return line["login"], line["secret"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
    fresh_database: Callable[[str, Path], contextlib.AbstractContextManager[str]],
    redis_url: str,
) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp(f"cluster-{request.param}")
    env = {"IPTV_BILLING_REDIS_URL": redis_url, "IPTV_BILLING_JOB_INTERVAL_SECONDS": "0"}
    with fresh_database(request.param, directory) as database_url:
        (tenant,), _ = seed_tenants(database_url, 1, "cluster")
        with contextlib.ExitStack() as stack:
            urls = [
                stack.enter_context(running_server(database_url, free_port(), directory, env))[0]
                for _ in range(PROCESSES)
            ]
            http = stack.enter_context(httpx.Client(base_url=urls[0], trust_env=False))
            api = ApiClient(http, tenant.keys["admin"])
            username, password = _line(api)
            world = Cluster(urls, api, username, password)
            for server in range(PROCESSES):  # every process's follower has seen the line
                assert _eventually(lambda s=server: world.active_cons(s) == 0)
            yield world


def test_the_limit_holds_across_processes(cluster: Cluster) -> None:
    with ThreadPoolExecutor(ATTEMPTS) as pool:
        statuses = list(
            pool.map(lambda n: (n, cluster.callback(n, "play", 100 + n)), range(ATTEMPTS))
        )
    admitted = [n for n, status in statuses if status == 200]
    assert len(admitted) == SCREENS, statuses
    assert {status for _, status in statuses} == {200, 403}
    for server in range(PROCESSES):
        assert cluster.active_cons(server) == SCREENS
    # A heartbeat of an admitted session is answered by any process.
    for server in range(PROCESSES):
        assert cluster.callback(server, "update", 100 + admitted[0]) == 200
    # on_play_done through another process frees a slot for a new viewer, and only one.
    assert cluster.callback(admitted[0] + 1, "done", 100 + admitted[0]) == 200
    assert cluster.callback(2, "play", 999) == 200
    assert cluster.callback(1, "play", 998) == 403
