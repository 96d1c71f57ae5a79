"""Anchor transparency-log checkpoints in the ``checkpoint_anchor.vy`` contract on an EVM chain.

`AnchorChain` is the port the services use; `ChainAnchor` implements it over any web3
provider, `JsonRpcChain` over an Ethereum JSON-RPC node and `EmbeddedChain`
(``embedded.py``) over an in-process, persistent py-evm chain.

Failures reach callers as domain errors only:

* the node cannot be reached (refused, timeout, HTTP error) -> ``Unavailable("chain.unreachable")``
* the contract reverts (eth-tester raises ``TransactionFailed``, a JSON-RPC node
  ``ContractLogicError``) -> ``Conflict("chain.anchor_refused", <revert reason>)``
* the node answers with another JSON-RPC error -> ``Unavailable("chain.rpc_error")``
* a sent transaction is not mined within the receipt timeout -> ``Unavailable("chain.tx_pending")``
* bad arguments or a configured address that does not hold this contract -> ``InvalidInput``

Anchoring is idempotent: when the chain already holds ``root`` at ``size`` for the origin, no
transaction is sent and the receipt is rebuilt from the contract's ``Anchored`` event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_typing import ChecksumAddress, HexStr
from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TransactionIndexingInProgress,
    TransactionNotFound,
    Web3RPCError,
)
from web3.logs import DISCARD
from web3.types import EventData, LogReceipt, TxParams, TxReceipt

from iptv_billing.adapters.chain.compiler import CompiledContract, compile_contract
from iptv_billing.domain.errors import BillingError, Conflict, InvalidInput, Unavailable

log = logging.getLogger(__name__)

MAX_ORIGIN_BYTES = 256  # String[256] in the contract
MAX_SIZE = 2**64 - 1  # uint64
ROOT_BYTES = 32


@dataclass(frozen=True)
class AnchorReceipt:
    """Where and when a checkpoint was anchored."""

    chain_id: int
    contract: str  # checksum address
    tx_hash: str  # 0x-prefixed hex
    block_number: int
    origin: str
    size: int
    root: bytes
    anchored_at: int  # block timestamp, Unix seconds


class AnchorChain(Protocol):
    """What the services need from a chain that anchors checkpoints."""

    def anchor(self, origin: str, size: int, root: bytes) -> AnchorReceipt: ...

    def latest(self, origin: str) -> tuple[int, bytes] | None: ...

    def root_at(self, origin: str, size: int) -> bytes | None: ...

    def describe(self) -> dict[str, object]: ...

    def close(self) -> None: ...


def _validate(origin: str, size: int | None = None, root: bytes | None = None) -> None:
    encoded = origin.encode("utf-8")
    if not encoded or len(encoded) > MAX_ORIGIN_BYTES:
        raise InvalidInput(
            "chain.bad_origin", f"origin must be 1 to {MAX_ORIGIN_BYTES} bytes of UTF-8"
        )
    if size is not None and not 0 <= size <= MAX_SIZE:
        raise InvalidInput("chain.bad_size", "size must fit in an unsigned 64-bit integer")
    if root is not None and (len(root) != ROOT_BYTES or root == bytes(ROOT_BYTES)):
        raise InvalidInput("chain.bad_root", "root must be 32 bytes and not all zero")


def _revert_reason(exc: BaseException) -> str:
    # eth-tester: TransactionFailed("execution reverted: <reason>");
    # JSON-RPC: ContractLogicError(message="execution reverted: <reason>", data=...).
    message = getattr(exc, "message", None) or (str(exc.args[0]) if exc.args else str(exc))
    for prefix in ("execution reverted: ", "execution reverted"):
        if message.startswith(prefix):
            message = message[len(prefix) :]
            break
    return message.strip() or "reverted without a reason"


class ChainAnchor:
    """`AnchorChain` over any web3 provider holding (or deploying) the anchor contract.

    Public methods are serialised by a lock: a single sender keeps its nonces in order and
    the embedded chain is not thread-safe.
    """

    kind = "web3"

    def __init__(
        self,
        w3: Web3,
        *,
        contract_address: str | None,
        account: LocalAccount | None,
        receipt_timeout: float = 120.0,
        poll_interval: float = 1.0,
        fixed_gas: int | None = None,
        where: str = "the chain node",
    ) -> None:
        self._w3 = w3
        self._account = account
        self._configured_address = contract_address
        self._receipt_timeout = receipt_timeout
        self._poll_interval = poll_interval
        self._fixed_gas = fixed_gas
        self._where = where
        self._lock = threading.RLock()
        self._compiled: CompiledContract = compile_contract()
        # Hex strings, not bytes: eth-tester silently matches nothing for bytes topics.
        self._anchored_topic = Web3.to_hex(
            event_abi_to_log_topic(
                next(
                    cast(Any, e)
                    for e in self._compiled.abi
                    if e.get("type") == "event" and e.get("name") == "Anchored"
                )
            )
        )
        # Filled by _ready(), on first use: a JSON-RPC node may be down when we start.
        self._chain_id: int | None = None
        self._sender: ChecksumAddress | None = None
        self._contract: Contract | None = None
        self._closed = False

    # ------------------------------------------------------------------ AnchorChain

    def anchor(self, origin: str, size: int, root: bytes) -> AnchorReceipt:
        _validate(origin, size, root)
        root = bytes(root)
        with self._lock, self._errors():
            contract = self._ready()
            if self._root_at(contract, origin, size) == root:
                return self._receipt_from_event(contract, origin, size)
            receipt = self._transact(contract.functions.anchor(origin, size, root))
            events = contract.events.Anchored().process_receipt(receipt, errors=DISCARD)
            if not events:
                # The contract's no-op branch: the same checkpoint landed concurrently.
                return self._receipt_from_event(contract, origin, size)
            return self._receipt(events[0])

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        _validate(origin)
        with self._lock, self._errors(refused="chain.call_reverted"):
            size, root, count = self._ready().functions.latest(origin).call()
            return None if count == 0 else (int(size), bytes(root))

    def root_at(self, origin: str, size: int) -> bytes | None:
        _validate(origin, size)
        with self._lock, self._errors(refused="chain.call_reverted"):
            return self._root_at(self._ready(), origin, size)

    def describe(self) -> dict[str, object]:
        with self._lock, self._errors(refused="chain.call_reverted"):
            contract = self._ready()
            return {
                "kind": self.kind,
                "chain_id": self._chain_id,
                "contract": contract.address,
                "sender": self._sender,
                "block_number": int(self._w3.eth.block_number),
                "contract_source_sha256": self._compiled.source_sha256,
                "compiler": f"vyper {self._compiled.compiler_version}",
            }

    def close(self) -> None:
        """Refuse further use; subclasses also release what they hold."""
        self._closed = True

    # ------------------------------------------------------------------ extras

    def transfer_ownership(self, new_owner: str) -> None:
        """Hand the contract to another address (e.g. when the anchoring key is rotated)."""
        with self._lock, self._errors():
            contract = self._ready()
            self._transact(
                contract.functions.transfer_ownership(Web3.to_checksum_address(new_owner))
            )

    def history(self, origin: str) -> list[tuple[int, bytes, int]]:
        """Every anchor of ``origin`` in order, as (size, root, anchored_at); for audits."""
        _validate(origin)
        with self._lock, self._errors(refused="chain.call_reverted"):
            functions = self._ready().functions
            count = int(functions.latest(origin).call()[2])
            entries = (functions.anchor_at(origin, i).call() for i in range(count))
            return [(int(size), bytes(root), int(at)) for size, root, at in entries]

    def owner(self) -> str:
        with self._lock, self._errors(refused="chain.call_reverted"):
            return str(self._ready().functions.owner().call())

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _errors(self, refused: str = "chain.anchor_refused") -> Iterator[None]:
        try:
            yield
        except BillingError:
            raise
        except (TransactionFailed, ContractLogicError) as exc:
            raise Conflict(refused, _revert_reason(exc)) from exc
        except (OSError, ProviderConnectionError) as exc:
            # requests' exceptions derive from OSError, as do refused connections and timeouts.
            # Only the exception's type: its text repeats the full URL, which may hold an API key.
            raise Unavailable(
                "chain.unreachable", f"cannot reach {self._where} ({type(exc).__name__})"
            ) from exc
        except Web3RPCError as exc:
            raise Unavailable("chain.rpc_error", f"{self._where} answered: {exc}") from exc

    def _ready(self) -> Contract:
        if self._closed:
            raise Unavailable("chain.closed", f"the adapter for {self._where} is closed")
        if self._contract is not None:
            return self._contract
        chain_id = int(self._w3.eth.chain_id)
        if self._account is not None:
            sender = self._account.address
        else:
            accounts = self._w3.eth.accounts
            if not accounts:
                raise InvalidInput(
                    "chain.no_account",
                    f"{self._where} has no unlocked account: configure a private key",
                )
            sender = accounts[0]
        self._chain_id, self._sender = chain_id, sender
        if self._configured_address is None:
            address = self._deploy()
            self._on_deployed(address)
        else:
            address = Web3.to_checksum_address(self._configured_address)
            self._check_code(address)
        self._contract = self._w3.eth.contract(address=address, abi=self._compiled.abi)
        return self._contract

    def _deploy(self) -> ChecksumAddress:
        factory = self._w3.eth.contract(abi=self._compiled.abi, bytecode=self._compiled.bytecode)
        receipt = self._transact(factory.constructor())
        address = receipt["contractAddress"]
        if address is None:
            raise Conflict("chain.deploy_failed", "deployment receipt has no contract address")
        log.info("deployed checkpoint anchor contract at %s on %s", address, self._where)
        return Web3.to_checksum_address(address)

    def _on_deployed(self, address: ChecksumAddress) -> None:
        """Hook for subclasses that persist the address of a contract they deployed."""

    def _check_code(self, address: ChecksumAddress) -> None:
        code = bytes(self._w3.eth.get_code(address))
        if not code:
            raise InvalidInput(
                "chain.contract_missing", f"no contract at {address} on {self._where}"
            )
        if code != self._compiled.bytecode_runtime:
            raise InvalidInput(
                "chain.contract_mismatch",
                f"the contract at {address} is not this version of checkpoint_anchor.vy "
                f"(source sha256 {self._compiled.source_sha256[:12]}, "
                f"vyper {self._compiled.compiler_version})",
            )

    def _transact(self, fn: Any) -> TxReceipt:
        """Send a contract call or constructor and wait for it to be mined.

        A revert surfaces here, before anything is sent, as TransactionFailed or
        ContractLogicError: from gas estimation, or from a preflight ``eth_call`` when a fixed
        gas limit is configured.
        """
        sender = self._sender
        params: dict[str, Any] = {"from": sender}
        if self._fixed_gas is not None and isinstance(fn, ContractFunction):
            # One execution instead of eth-tester's estimate_gas bisection (~15 executions).
            fn.call(cast(TxParams, params))
            params["gas"] = self._fixed_gas
        if self._account is not None and sender is not None:
            params["nonce"] = self._w3.eth.get_transaction_count(sender, "pending")
            params["chainId"] = self._chain_id
            signed = self._account.sign_transaction(fn.build_transaction(params))
            tx_hash = self._w3.eth.send_raw_transaction(signed.raw_transaction)
        else:
            tx_hash = fn.transact(params)
        receipt = self._wait_for_receipt(tx_hash)
        if receipt["status"] != 1:
            # Mined but reverted (state changed between estimate and inclusion): replay the
            # call to learn why; that raises the revert we translate.
            if isinstance(fn, ContractFunction):
                fn.call(cast(TxParams, {"from": sender}))
            raise Conflict("chain.anchor_refused", f"transaction {Web3.to_hex(tx_hash)} reverted")
        return receipt

    def _wait_for_receipt(self, tx_hash: HexBytes) -> TxReceipt:
        # Not web3's wait_for_transaction_receipt: its fixed 100 ms poll dominated the anchor
        # time on anvil, whose automine sometimes publishes the receipt a few ms after
        # eth_sendRawTransaction returns. Back off from 5 ms up to poll_interval instead.
        deadline = time.monotonic() + self._receipt_timeout
        delay = 0.005
        while True:
            try:
                return self._w3.eth.get_transaction_receipt(tx_hash)
            except (TransactionNotFound, TransactionIndexingInProgress):
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable(
                    "chain.tx_pending",
                    f"transaction {Web3.to_hex(tx_hash)} not mined within "
                    f"{self._receipt_timeout:g}s by {self._where}",
                    tx_hash=Web3.to_hex(tx_hash),
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, self._poll_interval)

    def _root_at(self, contract: Contract, origin: str, size: int) -> bytes | None:
        root = bytes(contract.functions.root_at_size(origin, size).call())
        return None if root == bytes(ROOT_BYTES) else root

    def _receipt(self, event: EventData) -> AnchorReceipt:
        args = event["args"]
        return AnchorReceipt(
            chain_id=cast(int, self._chain_id),
            contract=Web3.to_checksum_address(event["address"]),
            tx_hash=Web3.to_hex(event["transactionHash"]),
            block_number=int(event["blockNumber"]),
            origin=str(args["origin"]),
            size=int(args["size"]),
            root=bytes(args["root"]),
            anchored_at=int(args["anchored_at"]),
        )

    def _receipt_from_event(self, contract: Contract, origin: str, size: int) -> AnchorReceipt:
        """Rebuild the receipt of an existing anchor from its ``Anchored`` event.

        Rather than scanning logs from block 0 (slow on eth-tester, refused by most public
        nodes), find the anchor's timestamp in the contract (sizes are strictly increasing,
        so binary search), then the block(s) with that timestamp (block timestamps are
        strictly increasing after the merge), and read only their logs.
        """
        functions = contract.functions
        count = int(functions.latest(origin).call()[2])
        lo, hi = 0, count - 1
        anchored_at: int | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            at_size, _, at_time = functions.anchor_at(origin, mid).call()
            if at_size == size:
                anchored_at = int(at_time)
                break
            if at_size < size:
                lo = mid + 1
            else:
                hi = mid - 1
        if anchored_at is None:
            raise Conflict("chain.anchor_refused", f"no anchor at size {size} for {origin!r}")
        first = self._first_block_at_or_after(anchored_at)
        last = self._first_block_at_or_after(anchored_at + 1) - 1
        logs: list[LogReceipt] = self._w3.eth.get_logs(
            {
                "fromBlock": first,
                "toBlock": last,
                "address": contract.address,
                "topics": [self._anchored_topic, Web3.to_hex(Web3.keccak(text=origin))],
            }
        )
        for entry in logs:
            event = contract.events.Anchored().process_log(entry)
            if event["args"]["origin"] == origin and event["args"]["size"] == size:
                return self._receipt(event)
        raise Unavailable(
            "chain.event_missing",
            f"{self._where} holds the anchor of {origin!r} at size {size} but not its event "
            f"(blocks {first}..{last}); the node may prune logs",
        )

    def _first_block_at_or_after(self, timestamp: int) -> int:
        lo, hi = 0, int(self._w3.eth.block_number) + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if int(self._w3.eth.get_block(mid)["timestamp"]) >= timestamp:
                hi = mid
            else:
                lo = mid + 1
        return lo


class JsonRpcChain(ChainAnchor):
    """The anchor contract on any Ethereum JSON-RPC node (anvil, geth, a provider's endpoint).

    Deploys the contract on first use when no address is given; `describe()["contract"]`
    then returns the address for the caller to persist. Signs locally with ``private_key_hex``
    when given, otherwise sends from the node's first unlocked account.
    """

    kind = "json-rpc"

    def __init__(
        self,
        url: str,
        private_key_hex: str | None = None,
        contract_address: str | None = None,
        timeout: float = 10.0,
        *,
        receipt_timeout: float = 120.0,
    ) -> None:
        # No web3-level retries: a dead node must fail fast; callers retry at their own pace.
        provider = HTTPProvider(
            url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        account: LocalAccount | None = (
            Account.from_key(HexStr(private_key_hex)) if private_key_hex else None
        )
        super().__init__(
            Web3(provider),
            contract_address=contract_address,
            account=account,
            receipt_timeout=receipt_timeout,
            where=f"the JSON-RPC node at {_redact(url)}",
        )
        self._endpoint = _redact(url)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "endpoint": self._endpoint}


def _redact(url: str) -> str:
    # Provider URLs often carry an API key in the path or credentials: keep scheme://host:port.
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"
