"""Concurrent-connection rules: never more live sessions than the limit, reconnects keep
their slot, eviction takes the oldest (same IP first), silence expires a session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.sessions import DEFAULT_TTL, OverLimit, Session, admit, end, live

T0 = datetime(2026, 4, 10, 20, 0, tzinfo=UTC)


def session(n: int, device: str | None = None, ip: str = "198.51.100.1") -> Session:
    return Session(f"s{n}", device or f"dev{n}", ip, T0, T0)


def test_a_reconnecting_device_keeps_its_slot() -> None:
    first = admit([], session(1, "box"), 1, OverLimit.REFUSE_NEW, T0)
    again = admit(first.sessions, session(2, "box"), 1, OverLimit.REFUSE_NEW, T0)
    assert again.accepted
    assert [s.id for s in again.sessions] == ["s2"]
    assert [s.id for s in again.dropped] == ["s1"]
    assert not again.new


def test_refuse_new_keeps_the_watchers() -> None:
    full = admit([], session(1), 1, OverLimit.REFUSE_NEW, T0).sessions
    refused = admit(full, session(2), 1, OverLimit.REFUSE_NEW, T0)
    assert not refused.accepted
    assert refused.sessions == full


def test_drop_oldest_prefers_the_newcomers_ip() -> None:
    a = Session("a", "tv", "203.0.113.9", T0, T0)
    b = Session("b", "phone", "198.51.100.1", T0 + timedelta(seconds=5), T0 + timedelta(seconds=5))
    now = T0 + timedelta(seconds=10)
    result = admit([a, b], session(3, ip="198.51.100.1"), 2, OverLimit.DROP_OLDEST, now)
    assert result.accepted
    assert [s.id for s in result.dropped] == ["b"]  # same IP as the newcomer, though newer
    other_ip = admit([a, b], session(3, ip="192.0.2.7"), 2, OverLimit.DROP_OLDEST, now)
    assert [s.id for s in other_ip.dropped] == ["a"]  # otherwise the oldest


def test_a_heartbeat_refreshes_and_silence_expires() -> None:
    sessions = admit([], session(1), 1, OverLimit.REFUSE_NEW, T0).sessions
    later = T0 + DEFAULT_TTL - timedelta(seconds=1)
    beat = admit(sessions, session(1), 1, OverLimit.REFUSE_NEW, later)
    assert beat.accepted
    assert beat.sessions[0].last_seen == later
    assert live(beat.sessions, later + DEFAULT_TTL) == list(beat.sessions)
    gone = later + DEFAULT_TTL + timedelta(seconds=1)
    assert live(beat.sessions, gone) == []
    assert admit(beat.sessions, session(2), 1, OverLimit.REFUSE_NEW, gone).accepted
    assert end(beat.sessions, "s1") == ()


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(InvalidInput):
        admit([], session(1), 0, OverLimit.REFUSE_NEW, T0)


steps = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 3), st.integers(0, 40)), min_size=1, max_size=40
)


@given(steps, st.integers(1, 3), st.sampled_from(list(OverLimit)))
def test_never_more_live_sessions_than_the_limit(
    plays: list[tuple[int, int, int]], limit: int, policy: OverLimit
) -> None:
    sessions: tuple[Session, ...] = ()
    now = T0
    for session_no, device_no, seconds in plays:
        now += timedelta(seconds=seconds)
        candidate = Session(f"s{session_no}", f"d{device_no}", "192.0.2.1", now, now)
        before = live(sessions, now)
        result = admit(sessions, candidate, limit, policy, now)
        assert len(result.sessions) <= limit
        assert len({s.device for s in result.sessions}) == len(result.sessions)
        if result.accepted:
            assert candidate.id in {s.id for s in result.sessions}
            assert {s.id for s in result.dropped} <= {s.id for s in before}
        else:
            assert policy is OverLimit.REFUSE_NEW
            assert result.sessions == tuple(before)
        sessions = result.sessions
