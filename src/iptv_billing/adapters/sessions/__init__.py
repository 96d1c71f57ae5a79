"""Where live stream sessions and failed logins are kept: in this process (one server, tests)
or in Redis (several servers share the limits).

Liveness always follows the caller's clock (tenants may run test clocks). Only the storage's
own housekeeping runs on real time, as Redis key expiry does: a key nobody wrote to for
``ttl + RETENTION_MARGIN`` is forgotten. A global sweep by a caller's clock could not be
trusted: one tenant's test clock a year ahead would make everyone's sessions look expired.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from iptv_billing.domain.sessions import DEFAULT_TTL, Session
from iptv_billing.services.stream_ports import GuessLimiter, SessionRegistry

RETENTION_MARGIN = timedelta(seconds=30)  # clock skew between application servers and Redis
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_MAX_FAILURES = 20
DEFAULT_GUESS_WINDOW = timedelta(minutes=1)


def by_age(sessions: Iterable[Session]) -> tuple[Session, ...]:
    """The order registries answer in: oldest first, ties by id."""
    return tuple(sorted(sessions, key=lambda s: (s.started_at, s.id)))


def window_number(now: datetime, window: timedelta) -> int:
    """Fixed windows counted from the epoch, so every process derives the same one from `now`."""
    return (now - EPOCH) // window


def check_window(max_failures: int, window: timedelta) -> None:
    if max_failures < 1 or window <= timedelta(0):
        raise ValueError("a guess limiter needs max_failures >= 1 and a positive window")


# The implementations import the helpers above, hence imported where used.


def open_session_registry(
    redis_url: str | None, ttl: timedelta = DEFAULT_TTL, prefix: str = "iptv"
) -> SessionRegistry:
    """The in-process registry without a URL, else the Redis one (no connection until used)."""
    if not redis_url:
        from iptv_billing.adapters.sessions.memory import InProcessSessionRegistry

        return InProcessSessionRegistry(ttl)
    from iptv_billing.adapters.sessions.redis_store import RedisSessionRegistry

    return RedisSessionRegistry.from_url(redis_url, ttl=ttl, prefix=prefix)


def open_guess_limiter(
    redis_url: str | None,
    max_failures: int = DEFAULT_MAX_FAILURES,
    window: timedelta = DEFAULT_GUESS_WINDOW,
    prefix: str = "iptv",
) -> GuessLimiter:
    if not redis_url:
        from iptv_billing.adapters.sessions.memory import InProcessGuessLimiter

        return InProcessGuessLimiter(max_failures, window)
    from iptv_billing.adapters.sessions.redis_store import RedisGuessLimiter

    return RedisGuessLimiter.from_url(redis_url, max_failures, window, prefix=prefix)
