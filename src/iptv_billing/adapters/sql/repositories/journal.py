"""The double-entry journal: append-only entries and their postings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select

from iptv_billing.adapters.sql.repositories._bulk import insert_tuples
from iptv_billing.adapters.sql.repositories._common import (
    JOURNAL_ENTRIES,
    JOURNAL_POSTINGS,
    chunked,
    from_db,
    in_ids,
    to_db,
)
from iptv_billing.domain.journal import JournalEntry, Posting
from iptv_billing.domain.money import Money
from iptv_billing.services.records import StoredJournalEntry

_ENTRY_COLUMNS = ("id", "tenant_id", "kind", "memo", "reference_id", "created_at")
_POSTING_COLUMNS = ("entry_id", "tenant_id", "account", "currency", "amount_minor")


class SqlJournalRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(
        self, tenant_id: str, entries: Sequence[tuple[str, JournalEntry, str | None]], at: datetime
    ) -> None:
        if not entries:
            return
        created_at = to_db(at)
        heads = [
            (entry_id, tenant_id, entry.kind, entry.memo, reference_id, created_at)
            for entry_id, entry, reference_id in entries
        ]
        postings = [
            (entry_id, tenant_id, p.account, p.amount.currency.code, p.amount.minor)
            for entry_id, entry, _reference in entries
            for p in entry.postings
        ]
        insert_tuples(self._c, JOURNAL_ENTRIES, _ENTRY_COLUMNS, heads)
        insert_tuples(self._c, JOURNAL_POSTINGS, _POSTING_COLUMNS, postings)

    def entries_for(self, tenant_id: str, reference_id: str) -> Sequence[JournalEntry]:
        """Entries about ``reference_id`` in the order they were written."""
        heads = self._c.execute(
            select(JOURNAL_ENTRIES.c.id, JOURNAL_ENTRIES.c.kind, JOURNAL_ENTRIES.c.memo)
            .where(
                JOURNAL_ENTRIES.c.tenant_id == tenant_id,
                JOURNAL_ENTRIES.c.reference_id == reference_id,
            )
            .order_by(JOURNAL_ENTRIES.c.created_at, JOURNAL_ENTRIES.c.id)
        ).all()
        if not heads:
            return []
        postings: dict[str, list[Posting]] = {head.id: [] for head in heads}
        rows = self._c.execute(
            select(JOURNAL_POSTINGS)
            .where(JOURNAL_POSTINGS.c.entry_id.in_(list(postings)))
            .order_by(JOURNAL_POSTINGS.c.id)
        )
        for row in rows:
            amount = Money.from_minor(row.amount_minor, row.currency)
            postings[row.entry_id].append(Posting(row.account, amount))
        return [JournalEntry(head.kind, tuple(postings[head.id]), head.memo) for head in heads]

    def by_ids(self, tenant_id: str, entry_ids: Sequence[str]) -> dict[str, StoredJournalEntry]:
        """Entries as stored, unchecked (an audit must read a tampered, unbalanced entry too),
        postings in written order."""
        found: dict[str, StoredJournalEntry] = {}
        for part in chunked(entry_ids):
            heads = self._c.execute(
                select(JOURNAL_ENTRIES).where(
                    JOURNAL_ENTRIES.c.tenant_id == tenant_id,
                    in_ids(self._c, JOURNAL_ENTRIES.c.id, part),
                )
            ).all()
            postings: dict[str, list[tuple[str, str, int]]] = {head.id: [] for head in heads}
            rows = self._c.execute(
                select(JOURNAL_POSTINGS)
                .where(in_ids(self._c, JOURNAL_POSTINGS.c.entry_id, list(postings)))
                .order_by(JOURNAL_POSTINGS.c.id)
            )
            for row in rows:
                postings[row.entry_id].append((row.account, row.currency, int(row.amount_minor)))
            for h in heads:
                at = from_db(h.created_at)
                found[h.id] = StoredJournalEntry(
                    h.id, h.kind, h.memo, h.reference_id, at, tuple(postings[h.id])
                )
        return found

    def ids(self, tenant_id: str) -> Iterator[str]:
        query = select(JOURNAL_ENTRIES.c.id).where(JOURNAL_ENTRIES.c.tenant_id == tenant_id)
        yield from self._c.execute(query).scalars()

    def account_balance(self, tenant_id: str, account: str, currency: str) -> int:
        total = self._c.execute(
            select(func.coalesce(func.sum(JOURNAL_POSTINGS.c.amount_minor), 0)).where(
                JOURNAL_POSTINGS.c.tenant_id == tenant_id,
                JOURNAL_POSTINGS.c.account == account,
                JOURNAL_POSTINGS.c.currency == currency,
            )
        ).scalar_one()
        return int(total)  # SUM(bigint) is NUMERIC (a Decimal) on PostgreSQL

    def balances_by_account(self, tenant_id: str, prefix: str) -> dict[tuple[str, str], int]:
        postings = JOURNAL_POSTINGS.c
        query = (
            select(postings.account, postings.currency, func.sum(postings.amount_minor))
            .where(
                postings.tenant_id == tenant_id,
                postings.account.startswith(prefix, autoescape=True),
            )
            .group_by(postings.account, postings.currency)
        )
        return {(a, c): int(total) for a, c, total in self._c.execute(query)}

    def imbalances(self, tenant_id: str) -> Sequence[tuple[str, str, int]]:
        total = func.sum(JOURNAL_POSTINGS.c.amount_minor)
        query = (
            select(JOURNAL_POSTINGS.c.entry_id, JOURNAL_POSTINGS.c.currency, total)
            .where(JOURNAL_POSTINGS.c.tenant_id == tenant_id)
            .group_by(JOURNAL_POSTINGS.c.entry_id, JOURNAL_POSTINGS.c.currency)
            .having(total != 0)
            .order_by(JOURNAL_POSTINGS.c.entry_id, JOURNAL_POSTINGS.c.currency)
        )
        return [(entry_id, code, int(amount)) for entry_id, code, amount in self._c.execute(query)]
