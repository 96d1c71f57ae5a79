"""Payments received or attempted, keyed for provider idempotency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from iptv_billing.adapters.sql.repositories._common import (
    PAYMENTS,
    insert_unique,
    is_postgresql,
    page,
    to_record,
    to_values,
)
from iptv_billing.domain.errors import NotFound
from iptv_billing.services.records import Page, PaymentRecord

_FIXED = frozenset({"id", "tenant_id", "customer_id", "created_at"})


def _payment(row: Row[Any]) -> PaymentRecord:
    return to_record(PaymentRecord, row)


class SqlPaymentRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, payment: PaymentRecord) -> None:
        if payment.provider_idempotency_key is None:
            # Nothing natural to clash on: skip the savepoint (wallet payments of a billing run).
            self._c.execute(PAYMENTS.insert(), to_values(payment))
            return
        insert_unique(
            self._c, PAYMENTS, to_values(payment), "payment.duplicate",
            f"a payment with provider key {payment.provider_idempotency_key!r} exists",
        )  # fmt: skip

    def get(
        self, tenant_id: str, payment_id: str, *, for_update: bool = False
    ) -> PaymentRecord | None:
        query = select(PAYMENTS).where(
            PAYMENTS.c.tenant_id == tenant_id, PAYMENTS.c.id == payment_id
        )
        if for_update and is_postgresql(self._c):
            query = query.with_for_update()
        row = self._c.execute(query).first()
        return None if row is None else _payment(row)

    def by_provider_key(self, tenant_id: str, key: str) -> PaymentRecord | None:
        row = self._c.execute(
            select(PAYMENTS).where(
                PAYMENTS.c.tenant_id == tenant_id, PAYMENTS.c.provider_idempotency_key == key
            )
        ).first()
        return None if row is None else _payment(row)

    def update(self, payment: PaymentRecord) -> None:
        result = self._c.execute(
            PAYMENTS.update()
            .where(PAYMENTS.c.tenant_id == payment.tenant_id, PAYMENTS.c.id == payment.id)
            .values(to_values(payment, exclude=_FIXED))
        )
        if result.rowcount != 1:
            raise NotFound("payment.not_found", f"no payment {payment.id}")

    def list(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        customer_id: str | None = None,
        invoice_id: str | None = None,
    ) -> Page[PaymentRecord]:
        query = select(PAYMENTS).where(PAYMENTS.c.tenant_id == tenant_id)
        if customer_id is not None:
            query = query.where(PAYMENTS.c.customer_id == customer_id)
        if invoice_id is not None:
            query = query.where(PAYMENTS.c.invoice_id == invoice_id)
        return page(self._c, query, PAYMENTS, limit, after, _payment)

    def pending(self, tenant_id: str) -> Sequence[PaymentRecord]:
        query = (
            select(PAYMENTS)
            .where(PAYMENTS.c.tenant_id == tenant_id, PAYMENTS.c.status == "pending")
            .order_by(PAYMENTS.c.created_at, PAYMENTS.c.id)
        )
        return [_payment(row) for row in self._c.execute(query)]
