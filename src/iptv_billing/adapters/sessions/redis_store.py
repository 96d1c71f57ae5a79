"""Redis stores: every application server sees the same sessions and failure counts.

A key's sessions are one hash (field: session id; value: compact JSON with times as epoch
microseconds, UTC) under ``{prefix}:sessions:{key}``. Changes re-read the hash under ``WATCH``
and apply ``domain.sessions`` (the single source of the rules) in ``MULTI``/``EXEC``; another
writer in between makes ``EXEC`` fail and the change is retried on fresh data. Each write sets
``PEXPIRE`` to ttl + margin, so a key nobody writes to vanishes. Failed logins are fixed-window
counters ``{prefix}:guess:{window}:{ip}``. Any Redis failure surfaces as
``Unavailable("sessions.store_unavailable")``; a key changed by others on every one of
``MAX_ATTEMPTS`` tries as ``Unavailable("sessions.store_busy")``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
import redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.exceptions import RedisError, WatchError
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from iptv_billing.adapters.sessions import (
    DEFAULT_GUESS_WINDOW,
    DEFAULT_MAX_FAILURES,
    EPOCH,
    RETENTION_MARGIN,
    by_age,
    check_window,
    window_number,
)
from iptv_billing.domain import sessions as rules
from iptv_billing.domain.errors import Unavailable
from iptv_billing.domain.sessions import DEFAULT_TTL, Admission, OverLimit, Session

# Stream authorization waits on these: fail fast (503) rather than hang a player's request.
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0
CONNECTION_RETRIES = 2
MAX_ATTEMPTS = 50  # optimistic transactions lost to concurrent writers of the same key
_MICROSECOND = timedelta(microseconds=1)

_T = TypeVar("_T")
Change = Callable[[tuple[Session, ...]], tuple[tuple[Session, ...], _T]]


def connect(url: str) -> redis.Redis:
    """A client that gives up quickly; connects on first use."""
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), CONNECTION_RETRIES),
    )


@contextmanager
def _unavailable_on_redis_errors() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        # The URL may hold a password: name the failure, not the address.
        raise Unavailable(
            "sessions.store_unavailable",
            f"the session store (Redis) failed: {type(exc).__name__}; retry later",
        ) from exc


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return EPOCH + micros * _MICROSECOND


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def encode(session: Session) -> bytes:
    return orjson.dumps(
        {
            "d": session.device,
            "i": session.ip,
            "s": _micros(session.started_at),
            "l": _micros(session.last_seen),
        }
    )


def decode(session_id: str, value: bytes | str) -> Session:
    data: dict[str, Any] = orjson.loads(value)
    return Session(
        session_id, data["d"], data["i"], _moment(int(data["s"])), _moment(int(data["l"]))
    )


def _decode_hash(fields: Mapping[bytes | str, bytes | str]) -> dict[str, Session]:
    return {_text(k): decode(_text(k), v) for k, v in fields.items()}


class RedisSessionRegistry:
    def __init__(
        self,
        client: redis.Redis,
        ttl: timedelta = DEFAULT_TTL,
        prefix: str = "iptv",
        *,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("a session ttl must be positive")
        self.ttl = ttl
        self._client = client
        self._prefix = prefix
        self._max_attempts = max_attempts
        self._retention_ms = (ttl + RETENTION_MARGIN) // timedelta(milliseconds=1)

    @classmethod
    def from_url(
        cls, url: str, ttl: timedelta = DEFAULT_TTL, prefix: str = "iptv"
    ) -> RedisSessionRegistry:
        return cls(connect(url), ttl, prefix)

    def name(self, key: str) -> str:
        """The Redis key holding ``key``'s sessions."""
        return f"{self._prefix}:sessions:{key}"

    def admit(
        self, key: str, candidate: Session, limit: int, policy: OverLimit, now: datetime
    ) -> Admission:
        def change(current: tuple[Session, ...]) -> tuple[tuple[Session, ...], Admission]:
            admission = rules.admit(current, candidate, limit, policy, now, self.ttl)
            return admission.sessions, admission

        admission = self._change(key, now, change)
        return replace(admission, sessions=by_age(admission.sessions))

    def touch(self, key: str, session_id: str, now: datetime) -> Session | None:
        def change(current: tuple[Session, ...]) -> tuple[tuple[Session, ...], Session | None]:
            found = next((s for s in current if s.id == session_id), None)
            if found is None:
                return current, None
            refreshed = replace(found, last_seen=now)
            return tuple(refreshed if s is found else s for s in current), refreshed

        return self._change(key, now, change)

    def end(self, key: str, session_id: str) -> Session | None:
        # One MULTI block: what HGET answers is exactly what HDEL removed. Redis deletes a hash
        # left empty.
        name = self.name(key)
        with _unavailable_on_redis_errors(), self._client.pipeline() as pipe:
            pipe.hget(name, session_id)
            pipe.hdel(name, session_id)
            value, _deleted = pipe.execute()
        return None if value is None else decode(session_id, value)

    def live(self, key: str, now: datetime) -> tuple[Session, ...]:
        with _unavailable_on_redis_errors():
            stored = _decode_hash(self._client.hgetall(self.name(key)))
        return by_age(rules.live(list(stored.values()), now, self.ttl))

    def live_counts(self, keys: Sequence[str], now: datetime) -> dict[str, int]:
        unique = list(dict.fromkeys(keys))
        with _unavailable_on_redis_errors(), self._client.pipeline(transaction=False) as pipe:
            for key in unique:
                pipe.hgetall(self.name(key))
            replies: list[dict[bytes | str, bytes | str]] = pipe.execute()
        return {
            key: len(rules.live(list(_decode_hash(reply).values()), now, self.ttl))
            for key, reply in zip(unique, replies, strict=True)
        }

    def close(self) -> None:
        self._client.close()

    def _change(self, key: str, now: datetime, change: Change[_T]) -> _T:
        """Apply ``change`` to the key's live sessions as one optimistic transaction."""
        name = self.name(key)
        with _unavailable_on_redis_errors():
            for attempt in range(self._max_attempts):
                with self._client.pipeline() as pipe:
                    try:
                        # redis-py leaves Pipeline.watch unannotated.
                        pipe.watch(name)  # type: ignore[no-untyped-call]
                        stored = _decode_hash(pipe.hgetall(name))
                        current = by_age(rules.live(list(stored.values()), now, self.ttl))
                        after, result = change(current)
                        self._write(pipe, name, stored, after)
                        return result
                    except WatchError:  # another writer, or a lost connection: WATCH tells
                        pass
                # Spread retries so that contending writers stop colliding.
                time.sleep(random.uniform(0, 0.001 * min(attempt, 10)))
        raise Unavailable(
            "sessions.store_busy", "too many concurrent changes to these sessions; retry"
        )

    def _write(
        self,
        pipe: Pipeline,
        name: str,
        stored: Mapping[str, Session],
        after: tuple[Session, ...],
    ) -> None:
        changed: dict[FieldT, EncodableT] = {
            s.id: encode(s) for s in after if stored.get(s.id) != s
        }
        kept = {s.id for s in after}
        removed = [session_id for session_id in stored if session_id not in kept]
        if not changed and not removed:
            return  # nothing to write; the read was consistent on its own
        pipe.multi()
        if not after:
            pipe.delete(name)
        else:
            if removed:
                pipe.hdel(name, *removed)
            if changed:
                pipe.hset(name, mapping=changed)
            pipe.pexpire(name, self._retention_ms)
        pipe.execute()


