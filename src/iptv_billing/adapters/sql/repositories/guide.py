"""The programme guide: what each channel shows when (XMLTV programmes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select

from iptv_billing.adapters.sql.repositories._common import (
    PROGRAMMES,
    chunked,
    in_ids,
    to_db,
    to_record,
    to_values,
)
from iptv_billing.services.guide import LONGEST_PROGRAMME
from iptv_billing.services.records import ProgrammeRecord

_COLUMNS = PROGRAMMES.c


def _programme(row: Row[Any]) -> ProgrammeRecord:
    return to_record(ProgrammeRecord, row)


class SqlGuideRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add_many(self, programmes: Sequence[ProgrammeRecord]) -> None:
        for part in chunked(programmes, 1_000):
            self._c.execute(PROGRAMMES.insert(), [to_values(p) for p in part])

    def remove_between(
        self, tenant_id: str, channel_id: str, start: datetime, stop: datetime
    ) -> int:
        """Remove the channel's programmes that overlap [start, stop); how many went."""
        result = self._c.execute(
            delete(PROGRAMMES).where(
                _COLUMNS.tenant_id == tenant_id,
                _COLUMNS.channel_id == channel_id,
                *self._overlapping(start, stop),
            )
        )
        return result.rowcount

    def between(
        self,
        tenant_id: str,
        channel_ids: Sequence[str],
        start: datetime,
        stop: datetime,
        limit: int | None = None,
    ) -> Sequence[ProgrammeRecord]:
        """Programmes of these channels overlapping [start, stop), by channel then start;
        ``limit`` applies per call (used with one channel)."""
        found: list[ProgrammeRecord] = []
        for part in chunked(channel_ids):
            query = (
                select(PROGRAMMES)
                .where(
                    _COLUMNS.tenant_id == tenant_id,
                    in_ids(self._c, _COLUMNS.channel_id, part),
                    *self._overlapping(start, stop),
                )
                .order_by(_COLUMNS.channel_id, _COLUMNS.start)
            )
            if limit is not None:
                query = query.limit(limit - len(found))
            found += map(_programme, self._c.execute(query))
            if limit is not None and len(found) >= limit:
                break
        return found

    @staticmethod
    def _overlapping(start: datetime, stop: datetime) -> tuple[Any, ...]:
        # No programme lasts longer than LONGEST_PROGRAMME (the service refuses them): the
        # lower bound on ``start`` lets the primary key (tenant, channel, start) serve it.
        return (
            _COLUMNS.start > to_db(start - LONGEST_PROGRAMME),
            _COLUMNS.start < to_db(stop),
            _COLUMNS.stop > to_db(start),
        )
