"""Invoice numbers are unique and gapless under concurrent finalization."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from factories import opened, seed

from iptv_billing.adapters.sql.uow import Database, run_in_transaction
from iptv_billing.services.ports import UnitOfWork

THREADS = 8
ROUNDS = 6


def _taker(database: Database, worker: int, start: threading.Barrier) -> list[int]:
    """Take 1-3 numbers per round; every third round rolls back, returning its numbers."""
    start.wait()
    taken: list[int] = []
    for round_ in range(ROUNDS):
        count = 1 + (worker + round_) % 3
        if round_ % 3 == 2:
            with database.uow() as uow:
                uow.invoices.take_numbers("ten_a", "INV-", count)
                uow.rollback()
            continue

        def take(uow: UnitOfWork, count: int = count) -> int:
            return uow.invoices.take_numbers("ten_a", "INV-", count)

        first = run_in_transaction(database.uow, take)
        taken += range(first, first + count)
    return taken


def test_concurrent_takers_get_distinct_contiguous_numbers(database_url: str) -> None:
    with opened(database_url) as database:
        seed(database)
        start = threading.Barrier(THREADS)
        with ThreadPoolExecutor(THREADS) as pool:
            batches = list(pool.map(lambda w: _taker(database, w, start), range(THREADS)))
        with database.uow() as uow:
            after = uow.invoices.take_numbers("ten_a", "INV-", 1)
            other_series = uow.invoices.take_numbers("ten_a", "CN-", 2)
    numbers = sorted(n for batch in batches for n in batch)
    assert numbers == list(range(1, len(numbers) + 1))  # distinct, from 1, no gaps
    assert after == len(numbers) + 1  # rolled-back reservations left no hole
    assert other_series == 1  # each series counts on its own
