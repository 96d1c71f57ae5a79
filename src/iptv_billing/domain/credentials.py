"""Access credentials a subscription hands out: Xtream-style lines (username and password),
tokens for signed or play URLs, and MAC-bound set-top boxes (Ministra style).

Players send line passwords in URLs on every request, so the platform generates them (high
entropy, URL-safe) and keeps only a salted SHA-256: a fast hash is safe for a random secret,
and the authorization path cannot afford a slow one. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass

from iptv_billing.domain.errors import Conflict, InvalidInput

SALT_BYTES = 16
PASSWORD_LENGTH = 16
TOKEN_BYTES = 24
# Xtream apps put usernames and passwords in URL paths: keep to characters that need no quoting.
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}")
_PASSWORD_ALPHABET = string.ascii_letters + string.digits
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-]?)(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}")

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class SecretHash:
    """A stored secret: salt and SHA-256(salt || secret), both hex."""

    salt: str
    digest: str

    def matches(self, secret: str) -> bool:
        candidate = _digest(bytes.fromhex(self.salt), secret)
        return hmac.compare_digest(candidate, self.digest)


def _digest(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode("utf-8")).hexdigest()


def hash_secret(secret: str, random_bytes: RandomBytes = secrets.token_bytes) -> SecretHash:
    salt = random_bytes(SALT_BYTES)
    return SecretHash(salt.hex(), _digest(salt, secret))


def check_username(username: str) -> str:
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise InvalidInput(
            "credential.invalid_username",
            "a username is 3-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return username


def new_password(random_bytes: RandomBytes = secrets.token_bytes) -> str:
    """16 characters from 62 (about 95 bits), URL-safe as it is."""
    # Rejection sampling keeps the characters uniform (256 is not a multiple of 62).
    out: list[str] = []
    while len(out) < PASSWORD_LENGTH:
        for byte in random_bytes(PASSWORD_LENGTH):
            if byte < 248 and len(out) < PASSWORD_LENGTH:
                out.append(_PASSWORD_ALPHABET[byte % 62])
    return "".join(out)


def new_token(random_bytes: RandomBytes = secrets.token_bytes) -> str:
    """A 32-character URL-safe token (192 bits), as Xtream's ``/play/{token}`` expects."""
    return base64.urlsafe_b64encode(random_bytes(TOKEN_BYTES)).decode("ascii")


def normalise_mac(mac: str) -> str:
    """``00:1a:79:AB-CD-EF`` style input → ``00:1A:79:AB:CD:EF``; refuses anything else,
    and the all-zero and broadcast addresses no device has."""
    if not isinstance(mac, str) or not _MAC.fullmatch(mac.strip()):
        raise InvalidInput("credential.invalid_mac", f"not a MAC address: {mac!r}")
    digits = re.sub(r"[^0-9A-Fa-f]", "", mac).upper()
    if digits in ("000000000000", "FFFFFFFFFFFF"):
        raise InvalidInput("credential.invalid_mac", f"not a device's MAC address: {mac!r}")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def check_device_limit(registered: int, limit: int) -> None:
    """A subscription registers at most ``limit`` devices (subscribers reset them)."""
    if registered >= limit:
        raise Conflict(
            "credential.device_limit",
            f"{registered} devices are registered, the limit is {limit}: reset one first",
        )