class RedisGuessLimiter:
    def __init__(
        self,
        client: redis.Redis,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window: timedelta = DEFAULT_GUESS_WINDOW,
        prefix: str = "iptv",
    ) -> None:
        check_window(max_failures, window)
        self.max_failures = max_failures
        self.window = window
        self._client = client
        self._prefix = prefix
        self._expiry_ms = (window + RETENTION_MARGIN) // timedelta(milliseconds=1)

    @classmethod
    def from_url(
        cls,
        url: str,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window: timedelta = DEFAULT_GUESS_WINDOW,
        prefix: str = "iptv",
    ) -> RedisGuessLimiter:
        return cls(connect(url), max_failures, window, prefix)

    def name(self, ip: str, now: datetime) -> str:
        return f"{self._prefix}:guess:{window_number(now, self.window)}:{ip}"

    def blocked(self, ip: str, now: datetime) -> bool:
        with _unavailable_on_redis_errors():
            count = self._client.get(self.name(ip, now))
        return count is not None and int(count) >= self.max_failures

    def failed(self, ip: str, now: datetime) -> None:
        name = self.name(ip, now)
        with _unavailable_on_redis_errors(), self._client.pipeline() as pipe:
            pipe.incr(name)
            pipe.pexpire(name, self._expiry_ms)
            pipe.execute()

    def close(self) -> None:
        self._client.close()
