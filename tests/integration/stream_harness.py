"""A streaming operator for integration tests: a catalog of channels in packages, a plan, and
subscribers with lines, tokens and set-top boxes, served by the real app (in-process session
store) through FastAPI's TestClient.

    op = StreamOperator(database_url)
    viewer = op.viewer()                    # an active subscriber of the "basic" plan
    op.client.get("/player_api.php", params={"username": viewer.username, ...})
    op.sync()                               # the index follows what billing changed

``sync()`` is what the follower thread does every second in a server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from fastapi.testclient import TestClient
from operator_harness import Operator

from iptv_billing.adapters.secret_box import SecretBox
from iptv_billing.adapters.sessions import open_guess_limiter, open_session_registry
from iptv_billing.adapters.sql.uow import is_transient
from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices
from iptv_billing.domain.sessions import OverLimit
from iptv_billing.services import catalog, credentials
from iptv_billing.services.access_index import AccessIndex
from iptv_billing.services.records import SubscriptionRecord
from iptv_billing.services.stream_auth import StreamAuthorizer

# code, name, category, packages carrying it
CHANNELS = (
    ("news-1", "News One", "News", ("basic",)),
    ("news-2", "News Two", "News", ("basic",)),
    ("kids-1", "Kids One", "Kids", ("basic", "kids")),
    ("sport-1", "Sport One", "Sports", ("sports",)),
    ("sport-2", "Sport Two", "Sports", ("sports",)),
)


@dataclass(frozen=True)
class Viewer:
    subscription: SubscriptionRecord
    username: str
    password: str
    token: str
    line_id: str
    token_id: str


class StreamOperator(Operator):
    def __init__(
        self,
        url: str,
        *,
        policy: OverLimit = OverLimit.REFUSE_NEW,
        max_failures: int = 20,
        max_connections: int = 2,
    ) -> None:
        super().__init__(url)
        self.sealer = SecretBox(os.urandom(32))
        self._catalog()
        self.plan(
            "basic",
            "10.00",
            package_codes=["basic"],
            max_connections=max_connections,
            grace_days=0,
            suspend_after_days=0,
            addons=[
                {
                    "code": "screen",
                    "name": "Extra screen",
                    "kind": "extra_connection",
                    "prices": [
                        {"currency": "EUR", "minor": 200},
                        {"currency": "USD", "minor": 200},
                    ],
                    "connections": 1,
                    "package_codes": [],
                }
            ],
        )
        self.plan("sports", "20.00", package_codes=["basic", "sports"])
        self.index = AccessIndex(self.database.uow)
        self.authorizer = StreamAuthorizer(
            self.index,
            open_session_registry(None),
            open_guess_limiter(None, max_failures, timedelta(minutes=1)),
            self.system,
            policy,
        )
        services = AppServices(
            self.database,
            self.ids,
            self.system,
            is_transient,
            stream=self.authorizer,
            sealer=self.sealer,
            public_url="http://tv.example.test",
        )
        self.client = TestClient(create_app(services), raise_server_exceptions=False)
        self.index.load_all()

    def _catalog(self) -> None:
        packages: dict[str, list[str]] = {}
        for number, (code, name, category, in_packages) in enumerate(CHANNELS, start=1):
            cmd = catalog.CreateChannel(
                code,
                name,
                number,
                logo_url=f"http://logos.example.test/{code}.png",
                category=category,
                epg_id=f"{code}.example",
                source_url=f"http://origin.example.test/hls/{code}/index.m3u8",
                catchup_days=3 if code == "news-1" else 0,
            )
            self.tx(lambda u, c, cmd=cmd: catalog.create_channel(u, c, cmd))
            for package in in_packages:
                packages.setdefault(package, []).append(code)
        for code, channels in packages.items():
            cmd2 = catalog.CreatePackage(code, code.title(), tuple(channels))
            self.tx(lambda u, c, cmd2=cmd2: catalog.create_package(u, c, cmd2))

    def viewer(self, plan: str = "basic", *, trial: bool = False) -> Viewer:
        """A subscriber with one line and one token, known to the index."""
        customer = self.customer()
        sub = self.subscribe(customer.id, plan, trial=trial)
        line, password = self.tx(
            lambda u, c: credentials.issue_line(u, c, self.sealer, os.urandom, sub.id)
        )
        token_cred, token = self.tx(
            lambda u, c: credentials.issue_token(u, c, self.sealer, os.urandom, sub.id)
        )
        self.sync()
        return Viewer(sub, line.login, password, token, line.id, token_cred.id)

    def sync(self) -> int:
        """Bring billing's changes into the authorization index (the follower's job)."""
        return self.index.refresh()

    def close(self) -> None:
        self.client.close()
        super().close()
