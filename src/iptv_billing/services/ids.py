"""Public ids: a type prefix and 20 Crockford base32 characters (``cus_01J…``).

Time-ordered (48-bit milliseconds first) so B-tree inserts stay local, with 52 random bits from
an injected, seedable source.
"""

from __future__ import annotations

import random
import secrets
from typing import Protocol

from iptv_billing.services.clock import Clock

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


class IdGenerator(Protocol):
    def new(self, prefix: str) -> str: ...


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


class TimeOrderedIds:
    def __init__(self, clock: Clock, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng

    def _random_bits(self) -> int:
        return self._rng.getrandbits(52) if self._rng else secrets.randbits(52)

    def new(self, prefix: str) -> str:
        millis = int(self._clock.now().timestamp() * 1000) & ((1 << 48) - 1)
        return f"{prefix}_{_encode((millis << 52) | self._random_bits(), 20)}"
