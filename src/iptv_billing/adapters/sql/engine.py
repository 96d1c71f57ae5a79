"""Engines for the embedded default (SQLite, WAL) and production (PostgreSQL via psycopg 3).

SQLite needs care to behave like a real transactional store: foreign keys are off by default,
and pysqlite's implicit BEGIN is DEFERRED, so two writers can both read a balance and then both
write it. We take transaction control from the driver and open every write transaction with
``BEGIN IMMEDIATE`` (SQLite ignores ``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and pick the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_engine_for(url: str, *, pool_size: int = 10) -> Engine:
    url = normalize_url(url)
    if is_sqlite(url):
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        connect_args={"application_name": "iptv-billing"},
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        poolclass=NullPool if not database or database == ":memory:" else None,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Billing runs and log appends write megabytes a transaction: a 32 MiB page cache keeps
    # the indices' hot pages, and checkpointing every ~40 MiB of WAL (not every 4 MiB) turns
    # many small copy-and-fsync passes into few large ones (appends +40% measured).
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.info.get("sqlite_begin", "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def read_only(connection: Connection) -> Iterator[Connection]:
    """Mark the next transaction on ``connection`` as a reader (SQLite: DEFERRED)."""
    connection.info["sqlite_begin"] = "DEFERRED"
    try:
        yield connection
    finally:
        connection.info.pop("sqlite_begin", None)
