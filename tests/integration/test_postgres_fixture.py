"""The shared database fixtures work against real engines (see tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

# tests/conftest.py is not importable as a module from here: restate what is checked.
TEMPLATE_DB = "iptv_template"
PostgresServer = Any  # tests.conftest.PostgresServer


def test_postgres_server_is_real_and_configured_for_tests(
    postgres_server: PostgresServer,
) -> None:
    names = [
        "listen_addresses",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "unix_socket_directories",
        "max_connections",
        "server_encoding",
    ]
    with postgres_server.connect() as conn:
        version_num = int(conn.execute("SHOW server_version_num").fetchone()[0])
        query = "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)"
        settings = dict(conn.execute(query, (names,)).fetchall())
        query = "SELECT host(inet_server_addr()), inet_server_port()"
        address, port = conn.execute(query).fetchone()
        query = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        superuser = conn.execute(query).fetchone()

    assert version_num >= 150000
    assert (address, port) == ("127.0.0.1", postgres_server.port)
    assert superuser == (True,)
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["unix_socket_directories"] == str(postgres_server.socket_dir)
    assert settings["fsync"] == "off"
    assert settings["synchronous_commit"] == "off"
    assert settings["full_page_writes"] == "off"
    assert settings["max_connections"] == "200"
    assert settings["server_encoding"] == "UTF8"
    assert (postgres_server.socket_dir / f".s.PGSQL.{postgres_server.port}").is_socket()
    assert postgres_server.url("x") == f"postgresql+psycopg://postgres@127.0.0.1:{port}/x"


def test_postgres_server_runs_unprivileged(postgres_server: PostgresServer) -> None:
    postmaster_pid = int((postgres_server.data_dir / "postmaster.pid").read_text().split()[0])
    owner_uid = os.stat(f"/proc/{postmaster_pid}").st_uid
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: the fixture runs it as a system user.
        assert owner_uid != 0
        assert postgres_server.os_user in ("postgres", "iptvtest")
    else:
        assert owner_uid == os.geteuid()


def test_postgres_server_creates_and_drops_databases(postgres_server: PostgresServer) -> None:
    postgres_server.create_database("fixture_probe")
    engine = sa.create_engine(postgres_server.url("fixture_probe"))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar() == "fixture_probe"
    finally:
        engine.dispose()
    postgres_server.drop_database("fixture_probe")
    with postgres_server.connect() as conn:
        rows = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'fixture_probe'").fetchall()
    assert rows == []


def _engine_kind(url: str) -> str:
    return sa.engine.make_url(url).get_backend_name()


def test_database_url_is_migrated_and_usable(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
            if _engine_kind(database_url) == "postgresql":
                version_num = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
                assert version_num >= 150000
                # TCP to 127.0.0.1 (inet_server_addr() is NULL over a Unix socket).
                assert conn.execute(sa.text("SELECT host(inet_server_addr())")).scalar() == (
                    "127.0.0.1"
                )
                database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
                assert database.startswith("test_")
                assert database != TEMPLATE_DB
            else:
                path = Path(sa.engine.make_url(database_url).database or "")
                assert path.name == "test.db"
                assert path.is_file()
        tables = sa.inspect(engine).get_table_names()
        assert "alembic_version" in tables, tables
        with engine.connect() as conn:
            revisions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert len(revisions) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_its_own_database(database_url: str, attempt: int) -> None:
    # Both cases create the same table: that only works if they see different databases.
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE fixture_isolation_probe (attempt integer)"))
            conn.execute(
                sa.text("INSERT INTO fixture_isolation_probe VALUES (:attempt)"),
                {"attempt": attempt},
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT attempt FROM fixture_isolation_probe")).all()
        assert rows == [(attempt,)]
    finally:
        engine.dispose()


def test_empty_database_url_has_no_tables(empty_database_url: str) -> None:
    engine = sa.create_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
