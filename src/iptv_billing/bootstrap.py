"""Wiring: build the runtime (database, clock, ids, payment provider) and the web app.

The composition root: the only module that knows every concrete adapter.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI

from iptv_billing.adapters.keys import KeyStore
from iptv_billing.adapters.panels import WebhookSender
from iptv_billing.adapters.panels.outbox import XtreamTransport
from iptv_billing.adapters.payments.test_provider import TestCardProvider
from iptv_billing.adapters.secret_box import SecretBox
from iptv_billing.adapters.sql.uow import Database, is_transient, open_database
from iptv_billing.adapters.witness_client import HttpWitnessTransport
from iptv_billing.config import Settings
from iptv_billing.domain.errors import InvalidInput, Unavailable
from iptv_billing.domain.secure_links import SecureLinkSigner
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.policy import Policy, parse_policy
from iptv_billing.services.anchoring import AnchorChain, ChainReceipt
from iptv_billing.services.clock import Clock, SystemClock
from iptv_billing.services.ids import IdGenerator, TimeOrderedIds
from iptv_billing.services.jobs import RecurringJobs
from iptv_billing.services.metered_holds import RESERVE_SECONDS
from iptv_billing.services.providers import PaymentProvider
from iptv_billing.services.provisioning import ProvisioningWorker, Transports
from iptv_billing.services.publishing import LedgerPublisher
from iptv_billing.services.session_charging import SessionCharger
from iptv_billing.services.stream_auth import StreamAuthorizer
from iptv_billing.services.usage_feed import UsageFeed
from iptv_billing.streaming import AccessFollower, open_authorizer, open_secret_box

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    database: Database
    clock: Clock
    ids: IdGenerator
    payment_provider: PaymentProvider
    publisher: LedgerPublisher
    stream: StreamAuthorizer | None = None
    sealer: SecretBox | None = None


class LazyChain:
    """The configured chain, opened on first use: the embedded EVM takes a file lock and
    seconds to start, and a process that never anchors should pay neither."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._chain: AnchorChain | None = None
        self._lock = threading.Lock()
        # A JSON-RPC chain without a configured contract deploys one on first use; its
        # address is kept beside the chain state so that the next start uses it again.
        self._address_file = settings.chain_state.with_suffix(".contract")

    def _contract(self) -> str | None:
        s = self._settings
        if s.chain_url is None or s.chain_contract:
            return s.chain_contract
        try:
            return self._address_file.read_text(encoding="ascii").strip() or None
        except FileNotFoundError:
            return None

    def _open(self) -> AnchorChain:
        with self._lock:
            if self._chain is None:
                from iptv_billing.adapters.chain.factory import open_chain

                s = self._settings
                try:
                    self._chain = open_chain(
                        s.chain_url,
                        s.chain_state,
                        s.chain_private_key,
                        self._contract(),
                        timeout=s.chain_timeout_seconds,
                    )
                except (OSError, RuntimeError) as exc:
                    raise Unavailable("chain.unreachable", f"cannot open the chain: {exc}") from exc
            return self._chain

    def anchor(self, origin: str, size: int, root: bytes) -> ChainReceipt:
        receipt = self._open().anchor(origin, size, root)
        if self._settings.chain_url is not None and self._contract() is None:
            self._address_file.write_text(receipt.contract + "\n", encoding="ascii")
        return receipt

    def root_at(self, origin: str, size: int) -> bytes | None:
        return self._open().root_at(origin, size)

    def describe(self) -> dict[str, object]:
        return self._open().describe()


def load_witness_policy(settings: Settings) -> Policy | None:
    if settings.witness_policy is None:
        return None
    try:
        return parse_policy(settings.witness_policy.read_bytes())
    except (OSError, LedgerError) as exc:
        raise SystemExit(f"error: witness policy {settings.witness_policy}: {exc}") from exc


def open_publisher(settings: Settings, database: Database, clock: Clock) -> LedgerPublisher:
    return LedgerPublisher(
        uow_factory=database.uow,
        keys=KeyStore(settings.key_dir),
        origin_prefix=settings.log_origin_prefix,
        now=clock.now,
        policy=load_witness_policy(settings),
        transport=HttpWitnessTransport(),
        chain=LazyChain(settings) if settings.anchoring else None,
    )


def open_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    database = open_database(settings.database_url, migrate=True)
    publisher = open_publisher(settings, database, clock)
    return Runtime(
        database,
        clock,
        TimeOrderedIds(clock),
        TestCardProvider(clock),
        publisher,
        stream=open_authorizer(settings, database.uow, clock),
        sealer=open_secret_box(settings),
    )


def build_app(runtime: Runtime, settings: Settings | None = None) -> FastAPI:
    """The web app; with ``settings`` it also runs the recurring jobs while it serves."""
    from iptv_billing.api.app import create_app
    from iptv_billing.api.deps import AppServices

    grace = settings.usage_grace_seconds if settings else 259_200.0
    reserve = settings.usage_reserve_seconds if settings else RESERVE_SECONDS
    feed = usage_feed(runtime, grace, reserve)
    services = AppServices(
        runtime.database,
        runtime.ids,
        runtime.clock,
        is_transient,
        runtime.publisher,
        stream=runtime.stream,
        sealer=runtime.sealer,
        public_url=settings.public_url if settings else None,
        secure_link_signer=secure_link_signer(settings),
        secure_link_ttl_seconds=settings.secure_link_ttl_seconds if settings else 3600,
        usage_grace_seconds=grace,
        usage_feed=feed,
    )
    app = create_app(services)
    if feed is not None:  # flushes streaming usage every second, and once more on shutdown
        app.router.on_startup.append(feed.start)
        app.router.on_shutdown.append(feed.stop)
    app.state.payment_provider = runtime.payment_provider
    if runtime.stream is not None:
        refresh = settings.access_refresh_seconds if settings else 1.0
        catalog = settings.catalog_refresh_seconds if settings else 300.0
        follower = AccessFollower(runtime.stream.index, refresh, catalog)
        app.router.on_startup.append(follower.start)
        app.router.on_shutdown.append(follower.stop)
    if settings is not None:
        # One thread per lane: a slow panel or webhook receiver must not hold up billing.
        lanes: dict[str, list[Task]] = {}
        for task in scheduled_tasks(runtime, settings):
            lanes.setdefault(task.lane, []).append(task)
        for lane, tasks in lanes.items():
            scheduler = Scheduler(tasks, name=lane)
            app.router.on_startup.append(scheduler.start)
            app.router.on_shutdown.append(scheduler.stop)
    return app


