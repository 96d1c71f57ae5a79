"""Access granted behind the log's back is found by ``ledger verify``: a line inserted straight
into the database, a disabled line switched back on, a password hash swapped. Each is named,
at the index of the credential's last record when it has one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, replace
from typing import cast

import pytest
import sqlalchemy as sa
from stream_harness import StreamOperator, Viewer

from iptv_billing.adapters.sql import tables
from iptv_billing.domain.credentials import hash_secret
from iptv_billing.services import credentials
from iptv_billing.services.ledger_audit import LogAudit, verify_log

CREDENTIALS = cast(sa.Table, tables.AccessCredential.__table__)


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url)
    yield operator
    operator.close()


def audit(op: StreamOperator) -> LogAudit:
    with op.database.uow(read_only=True) as uow:
        return verify_log(uow, op.tenant_id)


def last_index(op: StreamOperator, viewer: Viewer, credential_id: str) -> int:
    sub_id = viewer.subscription.id
    entries = op.read(lambda u, c: u.log.entries_about(c.tenant_id, [sub_id]))
    return max(e.idx for e in entries if e.subject_id == credential_id)


def tamper(op: StreamOperator, credential_id: str, **values: object) -> None:
    with op.database.engine.begin() as connection:
        connection.execute(
            sa.update(CREDENTIALS).where(CREDENTIALS.c.id == credential_id).values(**values)
        )


def test_the_untouched_log_verifies(op: StreamOperator) -> None:
    viewer = op.viewer()
    op.tx(lambda u, c: credentials.set_enabled(u, c, viewer.line_id, False))
    sub_id = viewer.subscription.id
    op.tx(lambda u, c: credentials.register_device(u, c, sub_id, "00:1A:79:0A:0B:0C"))
    assert audit(op).consistent


def test_a_line_switched_back_on_is_found(op: StreamOperator) -> None:
    viewer = op.viewer()
    op.tx(lambda u, c: credentials.set_enabled(u, c, viewer.line_id, False))
    tamper(op, viewer.line_id, enabled=True)
    result = audit(op)
    assert [(p.index, p.check) for p in result.problems] == [
        (last_index(op, viewer, viewer.line_id), "credential_changed")
    ]


def test_a_swapped_password_is_found(op: StreamOperator) -> None:
    viewer = op.viewer()
    forged = hash_secret("chosen-by-the-attacker")
    tamper(op, viewer.line_id, secret_salt=forged.salt, secret_digest=forged.digest)
    result = audit(op)
    assert [(p.index, p.check) for p in result.problems] == [
        (last_index(op, viewer, viewer.line_id), "credential_changed")
    ]


def test_a_line_inserted_behind_the_logs_back_is_found(op: StreamOperator) -> None:
    viewer = op.viewer()
    genuine = op.read(lambda u, c: u.credentials.get(c.tenant_id, viewer.line_id))
    assert genuine is not None
    secret = hash_secret("free-tv")
    forged = replace(
        genuine,
        id="cred_forged",
        login="freeloader",
        lookup="freeloader",
        secret_salt=secret.salt,
        secret_digest=secret.digest,
        sealed_secret=None,
    )
    with op.database.engine.begin() as connection:
        values = {f.name: getattr(forged, f.name) for f in fields(forged)}
        connection.execute(sa.insert(CREDENTIALS), [values])
    result = audit(op)
    assert [(p.index, p.check) for p in result.problems] == [(None, "credential_not_logged")]
    assert "cred_forged" in result.problems[0].detail
