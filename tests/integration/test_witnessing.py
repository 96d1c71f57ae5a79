"""The log and its witnesses: checkpoints submitted with consistency proofs, cosignatures
verified and kept, a witness that lost track resynchronised by its 409, the k-of-n policy, and
the public checkpoint being the newest one the policy accepts.

The witnesses are the real ``iptv_billing.witness`` service with its SQLite state, called in
process (the HTTP path is covered by tests/integration/test_witness_http.py and the e2e test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_harness import LoggedOperator

from iptv_billing.ledger.checkpoint import open_checkpoint
from iptv_billing.ledger.note import CosignatureV1Signer, parse_vkey
from iptv_billing.ledger.policy import k_of_n_policy
from iptv_billing.services import transparency
from iptv_billing.services.publishing import add_checkpoint_body
from iptv_billing.witness.service import Witness
from iptv_billing.witness.state import SqliteWitnessState

NOW = 1_900_000_000


class InProcessWitnesses:
    """``WitnessTransport`` onto real witness services, by URL."""

    def __init__(self) -> None:
        self.by_url: dict[str, Witness] = {}
        self.down: set[str] = set()

    def add_checkpoint(self, url: str, body: bytes) -> tuple[int, bytes]:
        if url in self.down:
            from iptv_billing.domain.errors import Unavailable

            raise Unavailable("witness.unreachable", f"{url}: connection refused")
        response = self.by_url[url].add_checkpoint(body, NOW)
        return response.status, response.body


@pytest.fixture
def op(database_url: str, tmp_path: Path) -> Iterator[LoggedOperator]:
    operator = LoggedOperator(database_url, tmp_path / "keys")
    yield operator
    operator.close()


def _witnesses(op: LoggedOperator, tmp_path: Path, k: int) -> tuple[InProcessWitnesses, list[str]]:
    transport = InProcessWitnesses()
    log_vkey = op.vkeys()[-1]
    origin = op.publisher.origin(op.tenant_id)
    entries = []
    for n in (1, 2):
        name = f"witness{n}.test"
        signer = CosignatureV1Signer.from_seed(name, bytes([n]) * 32, clock=lambda: NOW)
        state = SqliteWitnessState(tmp_path / f"witness{n}.db")
        url = f"http://{name}"
        transport.by_url[url] = Witness(signer, {origin: [parse_vkey(log_vkey)]}, state)
        entries.append((f"w{n}", signer.vkey, url))
    op.publisher.policy = k_of_n_policy(log_vkey, entries, k)
    op.publisher.transport = transport
    return transport, [vkey for _, vkey, _ in entries]


def test_both_witnesses_cosign_each_new_checkpoint(op: LoggedOperator, tmp_path: Path) -> None:
    op.activity(months=1)
    _, witness_vkeys = _witnesses(op, tmp_path, k=2)
    first = op.publisher.publish(op.tenant_id, anchor=False)
    assert first.witnesses is not None
    assert first.witnesses.cosigned == {"w1", "w2"}
    assert first.witnesses.satisfied
    op.advance(31)
    op.bill()
    second = op.publisher.publish(op.tenant_id, anchor=False)  # old size → consistency proof
    assert second.witnesses is not None
    assert second.witnesses.satisfied
    with op.database.uow(read_only=True) as uow:
        note = transparency.cosigned_note(uow, second.checkpoint)
        assert {c.witness for c in uow.log.cosignatures(op.tenant_id, second.checkpoint.size)} == {
            "witness1.test",
            "witness2.test",
        }
    signed = open_checkpoint(note, op.log_keys(), [parse_vkey(v) for v in witness_vkeys])
    assert set(signed.cosignatures) == {"witness1.test", "witness2.test"}


def test_a_witness_that_was_down_catches_up_from_its_own_size(
    op: LoggedOperator, tmp_path: Path
) -> None:
    op.activity(months=1)
    transport, _ = _witnesses(op, tmp_path, k=1)
    transport.down.add("http://witness2.test")
    first = op.publisher.publish(op.tenant_id, anchor=False)
    assert first.witnesses is not None
    assert first.witnesses.cosigned == {"w1"}
    assert "w2" in first.witnesses.failures
    assert first.witnesses.satisfied  # 1 of 2 is the policy
    transport.down.clear()
    op.advance(31)
    op.bill()
    second = op.publisher.publish(op.tenant_id, anchor=False)
    assert second.witnesses is not None
    assert second.witnesses.cosigned == {"w1", "w2"}  # w2 from old 0, w1 with a proof


def test_a_witness_holding_a_size_the_log_did_not_record_is_resynchronised(
    op: LoggedOperator, tmp_path: Path
) -> None:
    """The witness cosigned but its answer was lost: the log sends ``old 0``, the 409 names
    the witness's size, and the retry carries the proof from there."""
    op.activity(months=1)
    transport, _ = _witnesses(op, tmp_path, k=2)
    lost = op.publisher.checkpoint(op.tenant_id)
    for witness in transport.by_url.values():
        assert witness.add_checkpoint(add_checkpoint_body(0, [], lost.note), NOW).status == 200
    op.advance(31)
    op.bill()
    outcome = op.publisher.publish(op.tenant_id, anchor=False).witnesses
    assert outcome is not None
    assert outcome.cosigned == {"w1", "w2"}
    assert outcome.failures == {}


def test_the_public_checkpoint_is_the_newest_the_policy_accepts(
    op: LoggedOperator, tmp_path: Path
) -> None:
    op.activity(months=1)
    transport, _ = _witnesses(op, tmp_path, k=2)
    witnessed = op.publisher.publish(op.tenant_id, anchor=False).checkpoint
    op.advance(31)
    op.bill()
    transport.down.update(transport.by_url)
    unwitnessed = op.publisher.publish(op.tenant_id, anchor=False).checkpoint
    assert unwitnessed.size > witnessed.size
    with op.database.uow(read_only=True) as uow:
        assert op.publisher.published_checkpoint(uow, op.tenant_id) == witnessed
    transport.down.clear()
    op.publisher.witness(op.tenant_id)
    with op.database.uow(read_only=True) as uow:
        assert op.publisher.published_checkpoint(uow, op.tenant_id) == unwitnessed
