"""The checkpoint anchor contract on a real JSON-RPC node (anvil) through `JsonRpcChain`."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3

from anvil_fixture import ANVIL_CHAIN_ID, ANVIL_KEYS, anvil_url  # noqa: F401  (fixture)
from iptv_billing.adapters.chain.anchor import JsonRpcChain
from iptv_billing.adapters.chain.compiler import compile_contract
from iptv_billing.domain.errors import Conflict, InvalidInput, Unavailable

ORIGIN = "billing.example/ledger/tenant-1"


def root(n: int) -> bytes:
    return n.to_bytes(32, "big")


@pytest.fixture
def chain(anvil_url: str) -> Iterator[JsonRpcChain]:  # noqa: F811
    """A freshly deployed contract owned by anvil's account #0 (signed locally)."""
    opened = JsonRpcChain(anvil_url, ANVIL_KEYS[0], None, timeout=5)
    yield opened
    opened.close()


def head(chain: JsonRpcChain) -> int:
    return int(str(chain.describe()["block_number"]))


def test_deploys_and_anchors_in_order(chain: JsonRpcChain, anvil_url: str) -> None:  # noqa: F811
    described = chain.describe()
    assert described["kind"] == "json-rpc"
    assert described["chain_id"] == ANVIL_CHAIN_ID
    assert described["sender"] == Account.from_key(ANVIL_KEYS[0]).address
    assert described["endpoint"] == anvil_url
    assert chain.latest(ORIGIN) is None

    receipts = [chain.anchor(ORIGIN, size, root(size)) for size in (1, 5, 9)]
    for receipt, size in zip(receipts, (1, 5, 9), strict=True):
        assert receipt.chain_id == ANVIL_CHAIN_ID
        assert receipt.contract == described["contract"]
        assert (receipt.origin, receipt.size, receipt.root) == (ORIGIN, size, root(size))
        assert len(receipt.tx_hash) == 66
    assert receipts[0].block_number < receipts[1].block_number < receipts[2].block_number
    assert chain.latest(ORIGIN) == (9, root(9))
    assert chain.root_at(ORIGIN, 5) == root(5)
    assert chain.root_at(ORIGIN, 6) is None
    assert chain.history(ORIGIN) == [(r.size, r.root, r.anchored_at) for r in receipts]

    # The contract's own views agree (read with plain web3, not through our adapter).
    w3 = Web3(HTTPProvider(anvil_url))
    contract = w3.eth.contract(
        address=Web3.to_checksum_address(receipts[0].contract), abi=compile_contract().abi
    )
    assert contract.functions.latest(ORIGIN).call() == [9, root(9), 3]
    assert contract.functions.anchor_at(ORIGIN, 1).call() == [5, root(5), receipts[1].anchored_at]
    assert contract.functions.root_at_size(ORIGIN, 2).call() == bytes(32)


def test_refusals(chain: JsonRpcChain) -> None:
    chain.anchor(ORIGIN, 10, root(10))
    with pytest.raises(Conflict) as smaller:
        chain.anchor(ORIGIN, 9, root(9))
    assert (smaller.value.code, smaller.value.message) == (
        "chain.anchor_refused",
        "size not increasing",
    )
    with pytest.raises(Conflict) as differs:
        chain.anchor(ORIGIN, 10, root(11))
    assert (differs.value.code, differs.value.message) == ("chain.anchor_refused", "root differs")
    assert chain.latest(ORIGIN) == (10, root(10))


def test_same_checkpoint_again_is_idempotent(chain: JsonRpcChain) -> None:
    first = chain.anchor(ORIGIN, 3, root(3))
    chain.anchor(ORIGIN, 8, root(8))
    before = head(chain)
    assert chain.anchor(ORIGIN, 3, root(3)) == first
    assert chain.anchor(ORIGIN, 8, root(8)).size == 8
    assert head(chain) == before  # no transaction was sent


def test_non_owner_is_refused(chain: JsonRpcChain, anvil_url: str) -> None:  # noqa: F811
    chain.anchor(ORIGIN, 1, root(1))
    address = str(chain.describe()["contract"])
    intruder = JsonRpcChain(anvil_url, ANVIL_KEYS[1], address, timeout=5)
    with pytest.raises(Conflict) as refused:
        intruder.anchor(ORIGIN, 2, root(2))
    assert (refused.value.code, refused.value.message) == ("chain.anchor_refused", "not owner")
    assert intruder.latest(ORIGIN) == (1, root(1))  # reading is open to anyone


def test_existing_contract_is_reused_and_checked(chain: JsonRpcChain, anvil_url: str) -> None:  # noqa: F811
    receipt = chain.anchor(ORIGIN, 4, root(4))
    again = JsonRpcChain(anvil_url, ANVIL_KEYS[0], receipt.contract.lower(), timeout=5)
    assert again.describe()["contract"] == receipt.contract
    assert again.anchor(ORIGIN, 4, root(4)) == receipt
    assert again.anchor(ORIGIN, 5, root(5)).block_number > receipt.block_number

    not_a_contract = Account.from_key(ANVIL_KEYS[1]).address
    with pytest.raises(InvalidInput) as missing:
        JsonRpcChain(anvil_url, ANVIL_KEYS[0], not_a_contract, timeout=5).latest(ORIGIN)
    assert missing.value.code == "chain.contract_missing"


def test_node_account_signs_without_a_private_key(anvil_url: str) -> None:  # noqa: F811
    chain = JsonRpcChain(anvil_url, None, None, timeout=5)
    receipt = chain.anchor(ORIGIN, 7, root(7))
    node_account = Web3(HTTPProvider(anvil_url)).eth.accounts[0]
    assert chain.owner() == node_account == chain.describe()["sender"]
    assert chain.latest(ORIGIN) == (7, root(7))
    assert receipt.size == 7


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_unreachable_node_is_unavailable_quickly() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    chain = JsonRpcChain(url, ANVIL_KEYS[0], None, timeout=1)  # connects lazily: no error yet
    for call in (
        lambda: chain.anchor(ORIGIN, 1, root(1)),
        lambda: chain.latest(ORIGIN),
        lambda: chain.root_at(ORIGIN, 1),
        chain.describe,
    ):
        started = time.monotonic()
        with pytest.raises(Unavailable) as down:
            call()
        assert time.monotonic() - started < 2
        assert down.value.code == "chain.unreachable"
        assert url in down.value.message


def test_silent_node_times_out_as_unavailable() -> None:
    # Accepts TCP connections (the kernel's backlog) but never answers: a read timeout.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v3/secret-api-key"
        chain = JsonRpcChain(url, None, None, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(Unavailable) as down:
            chain.latest(ORIGIN)
        assert time.monotonic() - started < 2
    assert down.value.code == "chain.unreachable"
    assert "Timeout" in down.value.message
    assert "secret-api-key" not in down.value.message  # provider keys stay out of errors
