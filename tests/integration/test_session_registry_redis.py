"""The Redis session registry on a real redis-server: the same answers as the in-process one
for any sequence of calls, heartbeats and expiry, keys that expire in Redis itself, no lost
update between concurrent writers (threads in a transaction's window, whole processes racing
for the same slots), a fixed-window guess limiter shared by every server, and a lost Redis
reported as ``Unavailable("sessions.store_unavailable")``."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iptv_billing.adapters.sessions import (
    RETENTION_MARGIN,
    open_guess_limiter,
    open_session_registry,
)
from iptv_billing.adapters.sessions.memory import InProcessSessionRegistry
from iptv_billing.adapters.sessions.redis_store import (
    RedisGuessLimiter,
    RedisSessionRegistry,
    encode,
)
from iptv_billing.domain import sessions as rules
from iptv_billing.domain.errors import Unavailable
from iptv_billing.domain.sessions import DEFAULT_TTL, Admission, OverLimit, Session
from redis_fixture import RedisServer, require_redis_server

T0 = datetime(2026, 4, 10, 20, 0, tzinfo=UTC)  # on a minute: guess windows start here
KEY = "tenant-1:sub-1"
TTL = DEFAULT_TTL
LIMIT = 3


def play(n: int, device: str | None = None, ip: str = "198.51.100.1") -> Session:
    return Session(f"s{n}", device or f"dev{n}", ip, T0, T0)


@pytest.fixture
def registry(redis_url: str, redis_prefix: str) -> Iterator[RedisSessionRegistry]:
    opened = RedisSessionRegistry.from_url(redis_url, TTL, redis_prefix)
    yield opened
    opened.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    opened = redis.Redis.from_url(redis_url)
    yield opened
    opened.close()


# --------------------------------------------------------------------------- same answers

_example_prefixes = itertools.count(1)
keys = st.sampled_from(["a", "b"])
numbers = st.integers(0, 6)
seconds = st.integers(0, 120)
calls = st.lists(
    st.one_of(
        st.tuples(
            st.just("admit"),
            keys,
            numbers,
            st.integers(0, 3),
            st.sampled_from(["192.0.2.1", "192.0.2.2"]),
            st.integers(1, 3),
            st.sampled_from(list(OverLimit)),
            seconds,
        ),
        st.tuples(st.just("touch"), keys, numbers, seconds),
        st.tuples(st.just("end"), keys, numbers),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls)
def test_redis_answers_as_the_in_process_registry(redis_url: str, steps: list[Any]) -> None:
    """The in-process registry is checked against the pure rules (unit tests); this one must
    give the same answers."""
    in_redis = RedisSessionRegistry.from_url(redis_url, TTL, f"same{next(_example_prefixes)}")
    in_memory = InProcessSessionRegistry(TTL)
    now = T0
    try:
        for step in steps:
            if step[0] == "admit":
                _, key, n, device, ip, limit, policy, wait = step
                now += timedelta(seconds=wait)
                candidate = Session(f"s{n}", f"d{device}", ip, now, now)
                expected = in_memory.admit(key, candidate, limit, policy, now)
                assert in_redis.admit(key, candidate, limit, policy, now) == expected
            elif step[0] == "touch":
                _, key, n, wait = step
                now += timedelta(seconds=wait)
                assert in_redis.touch(key, f"s{n}", now) == in_memory.touch(key, f"s{n}", now)
            else:
                _, key, n = step
                was_live = any(s.id == f"s{n}" for s in in_memory.live(key, now))
                ended = in_redis.end(key, f"s{n}")
                assert in_memory.end(key, f"s{n}") == (ended if was_live else None)
                if not was_live:  # Redis may still hold it expired: never a live one
                    assert ended is None or now - ended.last_seen > TTL
            for key in ("a", "b"):
                assert in_redis.live(key, now) == in_memory.live(key, now)
            assert in_redis.live_counts(["a", "b", "c"], now) == in_memory.live_counts(
                ["a", "b", "c"], now
            )
    finally:
        in_redis.close()


# --------------------------------------------------------------------------- behaviours


def test_heartbeats_keep_a_session_alive_and_silence_ends_it(
    registry: RedisSessionRegistry,
) -> None:
    assert registry.admit(KEY, play(1), 1, OverLimit.REFUSE_NEW, T0).new
    for beat in range(1, 6):  # well past one ttl in all
        at = T0 + beat * timedelta(seconds=60)
        refreshed = registry.touch(KEY, "s1", at)
        assert refreshed == Session("s1", "dev1", "198.51.100.1", T0, at)
    last = T0 + timedelta(seconds=300)
    assert [s.id for s in registry.live(KEY, last + TTL)] == ["s1"]
    gone = last + TTL + timedelta(microseconds=1)
    assert registry.live(KEY, gone) == ()
    assert registry.touch(KEY, "s1", gone) is None
    assert registry.admit(KEY, play(2), 1, OverLimit.REFUSE_NEW, gone).new


def test_end_frees_the_slot_and_live_counts_cover_many_keys(
    registry: RedisSessionRegistry,
) -> None:
    registry.admit(KEY, play(1), 1, OverLimit.REFUSE_NEW, T0)
    assert not registry.admit(KEY, play(2), 1, OverLimit.REFUSE_NEW, T0).accepted
    ended = registry.end(KEY, "s1")
    assert ended is not None
    assert ended.id == "s1"
    assert registry.end(KEY, "s1") is None
    assert registry.touch(KEY, "s1", T0) is None
    assert registry.admit(KEY, play(2), 1, OverLimit.REFUSE_NEW, T0).new
    registry.admit("t:2", play(3), 3, OverLimit.REFUSE_NEW, T0)
    registry.admit("t:2", play(4), 3, OverLimit.REFUSE_NEW, T0)
    assert registry.live_counts([KEY, "t:2", "t:3", KEY], T0) == {KEY: 1, "t:2": 2, "t:3": 0}
    assert registry.live_counts([], T0) == {}


def test_keys_expire_in_redis_itself(
    registry: RedisSessionRegistry, client: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    retention_ms = (TTL + RETENTION_MARGIN) // timedelta(milliseconds=1)
    registry.admit(KEY, play(1), 2, OverLimit.REFUSE_NEW, T0)
    registry.admit(KEY, play(2), 2, OverLimit.REFUSE_NEW, T0)
    name = registry.name(KEY)
    assert set(client.hkeys(name)) == {b"s1", b"s2"}  # one hash field per session
    assert retention_ms - 5_000 < client.pttl(name) <= retention_ms
    registry.end(KEY, "s1")
    registry.end(KEY, "s2")
    assert client.exists(name) == 0
    # A key whose sessions all expired is deleted by the next change, not kept empty.
    registry.admit(KEY, play(3), 1, OverLimit.REFUSE_NEW, T0)
    assert registry.touch(KEY, "s3", T0 + TTL + timedelta(seconds=1)) is None
    registry.admit(KEY, play(4), 1, OverLimit.REFUSE_NEW, T0 + TTL * 3)
    assert set(client.hkeys(name)) == {b"s4"}

    limiter = RedisGuessLimiter.from_url(redis_url, 5, timedelta(minutes=1), redis_prefix)
    limiter.failed("192.0.2.9", T0)
    window_ms = (timedelta(minutes=1) + RETENTION_MARGIN) // timedelta(milliseconds=1)
    assert 0 < client.pttl(limiter.name("192.0.2.9", T0)) <= window_ms
    limiter.close()


def test_a_write_between_read_and_commit_is_never_lost(
    registry: RedisSessionRegistry, redis_url: str, redis_prefix: str
) -> None:
    """Another server admits while this one is between WATCH and EXEC: the transaction fails,
    is retried on fresh data, and both sessions end up live."""
    other = RedisSessionRegistry.from_url(redis_url, TTL, redis_prefix)
    seen: list[tuple[Session, ...]] = []

    def change(current: tuple[Session, ...]) -> tuple[tuple[Session, ...], Admission]:
        seen.append(current)
        if len(seen) == 1:
            other.admit(KEY, play(2), LIMIT, OverLimit.REFUSE_NEW, T0)
        admission = rules.admit(current, play(1), LIMIT, OverLimit.REFUSE_NEW, T0, TTL)
        return admission.sessions, admission

    registry._change(KEY, T0, change)
    assert [s.id for s in seen[-1]] == ["s2"]
    assert {s.id for s in registry.live(KEY, T0)} == {"s1", "s2"}
    other.close()


def test_endless_conflicts_give_up_as_busy(
    redis_url: str, redis_prefix: str, client: redis.Redis
) -> None:
    registry = RedisSessionRegistry(redis.Redis.from_url(redis_url), TTL, redis_prefix)

    def change(current: tuple[Session, ...]) -> tuple[tuple[Session, ...], None]:
        client.hset(registry.name(KEY), "s9", encode(play(9)))  # another writer, every time
        return (play(1),), None

    with pytest.raises(Unavailable) as caught:
        registry._change(KEY, T0, change)
    assert caught.value.code == "sessions.store_busy"
    registry.close()


# --------------------------------------------------------------------------- processes racing

_WORKER = """
import json, sys
from datetime import datetime
from iptv_billing.adapters.sessions.redis_store import RedisSessionRegistry
from iptv_billing.domain.sessions import OverLimit, Session

