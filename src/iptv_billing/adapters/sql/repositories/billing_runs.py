"""Billing runs and the per-subscription failures they record while going on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from iptv_billing.adapters.sql.repositories._common import (
    BILLING_RUN_FAILURES,
    BILLING_RUNS,
    page,
    to_record,
    to_values,
)
from iptv_billing.domain.errors import NotFound
from iptv_billing.services.records import BillingRunRecord, Page

_FIXED = frozenset({"id", "tenant_id", "started_at"})
_MAX_CODE, _MAX_MESSAGE = 80, 1000  # the columns' lengths; PostgreSQL refuses longer text


def _run(row: Row[Any]) -> BillingRunRecord:
    return to_record(BillingRunRecord, row)


class SqlBillingRunRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, run: BillingRunRecord) -> None:
        self._c.execute(BILLING_RUNS.insert(), to_values(run))

    def update(self, run: BillingRunRecord) -> None:
        result = self._c.execute(
            BILLING_RUNS.update()
            .where(BILLING_RUNS.c.tenant_id == run.tenant_id, BILLING_RUNS.c.id == run.id)
            .values(to_values(run, exclude=_FIXED))
        )
        if result.rowcount != 1:
            raise NotFound("billing_run.not_found", f"no billing run {run.id}")

    def get(self, tenant_id: str, run_id: str) -> BillingRunRecord | None:
        row = self._c.execute(
            select(BILLING_RUNS).where(
                BILLING_RUNS.c.tenant_id == tenant_id, BILLING_RUNS.c.id == run_id
            )
        ).first()
        return None if row is None else _run(row)

    def list(self, tenant_id: str, limit: int, after: str | None) -> Page[BillingRunRecord]:
        query = select(BILLING_RUNS).where(BILLING_RUNS.c.tenant_id == tenant_id)
        return page(self._c, query, BILLING_RUNS, limit, after, _run)

    def add_failure(
        self, run_id: str, tenant_id: str, subscription_id: str, code: str, message: str
    ) -> None:
        self._c.execute(
            BILLING_RUN_FAILURES.insert(),
            {
                "run_id": run_id,
                "tenant_id": tenant_id,
                "subscription_id": subscription_id,
                "code": code[:_MAX_CODE],
                "message": message[:_MAX_MESSAGE],
            },
        )

    def failures(self, tenant_id: str, run_id: str) -> Sequence[tuple[str, str, str]]:
        """(subscription id, code, message) in the order they were recorded."""
        query = (
            select(
                BILLING_RUN_FAILURES.c.subscription_id,
                BILLING_RUN_FAILURES.c.code,
                BILLING_RUN_FAILURES.c.message,
            )
            .where(
                BILLING_RUN_FAILURES.c.tenant_id == tenant_id,
                BILLING_RUN_FAILURES.c.run_id == run_id,
            )
            .order_by(BILLING_RUN_FAILURES.c.id)
        )
        return [(sub, code, message) for sub, code, message in self._c.execute(query)]
