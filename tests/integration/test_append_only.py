"""The journal is append-only in the database itself, whatever the code above it does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from factories import NOW, opened, seed
from sqlalchemy.exc import IntegrityError

from iptv_billing.adapters.sql.uow import Database
from iptv_billing.domain.journal import JournalEntry, Posting
from iptv_billing.domain.money import Money

ENTRY = JournalEntry(
    "wallet_topped_up",
    (
        Posting("cash:manual", Money.of("10", "EUR")),
        Posting("wallet:cus_a", Money.of("-10", "EUR")),
    ),
)
CHANGES = [
    "UPDATE journal_entries SET memo = 'rewritten'",
    "DELETE FROM journal_entries",
    "UPDATE journal_postings SET amount_minor = amount_minor * 2",
    "DELETE FROM journal_postings",
]


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    with opened(database_url) as database:
        tenant_id = seed(database).tenant_id
        with database.uow() as uow:
            uow.journal.add(tenant_id, [("je_1", ENTRY, "top_1")], NOW)
            uow.commit()
        yield database


def _insert_posting(connection: sa.Connection, amount: int) -> None:
    connection.execute(
        sa.text(
            "INSERT INTO journal_postings (entry_id, tenant_id, account, currency, amount_minor) "
            "VALUES ('je_2', 'ten_a', 'cash:manual', 'EUR', :amount)"
        ),
        {"amount": amount},
    )


def _insert_entry(connection: sa.Connection) -> None:
    connection.execute(
        sa.text(
            "INSERT INTO journal_entries (id, tenant_id, kind, memo, created_at) "
            "VALUES ('je_2', 'ten_a', 'manual', '', :at)"
        ),
        {"at": NOW},
    )


@pytest.mark.parametrize(
    "statement", CHANGES, ids=["update-entry", "delete-entry", "update-posting", "delete-posting"]
)
def test_changes_to_the_journal_are_refused(db: Database, statement: str) -> None:
    with db.uow() as uow, pytest.raises(IntegrityError, match="append-only"):
        uow.connection.execute(sa.text(statement))
    with db.uow(read_only=True) as uow:
        assert list(uow.journal.entries_for("ten_a", "top_1")) == [ENTRY]


def test_truncate_is_refused_on_postgresql(db: Database) -> None:
    if db.dialect_name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    with db.uow() as uow, pytest.raises(IntegrityError, match="append-only"):
        uow.connection.execute(sa.text("TRUNCATE journal_postings"))


def test_unbalanced_entry_fails_at_commit_on_postgresql(db: Database) -> None:
    if db.dialect_name != "postgresql":
        pytest.skip("the deferred balance check is a PostgreSQL constraint trigger")
    with db.uow() as uow:
        _insert_entry(uow.connection)
        _insert_posting(uow.connection, 500)
        _insert_posting(uow.connection, -499)
        with pytest.raises(IntegrityError, match="does not balance"):
            uow.commit()
    with db.uow(read_only=True) as uow:
        assert uow.journal.imbalances("ten_a") == []


def test_balanced_entry_written_row_by_row_commits(db: Database) -> None:
    # The check is deferred to commit: postings that balance only together are accepted.
    with db.uow() as uow:
        _insert_entry(uow.connection)
        _insert_posting(uow.connection, 500)
        _insert_posting(uow.connection, -500)
        uow.commit()
    with db.uow(read_only=True) as uow:
        assert uow.journal.imbalances("ten_a") == []
        assert uow.journal.account_balance("ten_a", "cash:manual", "EUR") == 1000
