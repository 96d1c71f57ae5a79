"""Submitting checkpoints to c2sp.org/tlog-witness witnesses over HTTP (keep-alive)."""

from __future__ import annotations

import httpx

from iptv_billing.domain.errors import Unavailable

MAX_ANSWER = 64 * 1024  # a few cosignature lines; anything longer is not a witness


class HttpWitnessTransport:
    def __init__(self, timeout: float = 10.0) -> None:
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)

    def add_checkpoint(self, url: str, body: bytes) -> tuple[int, bytes]:
        try:
            response = self._client.post(
                f"{url.rstrip('/')}/add-checkpoint",
                content=body,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            raise Unavailable("witness.unreachable", f"{url}: {exc}") from exc
        return response.status_code, response.content[:MAX_ANSWER]

    def close(self) -> None:
        self._client.close()
