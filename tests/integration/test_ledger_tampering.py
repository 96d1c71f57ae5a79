"""Tampering with the books behind the application's back, on both engines: ``verify_log``
must name the exact log index of every change, and the check that caught it.

The attacker has the database: they first disable the append-only protections (on SQLite they
drop the triggers, on PostgreSQL they disable every trigger of the tables they touch), then
change the journal, the log or a subscription through a connection of their own. The audit
runs afterwards in a fresh read-only unit of work, with the log's public keys.

Billing writes ~420 entries, so every kind of change is tried both on an entry inside a full,
stored 256-entry tile and on one in the partial tail (covered only by signed checkpoints).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from ledger_harness import LoggedOperator, entries

from iptv_billing.adapters.sql import tables
from iptv_billing.ledger import tiles
from iptv_billing.ledger.entries import SALT_SIZE, commitment, encode_record
from iptv_billing.ledger.receipt import verify_receipt
from iptv_billing.services.ledger_audit import LogAudit, verify_log
from iptv_billing.services.log_records import JOURNAL_ENTRY, SUBSCRIPTION_STATE, TERMS_ACCEPTED
from iptv_billing.services.records import InvoiceRecord, LogEntryRecord

SUBSCRIBERS = 40
MONTHS = 3  # the first two before a checkpoint, the last one before another
TILE = tiles.TILE_WIDTH
PLACES = ("tile", "tail")  # an entry inside a full stored tile, or in the partial tail
SWAP_DISTANCE = 7
COPY_DISTANCE = 50
ASIDE = 1_000_000  # indices are moved out of the way first: keys are checked row by row


def _table(model: type[tables.Base]) -> sa.Table:
    return cast(sa.Table, model.__table__)


LOG = _table(tables.LogEntry)
HEADS = _table(tables.LogHead)
JOURNAL = _table(tables.JournalEntry)
POSTINGS = _table(tables.JournalPosting)
SUBSCRIPTIONS = _table(tables.Subscription)

Record = dict[str, Any]


# -- the books, as billing left them -----------------------------------------------------------
@pytest.fixture
def op(database_url: str, tmp_path: Path) -> Iterator[LoggedOperator]:
    """Sign-ups, top-ups, three months of billing and two signed checkpoints."""
    operator = LoggedOperator(database_url, tmp_path / "keys")
    try:
        operator.activity(subscribers=SUBSCRIBERS, months=MONTHS - 1)
        operator.publisher.checkpoint(operator.tenant_id)
        operator.advance(31)
        operator.bill()
        operator.publisher.checkpoint(operator.tenant_id)
        yield operator
    finally:
        operator.close()


@dataclass(frozen=True)
class Books:
    """The log before anyone tampered with it, and the place (tile or tail) to tamper at."""

    tenant_id: str
    entries: tuple[LogEntryRecord, ...]
    place: str

    def in_place(self, entry: LogEntryRecord) -> bool:
        """Inside the first full tile (away from its edges), or in the partial tail."""
        if self.place == "tile":
            return COPY_DISTANCE <= entry.idx < TILE - SWAP_DISTANCE
        return TILE + COPY_DISTANCE <= entry.idx < len(self.entries) - SWAP_DISTANCE

    @property
    def target(self) -> LogEntryRecord:
        """The journal entry's log entry that the case changes (or whose row it moves)."""
        return next(e for e in self.entries if e.kind == JOURNAL_ENTRY and self.in_place(e))

    def latest_state(self, subscription_id: str) -> int:
        return max(
            e.idx
            for e in self.entries
            if e.kind == SUBSCRIPTION_STATE and e.subject_id == subscription_id
        )


def _books(op: LoggedOperator, place: str) -> Books:
    logged = tuple(entries(op))
    assert [e.idx for e in logged] == list(range(len(logged)))
    assert TILE + COPY_DISTANCE + SWAP_DISTANCE < len(logged) < 2 * TILE  # tile and tail
    return Books(op.tenant_id, logged, place)


