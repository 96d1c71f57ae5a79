"""Signed generic webhooks: one POST per event and target, never raising.

Body: compact JSON with sorted keys, ``{"created":..,"data":..,"id":..,"type":..}``. Headers:
``Content-Type: application/json``, ``Webhook-Id`` (the event id: receivers deduplicate on it,
since a retry or a replay sends the same id again), ``Webhook-Timestamp`` (Unix seconds of this
attempt), ``Webhook-Signature: t=<same>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` (see
``iptv_billing.domain.provisioning.sign``/``verify``; the header names follow the Standard
Webhooks draft, the signature format is Stripe's) and ``User-Agent: iptv-billing``.

Redirects are not followed (a 3xx is REJECTED: fix the URL, then replay).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import orjson

from iptv_billing.adapters.panels._http import OwnedHttpClient
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.provisioning import SIGNATURE_HEADER, Outcome, Secrets, outcome_of, sign

USER_AGENT = "iptv-billing"
DEFAULT_TIMEOUT = 10.0
EXCERPT_CHARS = 500
_EXCERPT_BYTES = 4 * EXCERPT_CHARS  # read no more of an answer than the excerpt can show


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """One attempt, for the delivery log. ``status`` is None when no HTTP answer came back;
    ``error`` then names the transport failure (e.g. ``ConnectError``)."""

    status: int | None
    outcome: Outcome
    response_excerpt: str
    duration_ms: int
    error: str | None = None


def webhook_body(
    event_id: str, event_type: str, payload: Mapping[str, object], created_unix: int
) -> bytes:
    """The canonical body; the same arguments always give the same bytes."""
    document = {"id": event_id, "type": event_type, "created": created_unix, "data": dict(payload)}
    try:
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        raise InvalidInput(
            "webhook.invalid_payload", f"the payload is not JSON-serialisable: {exc}"
        ) from exc


class WebhookSender(OwnedHttpClient):
    def __init__(self, http: httpx.Client | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(http, timeout)

    def send(
        self,
        url: str,
        secret: Secrets,
        event_id: str,
        event_type: str,
        payload: Mapping[str, object],
        at_unix: int,
        *,
        created_unix: int | None = None,
    ) -> DeliveryResult:
        """POST the event to ``url``, signed at ``at_unix`` with ``secret`` (or with each of
        several secrets while one is rotated).

        ``created_unix`` (default ``at_unix``) is the event's own time: a replay passes the
        original one, so the body stays the same while the signature is fresh. Transport
        failures come back as RETRY with status None; only bad arguments (a weak secret, a
        payload JSON cannot hold) raise ``InvalidInput``.
        """
        body = webhook_body(
            event_id, event_type, payload, at_unix if created_unix is None else created_unix
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Webhook-Id": event_id,
            "Webhook-Timestamp": str(at_unix),
            SIGNATURE_HEADER: sign(secret, body, at_unix),
        }
        started = time.perf_counter()
        status: int | None = None
        excerpt = b""
        error: str | None = None
        try:
            with self._http.stream(
                "POST", url, content=body, headers=headers, timeout=self._timeout
            ) as response:
                status = response.status_code
                for chunk in response.iter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= _EXCERPT_BYTES:
                        break
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            # A URL that can never work: retrying only delays the operator's fix.
            return self._result(None, Outcome.REJECTED, b"", started, type(exc).__name__)
        except httpx.HTTPError as exc:
            if status is None:
                error = type(exc).__name__
            # else: the status arrived and the body broke off; the status decides.
        outcome = outcome_of(status)
        return self._result(status, outcome, excerpt, started, error)

    @staticmethod
    def _result(
        status: int | None, outcome: Outcome, excerpt: bytes, started: float, error: str | None
    ) -> DeliveryResult:
        return DeliveryResult(
            status=status,
            outcome=outcome,
            response_excerpt=excerpt.decode("utf-8", "replace")[:EXCERPT_CHARS],
            duration_ms=round((time.perf_counter() - started) * 1000),
            error=error,
        )
