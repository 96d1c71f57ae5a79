"""The tlog-witness protocol (c2sp.org/tlog-witness): ``add-checkpoint`` and monitor retrieval.

Pure logic over a ``WitnessState`` port; the time is passed in. The checks run in the order of
the spec's status table:

=====  =====================================================================================
400    malformed request (old line, proof lines, note, checkpoint body), or old > size
404    origin not among the trusted logs
403    no signature by a trusted key of that origin, or a matching signature fails
409    old size != stored size (0 if none); body ``<stored size>\\n``, ``text/x.tlog.size``
413    body larger than ``max_body``
422    size 0 with a root other than SHA-256(""); old 0 with a proof; the proof fails;
       old == size with a different root (each 422 is recorded as evidence)
200    one ``cosignature/v1`` line ``— <witness name> <base64(key id || u64 time || sig)>``
=====  =====================================================================================

Atomicity: the checks run against a snapshot of the stored (size, root); the new state is then
written with a compare-and-swap on that (size, root). A submission that lost a race gets the 409
it would have got had it arrived second, so the stored size never decreases and no two
inconsistent checkpoints are cosigned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from iptv_billing.ledger.checkpoint import Checkpoint, parse_checkpoint
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from iptv_billing.ledger.note import (
    DEFAULT_MAX_SIGNATURES,
    MAX_COSIGNATURE_TIMESTAMP,
    CosignatureV1Signer,
    Note,
    NoteSignature,
    NoteVerifier,
    decode_base64,
    encode_base64,
    format_note,
    parse_note,
    verify_note,
)

MAX_BODY = 1 << 20  # a checkpoint is well under 1 KiB; 1 MiB leaves room for many signatures
MAX_PROOF_LINES = 63
MAX_TREE_SIZE = 2**64 - 1
TLOG_SIZE_CONTENT_TYPE = "text/x.tlog.size"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"

_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,19})")
_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}")


# --- state port -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCheckpoint:
    """The latest checkpoint cosigned for ``origin``: ``note`` carries the verified log
    signatures and the witness's cosignature, dated ``cosigned_at`` (POSIX seconds)."""

    origin: str
    size: int
    root: bytes
    note: str
    cosigned_at: int


class WitnessState(Protocol):
    def latest(self, origin: str) -> StoredCheckpoint | None: ...

    def latest_by_hash(self, hash_hex: str) -> StoredCheckpoint | None:
        """The state of the origin whose lowercase hex SHA-256 is ``hash_hex``."""
        ...

    def compare_and_swap(
        self, expected_size: int, expected_root: bytes | None, new: StoredCheckpoint
    ) -> int | None:
        """Atomically replace the state of ``new.origin`` if it is still (``expected_size``,
        ``expected_root``) (None: absent). None once ``new`` is durable, else the current size
        (0 if absent)."""
        ...

    def record_refusal(
        self,
        origin: str,
        old_size: int,
        proof: Sequence[bytes],
        checkpoint: str,
        reason: str,
        refused_at: int,
    ) -> None: ...


# --- wire format ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCheckpointRequest:
    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed note, signature lines included


def format_add_checkpoint_request(old_size: int, proof: Sequence[bytes], checkpoint: str) -> bytes:
    """The add-checkpoint body a log POSTs: ``old N``, proof lines, blank line, signed note.

    ``proof`` is the RFC 6962 consistency proof from ``old_size`` (the witness's size, learnt
    from a previous 200 or 409) to the checkpoint's size; empty when ``old_size`` is 0.
    """
    if isinstance(old_size, bool) or not 0 <= old_size <= MAX_TREE_SIZE:
        raise LedgerError("witness.bad_request", f"old size {old_size!r} is not a uint64")
    if len(proof) > MAX_PROOF_LINES:
        raise LedgerError("witness.bad_request", f"more than {MAX_PROOF_LINES} proof hashes")
    if any(len(h) != HASH_SIZE for h in proof):
        raise LedgerError("witness.bad_request", f"proof hashes are {HASH_SIZE} bytes")
    lines = [f"old {old_size}\n", *(encode_base64(bytes(h)) + "\n" for h in proof), "\n"]
    return ("".join(lines) + checkpoint).encode("utf-8")


