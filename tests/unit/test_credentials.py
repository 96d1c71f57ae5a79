"""Line passwords, tokens and MAC addresses: generated secrets, salted hashes, strict input."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.domain.credentials import (
    PASSWORD_LENGTH,
    check_device_limit,
    check_username,
    hash_secret,
    new_password,
    new_token,
    normalise_mac,
)
from iptv_billing.domain.errors import Conflict, InvalidInput


def seeded(seed: int) -> random.Random:
    return random.Random(seed)


def test_generated_secrets_are_url_safe_and_seedable() -> None:
    password = new_password(seeded(1).randbytes)
    assert len(password) == PASSWORD_LENGTH
    assert set(password) <= set(string.ascii_letters + string.digits)
    assert password == new_password(seeded(1).randbytes)
    assert password != new_password(seeded(2).randbytes)
    token = new_token(seeded(1).randbytes)
    assert len(token) == 32
    assert set(token) <= set(string.ascii_letters + string.digits + "-_")


def test_password_characters_are_uniform_enough() -> None:
    rng = seeded(3)
    counts: dict[str, int] = {}
    for _ in range(2_000):
        for char in new_password(rng.randbytes):
            counts[char] = counts.get(char, 0) + 1
    assert len(counts) == 62
    assert max(counts.values()) < 2 * min(counts.values())  # no character twice as likely


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_a_hash_matches_its_secret_only(secret: str, other: str) -> None:
    stored = hash_secret(secret, seeded(4).randbytes)
    assert stored.matches(secret)
    assert stored.matches(other) == (other == secret)


def test_salts_differ_between_lines() -> None:
    a, b = hash_secret("same"), hash_secret("same")
    assert a.salt != b.salt
    assert a.digest != b.digest


@pytest.mark.parametrize("name", ["ab", "-alice", "alice smith", "al/ice", "a" * 65, "ä"])
def test_bad_usernames_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_username(name)
    assert check_username("alice.smith-2") == "alice.smith-2"


@pytest.mark.parametrize(
    ("given_mac", "normal"),
    [
        ("00:1a:79:ab:cd:ef", "00:1A:79:AB:CD:EF"),
        ("00-1A-79-AB-CD-EF", "00:1A:79:AB:CD:EF"),
        ("001A79ABCDEF", "00:1A:79:AB:CD:EF"),
    ],
)
def test_macs_are_normalised(given_mac: str, normal: str) -> None:
    assert normalise_mac(given_mac) == normal


@pytest.mark.parametrize(
    "bad", ["00:1A:79:AB:CD", "00:1A-79:AB:CD:EF", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "x"]
)
def test_bad_macs_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_mac(bad)


def test_the_device_limit() -> None:
    check_device_limit(1, 2)
    with pytest.raises(Conflict):
        check_device_limit(2, 2)