url, prefix, worker, policy, rounds, per_round, now = sys.argv[1:]
now = datetime.fromisoformat(now)
registry = RedisSessionRegistry.from_url(url, prefix=prefix)
print("ready", flush=True)
sys.stdin.readline()
results = []
for r in range(int(rounds)):
    for i in range(int(per_round)):
        sid = f"w{worker}-r{r}-{i}"
        candidate = Session(sid, "box-" + sid, "192.0.2.1", now, now)
        admission = registry.admit(f"key{r}", candidate, 3, OverLimit(policy), now)
        results.append([r, sid, admission.new, [s.id for s in admission.dropped]])
print(json.dumps(results), flush=True)
"""


def _race(
    redis_url: str,
    prefix: str,
    policy: OverLimit,
    rounds: int,
    per_round: int,
    sample: Callable[[], None],
) -> list[list[Any]]:
    """Start 4 worker processes, let them go at once on the same keys, call ``sample`` while
    they run; every worker's ``[round, session id, new, dropped ids]``."""
    workers = [
        subprocess.Popen(
            [
                *(sys.executable, "-c", _WORKER, redis_url, prefix, str(w), policy.value),
                *(str(rounds), str(per_round), T0.isoformat()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        while any(worker.poll() is None for worker in workers):
            sample()
        results: list[list[Any]] = []
        for worker in workers:
            out, _ = worker.communicate(timeout=30)
            assert worker.returncode == 0
            results.extend(json.loads(out))
        return results
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def test_processes_racing_with_refuse_new_take_exactly_the_limit(
    registry: RedisSessionRegistry, redis_url: str, redis_prefix: str
) -> None:
    rounds, per_round = 20, 5  # each round a fresh key all 4 processes reach at once
    results = _race(redis_url, redis_prefix, OverLimit.REFUSE_NEW, rounds, per_round, lambda: None)
    assert len(results) == 4 * rounds * per_round
    for r in range(rounds):
        accepted = {sid for round_, sid, new, _ in results if round_ == r and new}
        assert len(accepted) == LIMIT
        assert {s.id for s in registry.live(f"key{r}", T0)} == accepted
    assert all(dropped == [] for *_, dropped in results)


def test_processes_racing_with_drop_oldest_never_pass_the_limit(
    registry: RedisSessionRegistry, client: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    samples: list[int] = []

    def sample() -> None:
        samples.append(len(registry.live("key0", T0)))
        samples.append(int(client.hlen(registry.name("key0"))))

    results = _race(redis_url, redis_prefix, OverLimit.DROP_OLDEST, 1, 150, sample)
    assert len(samples) > 10
    assert max(samples) <= LIMIT
    live_ids = {s.id for s in registry.live("key0", T0)}
    assert len(live_ids) == LIMIT
    # Every session admitted is live or was reported dropped exactly once: no lost update.
    dropped = [sid for *_, ids in results for sid in ids]
    assert all(new for _, _, new, _ in results)
    assert len(dropped) == len(set(dropped)) == len(results) - LIMIT
    assert set(dropped) | live_ids == {sid for _, sid, _, _ in results}


# --------------------------------------------------------------------------- guess limiter


def test_the_limiter_counts_failures_from_every_server(redis_url: str, redis_prefix: str) -> None:
    one = open_guess_limiter(redis_url, max_failures=3, prefix=redis_prefix)
    two = open_guess_limiter(redis_url, max_failures=3, prefix=redis_prefix)
    assert isinstance(one, RedisGuessLimiter)
    ip, other = "203.0.113.7", "2001:db8::1"
    one.failed(ip, T0)
    two.failed(ip, T0 + timedelta(seconds=5))
    assert not one.blocked(ip, T0 + timedelta(seconds=5))
    one.failed(ip, T0 + timedelta(seconds=10))
    assert two.blocked(ip, T0 + timedelta(seconds=10))
    assert one.blocked(ip, T0 + timedelta(seconds=59))
    assert not one.blocked(other, T0 + timedelta(seconds=10))  # per address
    assert not two.blocked(ip, T0 + timedelta(minutes=1, seconds=10))  # the window passed
    one.close()
    two.close()


# --------------------------------------------------------------------------- Redis going away


def test_a_lost_redis_is_unavailable_with_a_stable_code(tmp_path: Path) -> None:
    server = RedisServer(require_redis_server(), tmp_path)
    server.start()
    try:
        registry = open_session_registry(server.url, prefix="outage")
        limiter = open_guess_limiter(server.url, prefix="outage")
        assert isinstance(registry, RedisSessionRegistry)
        assert registry.admit(KEY, play(1), 1, OverLimit.REFUSE_NEW, T0).new
        server.stop()
        attempts: list[Callable[[], object]] = [
            lambda: registry.admit(KEY, play(2), 1, OverLimit.REFUSE_NEW, T0),
            lambda: registry.touch(KEY, "s1", T0),
            lambda: registry.end(KEY, "s1"),
            lambda: registry.live(KEY, T0),
            lambda: registry.live_counts([KEY], T0),
            lambda: limiter.blocked("192.0.2.1", T0),
            lambda: limiter.failed("192.0.2.1", T0),
        ]
        for attempt in attempts:
            with pytest.raises(Unavailable) as caught:
                attempt()
            assert caught.value.code == "sessions.store_unavailable"
        registry.close()
        limiter.close()
    finally:
        server.stop()
