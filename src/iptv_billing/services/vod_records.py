"""VOD records (what ``uow.vod`` reads and writes) and the log entry of a rental."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from iptv_billing.domain.entitlement import Window
from iptv_billing.domain.vod import VodItem
from iptv_billing.ledger.entries import RECORD_VERSION, moment
from iptv_billing.services.ppv_records import EXTERNAL_METHODS, PAID, REFUNDED, WALLET

VOD_RENTAL = "vod_rental"  # log kind; ``about`` is the subscription, which the index follows
__all__ = ["EXTERNAL_METHODS", "PAID", "REFUNDED", "VOD_RENTAL", "WALLET"]


@dataclass(frozen=True, slots=True)
class VodItemRecord:
    id: str
    tenant_id: str
    stream_id: int  # the Xtream number (its own sequence per tenant, apart from channels')
    item: VodItem
    created_at: datetime
    updated_at: datetime

    @property
    def code(self) -> str:
        return self.item.code


@dataclass(frozen=True, slots=True)
class VodRentalRecord:
    id: str
    tenant_id: str
    item_id: str
    subscription_id: str
    customer_id: str
    currency: str
    amount_minor: int
    method: str  # wallet, card, manual, bank_transfer
    reference: str | None
    status: str  # paid, refunded
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    refunded_at: datetime | None = None

    def window(self, code: str) -> Window:
        return Window(code, self.starts_at, self.ends_at)


def rental_record(rental: VodRentalRecord, item: VodItemRecord, at: datetime) -> dict[str, object]:
    """The log record of a rental or its refund: enough to recompute the charge."""
    return {
        "v": RECORD_VERSION,
        "type": VOD_RENTAL,
        "tenant": rental.tenant_id,
        "rental": rental.id,
        "item": item.id,
        "item_code": item.code,
        "subscription": rental.subscription_id,
        "customer": rental.customer_id,
        "status": rental.status,
        "method": rental.method,
        "currency": rental.currency,
        "minor": rental.amount_minor,
        "window": {"start": moment(rental.starts_at), "end": moment(rental.ends_at)},
        "at": moment(at),
    }
