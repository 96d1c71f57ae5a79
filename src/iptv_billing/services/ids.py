"""Public ids: a type prefix and 20 Crockford base32 characters (``cus_06h02fxh…``).

Time-ordered (48-bit milliseconds first) so B-tree inserts stay local, then 52 random bits from
an injected, seedable source (by default a generator seeded once from the OS). Ids name rows;
they are not secrets, so a fast generator is the right trade.
"""

from __future__ import annotations

import base64
import random
import secrets
from typing import Protocol

from iptv_billing.services.clock import Clock

# RFC 4648 base32 → Crockford's alphabet (no i, l, o, u), lowercase.
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghjkmnpqrstvwxyz"
)
_MILLIS_MASK = (1 << 48) - 1


class IdGenerator(Protocol):
    def new(self, prefix: str) -> str: ...


def encode_100_bits(value: int) -> str:
    """20 base32 characters, most significant first, so ids sort like their numbers."""
    raw = (value << 4).to_bytes(13, "big")  # 104 bits: the value then four zero bits
    return base64.b32encode(raw).translate(_CROCKFORD)[:20].decode("ascii")


class TimeOrderedIds:
    def __init__(self, clock: Clock, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random(secrets.randbits(128))

    def new(self, prefix: str) -> str:
        millis = int(self._clock.now().timestamp() * 1000) & _MILLIS_MASK
        return f"{prefix}_{encode_100_bits((millis << 52) | self._rng.getrandbits(52))}"
