"""Concurrent connections ("multi connection"): which sessions of one credential are live, and
what happens when one more asks to play.

Pure rules over a credential's sessions; the registry that stores them (in process or Redis)
applies them atomically. A session is named by the streaming server's own stable id; a device
(``device``: a set-top box's MAC, or client IP plus user agent) reconnecting replaces its old
session instead of taking a second slot. Sessions not heard from for ``ttl`` are gone (servers
send heartbeats: nginx-rtmp ``on_update``, Flussonic re-checks, HLS segment reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from iptv_billing.domain.errors import InvalidInput

DEFAULT_TTL = timedelta(seconds=90)  # three missed 30-second heartbeats


class OverLimit(StrEnum):
    """What to do when a new session would exceed the limit."""

    REFUSE_NEW = "refuse_new"
    DROP_OLDEST = "drop_oldest"  # the server is told to kick the dropped sessions


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # the streaming server's session id (nginx-rtmp clientid, Flussonic session_id, …)
    device: str
    ip: str
    started_at: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class Admission:
    accepted: bool
    sessions: tuple[Session, ...]  # the credential's live sessions afterwards
    dropped: tuple[Session, ...] = ()  # sessions the server must end (replaced or evicted)
    new: bool = False  # whether the session took a slot it did not hold before


def live(sessions: Sequence[Session], now: datetime, ttl: timedelta = DEFAULT_TTL) -> list[Session]:
    return [s for s in sessions if now - s.last_seen <= ttl]


def admit(
    sessions: Sequence[Session],
    candidate: Session,
    limit: int,
    policy: OverLimit,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
) -> Admission:
    """Admit (or refresh) ``candidate`` among a credential's ``sessions``."""
    if limit < 1:
        raise InvalidInput("sessions.invalid_limit", "a credential has at least one connection")
    current = live(sessions, now, ttl)
    same = next((s for s in current if s.id == candidate.id), None)
    if same is not None:  # a heartbeat: nothing changes but the time
        refreshed = replace(same, last_seen=now)
        return Admission(True, tuple(refreshed if s is same else s for s in current))
    # The same device reconnecting takes over its own slot.
    replaced = [s for s in current if s.device == candidate.device]
    others = [s for s in current if s.device != candidate.device]
    fresh = replace(candidate, started_at=now, last_seen=now)
    if len(others) < limit:
        return Admission(True, (*others, fresh), tuple(replaced), new=not replaced)
    if policy is OverLimit.REFUSE_NEW:
        return Admission(False, tuple(current))
    evicted = _oldest_first(others, candidate.ip)[: len(others) - limit + 1]
    kept = [s for s in others if s not in evicted]
    return Admission(True, (*kept, fresh), (*replaced, *evicted), new=True)


def _oldest_first(sessions: Sequence[Session], ip: str) -> list[Session]:
    """Eviction order: sessions from the newcomer's IP first (the likeliest to be the same
    viewer on another app), then by age."""
    return sorted(sessions, key=lambda s: (s.ip != ip, s.started_at, s.id))


def end(sessions: Sequence[Session], session_id: str) -> tuple[Session, ...]:
    """The server reported the end of a session (``on_done``, a closed connection)."""
    return tuple(s for s in sessions if s.id != session_id)
