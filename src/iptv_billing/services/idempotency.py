"""Idempotency keys: the first response to a POST is stored and replayed for its key.

Keys are scoped per tenant. The protocol runs in three short transactions of its own:

1. ``begin`` reserves the key (committed at once, so concurrent duplicates see it);
2. the request runs in its own unit of work;
3. ``finish`` stores the response, or ``abandon`` releases the key.

Policy:

- same key, same request, response stored → the stored response is replayed;
- same key, same request, still running → 409 ``idempotency.in_progress`` (retry later);
- same key, a different request (body, method or path) → 409 ``idempotency.key_reused``;
- 2xx and 4xx responses are stored and replayed: the same request would fail the same way,
  and a client that fixed its request must use a new key;
- 5xx responses and unexpected exceptions are not stored: the key is released so that a
  retry runs again (the failed attempt committed nothing); nor are 401 and 403, which judge
  the credentials rather than the request.

A process that dies between steps 2 and 3 leaves its key in progress: the safe side, since
its effect may or may not have committed; an operator releases such keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import timedelta

from iptv_billing.domain.canonical import canonical_json
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.services.clock import Clock
from iptv_billing.services.ports import UnitOfWorkFactory
from iptv_billing.services.records import IdempotencyEntry

MAX_KEY_LENGTH = 255
MAX_STORED_PATH_LENGTH = 500  # the column's width; the fingerprint covers the full path
# A reservation can vanish between a failed reserve and the read (the owner abandoned it).
_BEGIN_ATTEMPTS = 3

# How long a key is remembered (as Stripe's); a retry after that runs as a new request.
RETENTION = timedelta(hours=24)
# No request runs this long (a billing run of a million subscriptions takes minutes), so an
# older in-progress reservation is a dead process's and may be taken over.
STALE_AFTER = timedelta(hours=1)


def validate_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise InvalidInput(
            "idempotency.invalid_key",
            f"an Idempotency-Key is 1 to {MAX_KEY_LENGTH} printable ASCII characters",
        )


def _framed(parts: Iterable[bytes]) -> bytes:
    # Length-prefixed so that no two different part lists hash alike.
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


def _canonical_body(body: bytes) -> tuple[bytes, bytes]:
    """(kind, bytes): JSON bodies in canonical form, so key order and spacing do not count."""
    try:
        return b"json", canonical_json(json.loads(body))
    except (ValueError, RecursionError, InvalidInput):  # not JSON, or floats / huge ints
        return b"raw", body


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    kind, payload = _canonical_body(body)
    text = (method.upper(), path)
    return hashlib.sha256(
        _framed([*(t.encode("utf-8", "surrogatepass") for t in text), kind, payload])
    ).hexdigest()


def _in_progress() -> Conflict:
    return Conflict(
        "idempotency.in_progress",
        "a request with this Idempotency-Key is still running; retry later",
    )


def _judge(entry: IdempotencyEntry, fingerprint: str) -> IdempotencyEntry:
    # The fingerprint covers method and path, so one comparison catches every reuse.
    if entry.request_hash != fingerprint:
        raise Conflict(
            "idempotency.key_reused",
            "this Idempotency-Key was used for a different request; use a new key",
        )
    if entry.status_code is None:
        raise _in_progress()
    return entry


def begin(
    uow_factory: UnitOfWorkFactory,
    tenant_id: str,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
    clock: Clock,
) -> IdempotencyEntry | None:
    """Reserve ``key``: None if the caller should run the request, else the entry to replay."""
    validate_key(key)
    for _ in range(_BEGIN_ATTEMPTS):
        with uow_factory() as uow:
            entry = IdempotencyEntry(
                tenant_id,
                key,
                method,
                path[:MAX_STORED_PATH_LENGTH],
                fingerprint,
                None,
                None,
                clock.now(),
            )
            if uow.idempotency.reserve(entry):
                uow.commit()
                return None
            # A reservation older than any request can run belongs to a process that died
            # between its work and storing the answer: release it and reserve again.
            if uow.idempotency.release_stale(tenant_id, key, clock.now() - STALE_AFTER):
                uow.commit()
                continue
            existing = uow.idempotency.get(tenant_id, key)
        if existing is not None:
            return _judge(existing, fingerprint)
    raise _in_progress()  # reserved and released over and over: heavy contention on the key


def finish(
    uow_factory: UnitOfWorkFactory, tenant_id: str, key: str, status_code: int, body: str
) -> None:
    """Store the response of a reserved key (see the policy above for which to store)."""
    with uow_factory() as uow:
        uow.idempotency.complete(tenant_id, key, status_code, body)
        uow.commit()


def purge_expired(uow_factory: UnitOfWorkFactory, clock: Clock) -> int:
    """Forget keys older than ``RETENTION`` (a retry after that is a new request)."""
    with uow_factory() as uow:
        purged = uow.idempotency.purge(clock.now() - RETENTION)
        uow.commit()
    return purged


def abandon(uow_factory: UnitOfWorkFactory, tenant_id: str, key: str) -> None:
    """Release a reservation whose request failed unexpectedly, so that a retry runs again."""
    with uow_factory() as uow:
        uow.idempotency.release(tenant_id, key)
        uow.commit()
