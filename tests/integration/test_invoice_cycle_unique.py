"""A subscription's billing cycle is invoiced at most once: a constraint, not only a check."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa
from factories import MONTH, NOW, Seed, invoice, line, opened, seed
from sqlalchemy.exc import IntegrityError

from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.uow import Database
from iptv_billing.services.records import InvoiceRecord


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    with opened(database_url) as database:
        yield database


def _line_count(database: Database) -> int:
    with database.uow(read_only=True) as uow:
        query = sa.select(sa.func.count()).select_from(tables.InvoiceLine)
        return int(uow.connection.execute(query).scalar_one())


def test_add_many_inserts_a_cycle_once(db: Database) -> None:
    a = seed(db)
    first = invoice(a, "inv_1", lines=(line(1000), line(200)))
    again = invoice(a, "inv_2", lines=(line(999),))  # same subscription, same cycle_start
    with db.uow() as uow:
        assert uow.invoices.add_many([first]) == 1
        uow.commit()
    with db.uow() as uow:
        assert uow.invoices.add_many([again]) == 0
        uow.commit()
    with db.uow(read_only=True) as uow:
        assert uow.invoices.get(a.tenant_id, "inv_2") is None
        assert uow.invoices.get(a.tenant_id, "inv_1") == first
    assert _line_count(db) == 2  # the skipped invoice's lines were not written


def test_duplicates_inside_one_batch_and_beside_new_cycles(db: Database) -> None:
    a = seed(db)
    next_cycle = NOW + MONTH
    batch = [
        invoice(a, "inv_1", lines=(line(1000),)),
        invoice(a, "inv_dup", lines=(line(1),)),
        invoice(a, "inv_2", cycle_start=next_cycle, lines=(line(500), line(5))),
        invoice(a, "inv_manual", cycle_start=None, lines=(line(7),)),  # no cycle: never skipped
        invoice(a, "inv_manual2", cycle_start=None, lines=(line(8),)),
    ]
    with db.uow() as uow:
        assert uow.invoices.add_many(batch) == 4
        assert (
            uow.invoices.add_many([*batch[:3], invoice(a, "inv_3", cycle_start=NOW - MONTH)]) == 1
        )
        uow.commit()
    with db.uow(read_only=True) as uow:
        ids = [i.id for i in uow.invoices.list(a.tenant_id, 10, None).items]
        assert uow.invoices.existing_cycles([a.subscription_id]) == {
            (a.subscription_id, NOW - MONTH),
            (a.subscription_id, NOW),
            (a.subscription_id, next_cycle),
        }
    assert ids == ["inv_1", "inv_2", "inv_3", "inv_manual", "inv_manual2"]
    assert _line_count(db) == 5


def test_a_raw_second_insert_violates_the_constraint(db: Database) -> None:
    a: Seed = seed(db)
    with db.uow() as uow:
        uow.invoices.add_many([invoice(a, "inv_1")])
        uow.commit()
    row = dataclasses.asdict(invoice(a, "inv_2", cycle_start=NOW + timedelta(0)))
    del row["lines"]
    with db.uow() as uow, pytest.raises(IntegrityError, match=r"(?i)unique|uq_invoices_cycle"):
        uow.connection.execute(sa.insert(tables.Invoice), row)


def test_a_cycle_added_concurrently_is_skipped_on_postgresql(db: Database) -> None:
    if db.dialect_name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: there is no concurrent insert")
    a = seed(db)
    racing = [invoice(a, "inv_2", lines=(line(1),)), invoice(a, "inv_3", cycle_start=NOW + MONTH)]
    with db.uow() as first, ThreadPoolExecutor(1) as pool:
        first.invoices.add_many([invoice(a, "inv_1", lines=(line(1000),))])
        # The second writer saw no such cycle, so its insert waits on ours, then skips the row.
        second = pool.submit(_add_in_new_uow, db, racing)
        time.sleep(0.3)
        assert not second.done()
        first.commit()
        assert second.result(timeout=30) == 1
    with db.uow(read_only=True) as uow:
        assert uow.invoices.get(a.tenant_id, "inv_2") is None
        assert uow.invoices.get(a.tenant_id, "inv_3") == racing[1]
    assert _line_count(db) == 1


def _add_in_new_uow(database: Database, invoices: list[InvoiceRecord]) -> int:
    with database.uow() as uow:
        count = uow.invoices.add_many(invoices)
        uow.commit()
        return count
