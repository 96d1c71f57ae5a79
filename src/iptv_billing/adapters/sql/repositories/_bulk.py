"""PostgreSQL bulk paths for the billing run: COPY into the table, or into a session-local
staging table from which one set-based statement inserts or updates.

COPY moves rows at the speed of the wire; executemany, even pipelined, pays a round of
parameter binding and a statement per row. Other engines take the executemany path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Table

Row = Mapping[str, Any]


def _driver(connection: Connection) -> psycopg.Connection[Any]:
    return cast(psycopg.Connection[Any], connection.connection.driver_connection)


def copy_into(
    connection: Connection, table_name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    statement = f"COPY {table_name} ({', '.join(columns)}) FROM STDIN"
    with _driver(connection).cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def insert_rows(connection: Connection, table: Table, rows: Sequence[Row]) -> None:
    """Append rows that can clash with nothing (fresh ids, no unique keys at risk)."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(table.insert(), list(rows))
        return
    columns = list(rows[0])
    copy_into(connection, table.name, columns, [[row[c] for c in columns] for row in rows])


def _stage(connection: Connection, name: str, source: str, columns: Sequence[str]) -> str:
    """A temporary table shaped like ``columns`` of ``source``, emptied at commit."""
    stage = f"stage_{name}"
    connection.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
        f"SELECT {', '.join(columns)} FROM {source} WITH NO DATA"
    )
    connection.exec_driver_sql(f"TRUNCATE {stage}")
    return stage


def insert_new_returning_ids(
    connection: Connection, table: Table, rows: Sequence[Row], conflict: Sequence[str]
) -> set[str]:
    """PostgreSQL: COPY into staging, then ``INSERT … SELECT … ON CONFLICT DO NOTHING``;
    the ids of the rows that landed."""
    columns = list(rows[0])
    stage = _stage(connection, table.name, table.name, columns)
    copy_into(connection, stage, columns, [[row[c] for c in columns] for row in rows])
    names = ", ".join(columns)
    result = connection.exec_driver_sql(
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {stage} "
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING RETURNING id"
    )
    return {str(row[0]) for row in result}


def update_matching_versions(
    connection: Connection, table: Table, rows: Sequence[Row], columns: Sequence[str]
) -> int:
    """PostgreSQL: COPY new values (keyed by id, tenant_id and the version they were read at)
    into staging, then one UPDATE … FROM; how many rows matched their version."""
    keys = ["id", "tenant_id", "version"]
    stage = _stage(connection, table.name, table.name, [*keys, *columns])
    copy_into(
        connection, stage, [*keys, *columns], [[r[c] for c in (*keys, *columns)] for r in rows]
    )
    assignments = ", ".join(f"{c} = v.{c}" for c in columns)
    result = connection.exec_driver_sql(
        f"UPDATE {table.name} AS t SET {assignments}, version = t.version + 1 FROM {stage} AS v "
        "WHERE t.id = v.id AND t.tenant_id = v.tenant_id AND t.version = v.version"
    )
    return int(result.rowcount)
