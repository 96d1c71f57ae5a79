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


def _insert_postings(connection: sa.Connection, *amounts: int) -> None:
    """All of an entry's postings in one statement, as the journal repository writes them."""
    values = ", ".join(
        f"('je_2', 'ten_a', 'cash:manual', 'EUR', :a{i})" for i in range(len(amounts))
    )
    connection.execute(
        sa.text(
            "INSERT INTO journal_postings (entry_id, tenant_id, account, currency, amount_minor) "
            f"VALUES {values}"
        ),
        {f"a{i}": amount for i, amount in enumerate(amounts)},
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


def test_unbalanced_entry_is_refused_on_postgresql(db: Database) -> None:
    if db.dialect_name != "postgresql":
        pytest.skip("the balance check is a PostgreSQL statement trigger")
    with db.uow() as uow:
        _insert_entry(uow.connection)
        with pytest.raises(IntegrityError, match="does not balance"):
            _insert_postings(uow.connection, 500, -499)
    with db.uow(read_only=True) as uow:
        assert uow.journal.imbalances("ten_a") == []


def test_an_entry_balances_with_every_statement_on_postgresql(db: Database) -> None:
    # An entry's postings arrive in one statement; a later posting that unbalances it,
    # or a half-written entry, is refused.
    if db.dialect_name != "postgresql":
        pytest.skip("the balance check is a PostgreSQL statement trigger")
    with db.uow() as uow:
        _insert_entry(uow.connection)
        with pytest.raises(IntegrityError, match="does not balance"):
            _insert_postings(uow.connection, 500)


def test_balanced_entry_written_in_one_statement_commits(db: Database) -> None:
    with db.uow() as uow:
        _insert_entry(uow.connection)
        _insert_postings(uow.connection, 500, -500)
        uow.commit()
    with db.uow(read_only=True) as uow:
        assert uow.journal.imbalances("ten_a") == []
        assert uow.journal.account_balance("ten_a", "cash:manual", "EUR") == 1000
