"""What stream authorization needs besides the database: a store of live sessions and a brake
on credential guessing, as typed protocols.

``adapters/sessions`` implements both in process (one server) and on Redis (several). Keys are
subscriptions (``"{tenant_id}:{subscription_id}"``): all credentials of a subscription share
its connection limit. Every time comes from the caller, so tenants on test clocks work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from iptv_billing.domain.sessions import Admission, OverLimit, Session


class SessionRegistry(Protocol):
    """Live sessions per key, changed atomically by the rules of ``domain.sessions``.

    Sessions come back oldest first (by ``started_at``, then id).
    """

    ttl: timedelta

    def admit(
        self, key: str, candidate: Session, limit: int, policy: OverLimit, now: datetime
    ) -> Admission: ...

    def touch(self, key: str, session_id: str, now: datetime) -> Session | None:
        """A heartbeat: refresh last_seen; None when the session is not live (dropped, expired,
        unknown)."""
        ...

    def end(self, key: str, session_id: str) -> Session | None:
        """The server ended a session; the ended session if the registry still held it (without
        a time it cannot tell one expired but not yet pruned)."""
        ...

    def live(self, key: str, now: datetime) -> tuple[Session, ...]: ...

    def live_counts(self, keys: Sequence[str], now: datetime) -> dict[str, int]:
        """Live sessions of many keys at once (the player API's ``active_cons``)."""
        ...

    def close(self) -> None: ...


class GuessLimiter(Protocol):
    """Credential guessing per client IP: after `max_failures` failed logins inside `window`,
    the IP is refused until the window passes."""

    def blocked(self, ip: str, now: datetime) -> bool: ...
    def failed(self, ip: str, now: datetime) -> None: ...
    def close(self) -> None: ...
