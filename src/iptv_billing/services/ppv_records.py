"""Pay-per-view records (what ``uow.ppv`` reads and writes) and their log entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from iptv_billing.domain.ppv import PpvEvent, PpvStatus
from iptv_billing.ledger.entries import RECORD_VERSION, moment

PPV_PURCHASE = "ppv_purchase"  # log kind; ``about`` is the subscription, which the index follows
PAID, REFUNDED = "paid", "refunded"
WALLET = "wallet"
EXTERNAL_METHODS = ("card", "manual", "bank_transfer")


@dataclass(frozen=True, slots=True)
class PpvEventRecord:
    id: str
    tenant_id: str
    event: PpvEvent
    sold: int  # paid purchases now
    created_at: datetime
    updated_at: datetime

    @property
    def code(self) -> str:
        return self.event.code

    @property
    def cancelled(self) -> bool:
        return self.event.status is PpvStatus.CANCELLED


@dataclass(frozen=True, slots=True)
class PpvPurchaseRecord:
    id: str
    tenant_id: str
    event_id: str
    subscription_id: str
    customer_id: str
    currency: str
    amount_minor: int
    method: str  # wallet, card, manual, bank_transfer
    reference: str | None
    country: str | None
    status: str  # paid, refunded
    created_at: datetime
    refunded_at: datetime | None = None


def purchase_record(
    purchase: PpvPurchaseRecord, event: PpvEventRecord, at: datetime
) -> dict[str, object]:
    """The log record of a purchase or its refund: enough to recompute the charge."""
    window = event.event.window()
    return {
        "v": RECORD_VERSION,
        "type": PPV_PURCHASE,
        "tenant": purchase.tenant_id,
        "purchase": purchase.id,
        "event": event.id,
        "event_code": event.code,
        "subscription": purchase.subscription_id,
        "customer": purchase.customer_id,
        "status": purchase.status,
        "method": purchase.method,
        "currency": purchase.currency,
        "minor": purchase.amount_minor,
        "window": {"start": moment(window.start), "end": moment(window.end)},
        "at": moment(at),
    }
