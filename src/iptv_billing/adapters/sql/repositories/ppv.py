"""Pay-per-view events, rentals and purchases.

Seats (``sold``) and refunds move only through guarded single statements: the check and the
write are one ``UPDATE ... WHERE``, so concurrent buyers never pass the capacity and a
purchase is refunded at most once, whatever the isolation level.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, exists, select

from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.repositories._common import (
    chunked,
    from_db,
    insert_unique,
    opt_from_db,
    page,
    table,
    to_db,
    to_record,
    to_values,
)
from iptv_billing.domain.entitlement import Window
from iptv_billing.domain.money import Money
from iptv_billing.domain.ppv import (
    PpvEvent,
    PpvStatus,
    discounts_from_document,
    discounts_to_document,
)
from iptv_billing.services.ppv_records import PAID, REFUNDED, PpvEventRecord, PpvPurchaseRecord
from iptv_billing.services.records import Page

PPV_EVENTS = table(tables.PpvEvent)
PPV_PRICES = table(tables.PpvPrice)
PPV_PURCHASES = table(tables.PpvPurchase)
_SCHEDULED = PpvStatus.SCHEDULED.value


def _purchase(row: Row[Any]) -> PpvPurchaseRecord:
    return to_record(PpvPurchaseRecord, row)


class SqlPpvRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    # -- events --------------------------------------------------------------------------------
    def add_event(self, record: PpvEventRecord) -> None:
        event = record.event
        values = {
            "id": record.id,
            "tenant_id": record.tenant_id,
            "code": event.code,
            "name": event.name,
            "channel_id": event.channel_id,
            "starts_at": to_db(event.starts_at),
            "ends_at": to_db(event.ends_at),
            "sale_starts_at": None if event.sale_starts_at is None else to_db(event.sale_starts_at),
            "sale_ends_at": to_db(event.sale_end),
            "replay_hours": event.replay_hours,
            "blackout_countries": ",".join(event.blackout_countries),
            "capacity": event.capacity,
            "sold": record.sold,
            "discounts": json.dumps(discounts_to_document(event.discounts), sort_keys=True),
            "status": event.status.value,
            "created_at": to_db(record.created_at),
            "updated_at": to_db(record.updated_at),
        }
        message = f"an event with code {event.code!r} exists"
        insert_unique(self._c, PPV_EVENTS, values, "ppv.duplicate_code", message)
        prices = [
            {
                "event_id": record.id,
                "currency": p.code,
                "tenant_id": record.tenant_id,
                "amount_minor": p.minor,
            }
            for p in event.prices
        ]
        self._c.execute(PPV_PRICES.insert(), prices)

    def get_event(
        self, tenant_id: str, event_id: str, *, for_update: bool = False
    ) -> PpvEventRecord | None:
        query = select(PPV_EVENTS).where(
            PPV_EVENTS.c.tenant_id == tenant_id, PPV_EVENTS.c.id == event_id
        )
        if for_update:
            query = query.with_for_update()
        return next(iter(self._events(self._c.execute(query).all())), None)

    def event_by_code(self, tenant_id: str, code: str) -> PpvEventRecord | None:
        query = select(PPV_EVENTS).where(
            PPV_EVENTS.c.tenant_id == tenant_id, PPV_EVENTS.c.code == code
        )
        return next(iter(self._events(self._c.execute(query).all())), None)

    def list_events(
        self, tenant_id: str, limit: int, after: str | None, status: str | None = None
    ) -> Page[PpvEventRecord]:
        query = select(PPV_EVENTS).where(PPV_EVENTS.c.tenant_id == tenant_id)
        if status is not None:
            query = query.where(PPV_EVENTS.c.status == status)
        rows = page(self._c, query, PPV_EVENTS, limit, after, lambda row: row)
        return Page(tuple(self._events(rows.items)), rows.has_more)

    def scheduled_events(self, tenant_id: str) -> Sequence[PpvEventRecord]:
        query = select(PPV_EVENTS).where(
            PPV_EVENTS.c.tenant_id == tenant_id, PPV_EVENTS.c.status == _SCHEDULED
        )
        return self._events(self._c.execute(query.order_by(PPV_EVENTS.c.id)).all())

    def _events(self, rows: Sequence[Row[Any]]) -> list[PpvEventRecord]:
        prices: dict[str, list[Money]] = {row.id: [] for row in rows}
        for part in chunked(list(prices)):
            query = select(PPV_PRICES).where(PPV_PRICES.c.event_id.in_(part))
            for price in self._c.execute(query):
                prices[price.event_id].append(Money.from_minor(price.amount_minor, price.currency))
        return [_event(row, tuple(prices[row.id])) for row in rows]

    def take_seat(self, event_id: str) -> bool:
        c = PPV_EVENTS.c
        statement = (
            PPV_EVENTS.update()
            .where(
                c.id == event_id,
                c.status == _SCHEDULED,
                c.capacity.is_(None) | (c.sold < c.capacity),
            )
            .values(sold=c.sold + 1)
        )
        return self._c.execute(statement).rowcount == 1

    def release_seat(self, event_id: str) -> None:
        c = PPV_EVENTS.c
        self._c.execute(
            PPV_EVENTS.update().where(c.id == event_id, c.sold > 0).values(sold=c.sold - 1)
        )

    def cancel_event(self, tenant_id: str, event_id: str, at: datetime) -> bool:
        c = PPV_EVENTS.c
        statement = (
            PPV_EVENTS.update()
            .where(c.tenant_id == tenant_id, c.id == event_id, c.status == _SCHEDULED)
            .values(status=PpvStatus.CANCELLED.value, updated_at=to_db(at))
        )
        return self._c.execute(statement).rowcount == 1

    def cancelled_with_paid(self, tenant_id: str) -> Sequence[str]:
        paid = exists().where(
            PPV_PURCHASES.c.event_id == PPV_EVENTS.c.id, PPV_PURCHASES.c.status == PAID
        )
        query = select(PPV_EVENTS.c.id).where(
            PPV_EVENTS.c.tenant_id == tenant_id,
            PPV_EVENTS.c.status == PpvStatus.CANCELLED.value,
            paid,
        )
        return [str(i) for i in self._c.execute(query.order_by(PPV_EVENTS.c.id)).scalars()]

    # -- purchases -----------------------------------------------------------------------------
    def add_purchase(self, purchase: PpvPurchaseRecord) -> None:
        insert_unique(
            self._c,
            PPV_PURCHASES,
            to_values(purchase),
            "ppv.already_purchased",
            "this subscription has bought the event already",
        )

    def get_purchase(self, tenant_id: str, purchase_id: str) -> PpvPurchaseRecord | None:
        row = self._c.execute(
            select(PPV_PURCHASES).where(
                PPV_PURCHASES.c.tenant_id == tenant_id, PPV_PURCHASES.c.id == purchase_id
            )
        ).first()
        return None if row is None else _purchase(row)

    def purchase_of(
        self, tenant_id: str, event_id: str, subscription_id: str
    ) -> PpvPurchaseRecord | None:
        row = self._c.execute(
            select(PPV_PURCHASES).where(
                PPV_PURCHASES.c.tenant_id == tenant_id,
                PPV_PURCHASES.c.event_id == event_id,
                PPV_PURCHASES.c.subscription_id == subscription_id,
            )
        ).first()
        return None if row is None else _purchase(row)

    def list_purchases(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        *,
        event_id: str | None = None,
        subscription_id: str | None = None,
    ) -> Page[PpvPurchaseRecord]:
        query = select(PPV_PURCHASES).where(PPV_PURCHASES.c.tenant_id == tenant_id)
        if event_id is not None:
            query = query.where(PPV_PURCHASES.c.event_id == event_id)
        if subscription_id is not None:
            query = query.where(PPV_PURCHASES.c.subscription_id == subscription_id)
        return page(self._c, query, PPV_PURCHASES, limit, after, _purchase)

    def paid_purchases(
        self, tenant_id: str, event_id: str, limit: int
    ) -> Sequence[PpvPurchaseRecord]:
        query = (
            select(PPV_PURCHASES)
            .where(
                PPV_PURCHASES.c.tenant_id == tenant_id,
                PPV_PURCHASES.c.event_id == event_id,
                PPV_PURCHASES.c.status == PAID,
            )
            .order_by(PPV_PURCHASES.c.id)
            .limit(limit)
        )
        return [_purchase(row) for row in self._c.execute(query)]

    def mark_refunded(self, purchase_id: str, at: datetime) -> bool:
        c = PPV_PURCHASES.c
        statement = (
            PPV_PURCHASES.update()
            .where(c.id == purchase_id, c.status == PAID)
            .values(status=REFUNDED, refunded_at=to_db(at))
        )
        return self._c.execute(statement).rowcount == 1

    def windows_of(
        self, tenant_id: str, subscription_ids: Sequence[str]
    ) -> dict[str, tuple[Window, ...]]:
        found: dict[str, list[Window]] = {}
        p, e = PPV_PURCHASES.c, PPV_EVENTS.c
        for part in chunked(sorted(set(subscription_ids))):
            query = (
                select(p.subscription_id, e.code, e.starts_at, e.ends_at, e.replay_hours)
                .join(PPV_EVENTS, e.id == p.event_id)
                .where(
                    p.tenant_id == tenant_id,
                    p.subscription_id.in_(part),
                    p.status == PAID,
                    e.status == _SCHEDULED,
                )
                .order_by(p.subscription_id, e.starts_at)
            )
            for sub_id, code, start, end, replay in self._c.execute(query):
                window = _window(code, from_db(start), from_db(end), int(replay))
                found.setdefault(sub_id, []).append(window)
        return {sub_id: tuple(windows) for sub_id, windows in found.items()}


def _window(code: str, start: datetime, end: datetime, replay_hours: int) -> Window:
    return Window(code, start, end + timedelta(hours=replay_hours))


def _event(row: Row[Any], prices: tuple[Money, ...]) -> PpvEventRecord:
    countries = tuple(c for c in row.blackout_countries.split(",") if c)
    event = PpvEvent(
        code=row.code,
        name=row.name,
        channel_id=row.channel_id,
        starts_at=from_db(row.starts_at),
        ends_at=from_db(row.ends_at),
        prices=prices,
        sale_starts_at=opt_from_db(row.sale_starts_at),
        sale_ends_at=from_db(row.sale_ends_at),
        replay_hours=row.replay_hours,
        blackout_countries=countries,
        capacity=row.capacity,
        discounts=discounts_from_document(json.loads(row.discounts)),
        status=PpvStatus(row.status),
    )
    return PpvEventRecord(
        row.id,
        row.tenant_id,
        event,
        int(row.sold),
        from_db(row.created_at),
        from_db(row.updated_at),
    )
