"""``ledger verify``: recompute a tenant log from its stored entries and records, and compare.

Layered, so that each kind of tampering is found at its exact place:

1. indices run 0..n-1 without gaps (a deleted row);
2. each entry's commitment is SHA-256(salt || its record), and the record is canonical and
   names its own index and kind (a changed record; a moved, inserted or reordered row);
3. each journal record equals the journal entry the database holds now (a changed amount,
   account, currency or time), and every journal entry has its record (an entry written
   behind the log's back);
4. each subscription's latest record equals its current state, and so does each access
   credential's (a line added, re-enabled or given another password behind the log's back);
5. the recomputed leaves equal the stored tiles, and the recomputed roots equal every signed
   checkpoint whose signature verifies (a log rewritten consistently with itself).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from iptv_billing.domain.errors import NotFound
from iptv_billing.ledger import merkle, tiles
from iptv_billing.ledger.checkpoint import open_checkpoint
from iptv_billing.ledger.entries import encode_record
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import NoteVerifier
from iptv_billing.services.credentials import ACCESS_CREDENTIAL, credential_state
from iptv_billing.services.log_records import (
    JOURNAL_ENTRY,
    SUBSCRIPTION_STATE,
    state_record,
    stored_journal_record,
)
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import CheckpointRecord, LogEntryRecord

BATCH = 5_000
CLAIM_WINDOW = 65_536  # how far back a moved row is matched to the row it displaced
JOURNAL_FIELDS = {"postings": "amount, account or currency", "at": "time"}


@dataclass(frozen=True, slots=True)
class LogProblem:
    index: int | None  # the entry concerned; None when no entry is (an unlogged journal row)
    check: str
    detail: str


@dataclass
class LogAudit:
    tenant_id: str
    entries: int = 0
    checkpoints: int = 0
    problems: list[LogProblem] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.problems

    @property
    def first_bad_index(self) -> int | None:
        return min((p.index for p in self.problems if p.index is not None), default=None)

    def problem(self, index: int | None, check: str, detail: str) -> None:
        self.problems.append(LogProblem(index, check, detail))


def verify_log(uow: UnitOfWork, tenant_id: str, log_keys: Sequence[NoteVerifier] = ()) -> LogAudit:
    """Everything above for one tenant. ``log_keys``: the log's public keys; without them the
    checkpoints are compared but their signatures are not checked."""
    if uow.tenants.get(tenant_id) is None:
        raise NotFound("tenant.not_found", f"no tenant {tenant_id}")
    audit = LogAudit(tenant_id)
    walk = _Walk(uow, tenant_id, audit, uow.log.checkpoints(tenant_id), log_keys)
    batch: list[LogEntryRecord] = []
    for entry in uow.log.iter_entries(tenant_id, BATCH):
        batch.append(entry)
        if len(batch) == BATCH:
            walk.batch(batch)
            batch = []
    walk.batch(batch)
    walk.finish()
    audit.problems.sort(key=lambda p: (p.index is None, p.index or 0))
    return audit


class _Walk:
    def __init__(
        self,
        uow: UnitOfWork,
        tenant_id: str,
        audit: LogAudit,
        checkpoints: Sequence[CheckpointRecord],
        log_keys: Sequence[NoteVerifier],
    ) -> None:
        self.uow, self.tenant_id, self.audit = uow, tenant_id, audit
        self.frontier = merkle.Frontier()
        self.tile_leaves: list[bytes] = []
        self.checkpoints = {c.size: c for c in checkpoints}
        self.log_keys = log_keys
        self.journal_logged: set[str] = set()
        self.latest_state: dict[str, tuple[int, dict[str, object]]] = {}
        self.latest_credential: dict[str, tuple[int, dict[str, object]]] = {}
        self.claims: dict[int, tuple[int, bytes]] = {}  # named index → (position, commitment)
        self.claim_order: deque[int] = deque()
        audit.checkpoints = len(checkpoints)

    def batch(self, entries: Sequence[LogEntryRecord]) -> None:
        records = [self._entry(e) for e in entries]
        self._journal([(e, r) for e, r in zip(entries, records, strict=True) if r is not None])

    def _entry(self, entry: LogEntryRecord) -> dict[str, object] | None:
        expected = self.frontier.size
        if entry.idx != expected:
            self.audit.problem(
                expected, "missing_entries", f"entries {expected}..{entry.idx - 1} are gone"
            )
        encoded = entry.record.encode("utf-8")
        commitment = hashlib.sha256(entry.salt + encoded).digest()
        if commitment != entry.commitment:
            self.audit.problem(entry.idx, "record_changed", "record and commitment disagree")
        record = self._record(entry, encoded)
        self._append(commitment)
        self.audit.entries += 1
        return record

    def _record(self, entry: LogEntryRecord, encoded: bytes) -> dict[str, object] | None:
        try:
            record = json.loads(encoded)
            if not isinstance(record, dict) or encode_record(record) != encoded:
                raise LedgerError("record.not_canonical", "not a canonical JSON object")
        except (ValueError, LedgerError):
            self.audit.problem(entry.idx, "record_malformed", "the record is not canonical JSON")
            return None
        named = record.get("index")
        if named != entry.idx:
            self._moved(entry, named)
        if isinstance(named, int):
            self._claim(named, entry)
        if record.get("type") != entry.kind:
            self.audit.problem(entry.idx, "kind_changed", f"row says {entry.kind!r}")
        if record.get("type") == SUBSCRIPTION_STATE:
            self.latest_state[entry.subject_id] = (entry.idx, record)
        elif record.get("type") == ACCESS_CREDENTIAL:
            self.latest_credential[entry.subject_id] = (entry.idx, record)
        return record

    def _moved(self, entry: LogEntryRecord, named: object) -> None:
        """A row not at the index its record was logged at. If an earlier row claims that
        index too and is not a copy of this one, that row is the intruder: entries after an
        insertion are all shifted by one, each naming the index just before its own."""
        earlier = self.claims.get(named) if isinstance(named, int) else None
        if earlier is not None and earlier[1] != entry.commitment:
            self.audit.problem(
                earlier[0], "entry_inserted", f"entry {named} is at {entry.idx}, not here"
            )
        self.audit.problem(entry.idx, "entry_moved", f"the record was logged at index {named}")

    def _claim(self, named: int, entry: LogEntryRecord) -> None:
        self.claims[named] = (entry.idx, entry.commitment)
        self.claim_order.append(named)
        if len(self.claim_order) > CLAIM_WINDOW:  # bounded memory on a long log
            self.claims.pop(self.claim_order.popleft(), None)

    def _append(self, commitment: bytes) -> None:
        leaf = merkle.leaf_hash(commitment)
        self.frontier.append(leaf)
        self.tile_leaves.append(leaf)
        size = self.frontier.size
        if len(self.tile_leaves) == tiles.TILE_WIDTH:
            self._compare_tile(size // tiles.TILE_WIDTH - 1)
        if size in self.checkpoints:
            self._compare_checkpoint(self.checkpoints[size])

    def _compare_tile(self, index: int) -> None:
        leaves, self.tile_leaves = self.tile_leaves, []
        stored = self.uow.log.stored_tiles(self.tenant_id, [(0, index)], cached=False)
        blob = stored.get((0, index))
        first = index * tiles.TILE_WIDTH
        if blob is None:
            self.audit.problem(first, "tile_missing", f"level-0 tile {index} is not stored")
            return
        for offset, leaf in enumerate(leaves):
            if tiles.node_in_stored_tile(blob, 0, offset) != leaf:
                self.audit.problem(
                    first + offset, "tile_mismatch", "the entry differs from the one appended"
                )
                return

    def _compare_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        size = checkpoint.size
        if self.log_keys:
            try:
                signed = open_checkpoint(checkpoint.note, self.log_keys)
                if (signed.checkpoint.size, signed.checkpoint.root) != (size, checkpoint.root):
                    raise LedgerError("checkpoint.mismatch", "the note names another tree")
            except LedgerError as exc:
                self.audit.problem(None, "checkpoint_signature", f"size {size}: {exc.message}")
                return
        if self.frontier.root() != checkpoint.root:
            self.audit.problem(
                max(size - 1, 0),
                "checkpoint_mismatch",
                f"the entries no longer hash to the root signed at size {size}",
            )

    def _journal(self, pairs: Iterable[tuple[LogEntryRecord, dict[str, object]]]) -> None:
        logged = {e.subject_id: (e, r) for e, r in pairs if r.get("type") == JOURNAL_ENTRY}
        self.journal_logged.update(logged)
        stored = self.uow.journal.by_ids(self.tenant_id, list(logged))
        for entry_id, (entry, record) in logged.items():
            found = stored.get(entry_id)
            if found is None:
                self.audit.problem(entry.idx, "journal_entry_gone", f"{entry_id} is not stored")
                continue
            now = stored_journal_record(self.tenant_id, found)
            differs = sorted(k for k, v in now.items() if record.get(k) != v)
            if differs:
                what = ", ".join(JOURNAL_FIELDS.get(k, k) for k in differs)
                self.audit.problem(entry.idx, "journal_changed", f"{entry_id}: {what} changed")

    def finish(self) -> None:
        size = self.uow.log.size(self.tenant_id)
        if size != self.frontier.size:
            self.audit.problem(
                min(size, self.frontier.size),
                "size_mismatch",
                f"the log head says {size} entries, {self.frontier.size} are stored",
            )
        for checkpoint_size in self.checkpoints:
            if checkpoint_size > self.frontier.size:
                self.audit.problem(
                    self.frontier.size,
                    "checkpoint_beyond_log",
                    f"a checkpoint signs {checkpoint_size} entries, {self.frontier.size} remain",
                )
        for entry_id in self.uow.journal.ids(self.tenant_id):
            if entry_id not in self.journal_logged:
                self.audit.problem(None, "journal_entry_not_logged", f"{entry_id} has no record")
        self._subscriptions()
        self._credentials()

    def _subscriptions(self) -> None:
        ids = list(self.latest_state)
        for start in range(0, len(ids), BATCH):
            part = ids[start : start + BATCH]
            stored = self.uow.subscriptions.get_many(self.tenant_id, part)
            for sub_id in part:
                sub = stored.get(sub_id)
                index, record = self.latest_state[sub_id]
                if sub is None:
                    self.audit.problem(index, "subscription_gone", f"{sub_id} is not stored")
                elif state_record(sub.state) != record.get("state"):
                    self.audit.problem(
                        index, "subscription_changed", f"{sub_id} differs from its last record"
                    )

    def _credentials(self) -> None:
        """Every credential that lets anyone in has a record, and it matches the last one."""
        for cred in self.uow.credentials.iter_active(self.tenant_id, BATCH):
            if cred.id not in self.latest_credential:
                self.audit.problem(None, "credential_not_logged", f"{cred.id} has no record")
        logged = self.latest_credential
        subscriptions = sorted({str(r.get("subscription")) for _, r in logged.values()})
        stored = {
            c.id: c for c in self.uow.credentials.of_subscriptions(self.tenant_id, subscriptions)
        }
        for cred_id, (index, record) in logged.items():
            found = stored.get(cred_id)
            if found is None:
                self.audit.problem(index, "credential_gone", f"{cred_id} is not stored")
                continue
            now = credential_state(found)
            if any(record.get(key) != value for key, value in now.items()):
                self.audit.problem(
                    index, "credential_changed", f"{cred_id} differs from its last record"
                )
