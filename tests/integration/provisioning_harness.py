"""A provisioning operator for integration tests: the streaming operator's catalog and plans,
a real ``FakeXtreamPanel``, a local webhook receiver that checks every signature, and workers
on a clock of their own (real time for deliveries, unlike the tenant's test clock).

    op = ProvisioningOperator(database_url)
    panel = op.xtream_target()              # follows the log from its first entry
    viewer = op.subscriber()                # a wallet-paying subscriber with one line
    op.tick()                               # follow the log, then deliver what is due
    op.panel.line(viewer.username)          # what the panel now holds
    op.later(seconds=11)                    # move the workers' clock (retries)
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from operator_harness import START
from stream_harness import StreamOperator, Viewer

from iptv_billing.adapters.panels import WebhookSender
from iptv_billing.adapters.panels.outbox import XtreamTransport
from iptv_billing.domain.errors import Unauthorized
from iptv_billing.domain.provisioning import verify
from iptv_billing.services import access, credentials, provisioning
from iptv_billing.services.clock import FixedClock
from iptv_billing.services.provisioning import (
    PanelTransport,
    ProvisioningWorker,
    TickResult,
    Transports,
)
from iptv_billing.services.records import (
    ProvisioningAttemptRecord,
    ProvisioningDeliveryRecord,
    ProvisioningTargetRecord,
)
from xtream_panel_fake import FakeXtreamPanel

API_PASS = "panel-api-pass-Zk93"
# Our package codes → the fake panel's bouquet ids.
BOUQUETS: dict[str, list[int]] = {"basic": [1, 2], "kids": [3], "sports": [4, 5]}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    problem: str | None  # None: the signature verified

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


@dataclass
class Receiver:
    """Webhook endpoints on 127.0.0.1: ``/hooks/<name>``, each with its secret. Every request
    is checked with the domain's ``verify`` at the workers' time, then answered with the next
    status of ``answers`` (200 once they run out)."""

    clock: FixedClock
    secrets: dict[str, bytes] = field(default_factory=dict)
    answers: deque[int] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = state.handle(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                answer = b"ok" if status < 300 else b"nope"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def url(self, name: str, secret: str) -> str:
        assert self.server is not None
        self.secrets[f"/hooks/{name}"] = secret.encode("ascii")
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{name}"

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        secret = self.secrets.get(path, b"x" * 32)
        try:
            now = int(self.clock.now().timestamp())
            verify(secret, body, headers.get("webhook-signature", ""), now)
            problem = None
        except Unauthorized as exc:
            problem = exc.code
        with self.lock:
            self.received.append(Received(path, headers, body, problem))
            return self.answers.popleft() if self.answers else 200

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r.event for r in self.received if name is None or r.path == f"/hooks/{name}"]


class ProvisioningOperator(StreamOperator):
    def __init__(self, url: str, *, panel_timeout: float = 2.0, hang_seconds: float = 3.0) -> None:
        super().__init__(url)
        self.clock = FixedClock(START)  # the workers' clock
        self.panel = FakeXtreamPanel(API_PASS, hang_seconds=hang_seconds).start()
        self.receiver = Receiver(self.clock).start()
        self.xtream = XtreamTransport(timeout=panel_timeout)
        self.sender = WebhookSender(timeout=2.0)
        self.worker = self.new_worker()
        with self.database.uow() as uow:
            _, self.api_key = access.issue_api_key(
                uow, self.ids, self.system, self.tenant_id, "provisioning tests", "admin"
            )
            uow.commit()

    def new_worker(
        self, panel: PanelTransport | None = None, lease: timedelta = timedelta(minutes=2)
    ) -> ProvisioningWorker:
        transports = Transports(panel or self.xtream, self.sender)
        return ProvisioningWorker(
            self.database.uow,
            self.clock,
            self.ids,
            self.sealer,
            transports,
            lease=lease,
            jitter=lambda: 0.0,
        )

    # -- targets ---------------------------------------------------------------------------------
    def xtream_target(
        self, mapping: Mapping[str, Sequence[int]] | None = None, url: str | None = None
    ) -> ProvisioningTargetRecord:
        target, _ = self.tx(
            lambda u, c: provisioning.create_target(
                u,
                c,
                self.sealer,
                os.urandom,
                "xtream",
                "Main panel",
                url or self.panel.base_url,
                API_PASS,
                BOUQUETS if mapping is None else mapping,
            )
        )
        return target

    def webhook_target(
        self, name: str = "billing", *, from_beginning: bool = False
    ) -> ProvisioningTargetRecord:
        secret = provisioning.new_webhook_secret(os.urandom)
        url = self.receiver.url(name, secret)
        target, generated = self.tx(
            lambda u, c: provisioning.create_target(
                u,
                c,
                self.sealer,
                os.urandom,
                "webhook",
                name,
                url,
                secret,
                None,
                from_beginning=from_beginning,
            )
        )
        assert generated is None  # we chose the secret
        return target

    # -- subscribers -----------------------------------------------------------------------------
    def subscriber(self, plan: str = "basic", *, trial: bool = False) -> Viewer:
        """A subscriber paying from a topped-up wallet (renewals keep it active), with one
        line and one token."""
        customer = self.customer(method="charge_wallet", top_up="500.00")
        sub = self.subscribe(customer.id, plan, trial=trial)
        line, password = self.tx(
            lambda u, c: credentials.issue_line(u, c, self.sealer, os.urandom, sub.id)
        )
        token, secret = self.tx(
            lambda u, c: credentials.issue_token(u, c, self.sealer, os.urandom, sub.id)
        )
        return Viewer(sub, line.login, password, secret, line.id, token.id)

    # -- the workers -----------------------------------------------------------------------------
    def tick(self) -> TickResult:
        return self.worker.tick()

    def later(self, seconds: float) -> None:
        self.clock.set(self.clock.now() + timedelta(seconds=seconds))

    def deliveries(
        self, target_id: str | None = None, subscription_id: str | None = None
    ) -> list[ProvisioningDeliveryRecord]:
        def work(u: Any, c: Any) -> list[ProvisioningDeliveryRecord]:
            page = u.provisioning.list_deliveries(
                c.tenant_id, 10_000, None, None, target_id, subscription_id
            )
            return sorted(page.items, key=lambda d: (d.log_index, d.id))

        result: list[ProvisioningDeliveryRecord] = self.read(work)
        return result

    def attempts(self, delivery_id: str) -> list[ProvisioningAttemptRecord]:
        return list(self.read(lambda u, c: u.provisioning.attempts_of(c.tenant_id, delivery_id)))

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def close(self) -> None:
        self.panel.stop()
        self.receiver.stop()
        self.xtream.close()
        self.sender.close()
        super().close()
