"""In-process stores: this process's memory behind one lock; for a single server and tests.

Memory stays bounded: a key is dropped when a read finds all its sessions expired, and keys
nobody wrote to for ``ttl + RETENTION_MARGIN`` of real time are forgotten (see the package
docstring for why that clock is real time, not the caller's).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from iptv_billing.adapters.sessions import (
    DEFAULT_GUESS_WINDOW,
    DEFAULT_MAX_FAILURES,
    RETENTION_MARGIN,
    by_age,
    check_window,
    window_number,
)
from iptv_billing.domain import sessions as rules
from iptv_billing.domain.sessions import DEFAULT_TTL, Admission, OverLimit, Session

DEFAULT_MAX_IPS = 100_000  # IPv6 makes fresh addresses cheap: cap what a flood can cost


class _Stamped(Protocol):
    written_at: float  # monotonic seconds of the last write


_Entry = TypeVar("_Entry", bound=_Stamped)


def _forget_idle(entries: OrderedDict[str, _Entry], deadline: float) -> None:
    """Drop entries last written before ``deadline``; ``entries`` is kept oldest write first,
    so this stops at the first recent one (amortised O(1) per call)."""
    while entries:
        key, entry = next(iter(entries.items()))
        if entry.written_at >= deadline:
            return
        del entries[key]


@dataclass(slots=True)
class _Held:
    sessions: tuple[Session, ...]
    written_at: float


class InProcessSessionRegistry:
    def __init__(
        self, ttl: timedelta = DEFAULT_TTL, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("a session ttl must be positive")
        self.ttl = ttl
        self._retention = (ttl + RETENTION_MARGIN).total_seconds()
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._held: OrderedDict[str, _Held] = OrderedDict()  # least recently written first

    def __len__(self) -> int:
        """How many keys are held (tests, metrics)."""
        with self._lock:
            _forget_idle(self._held, self._monotonic() - self._retention)
            return len(self._held)

    def admit(
        self, key: str, candidate: Session, limit: int, policy: OverLimit, now: datetime
    ) -> Admission:
        with self._lock:
            current = self._live(key, now)
            admission = rules.admit(current, candidate, limit, policy, now, self.ttl)
            if admission.sessions != current:
                self._write(key, admission.sessions)
        return replace(admission, sessions=by_age(admission.sessions))

    def touch(self, key: str, session_id: str, now: datetime) -> Session | None:
        with self._lock:
            current = self._live(key, now)
            found = next((s for s in current if s.id == session_id), None)
            if found is None:
                return None
            refreshed = replace(found, last_seen=now)
            self._write(key, tuple(refreshed if s is found else s for s in current))
            return refreshed

    def end(self, key: str, session_id: str) -> Session | None:
        with self._lock:
            held = self._held.get(key)
            if held is None:
                return None
            found = next((s for s in held.sessions if s.id == session_id), None)
            if found is not None:
                self._write(key, rules.end(held.sessions, session_id))
            return found

    def live(self, key: str, now: datetime) -> tuple[Session, ...]:
        with self._lock:
            return by_age(self._live(key, now))

    def live_counts(self, keys: Sequence[str], now: datetime) -> dict[str, int]:
        with self._lock:
            return {key: len(self._live(key, now)) for key in keys}

    def close(self) -> None:
        with self._lock:
            self._held.clear()

    def _live(self, key: str, now: datetime) -> tuple[Session, ...]:
        """The key's live sessions; prunes the dead ones (not a write: keeps the key's age)."""
        _forget_idle(self._held, self._monotonic() - self._retention)
        held = self._held.get(key)
        if held is None:
            return ()
        current = tuple(rules.live(held.sessions, now, self.ttl))
        if not current:
            del self._held[key]
        elif len(current) < len(held.sessions):
            held.sessions = current
        return current

    def _write(self, key: str, kept: tuple[Session, ...]) -> None:
        if not kept:
            self._held.pop(key, None)
            return
        self._held[key] = _Held(kept, self._monotonic())
        self._held.move_to_end(key)


@dataclass(slots=True)
class _Failures:
    window: int  # window_number() of the failures counted
    count: int
    written_at: float


class InProcessGuessLimiter:
    """Fixed windows, as the Redis limiter: the same counts whichever store is configured."""

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window: timedelta = DEFAULT_GUESS_WINDOW,
        *,
        max_ips: int = DEFAULT_MAX_IPS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        check_window(max_failures, window)
        self.max_failures = max_failures
        self.window = window
        self._max_ips = max_ips
        self._retention = (window + RETENTION_MARGIN).total_seconds()
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._by_ip: OrderedDict[str, _Failures] = OrderedDict()  # least recently failed first

    def __len__(self) -> int:
        """How many addresses are held (tests, metrics)."""
        with self._lock:
            _forget_idle(self._by_ip, self._monotonic() - self._retention)
            return len(self._by_ip)

    def blocked(self, ip: str, now: datetime) -> bool:
        number = window_number(now, self.window)
        with self._lock:
            _forget_idle(self._by_ip, self._monotonic() - self._retention)
            held = self._by_ip.get(ip)
            return held is not None and held.window == number and held.count >= self.max_failures

    def failed(self, ip: str, now: datetime) -> None:
        number = window_number(now, self.window)
        with self._lock:
            _forget_idle(self._by_ip, self._monotonic() - self._retention)
            held = self._by_ip.pop(ip, None)
            count = held.count + 1 if held is not None and held.window == number else 1
            self._by_ip[ip] = _Failures(number, count, self._monotonic())
            if len(self._by_ip) > self._max_ips:
                self._by_ip.popitem(last=False)  # the stalest address goes first

    def close(self) -> None:
        with self._lock:
            self._by_ip.clear()
