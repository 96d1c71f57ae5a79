"""A test card provider that behaves like a real one, for demos, test tenants and the suite.

Like Stripe's test mode it understands magic payment-method tokens:

| token                        | outcome                                                  |
|------------------------------|----------------------------------------------------------|
| ``pm_card_visa``             | pending, succeeds once ``confirm_after`` has passed        |
| ``pm_card_instant``          | succeeds at once                                          |
| ``pm_card_declined``         | fails at once: ``card_declined``                          |
| ``pm_card_insufficient_funds`` | fails at once: ``insufficient_funds``                   |
| ``pm_card_async_decline``    | pending, then fails: ``card_declined``                    |

Charges are deduplicated on the idempotency key: the same key returns the same charge, and the
same key with a different amount or currency is refused, as real providers do.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from iptv_billing.domain.errors import Conflict, InvalidInput, NotFound
from iptv_billing.services.clock import Clock
from iptv_billing.services.providers import ChargeStatus, ProviderCharge

_IMMEDIATE = {
    "pm_card_instant": (ChargeStatus.SUCCEEDED, None),
    "pm_card_declined": (ChargeStatus.FAILED, "card_declined"),
    "pm_card_insufficient_funds": (ChargeStatus.FAILED, "insufficient_funds"),
}
_DEFERRED = {
    "pm_card_visa": (ChargeStatus.SUCCEEDED, None),
    "pm_card_async_decline": (ChargeStatus.FAILED, "card_declined"),
}


@dataclass(frozen=True, slots=True)
class _Stored:
    key: str
    charge: ProviderCharge
    settles_at: datetime
    final: ProviderCharge


class TestCardProvider:
    """In-memory state, as a remote provider's would be: it outlives our transactions."""

    __test__ = False  # not a pytest test class
    name = "test"

    def __init__(self, clock: Clock, confirm_after: timedelta = timedelta(seconds=2)) -> None:
        self._clock = clock
        self._confirm_after = confirm_after
        self._by_key: dict[str, _Stored] = {}
        self._by_id: dict[str, str] = {}
        self._lock = threading.Lock()

    def charge(
        self, *, idempotency_key: str, amount_minor: int, currency: str, payment_method: str
    ) -> ProviderCharge:
        if amount_minor <= 0:
            raise InvalidInput("provider.invalid_amount", "amount must be positive")
        with self._lock:
            stored = self._by_key.get(idempotency_key)
            if stored is not None:
                return self._replay(stored, amount_minor, currency)
            stored = self._create(idempotency_key, amount_minor, currency, payment_method)
            self._by_key[idempotency_key] = stored
            self._by_id[stored.charge.id] = idempotency_key
            return self._current(stored)

    def retrieve(self, charge_id: str) -> ProviderCharge:
        with self._lock:
            key = self._by_id.get(charge_id)
            if key is None:
                raise NotFound("provider.unknown_charge", f"no charge {charge_id}")
            return self._current(self._by_key[key])

    def _replay(self, stored: _Stored, amount_minor: int, currency: str) -> ProviderCharge:
        if (stored.charge.amount_minor, stored.charge.currency) != (amount_minor, currency):
            raise Conflict("provider.idempotency_mismatch", "key reused with other parameters")
        return self._current(stored)

    def _create(self, key: str, amount: int, currency: str, method: str) -> _Stored:
        charge_id = "ch_" + hashlib.sha256(key.encode()).hexdigest()[:24]
        now = self._clock.now()
        if method in _IMMEDIATE:
            status, code = _IMMEDIATE[method]
            charge = ProviderCharge(charge_id, status, amount, currency, code)
            return _Stored(key, charge, now, charge)
        if method not in _DEFERRED:
            charge = ProviderCharge(
                charge_id, ChargeStatus.FAILED, amount, currency, "invalid_payment_method"
            )
            return _Stored(key, charge, now, charge)
        status, code = _DEFERRED[method]
        pending = ProviderCharge(charge_id, ChargeStatus.PENDING, amount, currency)
        final = ProviderCharge(charge_id, status, amount, currency, code)
        return _Stored(key, pending, now + self._confirm_after, final)

    def _current(self, stored: _Stored) -> ProviderCharge:
        return stored.final if self._clock.now() >= stored.settles_at else stored.charge
