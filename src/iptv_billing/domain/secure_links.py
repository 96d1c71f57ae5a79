"""Signed, expiring URLs for streaming servers that cannot call billing back.

The format is nginx's ``secure_link`` module with the expression its documentation shows,
``secure_link_md5 "$secure_link_expires$uri$remote_addr secret";``: the token is the unpadded
base64url MD5 of expiry (Unix seconds), URI, optionally the client IP, a space and the secret.
The same links work with Ministra's ``nginx_secure_link`` and any server configured that way.
MD5 is what nginx offers here; the secret is what makes the link unforgeable, and the expiry
keeps a leaked link short-lived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, urlencode

from iptv_billing.domain.errors import InvalidInput


class LinkCheck(StrEnum):
    """What nginx's ``$secure_link`` would be: valid, expired ("0") or invalid ("")."""

    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class SecureLinkSigner:
    secret: str

    def __post_init__(self) -> None:
        if len(self.secret) < 16 or any(c.isspace() for c in self.secret):
            raise InvalidInput(
                "secure_link.weak_secret", "the secret needs 16+ characters and no spaces"
            )

    def token(self, uri: str, expires: int, ip: str | None = None) -> str:
        return secure_link_token(uri, expires, self.secret, ip)

    def url(self, base: str, uri: str, expires: int, ip: str | None = None) -> str:
        """``<base><uri>?md5=<token>&expires=<expires>``, the query nginx reads."""
        query = urlencode({"md5": self.token(uri, expires, ip), "expires": expires})
        return f"{base.rstrip('/')}{quote(uri)}?{query}"

    def check(
        self, uri: str, token: str, expires: int, now: int, ip: str | None = None
    ) -> LinkCheck:
        """Verify a link as nginx would (constant-time comparison)."""
        try:
            expected = self.token(uri, expires, ip)
        except InvalidInput:
            return LinkCheck.INVALID
        if not hmac.compare_digest(expected.encode(), token.encode("ascii", "replace")):
            return LinkCheck.INVALID
        return LinkCheck.EXPIRED if expires <= now else LinkCheck.VALID


def secure_link_token(uri: str, expires: int, secret: str, ip: str | None = None) -> str:
    """base64url(MD5("<expires><uri><ip> <secret>")), unpadded: nginx's documented form."""
    _check_uri(uri)
    material = f"{expires}{uri}{ip or ''} {secret}".encode()
    digest = hashlib.md5(material, usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _check_uri(uri: str) -> None:
    if not uri.startswith("/") or any(c.isspace() for c in uri):
        raise InvalidInput("secure_link.invalid_uri", "the URI is an absolute path, no spaces")
