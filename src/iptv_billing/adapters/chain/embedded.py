"""The default anchoring chain: an in-process EVM (eth-tester + py-evm) that survives restarts.

This is a DEVELOPMENT chain. It is signed by a fixed, publicly known key (`DEV_PRIVATE_KEY`,
eth-tester's first default key, 0x00..01): it proves nothing to a third party. Anchor on a
real network through `JsonRpcChain` when the anchors must convince someone else.

Persistence design
------------------
eth-tester keeps everything in py-evm's in-memory ``MemoryDB``. Replaying past transactions
on start would not reproduce the chain (block timestamps and post-merge ``mix_hash`` values
differ, hence block hashes), and pickling eth-tester objects is fragile. Instead the
chain's own database is made persistent: py-evm stores *everything* (headers, bodies,
receipts, the canonical-head pointer, the state trie) in one key/value store behind its
``AtomicDatabaseAPI``. `SqliteKeyValueDB` implements that API on a single SQLite table,
and on start the chain class is simply constructed over it (``Chain(base_db)`` reads the
canonical head; the pending block is derived from it). The same contract address, anchors,
transaction hashes, block numbers and block hashes are therefore there after a restart,
because they are the stored blocks, not a re-execution.

Durability and atomicity: all writes go into one open SQLite transaction that is committed
right after each block is mined (eth-tester auto-mines one block per transaction), with
``synchronous=FULL``. A crash therefore leaves the state of the last mined block: a
transaction whose receipt was returned is on disk, and a half-built block never is.

One process at a time: py-evm's in-memory pending block and head would diverge between two
writers, so the state file is guarded by an exclusive ``flock`` on ``<state>.lock``; a second
opener (another process, or the same process through another `EmbeddedChain`) gets
``Conflict("chain.state_locked")`` naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth.abc import AtomicWriteBatchAPI, VirtualMachineAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDBWriteBatch
from eth.db.backends.base import BaseAtomicDB
from eth.db.chain import ChainDB
from eth.exceptions import CanonicalHeadNotFound
from eth.vm.forks.prague import PragueVM
from eth_account import Account
from eth_keys.datatypes import PrivateKey
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import (
    generate_genesis_state_for_keys,
    get_default_genesis_params,
)
from eth_typing import BlockNumber
from web3 import EthereumTesterProvider, Web3

from iptv_billing.adapters.chain.anchor import ChainAnchor
from iptv_billing.domain.errors import Conflict, InvalidInput, Unavailable

# Publicly known (eth-tester's account #1): for the development chain only.
DEV_PRIVATE_KEY = "0x" + "00" * 31 + "01"
# eth-tester's chain id: web3's EthereumTesterProvider answers eth_chainId with this constant.
EMBEDDED_CHAIN_ID = 131277322940537
_FORMAT = "1"
ANCHOR_GAS_LIMIT = 300_000


class SqliteKeyValueDB(BaseAtomicDB):
    """py-evm's key/value database on one SQLite table, committed by the owner (`commit`).

    Batches (``atomic_batch``) are applied to the open transaction when they exit cleanly,
    like py-evm's ``AtomicDB``; durability comes from `commit`, called once per mined block.
    """

    def __init__(self, path: Path) -> None:
        # check_same_thread=False: ChainAnchor serialises access with its own lock, and web
        # frameworks call from worker threads.
        self._conn = sqlite3.connect(path, check_same_thread=False)
        foreign = {
            str(name)
            for (name,) in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        } - {"kv", "meta"}
        if foreign:
            # E.g. the billing database given by mistake: never add our tables to it.
            self._conn.close()
            raise InvalidInput(
                "chain.bad_state_file",
                f"{path} is not an embedded chain state file (it has tables {sorted(foreign)})",
            )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        with self._conn:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )

    # -- py-evm DatabaseAPI
    def __getitem__(self, key: bytes) -> bytes:
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._conn.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

    def __delitem__(self, key: bytes) -> None:
        if self._conn.execute("DELETE FROM kv WHERE k = ?", (key,)).rowcount == 0:
            raise KeyError(key)

    def _exists(self, key: bytes) -> bool:
        return self._conn.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None

    @contextmanager
    def atomic_batch(self) -> Iterator[AtomicWriteBatchAPI]:
        with AtomicDBWriteBatch._commit_unless_raises(self) as batch:
            yield batch

    # -- our own
    def get_meta(self, name: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        # Uncommitted writes belong to a block that was never mined: dropping them is right.
        self._conn.rollback()
        self._conn.close()


class _DevChain(MiningChain):
    """The chain eth-tester builds in ``setup_tester_chain``, reproduced to pass our DB."""

    chain_id = EMBEDDED_CHAIN_ID
    vm_configuration: tuple[tuple[BlockNumber, type[VirtualMachineAPI]], ...] = (
        (BlockNumber(0), PragueVM),
    )

    def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
        # eth-tester keeps the gas limit constant instead of letting it drift.
        header_params["gas_limit"] = parent_header.gas_limit
        return super().create_header_from_parent(parent_header, **header_params)

    def get_transaction_builder(self) -> Any:
        return self.get_vm().get_transaction_builder()


class _PersistentBackend(PyEVMBackend):  # type: ignore[misc]  # eth-tester is untyped
    """PyEVMBackend whose chain lives in a `SqliteKeyValueDB` and is committed per block."""

    def __init__(self, db: SqliteKeyValueDB) -> None:
        self._db = db
        super().__init__()

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
        # Called by PyEVMBackend.__init__: open the stored chain, or create it once.
        dev_key = PrivateKey(bytes.fromhex(DEV_PRIVATE_KEY[2:]))
        try:
            ChainDB(self._db).get_canonical_head()
        except CanonicalHeadNotFound:
            state = generate_genesis_state_for_keys([dev_key])
            chain = _DevChain.from_genesis(self._db, get_default_genesis_params(), state)
            self._db.set_meta("format", _FORMAT)
            self._db.commit()
        else:
            chain = _DevChain(self._db)
        self.account_keys = (dev_key,)
        self.chain = chain

    def mine_blocks(self, num_blocks: int = 1, coinbase: Any = None) -> Any:
        kwargs = {} if coinbase is None else {"coinbase": coinbase}
        try:
            hashes = super().mine_blocks(num_blocks, **kwargs)
        except BaseException:
            # Keep disk and memory consistent: drop the half-built block, reload the head.
            self._db.rollback()
            self.chain = _DevChain(self._db)
            raise
        self._db.commit()
        return hashes


class _StateLock:
    """Exclusive, non-blocking ``flock`` on ``<state>.lock``, holding our pid for the message."""

    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise Conflict(
                "chain.state_locked",
                f"the embedded chain state {state_path} is already open (lock {self.path} "
                f"held by pid {holder}); only one process may use it at a time",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class EmbeddedChain(ChainAnchor):
    """`AnchorChain` on the persistent in-process development chain stored at ``state_path``.

    ``state_path`` is the SQLite file (created with its parent directories); ``<state>.lock``
    sits beside it. The contract is deployed on first open and its address kept in the file.
    Call `close` (or use as a context manager) to release the file for another process.
    """

    kind = "embedded"

    def __init__(self, state_path: Path) -> None:
        self._state_path = Path(state_path)
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        self._state_lock: _StateLock | None = _StateLock(self._state_path)
        self._db: SqliteKeyValueDB | None = None
        try:
            self._db = SqliteKeyValueDB(self._state_path)
            tester = EthereumTester(backend=_PersistentBackend(self._db))
            super().__init__(
                Web3(EthereumTesterProvider(tester)),
                contract_address=self._db.get_meta("contract"),
                account=Account.from_key(DEV_PRIVATE_KEY),
                receipt_timeout=5.0,
                poll_interval=0.01,
                # Skips eth-tester's gas-estimation bisection, ~3x faster anchors; an anchor
                # uses ~101k gas (more for a new origin), far below this cap.
                fixed_gas=ANCHOR_GAS_LIMIT,
                where=f"the embedded chain at {self._state_path}",
            )
            self.describe()  # deploys on first open, checks the stored contract otherwise
        except BaseException:
            self.close()
            raise

    def _on_deployed(self, address: str) -> None:
        if self._db is not None:
            self._db.set_meta("contract", address)
            self._db.commit()

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "state_path": str(self._state_path),
            "note": "development chain signed with a public key: proves nothing to others",
        }

    @contextmanager
    def _errors(self, refused: str = "chain.anchor_refused") -> Iterator[None]:
        with super()._errors(refused):
            try:
                yield
            except sqlite3.Error as exc:  # disk full, I/O error, corrupt file
                raise Unavailable(
                    "chain.storage_error", f"embedded chain state {self._state_path}: {exc}"
                ) from exc

    def close(self) -> None:
        # _lock is missing when the constructor failed before ChainAnchor.__init__.
        with getattr(self, "_lock", None) or contextlib.nullcontext():
            super().close()
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._state_lock is not None:
                self._state_lock.release()
                self._state_lock = None

    def __enter__(self) -> EmbeddedChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
