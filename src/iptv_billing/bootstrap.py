"""Wiring: build the runtime (database, clock, ids, payment provider) and the web app.

The composition root: the only module that knows every concrete adapter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI

from iptv_billing.adapters.payments.test_provider import TestCardProvider
from iptv_billing.adapters.sql.uow import Database, is_transient, open_database
from iptv_billing.config import Settings
from iptv_billing.services.clock import Clock, SystemClock
from iptv_billing.services.ids import IdGenerator, TimeOrderedIds
from iptv_billing.services.jobs import RecurringJobs
from iptv_billing.services.providers import PaymentProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    database: Database
    clock: Clock
    ids: IdGenerator
    payment_provider: PaymentProvider


def open_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    database = open_database(settings.database_url, migrate=True)
    return Runtime(database, clock, TimeOrderedIds(clock), TestCardProvider(clock))


def build_app(runtime: Runtime, job_interval: float | None = None) -> FastAPI:
    """The web app; with ``job_interval`` it also runs the recurring jobs while it serves."""
    from iptv_billing.api.app import create_app
    from iptv_billing.api.deps import AppServices

    app = create_app(AppServices(runtime.database, runtime.ids, runtime.clock, is_transient))
    app.state.payment_provider = runtime.payment_provider
    if job_interval:
        scheduler = Scheduler(runtime, job_interval)
        app.router.on_startup.append(scheduler.start)
        app.router.on_shutdown.append(scheduler.stop)
    return app


class Scheduler:
    """Runs ``RecurringJobs.tick`` every ``interval`` seconds on a daemon thread."""

    def __init__(self, runtime: Runtime, interval: float) -> None:
        self._jobs = RecurringJobs(
            runtime.database.uow,
            runtime.clock,
            runtime.ids,
            runtime.payment_provider,
            is_transient=is_transient,
        )
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="recurring-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report = self._jobs.tick()
            except Exception:  # the loop must outlive a bad tick (database restart, …)
                log.exception("recurring jobs failed")
                continue
            if report.invoices_created or report.payments_settled or report.failures:
                log.info("recurring jobs: %s", report)


def seed_demo_if_empty(runtime: Runtime, settings: Settings, say: Callable[[str], None]) -> None:
    """On first start of the embedded default, give the operator something to look at."""
    from iptv_billing.services.demo import DemoSeeder

    with runtime.database.uow(read_only=True) as uow:
        if uow.tenants.list():
            return
    say("empty database: seeding the demo operator (about a minute)…")
    seeder = DemoSeeder(runtime.database.uow, runtime.clock, runtime.ids)
    result = seeder.seed(api_key=settings.demo_api_key, progress=lambda m: say(f"demo: {m}"))
    say(f"demo tenant {result.tenant_id}; admin API key: {result.api_key}")
    say("try: curl -H 'Authorization: Bearer <key>' http://127.0.0.1:8000/v1/customers")
