"""Viewing time and delivered bytes from streaming servers' session callbacks, as usage.

The callback path stays free of database writes: ``viewing`` (nginx-rtmp ``on_update``,
Flussonic ``update_session``) and ``ended`` (``on_play_done``) only update a session in memory
and append ready events to a buffer; a flusher thread ingests the buffer every second through
``services.usage.ingest`` (the API's own path: validation, dedup, one log entry per batch).

Viewing is counted in whole minutes of the session's own clock (nginx-rtmp's ``time``,
Flussonic's ``duration``), each minute one event of ``viewing_seconds`` with a deterministic id
``{session}:{start}:{minute}``, so that a retried callback or a minute reported twice stores
once; the last, partial minute is emitted when the session ends. Bytes (Flussonic) are the
growth of the session's counter between updates, ``{session}:{start}:b{seconds}``. A tenant
opts in by creating the metrics ``viewing_seconds`` and ``delivered_bytes``; for a tenant
without them the flusher drops its events. Sessions are followed per process: a session whose
callbacks reach several processes is counted by each (their ids differ by start second).

With a ``SessionCharger``, sessions of prepaid metered plans are charged in real time
(``services.metered_holds``): ``admit`` (``on_play``) holds the first stretch of viewing and
refuses the session when the wallet cannot pay for a minute. A minute before a reservation
runs out, the flusher charges it and reserves the next. When that fails the session is marked
exhausted and its next heartbeat is refused. The end of a session charges its last
reservation. All of this runs after the flusher has ingested the buffered events, so a charge
sees the viewing it pays for.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from iptv_billing.domain.errors import InsufficientFunds
from iptv_billing.domain.usage import MAX_BATCH, MAX_ID
from iptv_billing.services.access_index import AccessIndex, KnownCredential
from iptv_billing.services.clock import Clock
from iptv_billing.services.context import load_context
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.metered_holds import NOT_METERED, Reservation
from iptv_billing.services.metrics import DELIVERED_BYTES, VIEWING_SECONDS
from iptv_billing.services.ports import UnitOfWorkFactory
from iptv_billing.services.session_charging import SessionCharger
from iptv_billing.services.usage import ingest

log = logging.getLogger(__name__)

MINUTE = 60
MAX_TAIL = timedelta(seconds=MINUTE)  # at most this much is added after the last heartbeat
STALE = timedelta(minutes=10)  # a session not heard from for this long is forgotten
MAX_STEP = 120  # minutes one update may add: a bogus clock must not flood the buffer
MAX_SECONDS = 7 * 86_400  # a session clock beyond a week is not believed
FEED_CODES = (VIEWING_SECONDS, DELIVERED_BYTES)
RESERVE, SETTLE = "reserve", "settle"


@dataclass
class _Session:
    tenant_id: str
    customer_id: str
    subscription_id: str
    prefix: str  # the ids of its events start with this
    started: datetime  # when the session's clock read 0, as first seen here
    minutes: int  # whole minutes emitted so far
    seconds: int  # the session's clock at the last update
    seen: datetime  # when that update came
    bytes_total: int | None
    metered: bool | None = None  # charged per session? None: not known yet
    hold_id: str | None = None  # the reservation paying for its viewing now
    covered: int = 0  # the session clock up to which reservations pay
    early: int = 0  # reserve again this many seconds before ``covered``
    exhausted: bool = False  # the wallet pays for no more: refuse its next heartbeat
    asking: bool = False  # a reservation is queued for the flusher


class UsageFeed:
    def __init__(
        self,
        index: AccessIndex,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        now_for: Callable[[str], datetime],
        grace: timedelta = timedelta(days=3),
        *,
        max_buffer: int = 500_000,
        metrics_ttl: float = 30.0,
        charger: SessionCharger | None = None,
    ) -> None:
        self._index = index
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._now_for = now_for
        self._grace = grace
        self._max_buffer = max_buffer
        self._metrics_ttl = timedelta(seconds=metrics_ttl)
        self._sessions: dict[str, _Session] = {}
        self._buffer: list[tuple[str, dict[str, Any]]] = []
        self._charger = charger
        self._unmetered: dict[str, datetime] = {}  # subscriptions not charged per session
        self._actions: list[tuple[str, str, str]] = []  # (RESERVE | SETTLE, tenant, key)
        self._lock = threading.Lock()
        self._codes: dict[str, tuple[datetime, frozenset[str]]] = {}
        self.dropped = 0  # events lost to a full buffer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the callback side (no I/O) --------------------------------------------------------
    def viewing(
        self,
        credential: KnownCredential,
        session_id: str,
        seconds: int,
        bytes_total: int | None = None,
    ) -> bool:
        """A heartbeat that was allowed: the session has played ``seconds`` (and delivered
        ``bytes_total``, when the server counts them). False: its wallet pays for no more
        viewing, refuse it."""
        if not 0 <= seconds <= MAX_SECONDS or (bytes_total is not None and bytes_total < 0):
            return True
        now = self._now_for(credential.tenant_id)
        with self._lock:
            session = self._sessions.get(session_id) or self._begin(
                credential, session_id, seconds, now
            )
            if session is None:
                return True
            self._minutes(session, seconds // MINUTE)
            if bytes_total is not None:
                if session.bytes_total is not None and bytes_total > session.bytes_total:
                    growth = bytes_total - session.bytes_total
                    self._emit(session, f"b{seconds}", DELIVERED_BYTES, growth, now)
                session.bytes_total = bytes_total
            session.seconds, session.seen = max(seconds, session.seconds), now
            self._charge(session, session_id)
            return not session.exhausted

    def admit(self, credential: KnownCredential, session_id: str) -> bool:
        """A session starts (``on_play``, allowed): on a prepaid metered plan, hold its first
        stretch of viewing; False when the wallet cannot pay for a minute of it. Blocking
        (one transaction); call it off the event loop."""
        tenant, sub_id = credential.tenant_id, credential.subscription_id
        if self._charger is None or not session_id or self._known_unmetered(sub_id):
            return True
        try:
            if VIEWING_SECONDS not in self._enabled(tenant):
                return True
            reservation = self._reserve_now(tenant, sub_id, session_id)
        except InsufficientFunds:
            return False
        except Exception:  # the database is away: let it play, the period's invoice bills it
            log.exception("reserving viewing for %s failed", session_id)
            return True
        if not reservation.metered:  # asked again after the metrics' time to live
            if len(self._unmetered) >= self._max_buffer:
                self._unmetered.clear()
            self._unmetered[sub_id] = self._clock.now()
        with self._lock:
            stale = self._sessions.pop(session_id, None)
            if stale is not None and stale.hold_id:
                self._actions.append((SETTLE, stale.tenant_id, stale.hold_id))
            session = self._begin(credential, session_id, 0, self._now_for(tenant))
            if session is None:
                if reservation.hold_id:
                    self._actions.append((SETTLE, tenant, reservation.hold_id))
                return True
            session.metered, session.hold_id = reservation.metered, reservation.hold_id
            session.covered, session.early = reservation.seconds, _early(reservation.seconds)
        return True

    def ended(self, session_id: str) -> None:
        """The session is over: its last, partial minute counts too."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is None:
                return
            now = self._now_for(session.tenant_id)
            tail = min(max(now - session.seen, timedelta(0)), MAX_TAIL)
            played = session.seconds + int(tail.total_seconds())
            self._minutes(session, played // MINUTE)
            rest = played - session.minutes * MINUTE
            if rest > 0:
                self._emit(session, str(session.minutes), VIEWING_SECONDS, rest, now)
            self._release(session)

    def _begin(
        self, credential: KnownCredential, session_id: str, seconds: int, now: datetime
    ) -> _Session | None:
        access = self._index.tenant(credential.tenant_id)
        sub = access.subscriptions.get(credential.subscription_id) if access else None
        if sub is None:
            return None
        self._forget_stale(now)
        # The start second makes ids unique when a server reuses a session id (nginx-rtmp
        # numbers clients from 1 again after a restart).
        started = now - timedelta(seconds=seconds)
        prefix = f"{session_id}:{int(started.timestamp())}"
        if len(prefix) > MAX_ID - 16:
            prefix = "feed:" + hashlib.sha256(prefix.encode()).hexdigest()[:40]
        # Seen first mid-session (this process started after it): its earlier minutes and
        # bytes were another process's to count, so counting starts here.
        minutes = seconds // MINUTE if seconds >= MINUTE else 0
        session = _Session(
            credential.tenant_id,
            sub.customer_id,
            sub.id,
            prefix,
            started,
            minutes,
            seconds,
            now,
            None,
        )
        self._sessions[session_id] = session
        return session

    def _minutes(self, session: _Session, whole: int) -> None:
        for minute in range(session.minutes, min(whole, session.minutes + MAX_STEP)):
            at = session.started + timedelta(seconds=(minute + 1) * MINUTE)
            self._emit(session, str(minute), VIEWING_SECONDS, MINUTE, at)
        session.minutes = max(session.minutes, whole)

    def _emit(self, session: _Session, suffix: str, metric: str, value: int, at: datetime) -> None:
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1
            return
        event = {
            "id": f"{session.prefix}:{suffix}",
            "customer_id": session.customer_id,
            "subscription_id": session.subscription_id,
            "metric": metric,
            "value": value,
            "timestamp": min(at, self._now_for(session.tenant_id)).isoformat(),
        }
        self._buffer.append((session.tenant_id, event))

    def _forget_stale(self, now: datetime) -> None:
        if len(self._sessions) % 1024 == 0:  # now and then, not on every new session
            stale = [k for k, s in self._sessions.items() if now - s.seen > STALE]
            for key in stale:
                self._release(self._sessions.pop(key))

    def _reserve_now(self, tenant_id: str, subscription_id: str, session_id: str) -> Reservation:
        """The charger's reservation; refused once, it is asked again after charging what
        ended sessions still hold (a viewer who restarts the player, or zaps, would
        otherwise wait for the flusher to release the last session's money)."""
        assert self._charger is not None
        try:
            return self._charger.reserve(tenant_id, subscription_id, session_id)
        except InsufficientFunds:
            with self._lock:
                queued = any(kind == SETTLE for kind, _, _ in self._actions)
            if not queued:
                raise
        self.flush()
        return self._charger.reserve(tenant_id, subscription_id, session_id)

    def _known_unmetered(self, subscription_id: str) -> bool:
        checked = self._unmetered.get(subscription_id)
        return checked is not None and self._clock.now() - checked < self._metrics_ttl

    # -- charging (under the lock; the flusher does the work) ------------------------------
    def _charge(self, session: _Session, key: str) -> None:
        """Queue a reservation for a session not asked about yet, or whose reservation runs
        out within a minute."""
        if self._charger is None or session.asking or session.metered is False:
            return
        if session.metered is None or session.seconds + session.early >= session.covered:
            session.asking = True
            self._actions.append((RESERVE, session.tenant_id, key))

    def _release(self, session: _Session) -> None:
        """The session is gone: charge its reservation."""
        if session.hold_id is not None:
            self._actions.append((SETTLE, session.tenant_id, session.hold_id))
            session.hold_id = None

    # -- the flusher side ------------------------------------------------------------------
    def flush(self) -> int:
        """Ingest what the callbacks buffered; how many events were stored."""
        with self._lock:
            buffered, self._buffer = self._buffer, []
            actions, self._actions = self._actions, []
        by_tenant: dict[str, list[dict[str, Any]]] = {}
        for tenant_id, event in buffered:
            by_tenant.setdefault(tenant_id, []).append(event)
        stored = 0
        for tenant_id, events in by_tenant.items():
            try:
                codes = self._enabled(tenant_id)
            except Exception:  # the database is away: keep the events for the next flush
                log.exception("reading the usage metrics of %s failed", tenant_id)
                self._requeue(tenant_id, events)
                continue
            wanted = [e for e in events if e["metric"] in codes]
            for start in range(0, len(wanted), MAX_BATCH):
                stored += self._ingest(tenant_id, wanted[start : start + MAX_BATCH])
        for kind, tenant_id, key in actions:  # after the ingest: charges see the viewing
            if kind == SETTLE:
                self._settle(tenant_id, key)
            else:
                self._reserve(tenant_id, key)
        return stored

    def _settle(self, tenant_id: str, hold_id: str) -> None:
        assert self._charger is not None
        try:
            self._charger.settle(tenant_id, hold_id)
        except Exception:  # it lapses and releases; the period's invoice bills the viewing
            log.exception("charging reservation %s failed", hold_id)

    def _reserve(self, tenant_id: str, key: str) -> None:
        """Charge the session's reservation and hold the next one (two transactions)."""
        assert self._charger is not None
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return
            subscription_id, previous, seconds = (
                session.subscription_id,
                session.hold_id,
                session.seconds,
            )
        try:
            if VIEWING_SECONDS not in self._enabled(tenant_id):
                reservation = NOT_METERED
            else:
                if previous is not None:
                    self._charger.settle(tenant_id, previous)
                reservation = self._charger.reserve(tenant_id, subscription_id, key)
        except InsufficientFunds:
            with self._lock:
                session.exhausted, session.hold_id, session.asking = True, None, False
            return
        except Exception:  # asked again at the next heartbeat
            log.exception("reserving viewing for %s failed", key)
            with self._lock:
                session.asking = False
            return
        with self._lock:
            live = self._sessions.get(key) is session
            session.metered, session.asking = reservation.metered, False
            session.hold_id = reservation.hold_id if live else None
            session.covered = seconds + reservation.seconds
            session.early = _early(reservation.seconds)
        if not live and reservation.hold_id is not None:  # it ended meanwhile
            self._settle(tenant_id, reservation.hold_id)

    def _enabled(self, tenant_id: str) -> frozenset[str]:
        now = self._clock.now()
        cached = self._codes.get(tenant_id)
        if cached is not None and now - cached[0] < self._metrics_ttl:
            return cached[1]
        with self._uow(read_only=True) as uow:
            found = uow.usage.metrics_by_code(tenant_id, list(FEED_CODES))
        codes = frozenset(code for code, m in found.items() if not m.archived)
        self._codes[tenant_id] = (now, codes)
        return codes

    def _ingest(self, tenant_id: str, events: Sequence[dict[str, Any]]) -> int:
        """One batch in one transaction; on failure the events wait for the next flush
        (their ids make a second attempt harmless)."""
        try:
            with self._uow() as uow:
                ctx = load_context(uow, tenant_id, self._clock, self._ids)
                accepted = ingest(uow, ctx, events, self._grace).accepted
                uow.commit()
                return accepted
        except Exception:
            log.exception("ingesting streaming usage of %s failed", tenant_id)
            self._requeue(tenant_id, events)
            return 0

    def _requeue(self, tenant_id: str, events: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            room = max(0, self._max_buffer - len(self._buffer))
            self._buffer.extend((tenant_id, e) for e in events[:room])
            self.dropped += max(0, len(events) - room)

    def start(self, interval: float = 1.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="usage-feed", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Flush, and charge every reservation: a session still playing is reserved again by
        whichever process hears of it next."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._lock:
            for session in self._sessions.values():
                self._release(session)
                session.metered = None
        self._safe_flush()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._safe_flush()

    def _safe_flush(self) -> None:
        try:
            self.flush()
        except Exception:  # a database restart must not end the feed
            log.exception("ingesting streaming usage failed")


def _early(reserved: int) -> int:
    """A long reservation is renewed a minute before it runs out, so that the session never
    plays unreserved; a minute's (all a low balance buys) when it has run out."""
    return MINUTE if reserved > 2 * MINUTE else 0
