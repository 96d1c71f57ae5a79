"""Invoices with their lines, gapless numbering, and the queries dunning and reports need."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Row, func, select

from iptv_billing.adapters.sql.repositories._bulk import insert_new_returning_ids, insert_tuples
from iptv_billing.adapters.sql.repositories._common import (
    INVOICE_LINES,
    INVOICE_SEQUENCES,
    INVOICES,
    chunked,
    from_db,
    in_ids,
    insert_ignoring,
    is_postgresql,
    opt_to_db,
    page,
    to_db,
    to_record,
    to_values,
    unindexed,
)
from iptv_billing.domain.errors import InvariantViolated, NotFound
from iptv_billing.domain.invoice import InvoiceLine, LineKind
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import Period
from iptv_billing.services.records import InvoiceRecord, Page

_NOT_COLUMNS = frozenset({"lines"})
_FIXED = frozenset({"id", "tenant_id", "customer_id", "created_at", "lines"})
# Statuses in which an invoice can still be owed money (see InvoiceRecord.amount_due_minor).
_OWED = ("finalized", "uncollectible")
_BILLED = ("finalized", "paid", "uncollectible")  # not drafts, not voided


def _invoice(row: Row[Any]) -> InvoiceRecord:
    return to_record(InvoiceRecord, row)


def _line_rows(invoice: InvoiceRecord) -> list[dict[str, Any]]:
    return [
        {
            "invoice_id": invoice.id,
            "tenant_id": invoice.tenant_id,
            "position": position,
            "kind": line.kind.value,
            "description": line.description,
            "quantity": line.quantity,
            "unit_amount_minor": line.unit_amount.minor,
            "amount_minor": line.amount.minor,
            "period_start": opt_to_db(line.period.start) if line.period else None,
            "period_end": opt_to_db(line.period.end) if line.period else None,
        }
        for position, line in enumerate(invoice.lines)
    ]


# The COPY path: the record's fields in column order (records hold aware datetimes already).
_INVOICE_COLUMNS = tuple(c.name for c in INVOICES.columns)
_INVOICE_TUPLE = attrgetter(*_INVOICE_COLUMNS)
_LINE_COLUMNS = (
    "invoice_id", "tenant_id", "position", "kind", "description", "quantity",
    "unit_amount_minor", "amount_minor", "period_start", "period_end",
)  # fmt: skip


def _line_tuples(invoice: InvoiceRecord) -> list[tuple[Any, ...]]:
    return [
        (
            invoice.id,
            invoice.tenant_id,
            position,
            line.kind.value,
            line.description,
            line.quantity,
            line.unit_amount.minor,
            line.amount.minor,
            line.period.start if line.period else None,
            line.period.end if line.period else None,
        )
        for position, line in enumerate(invoice.lines)
    ]


def _line(row: Row[Any], currency: str) -> InvoiceLine:
    period = None
    if row.period_start is not None and row.period_end is not None:
        period = Period(from_db(row.period_start), from_db(row.period_end))
    return InvoiceLine(
        kind=LineKind(row.kind),
        description=row.description,
        quantity=row.quantity,
        unit_amount=Money.from_minor(row.unit_amount_minor, currency),
        amount=Money.from_minor(row.amount_minor, currency),
        period=period,
    )


class SqlInvoiceRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add_many(self, invoices: Sequence[InvoiceRecord]) -> int:
        """One executemany for the invoices, one for the lines of those that landed.

        Cycles invoiced already are dropped first; ON CONFLICT on (subscription_id,
        cycle_start) still skips one that a concurrent writer adds meanwhile. No RETURNING:
        it turns psycopg's pipelined executemany into huge multi-row statements, about three
        times slower; the summed row count tells whether a row was skipped after all.
        """
        postgres = is_postgresql(self._c)
        # PostgreSQL's ON CONFLICT skips stored cycles inside the set-based insert itself.
        fresh = self._new_cycles(invoices, check_stored=not postgres)
        if not fresh:
            return 0
        if postgres:
            return self._copy_many(fresh)
        statement = insert_ignoring(self._c, INVOICES, ("subscription_id", "cycle_start"))
        rows = [to_values(invoice, exclude=_NOT_COLUMNS) for invoice in fresh]
        count = self._c.execute(statement.execution_options(preserve_rowcount=True), rows).rowcount
        landed = fresh if count == len(fresh) else self._stored(fresh)
        lines = [row for invoice in landed for row in _line_rows(invoice)]
        if lines:
            self._c.execute(INVOICE_LINES.insert(), lines)
        return count

    def _copy_many(self, fresh: Sequence[InvoiceRecord]) -> int:
        """PostgreSQL: COPY through staging, so the cycle key still skips a racing duplicate."""
        rows = [_INVOICE_TUPLE(invoice) for invoice in fresh]
        cycle = ("subscription_id", "cycle_start")
        landed = insert_new_returning_ids(self._c, INVOICES, _INVOICE_COLUMNS, rows, cycle)
        lines = [row for i in fresh if i.id in landed for row in _line_tuples(i)]
        insert_tuples(self._c, INVOICE_LINES, _LINE_COLUMNS, lines)
        return len(landed)

    def _new_cycles(
        self, invoices: Sequence[InvoiceRecord], *, check_stored: bool
    ) -> list[InvoiceRecord]:
        """Drop cycle invoices whose cycle comes earlier in ``invoices`` (or is stored)."""
        subscription_ids = sorted({i.subscription_id for i in invoices if i.subscription_id})
        seen = (
            self.existing_cycles(subscription_ids) if subscription_ids and check_stored else set()
        )
        fresh: list[InvoiceRecord] = []
        for invoice in invoices:
            if invoice.subscription_id and invoice.cycle_start:
                cycle = (invoice.subscription_id, invoice.cycle_start.astimezone(UTC))
                if cycle in seen:
                    continue
                seen.add(cycle)
            fresh.append(invoice)
        return fresh

    def _stored(self, invoices: Sequence[InvoiceRecord]) -> list[InvoiceRecord]:
        """Those of ``invoices`` whose ids are stored: after ``_new_cycles``, the ones that
        landed (a clashing stored id would have raised, not been skipped)."""
        found: set[str] = set()
        for part in chunked([invoice.id for invoice in invoices]):
            query = select(INVOICES.c.id).where(INVOICES.c.id.in_(part))
            found.update(self._c.execute(query).scalars())
        return [invoice for invoice in invoices if invoice.id in found]

    def get(
        self, tenant_id: str, invoice_id: str, *, for_update: bool = False
    ) -> InvoiceRecord | None:
        query = select(INVOICES).where(
            INVOICES.c.tenant_id == tenant_id, INVOICES.c.id == invoice_id
        )
        if for_update and is_postgresql(self._c):
            query = query.with_for_update()
        row = self._c.execute(query).first()
        if row is None:
            return None
        lines = self._c.execute(
            select(INVOICE_LINES)
            .where(INVOICE_LINES.c.invoice_id == invoice_id)
            .order_by(INVOICE_LINES.c.position)
        )
        return to_record(
            InvoiceRecord, row, lines=tuple(_line(line, row.currency) for line in lines)
        )

    def update(self, invoice: InvoiceRecord) -> None:
        """Write the header (status, number, amounts, dates); lines are fixed at insert."""
        result = self._c.execute(
            INVOICES.update()
            .where(INVOICES.c.tenant_id == invoice.tenant_id, INVOICES.c.id == invoice.id)
            .values(to_values(invoice, exclude=_FIXED))
        )
        if result.rowcount != 1:
            raise NotFound("invoice.not_found", f"no invoice {invoice.id}")

    def list(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        customer_id: str | None = None,
        status: str | None = None,
        subscription_id: str | None = None,
    ) -> Page[InvoiceRecord]:
        query = select(INVOICES).where(INVOICES.c.tenant_id == tenant_id)
        for column, value in (
            (INVOICES.c.customer_id, customer_id),
            (INVOICES.c.status, status),
            (INVOICES.c.subscription_id, subscription_id),
        ):
            if value is not None:
                query = query.where(column == value)
        return page(self._c, query, INVOICES, limit, after, _invoice)

    def existing_cycles(self, subscription_ids: Sequence[str]) -> set[tuple[str, datetime]]:
        found: set[tuple[str, datetime]] = set()
        for part in chunked(subscription_ids):
            query = select(INVOICES.c.subscription_id, INVOICES.c.cycle_start).where(
                in_ids(self._c, INVOICES.c.subscription_id, part),
                INVOICES.c.cycle_start.is_not(None),
            )
            found.update((sub, from_db(start)) for sub, start in self._c.execute(query))
        return found

    def take_numbers(self, tenant_id: str, series: str, count: int) -> int:
        """The sequence row's lock (held to commit) serializes finalizations in a series, so a
        rolled-back finalization returns its numbers and numbering stays gapless."""
        if count < 1:
            raise InvariantViolated(f"take_numbers needs a positive count, not {count}")
        key = {"tenant_id": tenant_id, "series": series}
        create = insert_ignoring(self._c, INVOICE_SEQUENCES, ("tenant_id", "series"))
        self._c.execute(create, {**key, "next_number": 1})
        bump = (
            INVOICE_SEQUENCES.update()
            .where(INVOICE_SEQUENCES.c.tenant_id == tenant_id, INVOICE_SEQUENCES.c.series == series)
            .values(next_number=INVOICE_SEQUENCES.c.next_number + count)
            .returning(INVOICE_SEQUENCES.c.next_number)
        )
        next_free = int(self._c.execute(bump).scalar_one())
        return next_free - count

    def oldest_unpaid_due(
        self, tenant_id: str, subscription_ids: Sequence[str]
    ) -> dict[str, datetime]:
        """Per subscription, the earliest due date of a finalized invoice not fully paid."""
        result: dict[str, datetime] = {}
        for part in chunked(subscription_ids):
            query = (
                select(INVOICES.c.subscription_id, func.min(INVOICES.c.due_at))
                .where(
                    unindexed(self._c, INVOICES.c.tenant_id) == tenant_id,
                    INVOICES.c.subscription_id.in_(part),
                    INVOICES.c.status == "finalized",
                    INVOICES.c.amount_paid_minor < INVOICES.c.total_minor,
                    INVOICES.c.due_at.is_not(None),
                )
                .group_by(INVOICES.c.subscription_id)
            )
            result.update((sub, from_db(due)) for sub, due in self._c.execute(query))
        return result

    def overdue_subscriptions(
        self, tenant_id: str, due_before: datetime, after: str | None, limit: int
    ) -> Sequence[tuple[str, datetime]]:
        """(subscription id, oldest due date) where a finalized invoice is unpaid and was due
        before ``due_before``; keyset-paged by subscription id."""
        oldest = func.min(INVOICES.c.due_at)
        query = select(INVOICES.c.subscription_id, oldest).where(
            INVOICES.c.tenant_id == tenant_id,
            INVOICES.c.subscription_id.is_not(None),
            INVOICES.c.status == "finalized",
            INVOICES.c.amount_paid_minor < INVOICES.c.total_minor,
            INVOICES.c.due_at < to_db(due_before),
        )
        if after is not None:
            query = query.where(INVOICES.c.subscription_id > after)
        query = query.group_by(INVOICES.c.subscription_id).order_by(INVOICES.c.subscription_id)
        return [(sub, from_db(due)) for sub, due in self._c.execute(query.limit(limit))]

    def open_for_customer(self, tenant_id: str, customer_id: str) -> Sequence[InvoiceRecord]:
        """Invoices still owed money, oldest due first (the order payments are applied in);
        without lines, as in ``list``."""
        query = (
            select(INVOICES)
            .where(
                INVOICES.c.tenant_id == tenant_id,
                INVOICES.c.customer_id == customer_id,
                INVOICES.c.status.in_(_OWED),
                INVOICES.c.amount_paid_minor < INVOICES.c.total_minor,
            )
            .order_by(INVOICES.c.due_at.asc().nulls_last(), INVOICES.c.created_at, INVOICES.c.id)
        )
        return [_invoice(row) for row in self._c.execute(query)]

    def totals_by_currency(self, tenant_id: str) -> dict[str, dict[str, int]]:
        query = (
            select(INVOICES.c.status, INVOICES.c.currency, func.sum(INVOICES.c.total_minor))
            .where(INVOICES.c.tenant_id == tenant_id)
            .group_by(INVOICES.c.status, INVOICES.c.currency)
        )
        totals: dict[str, dict[str, int]] = {}
        for status, currency, amount in self._c.execute(query):
            # SUM(bigint) is NUMERIC (a Decimal) on PostgreSQL.
            totals.setdefault(status, {})[currency] = int(amount)
        return totals

    def owed_by_customer(self, tenant_id: str) -> dict[tuple[str, str], int]:
        owed = func.sum(INVOICES.c.total_minor - INVOICES.c.amount_paid_minor)
        query = (
            select(INVOICES.c.customer_id, INVOICES.c.currency, owed)
            .where(INVOICES.c.tenant_id == tenant_id, INVOICES.c.status.in_(_OWED))
            .group_by(INVOICES.c.customer_id, INVOICES.c.currency)
        )
        return {(customer, c): int(total) for customer, c, total in self._c.execute(query)}

    def usage_invoiced(self, tenant_id: str, subscription_id: str, period_start: datetime) -> int:
        lines, invoices = INVOICE_LINES.c, INVOICES.c
        query = (
            select(func.coalesce(func.sum(lines.amount_minor), 0))
            .select_from(INVOICE_LINES.join(INVOICES, INVOICES.c.id == lines.invoice_id))
            .where(
                invoices.tenant_id == tenant_id,
                invoices.subscription_id == subscription_id,
                invoices.status.in_(_BILLED),
                lines.kind == LineKind.USAGE.value,
                lines.period_start == to_db(period_start),
            )
        )
        return int(self._c.execute(query).scalar_one())

    def numbering(self, tenant_id: str) -> Sequence[tuple[str, int, int]]:
        number = INVOICES.c.number
        query = (
            select(INVOICES.c.series, func.count(number), func.max(number))
            .where(INVOICES.c.tenant_id == tenant_id, number.is_not(None))
            .group_by(INVOICES.c.series)
        )
        return [(series, int(n), int(top)) for series, n, top in self._c.execute(query)]

    def count_by_status(self, tenant_id: str) -> dict[str, int]:
        query = (
            select(INVOICES.c.status, func.count())
            .where(INVOICES.c.tenant_id == tenant_id)
            .group_by(INVOICES.c.status)
        )
        return {status: int(count) for status, count in self._c.execute(query)}