def parse_add_checkpoint_request(
    body: bytes, *, max_signatures: int = DEFAULT_MAX_SIGNATURES
) -> tuple[AddCheckpointRequest, Note]:
    """Parse an add-checkpoint body strictly; every refusal is ``LedgerError`` (a 400)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LedgerError("witness.bad_request", "the body is not UTF-8") from exc
    end = text.find("\n")
    if end < 0:
        raise LedgerError("witness.bad_request", "the body has no old size line")
    old = _OLD_LINE.fullmatch(text[:end])
    if old is None or int(old.group(1)) > MAX_TREE_SIZE:
        raise LedgerError("witness.bad_request", "the first line must be 'old <uint64 decimal>'")
    proof: list[bytes] = []
    start = end + 1
    while True:
        end = text.find("\n", start)
        if end < 0:
            raise LedgerError("witness.bad_request", "no empty line before the checkpoint")
        line = text[start:end]
        start = end + 1
        if not line:
            break
        if len(proof) == MAX_PROOF_LINES:
            raise LedgerError("witness.bad_request", f"more than {MAX_PROOF_LINES} proof lines")
        digest = decode_base64(line)
        if digest is None or len(digest) != HASH_SIZE:
            raise LedgerError(
                "witness.bad_request", f"proof line {len(proof) + 1} is not a base64 hash"
            )
        proof.append(digest)
    signed = text[start:]
    note = parse_note(signed, max_signatures=max_signatures)
    return AddCheckpointRequest(int(old.group(1)), tuple(proof), signed), note


def parse_cosignature_response(body: bytes | str) -> tuple[NoteSignature, ...]:
    """The signature lines of a 200 response (still to be verified by the caller, e.g. by
    appending them to the checkpoint note and opening it with the witness's vkey)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    # Reuse the note parser's strict signature-line grammar on a dummy text.
    return parse_note("-\n\n" + text).signatures


# --- the witness ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessResponse:
    status: int
    body: bytes = b""
    content_type: str | None = None


def _text(status: int, message: str) -> WitnessResponse:
    return WitnessResponse(status, (message + "\n").encode("utf-8"), TEXT_CONTENT_TYPE)


def _conflict(size: int) -> WitnessResponse:
    return WitnessResponse(409, f"{size}\n".encode("ascii"), TLOG_SIZE_CONTENT_TYPE)


class Witness:
    """One witness key cosigning checkpoints of ``logs`` (origin -> trusted log keys)."""

    def __init__(
        self,
        signer: CosignatureV1Signer,
        logs: Mapping[str, Sequence[NoteVerifier]],
        state: WitnessState,
        *,
        max_body: int = MAX_BODY,
        max_signatures: int = DEFAULT_MAX_SIGNATURES,
    ) -> None:
        for origin, keys in logs.items():
            if not keys or any(k.name != origin for k in keys):
                raise ValueError(f"the keys of log {origin!r} must be named like its origin")
        self._signer = signer
        self._logs = {origin: tuple(keys) for origin, keys in logs.items()}
        self._state = state
        self.max_body = max_body
        self._max_signatures = max_signatures

    @property
    def name(self) -> str:
        return self._signer.name

    @property
    def vkey(self) -> str:
        return self._signer.vkey

    @property
    def origins(self) -> tuple[str, ...]:
        return tuple(self._logs)

    def add_checkpoint(self, body: bytes, now: int) -> WitnessResponse:
        """Handle one ``POST add-checkpoint``; never raises on bad input."""
        if isinstance(now, bool) or not 0 < now <= MAX_COSIGNATURE_TIMESTAMP:
            raise ValueError(f"the clock returned {now!r}; cosignatures need a positive time")
        if len(body) > self.max_body:
            return _text(413, f"the body is larger than {self.max_body} bytes")
        try:
            request, note = parse_add_checkpoint_request(body, max_signatures=self._max_signatures)
            checkpoint = parse_checkpoint(note.text)
        except LedgerError as exc:
            return _text(400, f"{exc.code}: {exc.message}")

        keys = self._logs.get(checkpoint.origin)
        if keys is None:
            return _text(404, "unknown log origin")
        try:
            verified = verify_note(note, keys)
        except LedgerError as exc:
            return _text(403, f"{exc.code}: {exc.message}")

        if request.old_size > checkpoint.size:
            return _text(400, f"old size {request.old_size} > checkpoint size {checkpoint.size}")

        stored = self._state.latest(checkpoint.origin)
        stored_size = 0 if stored is None else stored.size
        if request.old_size != stored_size:
            return _conflict(stored_size)

        problem = _inconsistency(request, checkpoint, None if stored is None else stored.root)
        if problem is not None:
            self._state.record_refusal(
                checkpoint.origin,
                request.old_size,
                request.proof,
                request.checkpoint,
                problem,
                now,
            )
            return _text(422, problem)

        # Never date a cosignature before the previous one for this log: "as of T the largest
        # tree was X" must not be contradicted by an earlier T for a larger X if the clock steps
        # back.
        timestamp = max(now, 0 if stored is None else stored.cosigned_at)
        signer = CosignatureV1Signer(
            self._signer.name, self._signer.private_key, clock=lambda: timestamp
        )
        cosignature = NoteSignature(signer.name, signer.key_id, signer.sign(note.text))
        # Monitors get the log signatures that verified plus ours; unknown lines are dropped.
        cosigned = format_note(Note(note.text, (*verified.verified, cosignature)))
        new = StoredCheckpoint(
            checkpoint.origin, checkpoint.size, checkpoint.root, cosigned, timestamp
        )
        current = self._state.compare_and_swap(
            request.old_size, None if stored is None else stored.root, new
        )
        if current is not None:
            return _conflict(current)  # another submission moved the state since our read
        return WitnessResponse(200, cosignature.line().encode("utf-8"), TEXT_CONTENT_TYPE)

    def get_checkpoint(self, hash_hex: str) -> WitnessResponse:
        """``GET <origin hash>/checkpoint``: the latest cosigned checkpoint, or 404."""
        if not _ORIGIN_HASH.fullmatch(hash_hex):
            return _text(404, "not a lowercase hex SHA-256 origin hash")
        stored = self._state.latest_by_hash(hash_hex)
        if stored is None:
            return _text(404, "no checkpoint cosigned for this origin")
        return WitnessResponse(200, stored.note.encode("utf-8"), TEXT_CONTENT_TYPE)


def _inconsistency(
    request: AddCheckpointRequest, checkpoint: Checkpoint, stored_root: bytes | None
) -> str | None:
    """Why ``checkpoint`` does not extend the stored state (already known to have size
    ``request.old_size``), or None if it does."""
    if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
        return "empty_tree.bad_root: a size 0 checkpoint must have the root SHA-256('')"
    if request.old_size == 0:
        # The empty tree is a prefix of every tree; verify_consistency refuses size1 == 0.
        if request.proof:
            return "proof.not_empty: a consistency proof from size 0 must be empty"
        return None
    if stored_root is None:  # old_size == stored size == 0 was handled above
        return "state.missing: no stored root"
    if request.old_size == checkpoint.size and checkpoint.root != stored_root:
        return "fork: same size as the cosigned checkpoint but a different root"
    try:
        verify_consistency(
            request.old_size, checkpoint.size, stored_root, checkpoint.root, request.proof
        )
    except LedgerError as exc:
        return f"{exc.code}: {exc.message}"
    return None
