"""Access credentials: lines, tokens and set-top boxes of subscriptions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row, select, update

from iptv_billing.adapters.sql.repositories._common import (
    CREDENTIALS,
    chunked,
    insert_unique,
    to_record,
    to_values,
)
from iptv_billing.services.records import CredentialRecord

_TAKEN = {
    "line": "that username is taken",
    "token": "that token is in use",
    "device": "that device (MAC address) is registered already",
}


def _credential(row: Row[Any]) -> CredentialRecord:
    return to_record(CredentialRecord, row)


class SqlCredentialRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, credential: CredentialRecord) -> None:
        insert_unique(
            self._c,
            CREDENTIALS,
            to_values(credential),
            "credential.taken",
            _TAKEN.get(credential.kind, "credential in use"),
        )

    def get(self, tenant_id: str, credential_id: str) -> CredentialRecord | None:
        row = self._c.execute(
            select(CREDENTIALS).where(
                CREDENTIALS.c.tenant_id == tenant_id, CREDENTIALS.c.id == credential_id
            )
        ).first()
        return None if row is None else _credential(row)

    def by_lookup(self, kind: str, lookup: str) -> CredentialRecord | None:
        row = self._c.execute(
            select(CREDENTIALS).where(
                CREDENTIALS.c.kind == kind,
                CREDENTIALS.c.lookup == lookup,
                CREDENTIALS.c.removed_at.is_(None),
            )
        ).first()
        return None if row is None else _credential(row)

    def of_subscription(self, tenant_id: str, subscription_id: str) -> Sequence[CredentialRecord]:
        query = select(CREDENTIALS).where(
            CREDENTIALS.c.tenant_id == tenant_id,
            CREDENTIALS.c.subscription_id == subscription_id,
            CREDENTIALS.c.removed_at.is_(None),
        )
        return [_credential(row) for row in self._c.execute(query.order_by(CREDENTIALS.c.id))]

    def of_subscriptions(
        self, tenant_id: str, subscription_ids: Sequence[str]
    ) -> Sequence[CredentialRecord]:
        """Every credential, removed ones included (the authorization index forgets those)."""
        found: list[CredentialRecord] = []
        for part in chunked(subscription_ids):
            query = select(CREDENTIALS).where(
                CREDENTIALS.c.tenant_id == tenant_id, CREDENTIALS.c.subscription_id.in_(part)
            )
            found += map(_credential, self._c.execute(query))
        return found

    def update(self, credential: CredentialRecord) -> None:
        values = to_values(
            credential,
            exclude=frozenset({"id", "tenant_id", "subscription_id", "kind", "created_at"}),
        )
        self._c.execute(
            update(CREDENTIALS)
            .where(
                CREDENTIALS.c.tenant_id == credential.tenant_id,
                CREDENTIALS.c.id == credential.id,
            )
            .values(values)
        )

    def iter_active(self, tenant_id: str, batch: int = 10_000) -> Iterator[CredentialRecord]:
        """Every credential in use, in id order, ``batch`` rows per query."""
        after = ""
        while True:
            query = (
                select(CREDENTIALS)
                .where(
                    CREDENTIALS.c.tenant_id == tenant_id,
                    CREDENTIALS.c.removed_at.is_(None),
                    CREDENTIALS.c.id > after,
                )
                .order_by(CREDENTIALS.c.id)
                .limit(batch)
            )
            rows = self._c.execute(query).all()
            yield from map(_credential, rows)
            if len(rows) < batch:
                return
            after = rows[-1].id
