"""The checkpoint anchor contract on the embedded, persistent chain (py-evm in process)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth.vm.forks.cancun import CancunVM
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3

from iptv_billing.adapters.chain import compiler
from iptv_billing.adapters.chain.anchor import JsonRpcChain
from iptv_billing.adapters.chain.compiler import CHECKPOINT_ANCHOR_SOURCE, compile_contract
from iptv_billing.adapters.chain.embedded import EMBEDDED_CHAIN_ID, EmbeddedChain
from iptv_billing.adapters.chain.factory import open_chain
from iptv_billing.domain.errors import Conflict, InvalidInput, Unavailable

ORIGIN = "billing.example/ledger/tenant-1"
OTHER = "billing.example/ledger/tenant-2"
SRC_DIR = Path(__file__).resolve().parents[2] / "src"


def root(n: int) -> bytes:
    return n.to_bytes(32, "big")


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "chain.sqlite3"


@pytest.fixture
def chain(state_path: Path) -> Iterator[EmbeddedChain]:
    with EmbeddedChain(state_path) as opened:
        yield opened


def head(chain: EmbeddedChain) -> int:
    return int(str(chain.describe()["block_number"]))


def test_anchors_in_order_and_views_return_them(chain: EmbeddedChain) -> None:
    assert chain.latest(ORIGIN) is None
    receipts = [chain.anchor(ORIGIN, size, root(size)) for size in (1, 5, 9)]
    other = chain.anchor(OTHER, 2, root(200))

    described = chain.describe()
    assert described["kind"] == "embedded"
    assert described["chain_id"] == EMBEDDED_CHAIN_ID
    for receipt, size in zip(receipts, (1, 5, 9), strict=True):
        assert receipt.chain_id == EMBEDDED_CHAIN_ID
        assert receipt.contract == described["contract"]
        assert Web3.is_checksum_address(receipt.contract)
        assert receipt.tx_hash.startswith("0x")
        assert len(receipt.tx_hash) == 66
        assert (receipt.origin, receipt.size, receipt.root) == (ORIGIN, size, root(size))
    assert [r.block_number for r in receipts] == sorted({r.block_number for r in receipts})
    assert receipts[0].anchored_at < receipts[1].anchored_at < receipts[2].anchored_at

    assert chain.latest(ORIGIN) == (9, root(9))
    assert chain.latest(OTHER) == (2, root(200))
    assert chain.root_at(ORIGIN, 5) == root(5)
    assert chain.root_at(ORIGIN, 3) is None  # never anchored at that size
    assert chain.root_at(OTHER, 5) is None  # origins are independent
    assert chain.history(ORIGIN) == [(r.size, r.root, r.anchored_at) for r in receipts]
    assert chain.history(OTHER) == [(2, root(200), other.anchored_at)]


def test_smaller_size_is_refused(chain: EmbeddedChain) -> None:
    chain.anchor(ORIGIN, 10, root(10))
    with pytest.raises(Conflict) as refused:
        chain.anchor(ORIGIN, 9, root(9))
    assert refused.value.code == "chain.anchor_refused"
    assert refused.value.message == "size not increasing"
    assert chain.latest(ORIGIN) == (10, root(10))


def test_same_checkpoint_again_is_idempotent_without_a_transaction(chain: EmbeddedChain) -> None:
    first = chain.anchor(ORIGIN, 3, root(3))
    chain.anchor(ORIGIN, 7, root(7))
    before = head(chain)
    assert chain.anchor(ORIGIN, 7, root(7)) == chain.anchor(ORIGIN, 7, root(7))
    assert chain.anchor(ORIGIN, 3, root(3)) == first  # an older checkpoint, too
    assert head(chain) == before  # nothing was sent
    assert len(chain.history(ORIGIN)) == 2


def test_concurrently_landed_checkpoint_gives_the_original_receipt(
    chain: EmbeddedChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer anchored the same checkpoint between our check and our transaction:
    # the contract's no-op branch emits nothing and the receipt comes from the first event.
    first = chain.anchor(ORIGIN, 4, root(4))
    monkeypatch.setattr(chain, "_root_at", lambda *args: None)
    again = chain.anchor(ORIGIN, 4, root(4))
    assert again == first
    assert len(chain.history(ORIGIN)) == 1


def test_same_size_with_another_root_is_refused(chain: EmbeddedChain) -> None:
    chain.anchor(ORIGIN, 4, root(4))
    with pytest.raises(Conflict) as refused:
        chain.anchor(ORIGIN, 4, root(44))
    assert (refused.value.code, refused.value.message) == ("chain.anchor_refused", "root differs")
    assert chain.root_at(ORIGIN, 4) == root(4)


def test_non_owner_is_refused(chain: EmbeddedChain) -> None:
    chain.anchor(ORIGIN, 1, root(1))
    new_owner = "0x" + "11" * 20
    chain.transfer_ownership(new_owner)
    assert chain.owner() == Web3.to_checksum_address(new_owner)
    with pytest.raises(Conflict) as refused:
        chain.anchor(ORIGIN, 2, root(2))
    assert (refused.value.code, refused.value.message) == ("chain.anchor_refused", "not owner")
    with pytest.raises(Conflict, match="not owner"):
        chain.transfer_ownership(str(chain.describe()["sender"]))
    assert chain.anchor(ORIGIN, 1, root(1)).size == 1  # reading needs no ownership


@pytest.mark.parametrize(
    ("origin", "size", "anchored_root", "code"),
    [
        ("", 1, root(1), "chain.bad_origin"),
        ("é" * 129, 1, root(1), "chain.bad_origin"),  # 258 bytes of UTF-8
        (ORIGIN, -1, root(1), "chain.bad_size"),
        (ORIGIN, 2**64, root(1), "chain.bad_size"),
        (ORIGIN, 1, b"\x01" * 31, "chain.bad_root"),
        (ORIGIN, 1, bytes(32), "chain.bad_root"),
    ],
)
def test_bad_arguments_are_refused_before_the_chain(
    chain: EmbeddedChain, origin: str, size: int, anchored_root: bytes, code: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        chain.anchor(origin, size, anchored_root)
    assert refused.value.code == code


def test_state_survives_a_restart(state_path: Path) -> None:
    with EmbeddedChain(state_path) as chain:
        receipts = [chain.anchor(ORIGIN, size, root(size)) for size in (2, 4)]
        before = chain.describe()

    with EmbeddedChain(state_path) as reopened:
        after = reopened.describe()
        assert after["contract"] == before["contract"]
        assert after["block_number"] == before["block_number"]
        assert reopened.latest(ORIGIN) == (4, root(4))
        assert reopened.history(ORIGIN) == [(r.size, r.root, r.anchored_at) for r in receipts]
        # Same transactions and blocks, not a replay: the rebuilt receipts are identical.
        assert [reopened.anchor(ORIGIN, r.size, r.root) for r in receipts] == receipts
        with pytest.raises(Conflict, match="size not increasing"):
            reopened.anchor(ORIGIN, 3, root(3))
        later = reopened.anchor(ORIGIN, 6, root(6))
        assert later.block_number == int(str(before["block_number"])) + 1
        assert later.anchored_at > receipts[-1].anchored_at


def test_a_second_open_of_the_same_state_is_refused(state_path: Path) -> None:
    with EmbeddedChain(state_path) as chain:
        with pytest.raises(Conflict) as refused:
            EmbeddedChain(state_path)
        assert refused.value.code == "chain.state_locked"
        assert "already open" in refused.value.message
        assert f"pid {os.getpid()}" in refused.value.message
        chain.anchor(ORIGIN, 1, root(1))  # the holder is unaffected
    with EmbeddedChain(state_path) as reopened:  # free again after close
        assert reopened.latest(ORIGIN) == (1, root(1))


def _run_child(state_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from pathlib import Path
        from iptv_billing.adapters.chain.embedded import EmbeddedChain
        from iptv_billing.domain.errors import Conflict
        state = Path({str(state_path)!r})
        ORIGIN = {ORIGIN!r}
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC_DIR)},
        check=False,
    )


@pytest.mark.slow
def test_other_process_is_locked_out_and_a_crash_keeps_mined_anchors(state_path: Path) -> None:
    with EmbeddedChain(state_path) as chain:
        chain.anchor(ORIGIN, 1, root(1))
        locked_out = _run_child(
            state_path,
            """
            try:
                EmbeddedChain(state)
            except Conflict as exc:
                print(json.dumps([exc.code, exc.message]))
            """,
        )
        assert locked_out.returncode == 0, locked_out.stderr
        code, message = json.loads(locked_out.stdout)
        assert code == "chain.state_locked"
        assert f"pid {os.getpid()}" in message

    # The child anchors, then dies without closing anything.
    crashed = _run_child(
        state_path,
        """
        chain = EmbeddedChain(state)
        receipt = chain.anchor(ORIGIN, 2, (2).to_bytes(32, "big"))
        print(json.dumps([receipt.tx_hash, receipt.block_number]), flush=True)
        os._exit(0)
        """,
    )
    assert crashed.returncode == 0, crashed.stderr
    tx_hash, block_number = json.loads(crashed.stdout)
    with EmbeddedChain(state_path) as reopened:  # the dead process's lock is gone
        receipt = reopened.anchor(ORIGIN, 2, root(2))
        assert (receipt.tx_hash, receipt.block_number) == (tx_hash, block_number)


def test_refuses_a_foreign_sqlite_file(tmp_path: Path) -> None:
    billing_db = tmp_path / "billing.sqlite3"
    with sqlite3.connect(billing_db) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(InvalidInput) as refused:
        EmbeddedChain(billing_db)
    assert refused.value.code == "chain.bad_state_file"
    with sqlite3.connect(billing_db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert tables == {"invoices"}
    with pytest.raises(InvalidInput):  # not "state_locked": the failed open released its lock
        EmbeddedChain(billing_db)


def test_closed_chain_refuses_use(state_path: Path) -> None:
    chain = EmbeddedChain(state_path)
    chain.close()
    chain.close()  # idempotent
    with pytest.raises(Unavailable) as closed:
        chain.latest(ORIGIN)
    assert closed.value.code == "chain.closed"


def test_factory_picks_the_chain(state_path: Path) -> None:
    embedded = open_chain(None, state_path, None, None)
    try:
        assert isinstance(embedded, EmbeddedChain)
    finally:
        embedded.close()
    # Connecting is deferred to first use, so this needs no node.
    remote = open_chain("http://127.0.0.1:9/secret-key", state_path, None, "0x" + "22" * 20)
    assert isinstance(remote, JsonRpcChain)
    remote.close()


def test_compiler_caches_by_source_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiler, "_memo", {})  # exercise the disk cache, not the memo
    source = tmp_path / "checkpoint_anchor.vy"
    source.write_text(CHECKPOINT_ANCHOR_SOURCE.read_text())
    cache = tmp_path / "cache"
    compiled = compile_contract(source, cache)
    (entry,) = cache.glob("checkpoint_anchor-*-vyper-*.json")
    assert compiled.source_sha256 in entry.name
    assert bytes.fromhex(json.loads(entry.read_text())["bytecode"]) == compiled.bytecode
    assert any(item.get("name") == "anchor" for item in compiled.abi)

    # A new source is a new entry; a corrupt entry is ignored and rewritten.
    source.write_text(source.read_text() + "\n# changed\n")
    changed = compile_contract(source, cache)
    assert changed.source_sha256 != compiled.source_sha256
    assert len(list(cache.glob("*.json"))) == 2
    entry.write_text("{not json")
    source.write_text(source.read_text().removesuffix("\n# changed\n"))
    monkeypatch.setattr(compiler, "_memo", {})
    assert compile_contract(source, cache) == compiled
    assert json.loads(entry.read_text())["source_sha256"] == compiled.source_sha256


def test_bytecode_runs_on_a_cancun_vm() -> None:
    # The contract pins `evm-version cancun`, so chains without Prague can run it too.
    compiled = compile_contract()
    w3 = Web3(
        EthereumTesterProvider(EthereumTester(PyEVMBackend(vm_configuration=((0, CancunVM),))))
    )
    owner = w3.eth.accounts[0]
    factory = w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
    address = w3.eth.get_transaction_receipt(factory.constructor().transact({"from": owner}))[
        "contractAddress"
    ]
    assert address is not None
    assert bytes(w3.eth.get_code(address)) == compiled.bytecode_runtime
    contract = w3.eth.contract(address=address, abi=compiled.abi)
    contract.functions.anchor(ORIGIN, 5, root(5)).transact({"from": owner})
    assert contract.functions.latest(ORIGIN).call() == [5, root(5), 1]
    with pytest.raises(TransactionFailed, match="size not increasing"):
        contract.functions.anchor(ORIGIN, 4, root(4)).transact({"from": owner})
