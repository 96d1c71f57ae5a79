"""Shared plumbing for the repositories: table handles, row ↔ record, paging, upserts.

Repositories speak SQLAlchemy Core on one ``Connection``; records are frozen dataclasses whose
field names match the column names, so most translation is generic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    String,
    Table,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from iptv_billing.adapters.sql import tables
from iptv_billing.domain.errors import Conflict, InvariantViolated
from iptv_billing.services.records import Page

R = TypeVar("R")
T = TypeVar("T")

# Keeps IN lists well below SQLite's and PostgreSQL's bound-parameter limits.
CHUNK = 5_000


def table(model: type[tables.Base]) -> Table:
    return cast(Table, model.__table__)


TENANTS = table(tables.Tenant)
API_KEYS = table(tables.ApiKey)
IDEMPOTENCY = table(tables.IdempotencyRecord)
CHANNELS = table(tables.Channel)
PACKAGES = table(tables.Package)
PACKAGE_CHANNELS = table(tables.PackageChannel)
PLANS = table(tables.Plan)
TERMS = table(tables.TermsVersion)
CUSTOMERS = table(tables.Customer)
SUBSCRIPTIONS = table(tables.Subscription)
INVOICES = table(tables.Invoice)
INVOICE_LINES = table(tables.InvoiceLine)
INVOICE_SEQUENCES = table(tables.InvoiceSequence)
WALLETS = table(tables.Wallet)
JOURNAL_ENTRIES = table(tables.JournalEntry)
JOURNAL_POSTINGS = table(tables.JournalPosting)
PAYMENTS = table(tables.Payment)
BILLING_RUNS = table(tables.BillingRun)
BILLING_RUN_FAILURES = table(tables.BillingRunFailure)
LOG_HEADS = table(tables.LogHead)
LOG_ENTRIES = table(tables.LogEntry)
LOG_TILES = table(tables.LogTile)
LOG_CHECKPOINTS = table(tables.LogCheckpoint)
LOG_COSIGNATURES = table(tables.LogCosignature)
LOG_ANCHORS = table(tables.LogAnchor)
CREDENTIALS = table(tables.AccessCredential)
PROGRAMMES = table(tables.Programme)


# -- time ----------------------------------------------------------------------------------------
def to_db(moment: datetime) -> datetime:
    """Aware UTC for writing: SQLite stores the wall time and drops the offset, so it must be
    UTC already; a naive value would be a guess and is a bug."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvariantViolated(f"naive datetime reached storage: {moment!r}")
    return moment.astimezone(UTC)


def opt_to_db(moment: datetime | None) -> datetime | None:
    return None if moment is None else to_db(moment)


def from_db(moment: datetime) -> datetime:
    """Aware UTC for reading: SQLite hands back naive UTC, PostgreSQL the session's zone."""
    tz = moment.tzinfo
    if tz is UTC:  # the usual case on PostgreSQL with a UTC session: nothing to convert
        return moment
    if tz is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def opt_from_db(moment: datetime | None) -> datetime | None:
    return None if moment is None else from_db(moment)


def _read(value: Any) -> Any:
    return from_db(value) if isinstance(value, datetime) else value


def _write(value: Any) -> Any:
    return to_db(value) if isinstance(value, datetime) else value


# -- records -------------------------------------------------------------------------------------
def to_record(make: Callable[..., R], row: Row[Any], **extra: Any) -> R:
    """Build a record from a row whose column names are the record's field names."""
    values = {key: _read(value) for key, value in row._mapping.items()}
    return make(**values, **extra)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    # Cached: add_many converts a row per invoice on the billing run's hot path.
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


def to_values(record: object, *, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Column values of a record (datetimes converted for writing), minus ``exclude``."""
    names = _field_names(type(record))
    return {name: _write(getattr(record, name)) for name in names if name not in exclude}


def page(
    connection: Connection,
    query: Select[Any],
    table_: Table,
    limit: int,
    after: str | None,
    make: Callable[[Row[Any]], R],
) -> Page[R]:
    """Keyset page by id ascending; one extra row tells whether more follow."""
    if after is not None:
        query = query.where(table_.c.id > after)
    rows = connection.execute(query.order_by(table_.c.id).limit(limit + 1)).all()
    return Page(tuple(make(row) for row in rows[:limit]), has_more=len(rows) > limit)


def chunked(items: Sequence[R], size: int = CHUNK) -> Iterator[Sequence[R]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- dialect differences ---------------------------------------------------------------------------
def is_postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def unindexed(connection: Connection, column: ColumnElement[T]) -> ColumnElement[T]:
    """The column as a term SQLite will not pick an index for (its documented unary-+ idiom).

    Without statistics SQLite trusts any equality on ``tenant_id`` and walks the tenant's
    whole index range, even beside an id list that the primary key resolves directly.
    PostgreSQL plans from statistics and gets the plain column.
    """
    if is_postgresql(connection):
        return column
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


def in_ids(
    connection: Connection, column: ColumnElement[str], ids: Sequence[str]
) -> ColumnElement[bool]:
    """``column IN ids``. PostgreSQL gets ``IN (SELECT unnest(:array))``: one bound array
    instead of one parameter per id (which matters at billing-run batch sizes), in the shape
    whose plan stays one probe per id. The driver prepares repeated statements, and the
    generic plan of ``= ANY(:array)`` could walk a tenant's whole index range testing each
    row against the array: seconds per call once the planner had statistics."""
    if not is_postgresql(connection):
        return column.in_(ids)
    array = bindparam(None, list(ids), type_=ARRAY(String))
    return column.in_(select(func.unnest(array)).scalar_subquery())


def insert_ignoring(
    connection: Connection, table_: Table, conflict_columns: Sequence[str]
) -> Insert:
    """``INSERT ... ON CONFLICT (columns) DO NOTHING`` in the connection's dialect."""
    if is_postgresql(connection):
        return postgresql.insert(table_).on_conflict_do_nothing(index_elements=conflict_columns)
    return sqlite.insert(table_).on_conflict_do_nothing(index_elements=conflict_columns)


def is_unique_violation(error: IntegrityError) -> bool:
    original = error.orig
    if isinstance(original, sqlite3.IntegrityError):
        return getattr(original, "sqlite_errorname", "") in (
            "SQLITE_CONSTRAINT_UNIQUE",
            "SQLITE_CONSTRAINT_PRIMARYKEY",
        )
    return getattr(original, "sqlstate", None) == "23505"


def insert_unique(
    connection: Connection, table_: Table, values: Mapping[str, Any], code: str, message: str
) -> None:
    """Insert one row; a duplicate key becomes ``Conflict(code)``.

    The savepoint keeps the outer transaction usable after the failed insert (PostgreSQL
    aborts the whole transaction otherwise), so a caller may catch the Conflict and go on.
    """
    try:
        with connection.begin_nested():
            connection.execute(table_.insert(), dict(values))
    except IntegrityError as error:
        if is_unique_violation(error):
            raise Conflict(code, message) from error
        raise
