"""Sealing of secrets that must be shown again: line passwords and play tokens.

Subscribers expect their playlist URL (which carries the password) in the portal at any time,
and Xtream panels need the password to create the line, so these are kept encrypted, not only
hashed: AES-256-GCM under a key in the key directory, with the credential id as associated
data, so a sealed value copied onto another credential does not open.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from iptv_billing.domain.errors import InvariantViolated

NONCE_BYTES = 12
_VERSION = "v1:"


class SecretBox:
    def __init__(self, key: bytes, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        if len(key) != 32:
            raise InvariantViolated("a secret box key is 32 bytes")
        self._aead = AESGCM(key)
        self._random_bytes = random_bytes

    def seal(self, plaintext: str, context: str) -> str:
        nonce = self._random_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def unseal(self, sealed: str, context: str) -> str:
        if not sealed.startswith(_VERSION):
            raise InvariantViolated("unknown sealed-secret format")
        raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise InvariantViolated("a sealed secret does not open with this key") from exc
        return plain.decode("utf-8")
