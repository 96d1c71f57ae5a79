"""Tenants, their API keys, and the idempotency records of their POSTs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select

from iptv_billing.adapters.sql.repositories._common import (
    API_KEYS,
    IDEMPOTENCY,
    TENANTS,
    insert_unique,
    opt_to_db,
    to_db,
    to_record,
    to_values,
)
from iptv_billing.domain.errors import Conflict
from iptv_billing.services.records import ApiKeyRecord, IdempotencyEntry, TenantRecord


class SqlTenantRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, tenant: TenantRecord) -> None:
        insert_unique(
            self._c, TENANTS, to_values(tenant), "tenant.duplicate", f"tenant {tenant.id} exists"
        )

    def get(self, tenant_id: str) -> TenantRecord | None:
        row = self._c.execute(select(TENANTS).where(TENANTS.c.id == tenant_id)).first()
        return None if row is None else to_record(TenantRecord, row)

    def list(self) -> Sequence[TenantRecord]:
        rows = self._c.execute(select(TENANTS).order_by(TENANTS.c.id))
        return [to_record(TenantRecord, row) for row in rows]

    def set_test_clock(self, tenant_id: str, now: datetime | None) -> None:
        self._c.execute(
            TENANTS.update().where(TENANTS.c.id == tenant_id).values(test_clock_now=opt_to_db(now))
        )


class SqlApiKeyRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, key: ApiKeyRecord) -> None:
        self._c.execute(API_KEYS.insert(), to_values(key))

    def by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        row = self._c.execute(select(API_KEYS).where(API_KEYS.c.key_hash == key_hash)).first()
        return None if row is None else to_record(ApiKeyRecord, row)

    def list(self, tenant_id: str) -> Sequence[ApiKeyRecord]:
        query = select(API_KEYS).where(API_KEYS.c.tenant_id == tenant_id).order_by(API_KEYS.c.id)
        return [to_record(ApiKeyRecord, row) for row in self._c.execute(query)]

    def revoke(self, tenant_id: str, key_id: str, at: datetime) -> bool:
        """False when there is no such live key (unknown, other tenant's, or revoked already)."""
        result = self._c.execute(
            API_KEYS.update()
            .where(
                API_KEYS.c.id == key_id,
                API_KEYS.c.tenant_id == tenant_id,
                API_KEYS.c.revoked_at.is_(None),
            )
            .values(revoked_at=to_db(at))
        )
        return result.rowcount == 1


class SqlIdempotencyRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def get(self, tenant_id: str, key: str) -> IdempotencyEntry | None:
        row = self._c.execute(
            select(IDEMPOTENCY).where(
                IDEMPOTENCY.c.tenant_id == tenant_id, IDEMPOTENCY.c.key == key
            )
        ).first()
        return None if row is None else to_record(IdempotencyEntry, row)

    def reserve(self, entry: IdempotencyEntry) -> bool:
        # insert_unique's savepoint keeps the caller's transaction alive when the race is lost.
        try:
            insert_unique(self._c, IDEMPOTENCY, to_values(entry), "idempotency.exists", entry.key)
        except Conflict:
            return False
        return True

    def complete(self, tenant_id: str, key: str, status_code: int, body: str) -> None:
        self._c.execute(
            IDEMPOTENCY.update()
            .where(IDEMPOTENCY.c.tenant_id == tenant_id, IDEMPOTENCY.c.key == key)
            .values(status_code=status_code, response_body=body)
        )

    def release_stale(self, tenant_id: str, key: str, started_before: datetime) -> bool:
        result = self._c.execute(
            IDEMPOTENCY.delete().where(
                IDEMPOTENCY.c.tenant_id == tenant_id,
                IDEMPOTENCY.c.key == key,
                IDEMPOTENCY.c.status_code.is_(None),
                IDEMPOTENCY.c.created_at < to_db(started_before),
            )
        )
        return bool(result.rowcount)

    def purge(self, created_before: datetime) -> int:
        statement = IDEMPOTENCY.delete().where(IDEMPOTENCY.c.created_at < to_db(created_before))
        return int(self._c.execute(statement).rowcount)

    def release(self, tenant_id: str, key: str) -> None:
        """Forget an in-progress reservation (the request failed); completed ones stay."""
        self._c.execute(
            IDEMPOTENCY.delete().where(
                IDEMPOTENCY.c.tenant_id == tenant_id,
                IDEMPOTENCY.c.key == key,
                IDEMPOTENCY.c.status_code.is_(None),
            )
        )
