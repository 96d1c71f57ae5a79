"""Customers of a tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from iptv_billing.adapters.sql.repositories._common import (
    CUSTOMERS,
    chunked,
    in_ids,
    page,
    to_record,
    to_values,
    unindexed,
)
from iptv_billing.domain.errors import NotFound
from iptv_billing.services.records import CustomerRecord, Page

# Identity and creation time never change.
_FIXED = frozenset({"id", "tenant_id", "created_at"})


def _customer(row: Row[Any]) -> CustomerRecord:
    return to_record(CustomerRecord, row)


class SqlCustomerRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, customer: CustomerRecord) -> None:
        self._c.execute(CUSTOMERS.insert(), to_values(customer))

    def get(self, tenant_id: str, customer_id: str) -> CustomerRecord | None:
        row = self._c.execute(
            select(CUSTOMERS).where(
                CUSTOMERS.c.tenant_id == tenant_id, CUSTOMERS.c.id == customer_id
            )
        ).first()
        return None if row is None else _customer(row)

    def update(self, customer: CustomerRecord) -> None:
        result = self._c.execute(
            CUSTOMERS.update()
            .where(CUSTOMERS.c.tenant_id == customer.tenant_id, CUSTOMERS.c.id == customer.id)
            .values(to_values(customer, exclude=_FIXED))
        )
        if result.rowcount != 1:
            raise NotFound("customer.not_found", f"no customer {customer.id}")

    def collection_methods(self, tenant_id: str, customer_ids: Sequence[str]) -> dict[str, str]:
        """Customer id → collection method, for the given ids that exist in the tenant."""
        methods: dict[str, str] = {}
        for part in chunked(sorted(set(customer_ids))):
            query = select(CUSTOMERS.c.id, CUSTOMERS.c.collection_method).where(
                unindexed(self._c, CUSTOMERS.c.tenant_id) == tenant_id,
                in_ids(self._c, CUSTOMERS.c.id, part),
            )
            methods.update((customer_id, method) for customer_id, method in self._c.execute(query))
        return methods

    def list(
        self, tenant_id: str, limit: int, after: str | None, email: str | None = None
    ) -> Page[CustomerRecord]:
        query = select(CUSTOMERS).where(CUSTOMERS.c.tenant_id == tenant_id)
        if email is not None:
            query = query.where(CUSTOMERS.c.email == email)
        return page(self._c, query, CUSTOMERS, limit, after, _customer)
