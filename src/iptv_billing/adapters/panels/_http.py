"""An HTTP client the panel adapters either own or borrow (tests and pools pass their own)."""

from __future__ import annotations

from typing import Self

import httpx


class OwnedHttpClient:
    def __init__(self, http: httpx.Client | None, timeout: float) -> None:
        self._timeout = timeout
        self._owned = http is None
        # Redirects are not followed: a panel or receiver answering 3xx is misconfigured.
        self._http = http if http is not None else httpx.Client(follow_redirects=False)

    def close(self) -> None:
        """Close the HTTP client if this object created it (a passed-in one is the caller's)."""
        if self._owned:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
