"""Prepaid wallets: balances move only through single atomic, guarded statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select

from iptv_billing.adapters.sql.repositories._common import (
    WALLETS,
    insert_ignoring,
    to_db,
    to_record,
    to_values,
)
from iptv_billing.domain.errors import InvalidInput, InvariantViolated, NotFound
from iptv_billing.domain.money import MAX_MINOR_UNITS
from iptv_billing.services.records import WalletRecord


def _wallet(row: Row[Any]) -> WalletRecord:
    return to_record(WalletRecord, row)


def _require_non_negative(minor: int) -> None:
    if minor < 0:
        raise InvariantViolated(f"wallet amounts are never negative: {minor}")


class SqlWalletRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def get(self, tenant_id: str, customer_id: str, currency: str) -> WalletRecord | None:
        row = self._c.execute(
            select(WALLETS).where(
                WALLETS.c.tenant_id == tenant_id,
                WALLETS.c.customer_id == customer_id,
                WALLETS.c.currency == currency,
            )
        ).first()
        return None if row is None else _wallet(row)

    def ensure(self, wallet: WalletRecord) -> WalletRecord:
        """The customer's wallet in that currency, created from ``wallet`` if missing.

        Insert-or-nothing then read, so two racing creators end with the same row.
        """
        create = insert_ignoring(self._c, WALLETS, ("customer_id", "currency"))
        self._c.execute(create, to_values(wallet))
        found = self.get(wallet.tenant_id, wallet.customer_id, wallet.currency)
        if found is None:  # pragma: no cover - the row was just inserted or existed
            raise InvariantViolated(f"wallet of {wallet.customer_id} vanished")
        return found

    def list(self, tenant_id: str, customer_id: str) -> Sequence[WalletRecord]:
        query = (
            select(WALLETS)
            .where(WALLETS.c.tenant_id == tenant_id, WALLETS.c.customer_id == customer_id)
            .order_by(WALLETS.c.currency)
        )
        return [_wallet(row) for row in self._c.execute(query)]

    def credit(self, wallet_id: str, minor: int, at: datetime) -> int:
        _require_non_negative(minor)
        # The ceiling is checked in the same statement: a balance beyond what Money can hold
        # would make the wallet unreadable.
        statement = (
            WALLETS.update()
            .where(WALLETS.c.id == wallet_id, WALLETS.c.balance_minor <= MAX_MINOR_UNITS - minor)
            .values(balance_minor=WALLETS.c.balance_minor + minor, updated_at=to_db(at))
            .returning(WALLETS.c.balance_minor)
        )
        balance = self._c.execute(statement).scalar_one_or_none()
        if balance is not None:
            return int(balance)
        if self._c.execute(select(WALLETS.c.id).where(WALLETS.c.id == wallet_id)).first():
            raise InvalidInput(
                "wallet.balance_too_large", "the balance would exceed the largest amount allowed"
            )
        raise NotFound("wallet.not_found", f"no wallet {wallet_id}")

    def debit(self, wallet_id: str, minor: int, at: datetime) -> int | None:
        # Check and write in one statement: no read-then-write window for a double spend.
        _require_non_negative(minor)
        # Held money is not spendable: the guard is on the available balance.
        available = WALLETS.c.balance_minor - WALLETS.c.pending_minor
        statement = (
            WALLETS.update()
            .where(WALLETS.c.id == wallet_id, available >= minor)
            .values(balance_minor=WALLETS.c.balance_minor - minor, updated_at=to_db(at))
            .returning(WALLETS.c.balance_minor)
        )
        balance = self._c.execute(statement).scalar_one_or_none()
        return None if balance is None else int(balance)

    def balances(self, tenant_id: str) -> dict[tuple[str, str], tuple[int, int]]:
        query = select(
            WALLETS.c.customer_id,
            WALLETS.c.currency,
            WALLETS.c.balance_minor,
            WALLETS.c.pending_minor,
        ).where(WALLETS.c.tenant_id == tenant_id)
        return {
            (customer, c): (int(balance), int(pending))
            for customer, c, balance, pending in self._c.execute(query)
        }

    def totals(self, tenant_id: str) -> dict[str, int]:
        query = (
            select(WALLETS.c.currency, func.sum(WALLETS.c.balance_minor))
            .where(WALLETS.c.tenant_id == tenant_id)
            .group_by(WALLETS.c.currency)
        )
        return {currency: int(total) for currency, total in self._c.execute(query)}
