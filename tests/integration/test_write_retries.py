"""An API write that meets a transient database failure (SQLite busy, a PostgreSQL deadlock or
serialization failure) is rerun whole, exactly once in effect, instead of answering 500."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from fastapi.testclient import TestClient
from operator_harness import Operator
from sqlalchemy.exc import OperationalError

from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices
from iptv_billing.services import access


class FlakyCommits:
    """A unit-of-work factory whose first ``failures`` commits fail as a busy SQLite would."""

    def __init__(self, inner: Any, failures: int) -> None:
        self._inner = inner
        self.failures = failures

    def __call__(self, *, read_only: bool = False) -> Any:
        uow = self._inner(read_only=read_only)
        real_commit = uow.commit

        def commit() -> None:
            if self.failures > 0:
                self.failures -= 1
                raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))
            real_commit()

        uow.commit = commit
        return uow


def test_a_write_is_retried_after_transient_failures(
    operator: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with operator.database.uow() as uow:
        _, key = access.issue_api_key(
            uow, operator.ids, operator.system, operator.tenant_id, "ops", "admin"
        )
        uow.commit()
    flaky = FlakyCommits(operator.database._factory, failures=2)
    monkeypatch.setattr(operator.database, "_factory", flaky)
    monkeypatch.setattr("iptv_billing.adapters.sql.uow.backoff_delay", lambda attempt: 0.0)
    app = create_app(AppServices(operator.database, operator.ids, operator.system))
    body = {"name": "Ana", "email": "ana@example.com", "currency": "EUR"}
    with TestClient(app) as client:
        created = client.post(
            "/v1/customers", json=body, headers={"Authorization": f"Bearer {key}"}
        )
    assert created.status_code == 201, created.text
    assert flaky.failures == 0
    customers = operator.read(lambda u, c: u.customers.list(c.tenant_id, 10, None).items)
    assert [c.email for c in customers] == ["ana@example.com"]  # once, not three times


def _runner_failing_batches(
    op: Operator, failures: int, **options: Any
) -> tuple[Any, FlakyCommits]:
    """A billing runner whose first ``failures`` batch commits fail as a busy SQLite would
    (the run's own opening record commits normally)."""
    from iptv_billing.services.billing_run import BillingRunner

    flaky = FlakyCommits(op.database.uow, failures=0)
    runner = BillingRunner(flaky, op.system, op.ids, **options)
    original_start = runner._start

    def start_then_fail(tenant_id: str) -> Any:
        record = original_start(tenant_id)
        flaky.failures = failures
        return record

    runner._start = start_then_fail  # type: ignore[method-assign]
    return runner, flaky


def test_a_billing_batch_is_rerun_after_a_transient_failure(operator: Operator) -> None:
    from test_billing_run import all_invoices

    from iptv_billing.adapters.sql.uow import is_transient

    operator.plan("basic", "9.99")
    subs = [operator.subscribe(operator.customer().id, "basic") for _ in range(5)]
    operator.advance(35)
    before = len(all_invoices(operator))
    runner, flaky = _runner_failing_batches(
        operator, 2, is_transient=is_transient, sleep=lambda _s: None
    )
    run = runner.run(operator.tenant_id)
    assert flaky.failures == 0
    assert (run.invoices_created, run.failures) == (len(subs), 0)
    assert len(all_invoices(operator)) == before + len(subs)  # each period once


def test_without_a_transient_predicate_the_failure_surfaces(operator: Operator) -> None:
    operator.plan("basic", "9.99")
    operator.subscribe(operator.customer().id, "basic")
    operator.advance(35)
    runner, _ = _runner_failing_batches(operator, 1)
    with pytest.raises(OperationalError):
        runner.run(operator.tenant_id)
