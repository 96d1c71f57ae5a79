"""Wiring of stream authorization: the in-memory index, the session store, the guessing brake,
and the thread that keeps the index in step with billing.

Part of the composition root (with ``bootstrap``): the only place that picks the concrete
session store from the settings.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from iptv_billing.adapters.keys import KeyStore
from iptv_billing.adapters.secret_box import SecretBox
from iptv_billing.adapters.sessions import open_guess_limiter, open_session_registry
from iptv_billing.config import Settings
from iptv_billing.domain.sessions import OverLimit
from iptv_billing.services.access_index import AccessIndex
from iptv_billing.services.clock import Clock
from iptv_billing.services.ports import UnitOfWorkFactory
from iptv_billing.services.stream_auth import StreamAuthorizer

log = logging.getLogger(__name__)
SECRET_BOX_KEY = "credentials"


def open_secret_box(
    settings: Settings, random_bytes: Callable[[int], bytes] = os.urandom
) -> SecretBox:
    return SecretBox(KeyStore(settings.key_dir).ensure_secret(SECRET_BOX_KEY), random_bytes)


def over_limit_policy(settings: Settings) -> OverLimit:
    try:
        return OverLimit(settings.over_limit_policy)
    except ValueError:
        allowed = ", ".join(p.value for p in OverLimit)
        raise SystemExit(
            f"error: IPTV_BILLING_OVER_LIMIT_POLICY must be one of {allowed}"
        ) from None


def open_authorizer(
    settings: Settings, uow_factory: UnitOfWorkFactory, clock: Clock
) -> StreamAuthorizer:
    sessions = open_session_registry(
        settings.redis_url, ttl=timedelta(seconds=settings.session_ttl_seconds)
    )
    limiter = open_guess_limiter(
        settings.redis_url,
        settings.guess_max_failures,
        timedelta(seconds=settings.guess_window_seconds),
    )
    index = AccessIndex(uow_factory, clock)
    return StreamAuthorizer(
        index,
        sessions,
        limiter,
        clock,
        over_limit_policy(settings),
        blocking=bool(settings.redis_url),
    )


class AccessFollower:
    """Loads the index before the server answers, then follows the logs on its own thread
    (not the recurring-jobs thread: a long billing run must not delay access changes)."""

    def __init__(self, index: AccessIndex, interval: float, catalog_interval: float) -> None:
        self._index = index
        self._interval = interval
        self._catalog_interval = catalog_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Load, then follow; a second start (an app started twice in tests) is a no-op."""
        if self._thread is not None and self._thread.is_alive():
            return
        started = time.monotonic()
        self._index.load_all()
        # The index is a million long-lived objects: leave them out of the cyclic collector's
        # full passes, which otherwise stall every callback for a third of a second.
        gc.collect()
        gc.freeze()
        log.info("authorization index loaded in %.2f s", time.monotonic() - started)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="access-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        next_catalog = time.monotonic() + self._catalog_interval
        while not self._stop.wait(self._interval):
            try:
                self._index.refresh()
                if time.monotonic() >= next_catalog:
                    self._index.refresh_catalogs()
                    next_catalog = time.monotonic() + self._catalog_interval
            except Exception:  # a database restart must not end the following
                log.exception("refreshing the authorization index failed")
