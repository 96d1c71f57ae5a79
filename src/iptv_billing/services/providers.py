"""The card-provider port. Providers confirm asynchronously, decline, and deduplicate on the
idempotency key we send, which we derive from our own request so a retry never charges twice."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ChargeStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ProviderCharge:
    id: str
    status: ChargeStatus
    amount_minor: int
    currency: str
    failure_code: str | None = None


class PaymentProvider(Protocol):
    name: str

    def charge(
        self, *, idempotency_key: str, amount_minor: int, currency: str, payment_method: str
    ) -> ProviderCharge: ...

    def retrieve(self, charge_id: str) -> ProviderCharge: ...
