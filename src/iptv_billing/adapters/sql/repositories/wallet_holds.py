"""Two-phase wallet holds. Each move of a wallet's ``pending`` is one guarded UPDATE, and a
hold's status changes from ``pending`` once, by a guarded UPDATE in the same transaction:
under any interleaving a hold is reserved once and released once, and available money
(balance minus pending) never goes below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select

from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.repositories._common import (
    WALLETS,
    page,
    table,
    to_db,
    to_record,
    to_values,
)
from iptv_billing.domain.errors import InvariantViolated
from iptv_billing.domain.wallet_holds import HoldStatus
from iptv_billing.services.records import Page, WalletHoldRecord

HOLDS = table(tables.WalletHold)
PENDING = HoldStatus.PENDING.value


def _hold(row: Row[Any]) -> WalletHoldRecord:
    return to_record(WalletHoldRecord, row)


class SqlWalletHoldRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def reserve(self, hold: WalletHoldRecord) -> bool:
        wallets = WALLETS.c
        reserved = self._c.execute(
            WALLETS.update()
            .where(
                wallets.id == hold.wallet_id,
                wallets.balance_minor - wallets.pending_minor >= hold.amount_minor,
            )
            .values(
                pending_minor=wallets.pending_minor + hold.amount_minor,
                updated_at=to_db(hold.created_at),
            )
        ).rowcount
        if reserved != 1:
            return False
        self._c.execute(HOLDS.insert().values(**to_values(hold)))
        return True

    def resolve(self, hold: WalletHoldRecord, status: str, posted_minor: int, at: datetime) -> bool:
        if status == PENDING or not 0 <= posted_minor <= hold.amount_minor:
            raise InvariantViolated(f"cannot resolve a hold as {status} posting {posted_minor}")
        ended = self._c.execute(
            HOLDS.update()
            .where(HOLDS.c.id == hold.id, HOLDS.c.status == PENDING)
            .values(status=status, posted_minor=posted_minor, resolved_at=to_db(at))
        ).rowcount
        if ended != 1:
            return False
        wallets = WALLETS.c
        released = self._c.execute(
            WALLETS.update()
            .where(wallets.id == hold.wallet_id, wallets.pending_minor >= hold.amount_minor)
            .values(
                pending_minor=wallets.pending_minor - hold.amount_minor,
                balance_minor=wallets.balance_minor - posted_minor,
                updated_at=to_db(at),
            )
        ).rowcount
        if released != 1:  # the wallet's pending lost track of this hold: stop, roll back
            raise InvariantViolated(f"wallet {hold.wallet_id} does not hold {hold.id}")
        return True

    def get(self, tenant_id: str, hold_id: str) -> WalletHoldRecord | None:
        row = self._c.execute(
            select(HOLDS).where(HOLDS.c.tenant_id == tenant_id, HOLDS.c.id == hold_id)
        ).first()
        return None if row is None else _hold(row)

    def list(
        self,
        tenant_id: str,
        customer_id: str,
        limit: int,
        after: str | None,
        status: str | None = None,
    ) -> Page[WalletHoldRecord]:
        query = select(HOLDS).where(
            HOLDS.c.tenant_id == tenant_id, HOLDS.c.customer_id == customer_id
        )
        if status is not None:
            query = query.where(HOLDS.c.status == status)
        return page(self._c, query, HOLDS, limit, after, _hold)

    def lapsed(self, tenant_id: str, now: datetime, limit: int) -> Sequence[WalletHoldRecord]:
        query = (
            select(HOLDS)
            .where(
                HOLDS.c.status == PENDING,
                HOLDS.c.expires_at <= to_db(now),
                HOLDS.c.tenant_id == tenant_id,
            )
            .order_by(HOLDS.c.expires_at, HOLDS.c.id)
            .limit(limit)
        )
        return [_hold(row) for row in self._c.execute(query)]

    def pending_by_customer(self, tenant_id: str) -> dict[tuple[str, str], int]:
        query = (
            select(HOLDS.c.customer_id, HOLDS.c.currency, func.sum(HOLDS.c.amount_minor))
            .where(HOLDS.c.tenant_id == tenant_id, HOLDS.c.status == PENDING)
            .group_by(HOLDS.c.customer_id, HOLDS.c.currency)
        )
        return {(customer, c): int(total) for customer, c, total in self._c.execute(query)}
