"""VOD items and rentals.

A refund is one guarded ``UPDATE ... WHERE status = 'paid'``: whoever's update takes the row
moves the money, so concurrent refunds never pay twice, whatever the isolation level.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select

from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.repositories._common import (
    chunked,
    from_db,
    insert_unique,
    page,
    table,
    to_db,
    to_record,
    to_values,
)
from iptv_billing.domain.entitlement import Window
from iptv_billing.domain.money import Money
from iptv_billing.domain.vod import RentalTerms, VodItem
from iptv_billing.services.records import Page
from iptv_billing.services.vod_records import PAID, REFUNDED, VodItemRecord, VodRentalRecord

VOD_ITEMS = table(tables.VodItem)
VOD_PRICES = table(tables.VodPrice)
VOD_RENTALS = table(tables.VodRental)


def _rental(row: Row[Any]) -> VodRentalRecord:
    return to_record(VodRentalRecord, row)


class SqlVodRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    # -- items ---------------------------------------------------------------------------------
    def next_stream_id(self, tenant_id: str) -> int:
        query = select(func.coalesce(func.max(VOD_ITEMS.c.stream_id), 0)).where(
            VOD_ITEMS.c.tenant_id == tenant_id
        )
        return int(self._c.execute(query).scalar_one()) + 1

    def add_item(self, record: VodItemRecord) -> None:
        item = record.item
        values = {
            "id": record.id,
            "tenant_id": record.tenant_id,
            "code": item.code,
            "name": item.name,
            "stream_id": record.stream_id,
            "source_url": item.source_url,
            "category": item.category,
            "poster_url": item.poster_url,
            "year": item.year,
            "duration_minutes": item.duration_minutes,
            "packages": ",".join(item.packages),
            "rental_hours": None if item.rental is None else item.rental.hours,
            "created_at": to_db(record.created_at),
            "updated_at": to_db(record.updated_at),
        }
        message = f"a VOD item with code {item.code!r} exists"
        insert_unique(self._c, VOD_ITEMS, values, "vod.duplicate_code", message)
        prices = [
            {
                "item_id": record.id,
                "currency": p.code,
                "tenant_id": record.tenant_id,
                "amount_minor": p.minor,
            }
            for p in (item.rental.prices if item.rental else ())
        ]
        if prices:
            self._c.execute(VOD_PRICES.insert(), prices)

    def get_item(self, tenant_id: str, item_id: str) -> VodItemRecord | None:
        query = select(VOD_ITEMS).where(
            VOD_ITEMS.c.tenant_id == tenant_id, VOD_ITEMS.c.id == item_id
        )
        return next(iter(self._items(self._c.execute(query).all())), None)

    def item_by_code(self, tenant_id: str, code: str) -> VodItemRecord | None:
        query = select(VOD_ITEMS).where(
            VOD_ITEMS.c.tenant_id == tenant_id, VOD_ITEMS.c.code == code
        )
        return next(iter(self._items(self._c.execute(query).all())), None)

    def list_items(self, tenant_id: str, limit: int, after: str | None) -> Page[VodItemRecord]:
        query = select(VOD_ITEMS).where(VOD_ITEMS.c.tenant_id == tenant_id)
        rows = page(self._c, query, VOD_ITEMS, limit, after, lambda row: row)
        return Page(tuple(self._items(rows.items)), rows.has_more)

    def all_items(self, tenant_id: str) -> Sequence[VodItemRecord]:
        query = select(VOD_ITEMS).where(VOD_ITEMS.c.tenant_id == tenant_id)
        return self._items(self._c.execute(query.order_by(VOD_ITEMS.c.stream_id)).all())

    def _items(self, rows: Sequence[Row[Any]]) -> list[VodItemRecord]:
        prices: dict[str, list[Money]] = {row.id: [] for row in rows}
        for part in chunked(list(prices)):
            query = select(VOD_PRICES).where(VOD_PRICES.c.item_id.in_(part))
            for price in self._c.execute(query):
                prices[price.item_id].append(Money.from_minor(price.amount_minor, price.currency))
        return [_item(row, tuple(prices[row.id])) for row in rows]

    # -- rentals -------------------------------------------------------------------------------
    def add_rental(self, rental: VodRentalRecord) -> None:
        self._c.execute(VOD_RENTALS.insert(), to_values(rental))

    def get_rental(self, tenant_id: str, rental_id: str) -> VodRentalRecord | None:
        row = self._c.execute(
            select(VOD_RENTALS).where(
                VOD_RENTALS.c.tenant_id == tenant_id, VOD_RENTALS.c.id == rental_id
            )
        ).first()
        return None if row is None else _rental(row)

    def current_rental(
        self, tenant_id: str, item_id: str, subscription_id: str, at: datetime
    ) -> VodRentalRecord | None:
        """A paid rental of the item by the subscription whose window covers ``at``."""
        c = VOD_RENTALS.c
        query = (
            select(VOD_RENTALS)
            .where(
                c.tenant_id == tenant_id,
                c.item_id == item_id,
                c.subscription_id == subscription_id,
                c.status == PAID,
                c.starts_at <= to_db(at),
                c.ends_at > to_db(at),
            )
            .order_by(c.ends_at.desc())
        )
        row = self._c.execute(query).first()
        return None if row is None else _rental(row)

    def list_rentals(
        self, tenant_id: str, limit: int, after: str | None, *, subscription_id: str
    ) -> Page[VodRentalRecord]:
        query = select(VOD_RENTALS).where(
            VOD_RENTALS.c.tenant_id == tenant_id,
            VOD_RENTALS.c.subscription_id == subscription_id,
        )
        return page(self._c, query, VOD_RENTALS, limit, after, _rental)

    def mark_refunded(self, rental_id: str, at: datetime) -> bool:
        c = VOD_RENTALS.c
        statement = (
            VOD_RENTALS.update()
            .where(c.id == rental_id, c.status == PAID)
            .values(status=REFUNDED, refunded_at=to_db(at))
        )
        return self._c.execute(statement).rowcount == 1

    def windows_of(
        self, tenant_id: str, subscription_ids: Sequence[str], at: datetime
    ) -> dict[str, tuple[Window, ...]]:
        """Per subscription, the windows of its paid rentals not ended by ``at``."""
        found: dict[str, list[Window]] = {}
        r, i = VOD_RENTALS.c, VOD_ITEMS.c
        for part in chunked(sorted(set(subscription_ids))):
            query = (
                select(r.subscription_id, i.code, r.starts_at, r.ends_at)
                .join(VOD_ITEMS, i.id == r.item_id)
                .where(
                    r.tenant_id == tenant_id,
                    r.subscription_id.in_(part),
                    r.status == PAID,
                    r.ends_at > to_db(at),
                )
                .order_by(r.subscription_id, r.starts_at)
            )
            for sub_id, code, start, end in self._c.execute(query):
                found.setdefault(sub_id, []).append(Window(code, from_db(start), from_db(end)))
        return {sub_id: tuple(windows) for sub_id, windows in found.items()}


def _item(row: Row[Any], prices: tuple[Money, ...]) -> VodItemRecord:
    rental = None if row.rental_hours is None else RentalTerms(prices, int(row.rental_hours))
    item = VodItem(
        code=row.code,
        name=row.name,
        source_url=row.source_url,
        category=row.category,
        poster_url=row.poster_url,
        year=row.year,
        duration_minutes=row.duration_minutes,
        packages=tuple(p for p in row.packages.split(",") if p),
        rental=rental,
    )
    return VodItemRecord(
        row.id,
        row.tenant_id,
        int(row.stream_id),
        item,
        from_db(row.created_at),
        from_db(row.updated_at),
    )
