"""Double spend: many transactions debit one wallet at once; it never goes below zero."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from factories import NOW, opened, seed, wallet

from iptv_billing.adapters.sql.uow import Database, run_in_transaction
from iptv_billing.services.ports import UnitOfWork

THREADS = 16
INITIAL = 1_000
DEBIT = 150  # 16 × 150 = 2 400: far more than the balance covers


def _debit_once(database: Database, wallet_id: str, start: threading.Barrier) -> int | None:
    start.wait()  # line everyone up so that the statements really overlap

    def debit(uow: UnitOfWork) -> int | None:
        return uow.wallets.debit(wallet_id, DEBIT, NOW)

    return run_in_transaction(database.uow, debit)


def test_concurrent_debits_never_overspend(database_url: str) -> None:
    with opened(database_url) as database:
        a = seed(database)
        with database.uow() as uow:
            wallet_id = uow.wallets.ensure(wallet(a, "wal_1", balance=INITIAL)).id
            uow.commit()
        start = threading.Barrier(THREADS)
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(
                pool.map(lambda _: _debit_once(database, wallet_id, start), range(THREADS))
            )
        with database.uow(read_only=True) as uow:
            final = uow.wallets.get(a.tenant_id, a.customer_id, "EUR")
    successes = [r for r in results if r is not None]
    assert final is not None
    assert len(successes) == INITIAL // DEBIT
    assert len(successes) * DEBIT <= INITIAL
    assert final.balance_minor == INITIAL - len(successes) * DEBIT >= 0
    # Each success saw a distinct balance: the debits were serialized, not interleaved.
    assert sorted(successes, reverse=True) == [
        INITIAL - DEBIT * (i + 1) for i in range(len(successes))
    ]
