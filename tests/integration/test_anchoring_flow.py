"""Anchoring as operators run it: checkpoints anchored on the in-process chain that receipts
then prove; a chain that is down delays anchoring and blocks nothing else."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ledger_harness import LoggedOperator

from iptv_billing.adapters.chain.anchor import JsonRpcChain
from iptv_billing.adapters.chain.embedded import EmbeddedChain
from iptv_billing.ledger.receipt import verify_receipt


@pytest.fixture
def op(database_url: str, tmp_path: Path) -> Iterator[LoggedOperator]:
    operator = LoggedOperator(database_url, tmp_path / "keys")
    yield operator
    operator.close()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedChain]:
    chain = EmbeddedChain(tmp_path / "chain.db")
    yield chain
    chain.close()


def test_receipts_prove_the_anchored_checkpoint(
    op: LoggedOperator, embedded: EmbeddedChain
) -> None:
    op.publisher.chain = embedded
    op.activity()
    published = op.publisher.publish(op.tenant_id)
    assert published.anchor is not None
    assert published.anchor.status == "anchored"
    anchor = published.anchor.anchor
    assert anchor is not None
    assert (anchor.size, anchor.root) == (
        published.checkpoint.size,
        published.checkpoint.root,
    )
    again = op.publisher.anchor(op.tenant_id)
    assert again is not None
    assert again.status == "already_anchored"
    invoice = next(i for i in op.invoices() if i.total_minor > 0)
    receipt = op.receipt_text(invoice.id)
    report = verify_receipt(receipt, op.vkeys(), chain=embedded.root_at)
    assert report.ok, report.failures()
    assert "anchor.on_chain" in {c.name for c in report.checks}


def test_a_chain_that_is_down_delays_anchoring_and_blocks_nothing(
    op: LoggedOperator, embedded: EmbeddedChain, free_port: Callable[[], int]
) -> None:
    op.publisher.chain = JsonRpcChain(f"http://127.0.0.1:{free_port()}", None, None, 1.0)
    op.activity(months=1)
    first = op.publisher.publish(op.tenant_id)
    assert first.anchor is not None
    assert first.anchor.status == "unavailable"
    op.advance(31)
    assert op.bill().invoices_created > 0  # billing goes on
    second = op.publisher.publish(op.tenant_id)  # checkpoints go on
    assert second.checkpoint.size > first.checkpoint.size
    op.publisher.chain = embedded  # the chain is back: the next pass anchors the latest
    late = op.publisher.anchor(op.tenant_id)
    assert late is not None
    assert late.status == "anchored"
    assert late.anchor is not None
    assert late.anchor.size == second.checkpoint.size
    assert embedded.root_at(op.publisher.origin(op.tenant_id), second.checkpoint.size) == (
        second.checkpoint.root
    )
