"""Signed URLs in nginx's secure_link form: the documentation's known answer, expiry, IP
binding and tampering."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.secure_links import LinkCheck, SecureLinkSigner, secure_link_token

SIGNER = SecureLinkSigner("a-long-operator-secret")


def test_the_nginx_documentation_example() -> None:
    # echo -n '2147483647/s/link127.0.0.1 secret' | openssl md5 -binary | openssl base64
    #   | tr +/ -_ | tr -d =            (nginx.org, ngx_http_secure_link_module)
    token = secure_link_token("/s/link", 2147483647, "secret", "127.0.0.1")
    assert token == "_e4Nc3iduzkWRm01TBBNYw"


def test_a_link_verifies_until_it_expires() -> None:
    url = SIGNER.url("https://cdn.example/", "/live/news/index.m3u8", 1_800_000_000, "192.0.2.7")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == "/live/news/index.m3u8"
    check = SIGNER.check(
        parts.path, query["md5"], int(query["expires"]), 1_799_999_999, "192.0.2.7"
    )
    assert check is LinkCheck.VALID
    assert SIGNER.check(parts.path, query["md5"], 1_800_000_000, 1_800_000_000, "192.0.2.7") is (
        LinkCheck.EXPIRED
    )


@pytest.mark.parametrize(
    ("uri", "expires", "ip"),
    [
        ("/live/sports/index.m3u8", 1_800_000_000, "192.0.2.7"),  # another stream
        ("/live/news/index.m3u8", 1_900_000_000, "192.0.2.7"),  # a later expiry
        ("/live/news/index.m3u8", 1_800_000_000, "192.0.2.8"),  # another viewer
    ],
)
def test_any_change_invalidates_the_link(uri: str, expires: int, ip: str) -> None:
    token = SIGNER.token("/live/news/index.m3u8", 1_800_000_000, "192.0.2.7")
    assert SIGNER.check(uri, token, expires, 0, ip) is LinkCheck.INVALID
    other = SecureLinkSigner("another-long-secret!!")
    assert other.check("/live/news/index.m3u8", token, 1_800_000_000, 0, "192.0.2.7") is (
        LinkCheck.INVALID
    )


def test_weak_secrets_and_bad_uris_are_refused() -> None:
    with pytest.raises(InvalidInput):
        SecureLinkSigner("short")
    with pytest.raises(InvalidInput):
        SIGNER.token("live/news", 1, None)
    assert SIGNER.check("no slash", "x", 1, 0) is LinkCheck.INVALID
    assert SIGNER.check("/a", "\u00e9\u00e9", 1, 0) is LinkCheck.INVALID