def _audit(op: LoggedOperator) -> LogAudit:
    with op.database.uow(read_only=True) as uow:
        return verify_log(uow, op.tenant_id, op.log_keys())


Change = Callable[[sa.Connection, "Books"], int | None]  # returns the index it tampered at


def _tamper(url: str, books: Books, change: Change) -> int | None:
    """``change`` on a connection of the attacker's own, committed."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            return change(connection, books)
    finally:
        engine.dispose()


# -- disabling the protections ---------------------------------------------------------------
def _unprotect(connection: sa.Connection, *names: str) -> None:
    """Drop (SQLite) or disable (PostgreSQL, as superuser) every trigger on ``names``."""
    if connection.dialect.name == "postgresql":
        for name in names:
            count = sa.text(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = CAST(:name AS regclass) "
                "AND NOT tgisinternal"
            )
            assert connection.execute(count, {"name": name}).scalar_one(), f"{name} unprotected"
            connection.execute(sa.text(f"ALTER TABLE {name} DISABLE TRIGGER ALL"))
        return
    query = sa.text(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN :names"
    ).bindparams(sa.bindparam("names", expanding=True))
    triggers = connection.execute(query, {"names": list(names)}).scalars().all()
    assert triggers, f"no triggers protect {names}"
    for trigger in triggers:
        connection.execute(sa.text(f'DROP TRIGGER "{trigger}"'))


def _changed(result: sa.CursorResult[Any]) -> None:
    assert result.rowcount == 1


# -- changes to the journal tables -----------------------------------------------------------
def _change_posting(connection: sa.Connection, books: Books, **values: Any) -> int:
    target = books.target
    _unprotect(connection, "journal_postings")
    first = sa.select(sa.func.min(POSTINGS.c.id)).where(POSTINGS.c.entry_id == target.subject_id)
    _changed(
        connection.execute(
            POSTINGS.update().where(POSTINGS.c.id == first.scalar_subquery()).values(**values)
        )
    )
    return target.idx


def _journal_amount(connection: sa.Connection, books: Books) -> int:
    return _change_posting(connection, books, amount_minor=POSTINGS.c.amount_minor + 100)


def _journal_account(connection: sa.Connection, books: Books) -> int:
    return _change_posting(connection, books, account="revenue:elsewhere")


def _journal_currency(connection: sa.Connection, books: Books) -> int:
    other = sa.case((POSTINGS.c.currency == "EUR", "USD"), else_="EUR")
    return _change_posting(connection, books, currency=other)


def _journal_time(connection: sa.Connection, books: Books) -> int:
    target = books.target
    _unprotect(connection, "journal_entries")
    backdated = datetime(2027, 6, 1, tzinfo=UTC)
    _changed(
        connection.execute(
            JOURNAL.update().where(JOURNAL.c.id == target.subject_id).values(created_at=backdated)
        )
    )
    return target.idx


def _journal_entry_deleted(connection: sa.Connection, books: Books) -> int:
    target = books.target
    _unprotect(connection, "journal_entries", "journal_postings")
    connection.execute(POSTINGS.delete().where(POSTINGS.c.entry_id == target.subject_id))
    _changed(connection.execute(JOURNAL.delete().where(JOURNAL.c.id == target.subject_id)))
    return target.idx


def _journal_entry_unlogged(connection: sa.Connection, books: Books) -> None:
    """A balanced entry, written straight into the journal: no trigger stands in the way."""
    entry_id = "je_written_behind_the_log"
    at = datetime(2028, 3, 15, tzinfo=UTC)
    connection.execute(
        JOURNAL.insert().values(
            id=entry_id, tenant_id=books.tenant_id, kind="adjustment", memo="", created_at=at
        )
    )
    postings = [("cash:manual", 5_000), ("revenue:subscription", -5_000)]
    connection.execute(  # one statement: PostgreSQL checks the balance per statement
        POSTINGS.insert().values(
            [
                {
                    "entry_id": entry_id,
                    "tenant_id": books.tenant_id,
                    "account": account,
                    "currency": "EUR",
                    "amount_minor": amount,
                }
                for account, amount in postings
            ]
        )
    )


def _subscription_changed(connection: sa.Connection, books: Books) -> int:
    """Subscriptions are updated in place, so nothing protects them but the log."""
    subscription_id = next(e.subject_id for e in books.entries if e.kind == SUBSCRIPTION_STATE)
    _changed(
        connection.execute(
            SUBSCRIPTIONS.update()
            .where(SUBSCRIPTIONS.c.id == subscription_id)
            .values(cancel_at_period_end=sa.not_(SUBSCRIPTIONS.c.cancel_at_period_end))
        )
    )
    return books.latest_state(subscription_id)


# -- changes to the records in the log --------------------------------------------------------
def _more(record: Record) -> None:
    record["postings"][0]["minor"] += 100


def _elsewhere(record: Record) -> None:
    record["postings"][0]["account"] = "revenue:elsewhere"


def _other_currency(record: Record) -> None:
    posting = record["postings"][0]
    posting["currency"] = "USD" if posting["currency"] == "EUR" else "EUR"


def _backdated(record: Record) -> None:
    record["at"] = "2027-06-01T00:00:00.000000Z"


def _rewrite(
    connection: sa.Connection, books: Books, entry: LogEntryRecord, edit: Callable[[Record], None]
) -> bytes:
    """Write the edited record, canonical, over ``entry``'s; returns the new record's bytes."""
    record = json.loads(entry.record)
    edit(record)
    encoded = encode_record(record)
    _unprotect(connection, "log_entries")
    _changed(
        connection.execute(
            LOG.update().where(*_row(books, entry.idx)).values(record=encoded.decode("utf-8"))
        )
    )
    return encoded


def _record_change(
    edit: Callable[[Record], None], *, recommit: bool
) -> Callable[[sa.Connection, Books], int]:
    def change(connection: sa.Connection, books: Books) -> int:
        target = books.target
        encoded = _rewrite(connection, books, target, edit)
        if recommit:  # the commitment agrees again: only the journal and the tree disagree
            fresh = commitment(target.salt, encoded)
            _changed(
                connection.execute(
                    LOG.update().where(*_row(books, target.idx)).values(commitment=fresh)
                )
            )
        return target.idx

    return change


# -- deleted, inserted and reordered log rows ---------------------------------------------------
def _row(books: Books, index: int) -> tuple[sa.ColumnElement[bool], ...]:
    return (LOG.c.tenant_id == books.tenant_id, LOG.c.idx == index)


def _shift(connection: sa.Connection, books: Books, start: int, by: int) -> None:
    """Renumber the rows from ``start`` on by ``by``, as the attacker closes or opens a gap."""
    tenant = LOG.c.tenant_id == books.tenant_id
    connection.execute(LOG.update().where(tenant, LOG.c.idx >= start).values(idx=LOG.c.idx + ASIDE))
    connection.execute(
        LOG.update().where(tenant, LOG.c.idx >= ASIDE).values(idx=LOG.c.idx - ASIDE + by)
    )
    connection.execute(
        HEADS.update().where(HEADS.c.tenant_id == books.tenant_id).values(size=HEADS.c.size + by)
    )


def _row_deleted(connection: sa.Connection, books: Books) -> int:
    index = books.target.idx
    _unprotect(connection, "log_entries")
    _changed(connection.execute(LOG.delete().where(*_row(books, index))))
    return index


def _row_deleted_and_gap_closed(connection: sa.Connection, books: Books) -> int:
    index = _row_deleted(connection, books)
    _shift(connection, books, index + 1, -1)
    return index


def _insert_at(connection: sa.Connection, books: Books, index: int, row: LogEntryRecord) -> None:
    _unprotect(connection, "log_entries")
    _shift(connection, books, index, 1)
    values = {c.name: getattr(row, c.name) for c in LOG.columns}
    connection.execute(LOG.insert().values({**values, "idx": index}))


def _row_inserted_copy(connection: sa.Connection, books: Books) -> int:
    """An earlier row copied in whole: its record still names its own index."""
    index = books.target.idx
    _insert_at(connection, books, index, books.entries[index - COPY_DISTANCE])
    return index


def _row_inserted_forged(connection: sa.Connection, books: Books) -> int:
    """A well-formed record that names the index it is inserted at, with a fresh salt and a
    matching commitment: a terms acceptance, which nothing in the database contradicts."""
    index = books.target.idx
    model = next(e for e in books.entries if e.kind == TERMS_ACCEPTED)
    record = {**json.loads(model.record), "index": index}
    encoded = encode_record(record)
    salt = os.urandom(SALT_SIZE)
    forged = LogEntryRecord(
        tenant_id=books.tenant_id,
        idx=index,
        kind=TERMS_ACCEPTED,
        subject_id=model.subject_id,
        about_id=model.about_id,
        salt=salt,
        record=encoded.decode("utf-8"),
        commitment=commitment(salt, encoded),
        created_at=model.created_at,
    )
    _insert_at(connection, books, index, forged)
    return index


def _rows_swapped(connection: sa.Connection, books: Books) -> int:
    first = books.target.idx
    second = first + SWAP_DISTANCE
    _unprotect(connection, "log_entries")
    for old, new in ((first, ASIDE), (second, first), (ASIDE, second)):
        _changed(connection.execute(LOG.update().where(*_row(books, old)).values(idx=new)))
    return first


# -- the cases ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    change: Change
    check: str  # the audit's check that names the tampered index
    detail: str = ""  # a part of that problem's detail, where it says what changed
    places: tuple[str, ...] = PLACES


ANYWHERE = ("tail",)  # cases whose place is not chosen: one run is enough
CASES = (
    # the journal tables, the log left alone
    Case("journal-amount", _journal_amount, "journal_changed", "amount, account or currency"),
    Case("journal-account", _journal_account, "journal_changed", "amount, account or currency"),
    Case("journal-currency", _journal_currency, "journal_changed", "amount, account or currency"),
    Case("journal-time", _journal_time, "journal_changed", "time changed"),
    Case("journal-entry-deleted", _journal_entry_deleted, "journal_entry_gone"),
    # the log record, its commitment left alone
    Case("record-amount", _record_change(_more, recommit=False), "record_changed"),
    Case("record-account", _record_change(_elsewhere, recommit=False), "record_changed"),
    Case("record-currency", _record_change(_other_currency, recommit=False), "record_changed"),
    Case("record-time", _record_change(_backdated, recommit=False), "record_changed"),
    # the log record, its commitment recomputed: the journal (and the tree) disagree
    Case(
        "record-amount-recommitted",
        _record_change(_more, recommit=True),
        "journal_changed",
        "amount, account or currency",
    ),
    Case(
        "record-account-recommitted",
        _record_change(_elsewhere, recommit=True),
        "journal_changed",
        "amount, account or currency",
    ),
    Case(
        "record-currency-recommitted",
        _record_change(_other_currency, recommit=True),
        "journal_changed",
        "amount, account or currency",
    ),
    Case(
        "record-time-recommitted",
        _record_change(_backdated, recommit=True),
        "journal_changed",
        "time changed",
    ),
    # log rows
    Case("row-deleted", _row_deleted, "missing_entries"),
    Case("row-deleted-gap-closed", _row_deleted_and_gap_closed, "entry_moved"),
    Case("row-inserted-copy", _row_inserted_copy, "entry_moved"),
    Case("row-inserted-forged", _row_inserted_forged, "tile_mismatch", places=("tile",)),
    Case("rows-swapped", _rows_swapped, "entry_moved"),
    # behind the log's back
    Case("subscription-changed", _subscription_changed, "subscription_changed", places=ANYWHERE),
)


def _params() -> list[Any]:
    return [
        pytest.param(case, place, id=case.id if len(case.places) == 1 else f"{case.id}-{place}")
        for case in CASES
        for place in case.places
    ]


# -- the tests --------------------------------------------------------------------------------
def test_untampered_books_are_consistent(op: LoggedOperator) -> None:
    audit = _audit(op)
    assert audit.consistent, audit.problems
    assert audit.first_bad_index is None
    assert audit.entries == len(_books(op, "tile").entries)
    assert audit.checkpoints == 2


@pytest.mark.parametrize(("case", "place"), _params())
def test_tampering_is_found_at_its_index(
    op: LoggedOperator, database_url: str, case: Case, place: str
) -> None:
    books = _books(op, place)
    assert _audit(op).consistent

    index = _tamper(database_url, books, case.change)

    audit = _audit(op)
    assert not audit.consistent
    assert isinstance(index, int)
    assert books.in_place(books.entries[index]) or case.places == ANYWHERE
    assert audit.first_bad_index == index, audit.problems
    there = [p for p in audit.problems if p.index == index]
    assert case.check in {p.check for p in there}, audit.problems
    assert any(case.detail in p.detail for p in there if p.check == case.check)


def test_a_journal_entry_written_behind_the_logs_back_is_found(
    op: LoggedOperator, database_url: str
) -> None:
    books = _books(op, "tail")
    assert _tamper(database_url, books, _journal_entry_unlogged) is None

    audit = _audit(op)
    assert not audit.consistent
    assert audit.first_bad_index is None
    assert [(p.index, p.check) for p in audit.problems] == [(None, "journal_entry_not_logged")]
    assert "je_written_behind_the_log" in audit.problems[0].detail


def test_a_forged_row_inserted_into_the_tail_is_found_at_its_index(
    op: LoggedOperator, database_url: str
) -> None:
    books = _books(op, "tail")
    index = _tamper(database_url, books, _row_inserted_forged)
    audit = _audit(op)
    assert not audit.consistent
    assert audit.first_bad_index == index, audit.problems


def _invoice(op: LoggedOperator, invoice_id: str) -> InvoiceRecord | None:
    return op.read(lambda u, c: u.invoices.get(c.tenant_id, invoice_id))


def _failures(receipt: str, op: LoggedOperator) -> list[str]:
    return [c.name for c in verify_receipt(receipt, op.vkeys()).failures()]


@pytest.mark.parametrize("place", PLACES)
def test_a_receipt_shows_an_amount_changed_in_the_log(
    op: LoggedOperator, database_url: str, place: str
) -> None:
    books = _books(op, place)
    finalizations = [
        (entry, record)
        for entry in books.entries
        if entry.kind == JOURNAL_ENTRY and books.in_place(entry)
        for record in [json.loads(entry.record)]
        if record["kind"] == "invoice_finalized"
    ]
    entry, record, invoice = next(
        (e, r, i)
        for e, r in finalizations
        if (i := _invoice(op, r["reference"])) is not None and i.total_minor > 0
    )
    with op.database.uow(read_only=True) as uow:  # the invoice's finalization in the journal
        journal = uow.journal.by_ids(op.tenant_id, [entry.subject_id])[entry.subject_id]
    assert (journal.reference_id, journal.kind) == (invoice.id, "invoice_finalized")
    before = op.receipt_text(invoice.id)
    assert _failures(before, op) == ["anchor"]  # no chain in this test

    def receivable_more(record: Record) -> None:
        posting = next(p for p in record["postings"] if p["account"].startswith("receivable:"))
        posting["minor"] += 100

    def change(connection: sa.Connection, books: Books) -> int:
        _rewrite(connection, books, entry, receivable_more)  # the commitment left alone
        return entry.idx

    assert _tamper(database_url, books, change) == entry.idx

    assert _failures(before, op) == ["anchor"]  # what the customer already holds still holds
    after = op.receipt_text(invoice.id)
    position = [e["index"] for e in json.loads(after)["entries"]].index(entry.idx)
    assert json.loads(after)["entries"][position]["record"] != record
    # the changed record is not proven, so neither is the charge; every other entry still is
    assert sorted(_failures(after, op)) == sorted(
        ["anchor", f"entry[{position}].inclusion", "invoice.charge"]
    )
    audit = _audit(op)
    assert audit.first_bad_index == entry.idx
    assert "record_changed" in {p.check for p in audit.problems if p.index == entry.idx}
