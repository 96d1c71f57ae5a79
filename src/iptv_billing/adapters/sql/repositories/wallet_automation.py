"""Wallet automation: settings, low-balance flags and the auto top-up in flight, on ``wallets``.

Every change of state is one guarded statement (the condition is checked where it is written),
so concurrent recurring passes notify and charge once. The pass's reads name the partial
indexes' predicates, so they touch only wallets that have a setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, false, select, true, update

from iptv_billing.adapters.sql.repositories._common import (
    WALLETS,
    is_postgresql,
    opt_to_db,
    to_db,
    to_record,
)
from iptv_billing.services.records import WalletRecord

_AVAILABLE = WALLETS.c.balance_minor - WALLETS.c.pending_minor
_THRESHOLD = WALLETS.c.low_balance_threshold_minor
_BELOW = WALLETS.c.auto_top_up_below_minor


def _wallet(row: Row[Any]) -> WalletRecord:
    return to_record(WalletRecord, row)


class SqlWalletAutomationRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def lock(self, tenant_id: str, wallet_id: str) -> WalletRecord | None:
        """The wallet, its row locked until commit (PostgreSQL; SQLite has one writer)."""
        query = select(WALLETS).where(WALLETS.c.tenant_id == tenant_id, WALLETS.c.id == wallet_id)
        if is_postgresql(self._c):
            query = query.with_for_update()
        row = self._c.execute(query).first()
        return None if row is None else _wallet(row)

    def save_settings(self, wallet: WalletRecord) -> None:
        """The settings of ``wallet`` and the state a settings change resets."""
        self._c.execute(
            update(WALLETS)
            .where(WALLETS.c.tenant_id == wallet.tenant_id, WALLETS.c.id == wallet.id)
            .values(
                low_balance_threshold_minor=wallet.low_balance_threshold_minor,
                auto_top_up_below_minor=wallet.auto_top_up_below_minor,
                auto_top_up_amount_minor=wallet.auto_top_up_amount_minor,
                auto_top_up_payment_method=wallet.auto_top_up_payment_method,
                low_balance_notified=wallet.low_balance_notified,
                auto_top_up_retry_at=opt_to_db(wallet.auto_top_up_retry_at),
            )
        )

    # -- low-balance notices --------------------------------------------------------------------
    def low_balance_due(self, tenant_id: str, limit: int) -> Sequence[WalletRecord]:
        """Wallets under their threshold whose crossing has not been notified yet."""
        query = (
            select(WALLETS)
            .where(
                WALLETS.c.tenant_id == tenant_id,
                _THRESHOLD.is_not(None),
                WALLETS.c.low_balance_notified == false(),
                _AVAILABLE < _THRESHOLD,
            )
            .order_by(WALLETS.c.id)
            .limit(limit)
        )
        return [_wallet(row) for row in self._c.execute(query)]

    def mark_notified(self, wallet_id: str) -> WalletRecord | None:
        """Set the flag if the wallet is still low and unflagged: the wallet, or None when
        another pass flagged it or the balance rose meanwhile."""
        statement = (
            update(WALLETS)
            .where(
                WALLETS.c.id == wallet_id,
                _THRESHOLD.is_not(None),
                WALLETS.c.low_balance_notified == false(),
                _AVAILABLE < _THRESHOLD,
            )
            .values(low_balance_notified=True)
            .returning(*WALLETS.c)
        )
        row = self._c.execute(statement).first()
        return None if row is None else _wallet(row)

    def clear_recovered(self, tenant_id: str) -> int:
        """Lower the flag of wallets back at or above their threshold: the next crossing is
        notified again."""
        result = self._c.execute(
            update(WALLETS)
            .where(
                WALLETS.c.tenant_id == tenant_id,
                _THRESHOLD.is_not(None),
                WALLETS.c.low_balance_notified == true(),
                _AVAILABLE >= _THRESHOLD,
            )
            .values(low_balance_notified=False)
        )
        return int(result.rowcount)

    # -- auto top-up ----------------------------------------------------------------------------
    def top_up_candidates(self, tenant_id: str, now: datetime, limit: int) -> Sequence[str]:
        """Wallets with an auto top-up in flight, or under ``below`` and not backing off."""
        backoff_over = WALLETS.c.auto_top_up_retry_at.is_(None) | (
            WALLETS.c.auto_top_up_retry_at <= to_db(now)
        )
        query = (
            select(WALLETS.c.id)
            .where(
                WALLETS.c.tenant_id == tenant_id,
                _BELOW.is_not(None),
                WALLETS.c.auto_top_up_payment_id.is_not(None)
                | ((_AVAILABLE < _BELOW) & backoff_over),
            )
            .order_by(WALLETS.c.id)
            .limit(limit)
        )
        return [str(i) for i in self._c.execute(query).scalars()]

    def end_recovered_backoffs(self, tenant_id: str) -> int:
        """A wallet back at or above ``below`` (a manual top-up) may be topped up again at
        once the next time it drops."""
        result = self._c.execute(
            update(WALLETS)
            .where(
                WALLETS.c.tenant_id == tenant_id,
                _BELOW.is_not(None),
                WALLETS.c.auto_top_up_retry_at.is_not(None),
                _AVAILABLE >= _BELOW,
            )
            .values(auto_top_up_retry_at=None)
        )
        return int(result.rowcount)

    def start_top_up(self, wallet_id: str, attempt: int, payment_id: str) -> bool:
        """Record the attempt in flight, if it is still the next one and none is."""
        result = self._c.execute(
            update(WALLETS)
            .where(
                WALLETS.c.id == wallet_id,
                WALLETS.c.auto_top_up_attempt == attempt - 1,
                WALLETS.c.auto_top_up_payment_id.is_(None),
            )
            .values(auto_top_up_attempt=attempt, auto_top_up_payment_id=payment_id)
        )
        return bool(result.rowcount)

    def finish_top_up(self, wallet_id: str, payment_id: str, retry_at: datetime | None) -> bool:
        """Close the attempt in flight (once): ``retry_at`` is the back-off after a decline."""
        result = self._c.execute(
            update(WALLETS)
            .where(WALLETS.c.id == wallet_id, WALLETS.c.auto_top_up_payment_id == payment_id)
            .values(auto_top_up_payment_id=None, auto_top_up_retry_at=opt_to_db(retry_at))
        )
        return bool(result.rowcount)
