"""Public ids: prefixed, time-ordered, fixed length, reproducible from a seed."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.services.clock import FixedClock
from iptv_billing.services.ids import TimeOrderedIds, encode_100_bits

ALPHABET = set("0123456789abcdefghjkmnpqrstvwxyz")


@given(st.integers(min_value=0, max_value=2**100 - 1), st.integers(0, 2**100 - 1))
def test_encoding_keeps_numeric_order_and_uses_crockford(a: int, b: int) -> None:
    ea, eb = encode_100_bits(a), encode_100_bits(b)
    assert len(ea) == len(eb) == 20
    assert set(ea) <= ALPHABET
    assert (ea < eb) == (a < b)


def test_ids_sort_by_creation_time() -> None:
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    ids = TimeOrderedIds(clock, random.Random(1))
    made = []
    for _ in range(50):
        made.append(ids.new("inv"))
        clock.set(clock.now() + timedelta(milliseconds=3))
    assert made == sorted(made)
    assert all(i.startswith("inv_") and len(i) == 24 for i in made)


def test_a_seed_reproduces_the_same_ids_and_different_seeds_do_not() -> None:
    def run(seed: int) -> list[str]:
        ids = TimeOrderedIds(FixedClock(datetime(2026, 1, 1, tzinfo=UTC)), random.Random(seed))
        return [ids.new("cus") for _ in range(5)]

    assert run(3) == run(3)
    assert run(3) != run(4)
    assert len(set(run(3))) == 5
