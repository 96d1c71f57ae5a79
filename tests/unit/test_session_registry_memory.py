"""The in-process session registry applies exactly the rules of ``domain.sessions`` (checked
against the pure functions over a plain list), keeps heartbeating sessions alive, forgets
silent ones and idle keys, and never lets racing threads past the limit; the in-process guess
limiter blocks an address after too many failures until the window passes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from iptv_billing.adapters.sessions import (
    RETENTION_MARGIN,
    by_age,
    open_guess_limiter,
    open_session_registry,
)
from iptv_billing.adapters.sessions.memory import InProcessGuessLimiter, InProcessSessionRegistry
from iptv_billing.domain import sessions as rules
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.sessions import DEFAULT_TTL, OverLimit, Session

T0 = datetime(2026, 4, 10, 20, 0, tzinfo=UTC)  # on a minute: guess windows start here
KEY = "tenant-1:sub-1"
TTL = DEFAULT_TTL


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def play(n: int, device: str | None = None, ip: str = "198.51.100.1") -> Session:
    return Session(f"s{n}", device or f"dev{n}", ip, T0, T0)


# --------------------------------------------------------------------------- same as the rules


class AgainstTheRules(RuleBasedStateMachine):
    """Random admits, heartbeats, ends and silences on a few keys; the model is the pure rules
    applied to plain tuples."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = InProcessSessionRegistry(TTL)
        self.model: dict[str, tuple[Session, ...]] = {}
        self.now = T0

    def _pass(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(
        key=st.sampled_from(["a", "b"]),
        n=st.integers(0, 6),
        device=st.integers(0, 3),
        ip=st.sampled_from(["192.0.2.1", "192.0.2.2"]),
        limit=st.integers(1, 3),
        policy=st.sampled_from(list(OverLimit)),
        seconds=st.integers(0, 60),
    )
    def admit(
        self, key: str, n: int, device: int, ip: str, limit: int, policy: OverLimit, seconds: int
    ) -> None:
        self._pass(seconds)
        candidate = Session(f"s{n}", f"d{device}", ip, self.now, self.now)
        expected = rules.admit(self.model.get(key, ()), candidate, limit, policy, self.now, TTL)
        got = self.registry.admit(key, candidate, limit, policy, self.now)
        assert got == replace(expected, sessions=by_age(expected.sessions))
        self.model[key] = expected.sessions

    @rule(key=st.sampled_from(["a", "b"]), n=st.integers(0, 6), seconds=st.integers(0, 60))
    def touch(self, key: str, n: int, seconds: int) -> None:
        self._pass(seconds)
        current = rules.live(self.model.get(key, ()), self.now, TTL)
        found = next((s for s in current if s.id == f"s{n}"), None)
        got = self.registry.touch(key, f"s{n}", self.now)
        if found is None:
            assert got is None
            return
        assert got == replace(found, last_seen=self.now)
        self.model[key] = tuple(got if s is found else s for s in current)

    @rule(key=st.sampled_from(["a", "b"]), n=st.integers(0, 6))
    def end(self, key: str, n: int) -> None:
        held = self.model.get(key, ())
        got = self.registry.end(key, f"s{n}")
        live_one = next((s for s in rules.live(held, self.now, TTL) if s.id == f"s{n}"), None)
        if live_one is not None:
            assert got == live_one
        elif all(s.id != f"s{n}" for s in held):
            assert got is None
        # (an expired one may or may not have been pruned yet: either answer is right)
        self.model[key] = rules.end(held, f"s{n}")

    @rule(seconds=st.integers(0, 200))
    def silence(self, seconds: int) -> None:
        self._pass(seconds)

    @invariant()
    def live_sessions_match(self) -> None:
        keys = ["a", "b", "never-used"]
        expected = {k: by_age(rules.live(self.model.get(k, ()), self.now, TTL)) for k in keys}
        assert {k: self.registry.live(k, self.now) for k in keys} == expected
        assert self.registry.live_counts(keys, self.now) == {k: len(v) for k, v in expected.items()}
        assert len(self.registry) == sum(1 for v in expected.values() if v)


AgainstTheRules.TestCase.settings = settings(max_examples=60, stateful_step_count=30)
test_the_registry_follows_the_rules = AgainstTheRules.TestCase


# --------------------------------------------------------------------------- behaviours


def test_heartbeats_keep_a_session_alive_and_silence_ends_it() -> None:
    registry = InProcessSessionRegistry(TTL)
    assert registry.admit(KEY, play(1), 1, OverLimit.REFUSE_NEW, T0).new
    for beat in range(1, 6):  # well past one ttl in all
        at = T0 + beat * timedelta(seconds=60)
        refreshed = registry.touch(KEY, "s1", at)
        assert refreshed is not None
        assert refreshed.last_seen == at
        assert refreshed.started_at == T0
    last = T0 + timedelta(seconds=300)
    assert [s.id for s in registry.live(KEY, last + TTL)] == ["s1"]
    gone = last + TTL + timedelta(microseconds=1)
    assert registry.live(KEY, gone) == ()
    assert registry.touch(KEY, "s1", gone) is None
    assert registry.admit(KEY, play(2), 1, OverLimit.REFUSE_NEW, gone).accepted


def test_touch_ignores_unknown_and_ended_sessions() -> None:
    registry = InProcessSessionRegistry(TTL)
    registry.admit(KEY, play(1), 2, OverLimit.REFUSE_NEW, T0)
    assert registry.touch(KEY, "nope", T0) is None
    assert registry.touch("other:key", "s1", T0) is None
    ended = registry.end(KEY, "s1")
    assert ended is not None
    assert ended.id == "s1"
    assert registry.end(KEY, "s1") is None
    assert registry.touch(KEY, "s1", T0) is None
    assert registry.live(KEY, T0) == ()


def test_an_ended_session_frees_its_slot() -> None:
    registry = InProcessSessionRegistry(TTL)
    registry.admit(KEY, play(1), 1, OverLimit.REFUSE_NEW, T0)
    assert not registry.admit(KEY, play(2), 1, OverLimit.REFUSE_NEW, T0).accepted
    registry.end(KEY, "s1")
    assert registry.admit(KEY, play(2), 1, OverLimit.REFUSE_NEW, T0).new


def test_drop_oldest_reports_whom_to_kick() -> None:
    registry = InProcessSessionRegistry(TTL)
    for n in range(3):
        registry.admit(KEY, play(n), 2, OverLimit.DROP_OLDEST, T0 + timedelta(seconds=n))
    live = registry.live(KEY, T0 + timedelta(seconds=3))
    assert [s.id for s in live] == ["s1", "s2"]  # oldest first


def test_live_counts_cover_many_keys() -> None:
    registry = InProcessSessionRegistry(TTL)
    registry.admit("t:1", play(1), 3, OverLimit.REFUSE_NEW, T0)
    registry.admit("t:1", play(2), 3, OverLimit.REFUSE_NEW, T0)
    registry.admit("t:2", play(3), 3, OverLimit.REFUSE_NEW, T0)
    counts = registry.live_counts(["t:1", "t:2", "t:3", "t:1"], T0)
    assert counts == {"t:1": 2, "t:2": 1, "t:3": 0}
    assert registry.live_counts([], T0) == {}
    assert registry.live_counts(["t:1"], T0 + TTL + timedelta(seconds=1)) == {"t:1": 0}


def test_a_limit_below_one_is_refused_and_changes_nothing() -> None:
    registry = InProcessSessionRegistry(TTL)
    with pytest.raises(InvalidInput):
        registry.admit(KEY, play(1), 0, OverLimit.REFUSE_NEW, T0)
    assert len(registry) == 0


def test_keys_whose_sessions_all_expired_vanish_when_read() -> None:
    registry = InProcessSessionRegistry(TTL)
    for n in range(50):
        registry.admit(f"t:{n}", play(n), 1, OverLimit.REFUSE_NEW, T0)
    assert len(registry) == 50
    later = T0 + TTL + timedelta(seconds=1)
    assert registry.live_counts([f"t:{n}" for n in range(50)], later) == dict.fromkeys(
        (f"t:{n}" for n in range(50)), 0
    )
    assert len(registry) == 0


def test_idle_keys_are_forgotten_without_being_read() -> None:
    clock = FakeMonotonic()
    registry = InProcessSessionRegistry(TTL, monotonic=clock)
    for n in range(100):
        registry.admit(f"idle:{n}", play(n), 1, OverLimit.REFUSE_NEW, T0)
    clock.now += (TTL + RETENTION_MARGIN).total_seconds() / 2
    registry.admit("busy", play(1000), 1, OverLimit.REFUSE_NEW, T0)
    assert len(registry) == 101
    clock.now += (TTL + RETENTION_MARGIN).total_seconds() / 2 + 1
    registry.touch("busy", "s1000", T0 + timedelta(seconds=30))  # a write keeps "busy"
    assert len(registry) == 1
    assert registry.live_counts(["busy", "idle:0"], T0 + timedelta(seconds=30)) == {
        "busy": 1,
        "idle:0": 0,
    }


@pytest.fixture
def eager_thread_switches() -> Iterator[None]:
    """Switch threads far more often than usual, so that races show up."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("eager_thread_switches")
@pytest.mark.parametrize("policy", list(OverLimit))
def test_racing_threads_never_pass_the_limit(policy: OverLimit) -> None:
    registry = InProcessSessionRegistry(TTL)
    limit, threads, keys, per_key = 3, 16, 10, 5  # all threads reach each key about together
    admitted: list[tuple[str, Session, rules.Admission]] = []  # list.append is atomic
    seen_live: list[int] = []
    start = threading.Barrier(threads)

    def worker(t: int) -> None:
        start.wait()
        for k in range(keys):
            for i in range(per_key):
                candidate = Session(f"t{t}-{i}", f"box-{t}-{i}", "192.0.2.1", T0, T0)
                admission = registry.admit(f"k{k}", candidate, limit, policy, T0)
                admitted.append((f"k{k}", candidate, admission))
                seen_live.append(len(registry.live(f"k{k}", T0)))

    running = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert len(admitted) == len(seen_live) == threads * keys * per_key
    assert max(seen_live) <= limit
    for k in (f"k{k}" for k in range(keys)):
        on_key = [(candidate, a) for key, candidate, a in admitted if key == k]
        live_ids = {s.id for s in registry.live(k, T0)}
        assert len(live_ids) == limit
        if policy is OverLimit.REFUSE_NEW:
            assert {c.id for c, a in on_key if a.new} == live_ids
            assert all(a.dropped == () for _, a in on_key)
        else:
            # Every session admitted is live or was reported dropped exactly once.
            dropped = [s.id for _, a in on_key for s in a.dropped]
            assert all(a.accepted and a.new for _, a in on_key)
            assert len(dropped) == len(set(dropped)) == len(on_key) - limit
            assert set(dropped) | live_ids == {c.id for c, _ in on_key}


def test_the_factory_without_a_url_is_in_process() -> None:
    registry = open_session_registry(None, ttl=timedelta(seconds=10))
    assert isinstance(registry, InProcessSessionRegistry)
    assert registry.ttl == timedelta(seconds=10)
    limiter = open_guess_limiter("", max_failures=2)
    assert isinstance(limiter, InProcessGuessLimiter)
    registry.close()
    limiter.close()


# --------------------------------------------------------------------------- guess limiter


def test_the_limiter_blocks_after_too_many_failures_until_the_window_passes() -> None:
    limiter = InProcessGuessLimiter(max_failures=3, window=timedelta(minutes=1))
    ip, other = "203.0.113.7", "2001:db8::1"
    for n in range(2):
        limiter.failed(ip, T0 + timedelta(seconds=n))
        assert not limiter.blocked(ip, T0 + timedelta(seconds=n))
    limiter.failed(ip, T0 + timedelta(seconds=10))
    assert limiter.blocked(ip, T0 + timedelta(seconds=10))
    assert limiter.blocked(ip, T0 + timedelta(seconds=59))
    assert not limiter.blocked(other, T0 + timedelta(seconds=10))  # per address
    assert not limiter.blocked(ip, T0 + timedelta(minutes=1, seconds=10))  # the window passed
    limiter.failed(ip, T0 + timedelta(minutes=1, seconds=10))  # counting starts again
    assert not limiter.blocked(ip, T0 + timedelta(minutes=1, seconds=10))


def test_the_limiter_forgets_idle_addresses_and_caps_a_flood() -> None:
    clock = FakeMonotonic()
    limiter = InProcessGuessLimiter(max_failures=1, max_ips=100, monotonic=clock)
    for n in range(500):
        limiter.failed(f"2001:db8::{n:x}", T0)
    assert len(limiter) == 100
    assert limiter.blocked("2001:db8::1f3", T0)  # the latest are kept
    clock.now += (timedelta(minutes=1) + RETENTION_MARGIN).total_seconds() + 1
    assert len(limiter) == 0


def test_a_limiter_needs_a_sane_configuration() -> None:
    with pytest.raises(ValueError, match="max_failures"):
        InProcessGuessLimiter(max_failures=0)
    with pytest.raises(ValueError, match="window"):
        InProcessGuessLimiter(window=timedelta(0))
