"""Publishing the tenant logs: signed checkpoints, inclusion and consistency proofs.

A checkpoint is issued only if it is consistent with the last one signed (a log must never
sign two inconsistent trees; a database edited behind the log's back is caught here, before
the key signs anything). Proofs come from the stored tiles, whatever the log's size.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from iptv_billing.domain.errors import Conflict, InvalidInput, NotFound
from iptv_billing.ledger import merkle, tiles
from iptv_billing.ledger.checkpoint import Checkpoint, format_checkpoint
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import NoteSigner, sign_note
from iptv_billing.ledger.proof_file import TlogProof
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import CheckpointRecord


class LogKeys(Protocol):
    """The tenant logs' signing keys (``adapters.keys.KeyStore``)."""

    def ensure(self, name: str, now: datetime) -> NoteSigner: ...
    def signers(self, name: str, now: datetime) -> Sequence[NoteSigner]: ...
    def public_vkeys(self, name: str) -> list[str]: ...
    def rotate(self, name: str, now: datetime, overlap: timedelta) -> NoteSigner: ...


def log_origin(origin_prefix: str, tenant_id: str) -> str:
    """The checkpoint origin (and key name) of a tenant's log: a schema-less URL."""
    return f"{origin_prefix.rstrip('/')}/{tenant_id}"


def reader(uow: UnitOfWork, tenant_id: str, size: int) -> merkle.SubtreeReader:
    return functools.partial(uow.log.read_subtrees, tenant_id, size)


def _check_size(uow: UnitOfWork, tenant_id: str, size: int) -> None:
    current = uow.log.size(tenant_id)
    if not 0 <= size <= current:
        raise InvalidInput("ledger.size_out_of_range", f"the log has {current} entries, not {size}")


def root_at(uow: UnitOfWork, tenant_id: str, size: int) -> bytes:
    _check_size(uow, tenant_id, size)
    return merkle.tree_root(size, reader(uow, tenant_id, size))


def inclusion_proof(uow: UnitOfWork, tenant_id: str, index: int, size: int) -> list[bytes]:
    _check_size(uow, tenant_id, size)
    if not 0 <= index < size:
        raise InvalidInput("ledger.index_out_of_range", f"no entry {index} in a tree of {size}")
    return merkle.inclusion_proof(index, size, reader(uow, tenant_id, size))


def consistency_proof(uow: UnitOfWork, tenant_id: str, old: int, new: int) -> list[bytes]:
    _check_size(uow, tenant_id, new)
    if not 0 <= old <= new:
        raise InvalidInput("ledger.bad_sizes", f"no consistency proof from {old} to {new}")
    if old in (0, new):
        return []
    return merkle.consistency_proof(old, new, reader(uow, tenant_id, new))


def issue_checkpoint(
    uow: UnitOfWork, tenant_id: str, origin: str, signers: Sequence[NoteSigner], now: datetime
) -> CheckpointRecord:
    """Sign the log at its current size (idempotent: an unchanged log keeps its checkpoint)."""
    size = uow.log.size(tenant_id)
    latest = uow.log.latest_checkpoint(tenant_id)
    if latest is not None and latest.size == size:
        return latest
    root = root_at(uow, tenant_id, size)
    if latest is not None:
        _check_consistent(uow, tenant_id, latest, size, root)
    note = sign_note(format_checkpoint(Checkpoint(origin, size, root)), signers)
    record = CheckpointRecord(tenant_id, size, root, note, now)
    uow.log.add_checkpoint(record)
    return record


def _check_consistent(
    uow: UnitOfWork, tenant_id: str, signed: CheckpointRecord, size: int, root: bytes
) -> None:
    if size < signed.size:
        raise Conflict(
            "ledger.rolled_back", f"the log has {size} entries but {signed.size} were signed"
        )
    try:
        old_root = root_at(uow, tenant_id, signed.size)
        if old_root != signed.root:
            raise LedgerError("proof.root_mismatch", "the stored tree no longer has that root")
        proof = consistency_proof(uow, tenant_id, signed.size, size)
        if signed.size:
            merkle.verify_consistency(signed.size, size, signed.root, root, proof)
    except LedgerError as exc:
        raise Conflict(
            "ledger.inconsistent",
            f"refusing to sign: the log is not consistent with its checkpoint at size "
            f"{signed.size} ({exc.message}); run `iptv-billing ledger verify`",
        ) from exc


def cosigned_note(uow: UnitOfWork, checkpoint: CheckpointRecord) -> str:
    """The checkpoint's note with every witness cosignature collected for it appended."""
    lines = [c.line for c in uow.log.cosignatures(checkpoint.tenant_id, checkpoint.size)]
    return checkpoint.note + "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def latest_checkpoint(uow: UnitOfWork, tenant_id: str) -> CheckpointRecord:
    checkpoint = uow.log.latest_checkpoint(tenant_id)
    if checkpoint is None:
        raise NotFound("ledger.no_checkpoint", "this log has no checkpoint yet")
    return checkpoint


def prove_entry(
    uow: UnitOfWork, checkpoint: CheckpointRecord, index: int, extra: bytes | None = None
) -> TlogProof:
    """A c2sp.org/tlog-proof of entry ``index`` against ``checkpoint`` (with cosignatures)."""
    proof = inclusion_proof(uow, checkpoint.tenant_id, index, checkpoint.size)
    return TlogProof(index, tuple(proof), cosigned_note(uow, checkpoint), extra)


def tile_content(uow: UnitOfWork, tenant_id: str, ref: tiles.TileRef) -> bytes | None:
    """A c2sp.org/tlog-tiles resource: a Merkle tile or an entry bundle (commitments only),
    full or partial; None when the log has not (yet) that much."""
    size = uow.log.size(tenant_id)
    first = ref.index * tiles.TILE_WIDTH
    if ref.level is None:
        if size < first + ref.width:
            return None
        return tiles.entry_bundle(uow.log.commitments(tenant_id, first, first + ref.width))
    full = tiles.full_tile_count(ref.level, size)
    if ref.index < full:  # a full tile, or a partial one it has since completed
        stored = uow.log.stored_tiles(tenant_id, [(ref.level, ref.index)])
        blob = stored.get((ref.level, ref.index))
        return None if blob is None else tiles.served_tile(blob, ref.width)
    if ref.index > full or tiles.tile_width(ref.level, size) < ref.width:
        return None
    return b"".join(uow.log.partial_base(tenant_id, ref.level, ref.index, ref.width))
