"""Migrations build exactly the schema that ``tables.py`` declares, on both engines."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from iptv_billing.adapters.sql.engine import create_engine_for
from iptv_billing.adapters.sql.migrate import alembic_config, current_revision, upgrade_database
from iptv_billing.adapters.sql.tables import Base

# The newest revision on disk: a new migration must not need this test edited.
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _schema_diff(url: str) -> list[Any]:
    """What ``alembic check`` would report: autogenerate's diff against the models."""
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = create_engine_for(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def test_upgrade_from_empty_to_head_matches_the_models(empty_database_url: str) -> None:
    assert _revision(empty_database_url) is None
    upgrade_database(empty_database_url)
    assert _revision(empty_database_url) == HEAD
    assert _schema_diff(empty_database_url) == []


def test_upgrade_is_idempotent(empty_database_url: str) -> None:
    upgrade_database(empty_database_url)
    upgrade_database(empty_database_url)
    assert _revision(empty_database_url) == HEAD


def test_journal_triggers_come_and_go_with_0002(empty_database_url: str) -> None:
    upgrade_database(empty_database_url)
    assert _journal_triggers(empty_database_url)
    command.downgrade(alembic_config(empty_database_url), "0001")
    assert _revision(empty_database_url) == "0001"
    assert _journal_triggers(empty_database_url) == set()
    upgrade_database(empty_database_url)
    assert _revision(empty_database_url) == HEAD


def _journal_triggers(url: str) -> set[str]:
    engine = create_engine_for(url)
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        if engine.dialect.name == "sqlite"
        else "SELECT DISTINCT trigger_name FROM information_schema.triggers "
        "WHERE event_object_table LIKE 'journal_%'"
    )
    try:
        with engine.connect() as connection:
            return set(connection.execute(sa.text(query)).scalars())
    finally:
        engine.dispose()
