"""The transparency log on both engines: what billing writes into it, proofs for any index
and size from the stored tiles, checkpoints, receipts, and the append-only tables."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from ledger_harness import LoggedOperator, entries
from sqlalchemy.exc import DBAPIError

from iptv_billing.domain.errors import Conflict
from iptv_billing.ledger import merkle, tiles
from iptv_billing.ledger.checkpoint import open_checkpoint
from iptv_billing.ledger.entries import commitment
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import parse_note, parse_vkey
from iptv_billing.ledger.receipt import verify_receipt
from iptv_billing.services import transparency
from iptv_billing.services.ledger_audit import verify_log
from iptv_billing.services.records import LogDraft

LOG_TABLES = ("log_entries", "log_tiles", "log_checkpoints")


@pytest.fixture
def op(database_url: str, tmp_path: Path) -> Iterator[LoggedOperator]:
    operator = LoggedOperator(database_url, tmp_path / "keys")
    yield operator
    operator.close()


def _append(op: LoggedOperator, count: int, start: int = 0) -> None:
    at = datetime(2028, 2, 1, tzinfo=UTC)
    drafts = [LogDraft("test", f"s{start + i}", None, {"n": start + i}, at) for i in range(count)]
    with op.database.uow() as uow:
        uow.log.stage(op.tenant_id, drafts)
        uow.commit()


def _memory_tree(op: LoggedOperator) -> merkle.MemoryTree:
    with op.database.uow(read_only=True) as uow:
        size = uow.log.size(op.tenant_id)
        leaves = [merkle.leaf_hash(c) for c in uow.log.commitments(op.tenant_id, 0, size)]
    return merkle.MemoryTree(leaves)


def test_billing_activity_logs_journal_subscriptions_and_terms(op: LoggedOperator) -> None:
    op.activity()
    logged = list(entries(op))
    kinds = {e.kind for e in logged}
    assert kinds == {"journal_entry", "subscription_state", "terms_accepted"}
    assert [e.idx for e in logged] == list(range(len(logged)))
    with op.database.uow(read_only=True) as uow:
        journal_ids = set(uow.journal.ids(op.tenant_id))
    assert journal_ids == {e.subject_id for e in logged if e.kind == "journal_entry"}
    for entry in logged:  # the salted commitment of the canonical record, index included
        record = json.loads(entry.record)
        assert record["index"] == entry.idx
        assert record["type"] == entry.kind
        assert commitment(entry.salt, entry.record.encode()) == entry.commitment
    assert len({e.salt for e in logged}) == len(logged)


def test_a_rolled_back_change_logs_nothing(op: LoggedOperator) -> None:
    op.plan("basic", "9.99")
    customer = op.customer()
    before = len(list(entries(op)))
    with op.database.uow() as uow:
        uow.log.stage(op.tenant_id, [LogDraft("test", "x", None, {"n": 1}, op.system.now())])
        uow.rollback()
        uow.commit()
    assert len(list(entries(op))) == before
    assert customer.id


def test_proofs_from_tiles_match_a_memory_tree_at_every_size(op: LoggedOperator) -> None:
    # Batches that straddle level-0 tiles and complete a level-1 tile (65,536 entries).
    rng = random.Random(7)
    total = 0
    for count in (1, 254, 1, 300, 65_000, 256, 100, 2_000):
        _append(op, count, total)
        total += count
    tree = _memory_tree(op)
    assert tree.size == total > 65_536
    with op.database.uow(read_only=True) as uow:
        sizes = [1, 2, 255, 256, 257, 65_535, 65_536, 65_537, total - 1, total]
        sizes += [rng.randrange(1, total + 1) for _ in range(5)]
        for size in sizes:
            read = functools.partial(uow.log.read_subtrees, op.tenant_id, size)
            assert merkle.tree_root(size, read) == tree.root(size)
            for index in {0, size - 1, size // 2, rng.randrange(size)}:
                assert merkle.inclusion_proof(index, size, read) == tree.inclusion_proof(
                    index, size
                )
            old = rng.randrange(1, size + 1)
            assert transparency.consistency_proof(
                uow, op.tenant_id, old, size
            ) == tree.consistency_proof(old, size)
        stored = uow.log.stored_tiles(op.tenant_id, [(1, 0)], cached=False)
        assert tiles.stored_tile_root(stored[(1, 0)]) == tree.root(65_536)


def test_tiles_are_served_in_the_c2sp_layout(op: LoggedOperator) -> None:
    _append(op, 300)
    tree = _memory_tree(op)
    with op.database.uow(read_only=True) as uow:
        full = transparency.tile_content(uow, op.tenant_id, tiles.parse_tile_path("tile/0/000"))
        partial = transparency.tile_content(
            uow, op.tenant_id, tiles.parse_tile_path("tile/0/001.p/44")
        )
        bundle = transparency.tile_content(
            uow, op.tenant_id, tiles.parse_tile_path("tile/entries/001.p/44")
        )
        beyond = transparency.tile_content(
            uow, op.tenant_id, tiles.parse_tile_path("tile/0/001.p/45")
        )
        commitments = uow.log.commitments(op.tenant_id, 256, 300)
    assert full is not None
    assert partial is not None
    assert bundle is not None
    assert full == b"".join(tree.read([(0, i) for i in range(256)]))
    assert partial == b"".join(tree.read([(0, i) for i in range(256, 300)]))
    assert tiles.parse_entry_bundle(bundle) == commitments
    assert beyond is None


def test_checkpoints_are_signed_idempotent_and_consistent(op: LoggedOperator) -> None:
    op.activity(months=1)
    first = op.publisher.checkpoint(op.tenant_id)
    assert op.publisher.checkpoint(op.tenant_id) == first  # nothing new: same checkpoint
    signed = open_checkpoint(first.note, op.log_keys())
    assert signed.checkpoint.origin == op.publisher.origin(op.tenant_id)
    assert (signed.checkpoint.size, signed.checkpoint.root) == (first.size, first.root)
    op.advance(31)
    op.bill()
    second = op.publisher.checkpoint(op.tenant_id)
    assert second.size > first.size
    with op.database.uow(read_only=True) as uow:
        proof = transparency.consistency_proof(uow, op.tenant_id, first.size, second.size)
    merkle.verify_consistency(first.size, second.size, first.root, second.root, proof)
    with op.database.uow(read_only=True) as uow:
        assert verify_log(uow, op.tenant_id, op.log_keys()).consistent


def test_a_receipt_verifies_offline_and_names_the_charge(op: LoggedOperator) -> None:
    op.activity()
    op.publisher.checkpoint(op.tenant_id)
    invoice = next(i for i in op.invoices() if i.total_minor > 0)
    report = verify_receipt(op.receipt_text(invoice.id), op.vkeys())
    passed = {c.name for c in report.checks if c.ok}
    assert {"checkpoint.signature", "invoice.charge"} <= passed
    assert [c.name for c in report.failures()] == ["anchor"]  # no chain in this test
    other = verify_receipt(  # a stranger's key vouches for nothing here
        op.receipt_text(invoice.id),
        ["billing.test/log/other+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    )
    assert not other.ok


def test_a_receipt_before_any_checkpoint_is_refused(op: LoggedOperator) -> None:
    op.activity(months=1)
    invoice = op.invoices()[0]
    with pytest.raises(Conflict) as refused:
        op.receipt(invoice.id)
    assert refused.value.code == "receipt.not_checkpointed"


@pytest.mark.parametrize("table", LOG_TABLES)
def test_log_tables_refuse_update_and_delete(op: LoggedOperator, table: str) -> None:
    _append(op, 256)
    op.publisher.checkpoint(op.tenant_id)
    for statement in (f"UPDATE {table} SET tenant_id = tenant_id", f"DELETE FROM {table}"):
        with op.database.engine.begin() as connection, pytest.raises(DBAPIError) as refused:
            connection.execute(sa.text(statement))
        assert "append-only" in str(refused.value)
    assert len(list(entries(op))) == 256


def test_records_with_awkward_text_round_trip_exactly(op: LoggedOperator) -> None:
    awkward = 'tab\there, new\nline, cr\r, back\\slash, "quotes", nul\x00, é, 🎬, \\N, \\x00'
    at = datetime(2028, 2, 1, tzinfo=UTC)
    drafts = [LogDraft("test", "s\\1\t", "a\nb", {"memo": awkward, "n": i}, at) for i in range(3)]
    with op.database.uow() as uow:
        uow.log.stage(op.tenant_id, drafts)
        uow.commit()
    stored = list(entries(op))
    assert [json.loads(e.record)["memo"] for e in stored] == [awkward] * 3
    assert {(e.subject_id, e.about_id) for e in stored} == {("s\\1\t", "a\nb")}
    for entry in stored:
        assert commitment(entry.salt, entry.record.encode()) == entry.commitment


def test_a_rotated_key_cosigns_during_the_overlap_then_retires(op: LoggedOperator) -> None:
    op.activity(months=1)
    old_vkey = op.vkeys()[-1]
    origin = op.publisher.origin(op.tenant_id)
    op.publisher.keys.rotate(origin, op.system.now(), timedelta(days=7))
    op.advance(31)
    op.bill()
    during = op.publisher.checkpoint(op.tenant_id)
    assert len(parse_note(during.note).signatures) == 2  # old and new key both sign
    new_vkey = next(v for v in op.vkeys() if v != old_vkey)
    for vkey in (old_vkey, new_vkey):  # verifiers that know either key keep working
        open_checkpoint(during.note, [parse_vkey(vkey)])
    later = op.system.now() + timedelta(days=8)
    op.publisher.now = lambda: later
    op.advance(31)
    op.bill()
    after = op.publisher.checkpoint(op.tenant_id)
    assert [s.name for s in parse_note(after.note).signatures] == [origin]
    open_checkpoint(after.note, [parse_vkey(new_vkey)])
    with pytest.raises(LedgerError):
        open_checkpoint(after.note, [parse_vkey(old_vkey)])
    assert old_vkey in op.vkeys()  # still published: old checkpoints must keep verifying
    with op.database.uow(read_only=True) as uow:
        assert verify_log(uow, op.tenant_id, op.log_keys()).consistent
