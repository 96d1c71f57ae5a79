"""Round trips through every SQL repository, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from factories import (
    MONTH,
    NOW,
    Seed,
    customer,
    invoice,
    line,
    opened,
    plan,
    seed,
    subscription,
    tenant,
    terms,
    wallet,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from iptv_billing.adapters.sql.uow import Database, is_transient, run_in_transaction
from iptv_billing.domain.errors import Conflict
from iptv_billing.domain.journal import JournalEntry, Posting
from iptv_billing.domain.money import MAX_MINOR_UNITS, Money
from iptv_billing.domain.periods import Period
from iptv_billing.domain.subscription import SubscriptionStatus
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import (
    ApiKeyRecord,
    BillingRunRecord,
    ChannelRecord,
    IdempotencyEntry,
    PackageRecord,
    PaymentRecord,
    SubscriptionRecord,
)

CET = timezone(timedelta(hours=1))
BIG = MAX_MINOR_UNITS  # 10**15 minor units: the largest amount Money accepts


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    with opened(database_url) as database:
        yield database


@pytest.fixture
def a(db: Database) -> Seed:
    return seed(db, "ten_a")


@pytest.fixture
def b(db: Database) -> Seed:
    return seed(db, "ten_b")


def assert_utc(moment: datetime | None) -> None:
    assert moment is not None
    assert moment.utcoffset() == timedelta(0)


# -- tenants, keys, idempotency ----------------------------------------------------------------
def test_tenant_round_trip_and_test_clock(db: Database, a: Seed) -> None:
    frozen = datetime(2026, 5, 1, 1, 2, 3, 456789, tzinfo=CET)
    with db.uow() as uow:
        uow.tenants.set_test_clock(a.tenant_id, frozen)
        uow.commit()
    with db.uow(read_only=True) as uow:
        stored = uow.tenants.get(a.tenant_id)
        assert [t.id for t in uow.tenants.list()] == [a.tenant_id]
        assert uow.tenants.get("ten_missing") is None
    assert stored == dataclasses.replace(tenant(a.tenant_id), test_clock_now=frozen)
    assert_utc(stored.test_clock_now)
    assert_utc(stored.created_at)


def test_duplicate_tenant_is_a_conflict(db: Database, a: Seed) -> None:
    with db.uow() as uow, pytest.raises(Conflict) as caught:
        uow.tenants.add(tenant(a.tenant_id))
    assert caught.value.code == "tenant.duplicate"


def test_api_keys(db: Database, a: Seed, b: Seed) -> None:
    key = ApiKeyRecord("key_1", a.tenant_id, "ops", "admin", "h" * 64, "sk_live_", NOW)
    with db.uow() as uow:
        uow.api_keys.add(key)
        assert uow.api_keys.by_hash("h" * 64) == key
        assert uow.api_keys.list(a.tenant_id) == [key]
        assert uow.api_keys.list(b.tenant_id) == []
        assert not uow.api_keys.revoke(b.tenant_id, key.id, NOW)  # another tenant's key
        assert uow.api_keys.revoke(a.tenant_id, key.id, NOW)
        assert not uow.api_keys.revoke(a.tenant_id, key.id, NOW)  # revoked already
        uow.commit()
    with db.uow() as uow:
        assert uow.api_keys.by_hash("h" * 64) == dataclasses.replace(key, revoked_at=NOW)


def test_idempotency_reserve_survives_the_losing_insert(db: Database, a: Seed) -> None:
    entry = IdempotencyEntry(a.tenant_id, "k1", "POST", "/v1/customers", "r" * 64, None, None, NOW)
    with db.uow() as uow:
        assert uow.idempotency.reserve(entry)
        assert not uow.idempotency.reserve(entry)
        # The transaction is still usable after the refused insert (PostgreSQL would abort it).
        uow.idempotency.complete(a.tenant_id, "k1", 201, '{"id":"cus_1"}')
        uow.commit()
    with db.uow() as uow:
        stored = uow.idempotency.get(a.tenant_id, "k1")
        uow.idempotency.release(a.tenant_id, "k1")  # completed entries are kept
        assert uow.idempotency.get(a.tenant_id, "k1") == stored
        assert uow.idempotency.reserve(dataclasses.replace(entry, key="k2"))
        uow.idempotency.release(a.tenant_id, "k2")
        assert uow.idempotency.get(a.tenant_id, "k2") is None
    assert stored == dataclasses.replace(entry, status_code=201, response_body='{"id":"cus_1"}')


# -- catalog -------------------------------------------------------------------------------------
def test_catalog_round_trip(db: Database, a: Seed, b: Seed) -> None:
    channels = [
        ChannelRecord(f"ch_{i}", a.tenant_id, f"c{i}", f"Channel {i}", i, None, NOW)
        for i in range(3)
    ]
    package = PackageRecord("pkg_1", a.tenant_id, "basic", "Basic", ("ch_0", "ch_2"), NOW)
    with db.uow() as uow:
        for channel in channels:
            uow.catalog.add_channel(channel)
        uow.catalog.add_package(package)
        uow.commit()
    with db.uow(read_only=True) as uow:
        assert uow.catalog.get_channel(a.tenant_id, "ch_1") == channels[1]
        assert uow.catalog.get_channel(b.tenant_id, "ch_1") is None
        assert list(uow.catalog.channels_by_code(a.tenant_id, ["c2", "c0", "zz"])) == [
            channels[0],
            channels[2],
        ]
        assert uow.catalog.get_package(a.tenant_id, "pkg_1") == package
        assert uow.catalog.get_package(b.tenant_id, "pkg_1") is None
        assert list(uow.catalog.packages_by_code(a.tenant_id, ["basic"])) == [package]
        assert uow.catalog.list_packages(a.tenant_id, 10, None).items == (package,)
        assert uow.catalog.list_channels(b.tenant_id, 10, None).items == ()
        assert uow.catalog.get_plan(a.tenant_id, a.plan_id) == plan(a.tenant_id, a.plan_id)
        assert uow.catalog.plan_by_code(b.tenant_id, a.plan_id) is None
        stored = uow.catalog.get_terms(a.tenant_id, a.terms_id)
        assert stored == terms(a.tenant_id, a.plan_id, a.terms_id)
        assert uow.catalog.get_terms(b.tenant_id, a.terms_id) is None
        assert list(uow.catalog.terms_by_ids([a.terms_id, b.terms_id])) == [
            uow.catalog.get_terms(a.tenant_id, a.terms_id),
            uow.catalog.get_terms(b.tenant_id, b.terms_id),
        ]


def test_catalog_duplicates_are_conflicts_and_keep_the_transaction(db: Database, a: Seed) -> None:
    channel = ChannelRecord("ch_1", a.tenant_id, "c1", "One", 1, "https://x/1.png", NOW)
    with db.uow() as uow:
        uow.catalog.add_channel(channel)
        with pytest.raises(Conflict, match="c1") as caught:
            uow.catalog.add_channel(dataclasses.replace(channel, id="ch_2"))
        assert caught.value.code == "channel.duplicate_code"
        with pytest.raises(Conflict):
            uow.catalog.add_plan(plan(a.tenant_id, a.plan_id))
        with pytest.raises(Conflict):
            uow.catalog.add_terms(terms(a.tenant_id, a.plan_id, "terms_again"))
        uow.catalog.add_terms(terms(a.tenant_id, a.plan_id, "terms_v2", version=2))
        uow.commit()
    with db.uow() as uow:
        versions = uow.catalog.terms_of_plan(a.tenant_id, a.plan_id)
        assert [t.version for t in versions] == [1, 2]
        assert uow.catalog.get_channel(a.tenant_id, "ch_1") == channel


# -- customers and pagination ----------------------------------------------------------------------
def test_customers_pagination_and_tenant_isolation(db: Database, a: Seed, b: Seed) -> None:
    with db.uow() as uow:
        for i in range(5):
            uow.customers.add(customer(a.tenant_id, f"cus_p{i}", email="same@example.test"))
        uow.commit()
    with db.uow(read_only=True) as uow:
        first = uow.customers.list(a.tenant_id, 2, None, email="same@example.test")
        second = uow.customers.list(a.tenant_id, 2, first.items[-1].id, email="same@example.test")
        third = uow.customers.list(a.tenant_id, 2, second.items[-1].id, email="same@example.test")
        everyone = uow.customers.list(a.tenant_id, 100, None)
        assert uow.customers.get(b.tenant_id, "cus_p0") is None
        assert uow.customers.collection_methods(b.tenant_id, ["cus_p0", b.customer_id]) == {
            b.customer_id: "send_invoice"
        }
    assert [c.id for c in first.items] == ["cus_p0", "cus_p1"]
    assert first.has_more
    assert [c.id for c in second.items] == ["cus_p2", "cus_p3"]
    assert second.has_more
    assert [c.id for c in third.items] == ["cus_p4"]
    assert not third.has_more
    assert [c.id for c in everyone.items] == [a.customer_id, *(f"cus_p{i}" for i in range(5))]
    assert not everyone.has_more


def test_customer_update(db: Database, a: Seed) -> None:
    changed = dataclasses.replace(
        customer(a.tenant_id, a.customer_id), name="Renamed", collection_method="charge_wallet"
    )
    with db.uow() as uow:
        uow.customers.update(changed)
        uow.commit()
    with db.uow() as uow:
        assert uow.customers.get(a.tenant_id, a.customer_id) == changed
        assert uow.customers.collection_methods(a.tenant_id, [a.customer_id]) == {
            a.customer_id: "charge_wallet"
        }


# -- subscriptions -------------------------------------------------------------------------------
def _rich_subscription(a: Seed) -> SubscriptionRecord:
    base = subscription(a, "sub_rich", status=SubscriptionStatus.TRIALING)
    state = dataclasses.replace(
        base.state,
        anchor=datetime(2026, 2, 28, 23, 0, tzinfo=CET),
        trial_end=base.state.current_period.end,
        cancel_at_period_end=True,
        pending_terms_hash=terms(a.tenant_id, a.plan_id, "terms_v2", version=2).terms_hash,
        addons=(("hd", 1), ("sports", 2)),
        paused_at=NOW,
        period_index=7,
    )
    return dataclasses.replace(base, state=state, pending_terms_id="terms_v2", version=1)


def test_subscription_round_trip(db: Database, a: Seed) -> None:
    record = _rich_subscription(a)
    with db.uow() as uow:
        uow.catalog.add_terms(terms(a.tenant_id, a.plan_id, "terms_v2", version=2))
        uow.subscriptions.add(record)
        uow.commit()
    with db.uow() as uow:
        stored = uow.subscriptions.get(a.tenant_id, record.id, for_update=True)
        assert uow.subscriptions.get("ten_b", record.id) is None
    assert stored == record
    assert stored is not None
    assert_utc(stored.state.anchor)
    assert_utc(stored.state.current_period.start)


def test_subscription_update_is_optimistic(db: Database, a: Seed) -> None:
    with db.uow() as uow:
        current = uow.subscriptions.get(a.tenant_id, a.subscription_id)
    assert current is not None
    assert current.version == 1
    moved = dataclasses.replace(
        current, state=dataclasses.replace(current.state, status=SubscriptionStatus.PAST_DUE)
    )
    with db.uow() as uow:
        uow.subscriptions.update(moved)
        uow.commit()
    with db.uow() as uow, pytest.raises(Conflict) as caught:
        uow.subscriptions.update(moved)  # still carries version 1: a lost update
    assert caught.value.code == "subscription.concurrent_update"
    with db.uow() as uow:
        stored = uow.subscriptions.get(a.tenant_id, a.subscription_id)
    assert stored == dataclasses.replace(moved, version=2)


def test_due_update_many_and_counts(db: Database, a: Seed, b: Seed) -> None:
    with db.uow() as uow:
        uow.subscriptions.add(subscription(a, "sub_due1", period_end=NOW))
        uow.subscriptions.add(subscription(a, "sub_due2", period_end=NOW - MONTH))
        uow.subscriptions.add(
            subscription(a, "sub_paused", period_end=NOW, status=SubscriptionStatus.PAUSED)
        )
        uow.subscriptions.add(subscription(a, "sub_later", period_end=NOW + timedelta(seconds=1)))
        uow.commit()
    with db.uow() as uow:
        due = uow.subscriptions.due(a.tenant_id, NOW, None, 10)
        assert [s.id for s in due] == ["sub_due1", "sub_due2"]
        assert [s.id for s in uow.subscriptions.due(a.tenant_id, NOW, "sub_due1", 10)] == [
            "sub_due2"
        ]
        assert uow.subscriptions.due(b.tenant_id, NOW, None, 10) == []
        renewed = [_next_period(s) for s in due]
        uow.subscriptions.update_many(renewed)
        with pytest.raises(Conflict):
            uow.subscriptions.update_many(renewed)  # the versions moved
        uow.commit()
    with db.uow() as uow:
        # sub_due2 was two periods behind: still due once more.
        assert [s.id for s in uow.subscriptions.due(a.tenant_id, NOW, None, 10)] == ["sub_due2"]
        stored = uow.subscriptions.get(a.tenant_id, "sub_due1")
        assert uow.subscriptions.count_by_status(a.tenant_id) == {"active": 4, "paused": 1}
        page = uow.subscriptions.list(a.tenant_id, 10, None, status="paused")
        assert [s.id for s in page.items] == ["sub_paused"]
        mine = uow.subscriptions.list(b.tenant_id, 10, None, customer_id=b.customer_id)
        assert [s.id for s in mine.items] == [b.subscription_id]
    assert stored == dataclasses.replace(renewed[0], version=2)


def _next_period(record: SubscriptionRecord) -> SubscriptionRecord:
    period = record.state.current_period
    state = dataclasses.replace(
        record.state,
        period_index=record.state.period_index + 1,
        current_period=Period(period.end, period.end + MONTH),
    )
    return dataclasses.replace(record, state=state, updated_at=NOW)


# -- invoices --------------------------------------------------------------------------------------
def test_invoice_round_trip_with_lines_and_big_amounts(db: Database, a: Seed, b: Seed) -> None:
    period = Period(NOW, NOW + MONTH)
    record = invoice(a, "inv_1", lines=(line(BIG, period=period),))
    manual = invoice(a, "inv_2", cycle_start=None, lines=(line(-1), line(250, quantity=3)))
    with db.uow() as uow:
        assert uow.invoices.add_many([record, manual]) == 2
        uow.commit()
    with db.uow() as uow:
        assert uow.invoices.get(a.tenant_id, "inv_1", for_update=True) == record
        assert uow.invoices.get(a.tenant_id, "inv_2") == manual
        listed = uow.invoices.list(a.tenant_id, 10, None)
        assert uow.invoices.get(b.tenant_id, "inv_1") is None
        assert uow.invoices.list(b.tenant_id, 10, None).items == ()
    # Lists leave the lines out.
    assert listed.items == tuple(dataclasses.replace(i, lines=()) for i in (record, manual))


def test_invoice_update_filters_and_reports(db: Database, a: Seed) -> None:
    due = NOW + timedelta(days=7)
    drafts = [
        invoice(a, "inv_1", cycle_start=NOW - MONTH, lines=(line(1000),)),
        invoice(a, "inv_2", cycle_start=NOW, lines=(line(500),)),
    ]
    with db.uow() as uow:
        uow.invoices.add_many(drafts)
        first = uow.invoices.take_numbers(a.tenant_id, "INV-", 2)
        finalized = [
            dataclasses.replace(
                draft,
                status="finalized",
                number=first + offset,
                finalized_at=NOW,
                due_at=due + timedelta(days=offset),
                lines=(),
            )
            for offset, draft in enumerate(drafts)
        ]
        for record in finalized:
            uow.invoices.update(record)
        # Only the settlement of a finalized invoice may change (the database enforces it).
        paid = dataclasses.replace(finalized[1], status="paid", amount_paid_minor=500, paid_at=NOW)
        uow.invoices.update(paid)
        uow.commit()
    with db.uow(read_only=True) as uow:
        assert first == 1
        assert uow.invoices.oldest_unpaid_due(a.tenant_id, [a.subscription_id]) == {
            a.subscription_id: due
        }
        overdue = uow.invoices.overdue_subscriptions(a.tenant_id, due + timedelta(1), None, 10)
        assert overdue == [(a.subscription_id, due)]
        assert uow.invoices.overdue_subscriptions(a.tenant_id, due, None, 10) == []
        assert [i.id for i in uow.invoices.open_for_customer(a.tenant_id, a.customer_id)] == [
            "inv_1"
        ]
        assert uow.invoices.totals_by_currency(a.tenant_id) == {
            "finalized": {"EUR": 1000},
            "paid": {"EUR": 500},
        }
        assert uow.invoices.count_by_status(a.tenant_id) == {"finalized": 1, "paid": 1}
        assert [i.id for i in uow.invoices.list(a.tenant_id, 10, None, status="paid").items] == [
            "inv_2"
        ]
        assert uow.invoices.existing_cycles([a.subscription_id]) == {
            (a.subscription_id, NOW - MONTH),
            (a.subscription_id, NOW),
        }


# -- wallets and journal -------------------------------------------------------------------------
def test_wallets(db: Database, a: Seed, b: Seed) -> None:
    with db.uow() as uow:
        created = uow.wallets.ensure(wallet(a, "wal_1"))
        again = uow.wallets.ensure(wallet(a, "wal_other", balance=99))  # exists: unchanged
        assert uow.wallets.credit(created.id, BIG, NOW) == BIG
        assert uow.wallets.debit(created.id, BIG + 1, NOW) is None
        assert uow.wallets.debit(created.id, 1, NOW + timedelta(1)) == BIG - 1
        uow.wallets.ensure(wallet(b, "wal_b", balance=7))
        uow.commit()
    with db.uow(read_only=True) as uow:
        stored = uow.wallets.get(a.tenant_id, a.customer_id, "EUR")
        assert uow.wallets.get(b.tenant_id, a.customer_id, "EUR") is None
        assert uow.wallets.list(a.tenant_id, a.customer_id) == [stored]
        assert uow.wallets.totals(a.tenant_id) == {"EUR": BIG - 1}
    assert again == created == wallet(a, "wal_1")
    assert stored == dataclasses.replace(
        created, balance_minor=BIG - 1, updated_at=NOW + timedelta(1)
    )


def test_journal(db: Database, a: Seed, b: Seed) -> None:
    eur = Money.from_minor
    sale = JournalEntry(
        "invoice_finalized",
        (
            Posting("receivable:cus_a", eur(BIG, "EUR")),
            Posting("revenue:subscription", eur(-BIG, "EUR")),
        ),
        memo="inv_1",
    )
    fx = JournalEntry(
        "payment_received",
        (
            Posting("cash:manual", eur(100, "EUR")),
            Posting("receivable:cus_a", eur(-100, "EUR")),
            Posting("cash:manual", eur(5, "USD")),
            Posting("wallet:cus_a", eur(-5, "USD")),
        ),
    )
    with db.uow() as uow:
        uow.journal.add(a.tenant_id, [("je_1", sale, "inv_1"), ("je_2", fx, "inv_1")], NOW)
        uow.journal.add(b.tenant_id, [("je_3", sale, "inv_1")], NOW)
        uow.commit()
    with db.uow(read_only=True) as uow:
        assert list(uow.journal.entries_for(a.tenant_id, "inv_1")) == [sale, fx]
        assert uow.journal.entries_for(a.tenant_id, "inv_none") == []
        assert uow.journal.account_balance(a.tenant_id, "receivable:cus_a", "EUR") == BIG - 100
        assert uow.journal.account_balance(a.tenant_id, "wallet:cus_a", "USD") == -5
        assert uow.journal.account_balance(a.tenant_id, "nobody:x", "EUR") == 0
        assert uow.journal.imbalances(a.tenant_id) == []


def test_imbalances_are_reported(db: Database, a: Seed) -> None:
    # Written around the repository (the domain refuses to build it) and, on PostgreSQL,
    # around the balance trigger too, as a superuser tampering with the table could; never
    # committed.
    with db.uow() as uow:
        connection = uow.connection
        if db.dialect_name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text(
                "INSERT INTO journal_entries (id, tenant_id, kind, memo, created_at) "
                "VALUES ('je_bad', :t, 'manual', '', :at)"
            ),
            {"t": a.tenant_id, "at": NOW},
        )
        connection.execute(
            sa.text(
                "INSERT INTO journal_postings (entry_id, tenant_id, account, currency, "
                "amount_minor) VALUES ('je_bad', :t, 'cash:manual', 'EUR', 3)"
            ),
            {"t": a.tenant_id},
        )
        assert uow.journal.imbalances(a.tenant_id) == [("je_bad", "EUR", 3)]


# -- payments and billing runs -------------------------------------------------------------------
def _payment(a: Seed, payment_id: str, key: str | None, status: str = "pending") -> PaymentRecord:
    return PaymentRecord(
        id=payment_id,
        tenant_id=a.tenant_id,
        customer_id=a.customer_id,
        invoice_id=None,
        method="card",
        status=status,
        amount_minor=BIG,
        currency="EUR",
        applied_minor=0,
        excess_minor=0,
        provider="fake",
        provider_payment_id=None,
        provider_idempotency_key=key,
        failure_code=None,
        reference=None,
        created_at=NOW,
        updated_at=NOW,
    )


def test_payments(db: Database, a: Seed, b: Seed) -> None:
    first = _payment(a, "pay_1", "key-1")
    with db.uow() as uow:
        uow.payments.add(first)
        uow.payments.add(_payment(a, "pay_2", None, status="failed"))
        with pytest.raises(Conflict):
            uow.payments.add(_payment(a, "pay_3", "key-1"))
        uow.payments.add(_payment(b, "pay_b", "key-1"))  # keys are per tenant
        uow.commit()
    done = dataclasses.replace(
        first,
        status="succeeded",
        applied_minor=BIG,
        provider_payment_id="pi_1",
        updated_at=NOW + timedelta(seconds=1),
    )
    with db.uow() as uow:
        assert uow.payments.get(a.tenant_id, "pay_1", for_update=True) == first
        assert [p.id for p in uow.payments.pending(a.tenant_id)] == ["pay_1"]
        uow.payments.update(done)
        uow.commit()
    with db.uow(read_only=True) as uow:
        assert uow.payments.by_provider_key(a.tenant_id, "key-1") == done
        assert uow.payments.get(b.tenant_id, "pay_1") is None
        listed = uow.payments.list(a.tenant_id, 1, None, customer_id=a.customer_id)
        assert [p.id for p in listed.items] == ["pay_1"]
        assert listed.has_more
        assert uow.payments.list(a.tenant_id, 10, None, invoice_id="inv_x").items == ()
        assert uow.payments.pending(a.tenant_id) == []


def test_billing_runs(db: Database, a: Seed, b: Seed) -> None:
    run = BillingRunRecord("run_1", a.tenant_id, "running", NOW, NOW, None, 0, 0, 0, 0)
    finished = dataclasses.replace(
        run,
        status="completed",
        finished_at=NOW + timedelta(minutes=1),
        subscriptions_seen=3,
        invoices_created=2,
        transitions=1,
        failures=1,
    )
    with db.uow() as uow:
        uow.billing_runs.add(run)
        uow.billing_runs.add_failure(run.id, a.tenant_id, "sub_x", "terms.missing", "x" * 5000)
        uow.billing_runs.update(finished)
        uow.commit()
    with db.uow(read_only=True) as uow:
        assert uow.billing_runs.get(a.tenant_id, run.id) == finished
        assert uow.billing_runs.get(b.tenant_id, run.id) is None
        assert uow.billing_runs.list(a.tenant_id, 10, None).items == (finished,)
        assert uow.billing_runs.list(b.tenant_id, 10, None).items == ()
        assert uow.billing_runs.failures(a.tenant_id, run.id) == [
            ("sub_x", "terms.missing", "x" * 1000)
        ]
        assert uow.billing_runs.failures(b.tenant_id, run.id) == []


def test_uncommitted_work_is_rolled_back(db: Database, a: Seed) -> None:
    with db.uow() as uow:
        uow.customers.add(customer(a.tenant_id, "cus_gone"))
    with db.uow() as uow:
        assert uow.customers.get(a.tenant_id, "cus_gone") is None


def test_due_skips_rows_another_worker_claimed_on_postgresql(db: Database, a: Seed) -> None:
    if db.dialect_name != "postgresql":
        pytest.skip("SQLite serializes writers instead (BEGIN IMMEDIATE)")
    with db.uow() as uow:
        for i in range(4):
            uow.subscriptions.add(subscription(a, f"sub_due{i}", period_end=NOW))
        uow.commit()
    with db.uow() as first, db.uow() as second:
        claimed = [s.id for s in first.subscriptions.due(a.tenant_id, NOW, None, 2)]
        rest = [s.id for s in second.subscriptions.due(a.tenant_id, NOW, None, 10)]
    assert claimed == ["sub_due0", "sub_due1"]
    assert rest == ["sub_due2", "sub_due3"]


# -- retries ---------------------------------------------------------------------------------------
def _locked_error() -> OperationalError:
    busy = sqlite3.OperationalError("database is locked")
    return OperationalError("UPDATE wallets ...", {}, busy)


def test_run_in_transaction_retries_transient_errors(db: Database, a: Seed) -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def work(uow: UnitOfWork) -> str:
        calls.append(1)
        uow.customers.add(customer(a.tenant_id, f"cus_try{len(calls)}"))
        if len(calls) < 3:
            raise _locked_error()
        return "done"

    assert run_in_transaction(db.uow, work, sleep=sleeps.append) == "done"
    assert len(calls) == 3
    assert len(sleeps) == 2
    assert 0 < sleeps[0] <= sleeps[1] <= 1  # growing, capped
    with db.uow(read_only=True) as uow:
        # Only the successful attempt's work was committed.
        assert uow.customers.get(a.tenant_id, "cus_try1") is None
        assert uow.customers.get(a.tenant_id, "cus_try3") is not None


def test_run_in_transaction_gives_up_and_passes_other_errors(db: Database) -> None:
    attempts: list[int] = []

    def always_locked(uow: UnitOfWork) -> None:
        attempts.append(1)
        raise _locked_error()

    with pytest.raises(OperationalError):
        run_in_transaction(db.uow, always_locked, attempts=2, sleep=lambda _: None)
    assert len(attempts) == 2

    def broken(uow: UnitOfWork) -> None:
        attempts.append(1)
        uow.tenants.add(tenant("ten_a"))
        uow.tenants.add(tenant("ten_a"))

    with pytest.raises(Conflict):
        run_in_transaction(db.uow, broken, sleep=lambda _: None)
    assert len(attempts) == 3
    assert not is_transient(IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")))
