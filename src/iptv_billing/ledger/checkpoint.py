"""C2SP checkpoints (c2sp.org/tlog-checkpoint) and their witness cosignatures.

A checkpoint is a signed note whose text is ``<origin>\\n<tree size>\\n<base64 root>\\n`` plus
optional extension lines. The log signs it with an Ed25519 note key named like the origin;
witnesses append cosignature/v1 signatures (c2sp.org/tlog-cosignature). The cosignature signer
and verifier are defined in ``note`` (vkeys of both types are parsed there) and re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import (
    DEFAULT_MAX_SIGNATURES,
    CosignatureV1Signer,
    CosignatureV1Verifier,
    Note,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    cosignature_message,
    cosignature_timestamp,
    decode_base64,
    encode_base64,
    parse_note,
    sign_note,
    verify_note,
)

__all__ = [
    "Checkpoint",
    "CosignatureV1Signer",
    "CosignatureV1Verifier",
    "SignedCheckpoint",
    "cosignature_message",
    "format_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
    "timestamp_of",
]

HASH_SIZE = 32
MAX_TREE_SIZE = 2**64 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")  # bounded so int() never sees a huge string
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")

timestamp_of = cosignature_timestamp


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def _malformed(message: str) -> LedgerError:
    return LedgerError("checkpoint.malformed", message)


def _check_line(line: str, what: str) -> None:
    if not line:
        raise _malformed(f"the {what} must not be empty")
    if "\n" in line or _CONTROL.search(line):
        raise _malformed(f"the {what} contains a control character")


def format_checkpoint(cp: Checkpoint) -> str:
    """The note text of ``cp``, including the final newline."""
    _check_line(cp.origin, "origin")
    if isinstance(cp.size, bool) or not 0 <= cp.size <= MAX_TREE_SIZE:
        raise _malformed(f"tree size {cp.size!r} is not a uint64")
    if len(cp.root) != HASH_SIZE:
        raise _malformed(f"the root hash is {HASH_SIZE} bytes, not {len(cp.root)}")
    for extension in cp.extensions:
        _check_line(extension, "extension line")
    lines = [cp.origin, str(cp.size), encode_base64(bytes(cp.root)), *cp.extensions]
    return "\n".join(lines) + "\n"


def parse_checkpoint(text: str | bytes) -> Checkpoint:
    """Parse a checkpoint body (the note text, not the signatures) strictly."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _malformed("the checkpoint is not valid UTF-8") from exc
    if not text.endswith("\n"):
        raise _malformed("the checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise _malformed("a checkpoint has at least three lines: origin, size, root")
    origin, size_text, root_text, *extensions = lines
    _check_line(origin, "origin")
    if not _DECIMAL.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise _malformed("the tree size must be a decimal uint64 without leading zeros")
    root = decode_base64(root_text)
    if root is None or len(root) != HASH_SIZE:
        raise _malformed("the root hash must be canonical base64 of 32 bytes")
    for extension in extensions:
        _check_line(extension, "extension line")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, signers: Sequence[NoteSigner]) -> str:
    """The signed note for ``cp`` (the log's key should be named like the origin)."""
    return sign_note(format_checkpoint(cp), signers)


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose log signature, and every known witness cosignature, verified.

    ``cosignatures`` maps a witness key name to the timestamp of its (latest) verified
    cosignature; ``witness_signatures`` keeps the lines themselves so that a policy can match
    them by (name, key id).
    """

    checkpoint: Checkpoint
    note: Note
    log_signatures: tuple[NoteSignature, ...]
    cosignatures: dict[str, int]
    witness_signatures: tuple[NoteSignature, ...] = ()


def open_checkpoint(
    data: str | bytes,
    log_verifiers: Sequence[NoteVerifier],
    witness_verifiers: Sequence[NoteVerifier] = (),
    *,
    not_after: int | None = None,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
) -> SignedCheckpoint:
    """Verify a signed checkpoint against trusted log and witness keys.

    Unknown signatures are ignored; a known log or witness signature that fails refuses the
    whole note. A verified signature by a log key named like the origin is required. Witness
    keys must be cosignature/v1 keys (their signatures carry a timestamp); with ``not_after``
    (POSIX seconds), a cosignature dated later is refused as a clock or witness fault.
    """
    note = parse_note(data, max_signatures=max_signatures)
    opened = verify_note(note, [*log_verifiers, *witness_verifiers])
    log_keys = {(v.name, bytes(v.key_id)) for v in log_verifiers}
    witness_keys = {(v.name, bytes(v.key_id)) for v in witness_verifiers}
    log_signatures = tuple(s for s in opened.verified if (s.name, s.key_id) in log_keys)
    if not log_signatures:
        raise LedgerError("checkpoint.no_log_signature", "no known log key signed the checkpoint")
    checkpoint = parse_checkpoint(note.text)
    if not any(s.name == checkpoint.origin for s in log_signatures):
        raise LedgerError(
            "checkpoint.origin_mismatch",
            f"no verified log signature is by a key named {checkpoint.origin!r}",
        )
    cosignatures: dict[str, int] = {}
    witness_signatures: list[NoteSignature] = []
    for signature in opened.verified:
        key = (signature.name, signature.key_id)
        if key in log_keys or key not in witness_keys:
            continue
        timestamp = cosignature_timestamp(signature.signature)
        if not_after is not None and timestamp > not_after:
            raise LedgerError(
                "cosignature.bad_timestamp",
                f"cosignature by {signature.name} is dated {timestamp}, after {not_after}",
            )
        cosignatures[signature.name] = max(timestamp, cosignatures.get(signature.name, 0))
        witness_signatures.append(signature)
    return SignedCheckpoint(
        checkpoint, note, log_signatures, cosignatures, tuple(witness_signatures)
    )
