"""Refused CLI requests answer with one line naming the error's stable code and exit 2; no
traceback, and nothing is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iptv_billing.adapters.sql.uow import open_database


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (["books", "check", "--tenant", "ten_nope"], "tenant.not_found"),
        (["bill", "--tenant", "ten_nope"], "tenant.not_found"),
        (
            ["clock", "freeze", "--tenant", "ten_nope", "--at", "2026-01-01T00:00:00+00:00"],
            "tenant.not_found",
        ),
        (
            ["tenant", "create", "--name", "Acme", "--timezone", "Mars/Base"],
            "tenant.invalid_timezone",
        ),
        (["tenant", "create", "--name", "Acme", "--currency", "XYZ"], "money.unknown_currency"),
        (["ledger", "checkpoint", "--tenant", "ten_nope"], "tenant.not_found"),
        (["ledger", "keys", "--tenant", "ten_nope"], "tenant.not_found"),
        (["ledger", "anchor", "--tenant", "ten_nope"], "tenant.not_found"),
        (["ledger", "verify", "--tenant", "ten_nope"], "tenant.not_found"),
        (["ledger", "consistency", "--tenant", "ten_nope", "--old", "5"], "ledger.bad_sizes"),
        (
            ["tenant", "create", "--name", "Acme", "--invoice-prefix", "A B"],
            "invoice.invalid_prefix",
        ),
    ],
)
def test_refusals_are_one_clean_line(
    database_url: str, arguments: list[str], code: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "iptv_billing", *arguments, "--database-url", database_url]
    keys = tmp_path / "keys"
    env = {**os.environ, "IPTV_BILLING_KEY_DIR": str(keys), "IPTV_BILLING_ANCHORING": "false"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 2, result.stderr
    assert code in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    database = open_database(database_url, migrate=False)
    with database.uow(read_only=True) as uow:
        assert list(uow.tenants.list()) == []  # nothing was created
    assert not keys.exists() or not any(keys.rglob("*.key"))  # no key for a tenant that isn't
    database.dispose()
