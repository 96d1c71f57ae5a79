"""PostgreSQL bulk paths for the billing run: COPY into the table, or into a session-local
staging table from which one set-based statement inserts or updates.

COPY moves rows at the speed of the wire; executemany, even pipelined, pays a round of
parameter binding and a statement per row. Rows are plain tuples in ``columns`` order, built
without per-row dictionaries, because at a million renewals the Python side is the bottleneck.
Other engines take the executemany path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Table

from iptv_billing.adapters.sql.repositories._common import is_postgresql

Tuple = Sequence[Any]
VERSION_KEYS = ("id", "tenant_id", "version")


def _driver(connection: Connection) -> psycopg.Connection[Any]:
    return cast(psycopg.Connection[Any], connection.connection.driver_connection)


def copy_into(
    connection: Connection, table_name: str, columns: Sequence[str], rows: Sequence[Tuple]
) -> None:
    statement = f"COPY {table_name} ({', '.join(columns)}) FROM STDIN"
    with _driver(connection).cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def copy_text(connection: Connection, table_name: str, columns: Sequence[str], data: str) -> None:
    """COPY rows already written in PostgreSQL's text format (tab-separated, escaped)."""
    statement = f"COPY {table_name} ({', '.join(columns)}) FROM STDIN"
    with _driver(connection).cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(data.encode("utf-8"))


def returned_ids(connection: Connection, statement: str, params: dict[str, Any]) -> set[str]:
    """Run ``statement`` on the driver; the first column of what it returns, as a set. For
    10,000 returned ids SQLAlchemy's result rows cost more than the statement's network trip."""
    with _driver(connection).cursor() as cursor:
        cursor.execute(statement, params)
        return {row[0] for row in cursor.fetchall()}


def insert_tuples(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Tuple]
) -> None:
    """Append rows that can clash with nothing (fresh ids, no unique keys at risk)."""
    if not rows:
        return
    if is_postgresql(connection):
        copy_into(connection, table.name, columns, rows)
    else:
        connection.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])


def _stage(connection: Connection, table: Table, columns: Sequence[str]) -> str:
    """A temporary table shaped like ``columns`` of ``table``, emptied at commit."""
    stage = f"stage_{table.name}"
    connection.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
        f"SELECT {', '.join(columns)} FROM {table.name} WITH NO DATA"
    )
    connection.exec_driver_sql(f"TRUNCATE {stage}")
    return stage


def insert_new_returning_ids(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Tuple],
    conflict: Sequence[str],
) -> set[str]:
    """PostgreSQL: COPY into staging, then ``INSERT … SELECT … ON CONFLICT DO NOTHING``;
    the ids of the rows that landed."""
    stage = _stage(connection, table, columns)
    copy_into(connection, stage, columns, rows)
    names = ", ".join(columns)
    result = connection.exec_driver_sql(
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {stage} "
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING RETURNING id"
    )
    return {str(row[0]) for row in result}


def update_matching_versions(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Tuple]
) -> int:
    """PostgreSQL: COPY rows of (id, tenant_id, version read, *new values of ``columns``) into
    staging, then one UPDATE … FROM; how many rows still had the version they were read at."""
    stage = _stage(connection, table, [*VERSION_KEYS, *columns])
    copy_into(connection, stage, [*VERSION_KEYS, *columns], rows)
    assignments = ", ".join(f"{c} = v.{c}" for c in columns)
    result = connection.exec_driver_sql(
        f"UPDATE {table.name} AS t SET {assignments}, version = t.version + 1 FROM {stage} AS v "
        "WHERE t.id = v.id AND t.tenant_id = v.tenant_id AND t.version = v.version"
    )
    return int(result.rowcount)