def usage_feed(
    runtime: Runtime, grace_seconds: float, reserve_seconds: int = RESERVE_SECONDS
) -> UsageFeed | None:
    """Viewing time from the streaming servers' callbacks, for tenants that meter it; prepaid
    metered sessions are charged as they play."""
    if runtime.stream is None:
        return None
    database = runtime.database
    return UsageFeed(
        runtime.stream.index,
        database.uow,
        runtime.clock,
        runtime.ids,
        runtime.stream.now_for,
        timedelta(seconds=grace_seconds),
        charger=SessionCharger(database.transact, runtime.clock, runtime.ids, reserve_seconds),
    )


def secure_link_signer(settings: Settings | None) -> SecureLinkSigner | None:
    if settings is None or not settings.secure_link_secret:
        return None
    try:
        return SecureLinkSigner(settings.secure_link_secret)
    except InvalidInput as exc:
        raise SystemExit(f"error: IPTV_BILLING_SECURE_LINK_SECRET: {exc.message}") from exc


@dataclass
class Task:
    name: str
    interval: float
    run: Callable[[], object]
    due: float = 0.0  # monotonic time of the next run
    lane: str = "recurring-jobs"  # tasks of one lane run one at a time, on one thread


def scheduled_tasks(runtime: Runtime, settings: Settings) -> list[Task]:
    tasks = []
    if settings.job_interval_seconds:
        jobs = RecurringJobs(
            runtime.database.uow,
            runtime.clock,
            runtime.ids,
            runtime.payment_provider,
            is_transient=is_transient,
            after_run=runtime.publisher.after_billing_run,
        )
        tasks.append(Task("recurring jobs", settings.job_interval_seconds, jobs.tick))
    publisher = runtime.publisher
    if settings.checkpoint_interval_seconds:
        interval = settings.checkpoint_interval_seconds
        tasks.append(Task("checkpoints", interval, lambda: publisher.publish_all(anchor=False)))
    if settings.anchoring and settings.anchor_interval_seconds:
        interval = settings.anchor_interval_seconds
        tasks.append(Task("anchoring", interval, lambda: publisher.publish_all(anchor=True)))
    if settings.provisioning_interval_seconds and runtime.sealer is not None:
        worker = provisioning_worker(runtime, runtime.sealer)
        interval = settings.provisioning_interval_seconds
        tasks.append(Task("provisioning", interval, worker.tick, lane="provisioning"))
    return tasks


def provisioning_worker(runtime: Runtime, sealer: SecretBox) -> ProvisioningWorker:
    """Xtream panels and webhook receivers, fed from the log (see ``services.provisioning``)."""
    transports = Transports(panel=XtreamTransport(), webhook=WebhookSender())
    return ProvisioningWorker(runtime.database.uow, runtime.clock, runtime.ids, sealer, transports)


class Scheduler:
    """Runs each task every ``interval`` seconds, one at a time, on a daemon thread."""

    def __init__(self, tasks: list[Task], name: str = "recurring-jobs") -> None:
        self._tasks = tasks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        now = time.monotonic()
        for task in self._tasks:
            task.due = now + task.interval
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(max(0.0, min(t.due for t in self._tasks) - time.monotonic())):
            for task in self._tasks:
                if time.monotonic() >= task.due:
                    self._run(task)
                    task.due = time.monotonic() + task.interval

    def _run(self, task: Task) -> None:
        try:
            result = task.run()
        except Exception:  # the loop must outlive a bad pass (database restart, …)
            log.exception("%s failed", task.name)
            return
        log.debug("%s: %s", task.name, result)


def seed_demo_if_empty(
    runtime: Runtime, settings: Settings, say: Callable[[str], None], base: str | None = None
) -> None:
    """On first start of the embedded default, give the operator something to look at."""
    from iptv_billing.services.demo import DemoSeeder

    with runtime.database.uow(read_only=True) as uow:
        if uow.tenants.list():
            return
    say("empty database: seeding the demo operator (about a minute)…")
    seeder = DemoSeeder(runtime.database.uow, runtime.clock, runtime.ids, sealer=runtime.sealer)
    result = seeder.seed(api_key=settings.demo_api_key, progress=lambda m: say(f"demo: {m}"))
    say(f"demo tenant {result.tenant_id}; admin API key: {result.api_key}")
    base = base or f"http://{settings.host}:{settings.port}"
    say(f"try: curl -H 'Authorization: Bearer <key>' {base}/v1/customers")
    if result.sample_line:
        user, password = result.sample_line
        say(f"a subscriber's line: {base}/player_api.php?username={user}&password={password}")
        say(f"their playlist: {base}/get.php?username={user}&password={password}&type=m3u_plus")
