"""Offline inclusion proofs in the c2sp.org/tlog-proof@v1 text format (``.tlog-proof``).

```
c2sp.org/tlog-proof@v1
extra <base64>          optional, unauthenticated
index <leaf index>
<base64 hash>           zero or more, leaf's sibling first
<blank line>
<signed checkpoint note, verbatim>
```

This module only parses and formats; checking the inclusion proof and the signatures is the
caller's job (the extra data in particular is never trusted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from iptv_billing.ledger.checkpoint import parse_checkpoint
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import decode_base64, encode_base64, parse_note

HEADER = "c2sp.org/tlog-proof@v1"
HASH_SIZE = 32
MAX_INDEX = 2**64 - 1
# An audit path in a tree of at most 2^64 leaves has at most 64 hashes.
MAX_PROOF_HASHES = 64
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed checkpoint note, verbatim
    extra: bytes | None = None


def _malformed(message: str) -> LedgerError:
    return LedgerError("proof_file.malformed", message)


def _check_checkpoint(text: str) -> None:
    # Both the note and its checkpoint body must be well formed; their own codes are kept.
    parse_checkpoint(parse_note(text).text)


def format_tlog_proof(p: TlogProof) -> str:
    if isinstance(p.index, bool) or not 0 <= p.index <= MAX_INDEX:
        raise _malformed(f"index {p.index!r} is not a uint64")
    if len(p.proof) > MAX_PROOF_HASHES:
        raise _malformed(f"an inclusion proof has at most {MAX_PROOF_HASHES} hashes")
    if any(len(h) != HASH_SIZE for h in p.proof):
        raise _malformed(f"every proof hash is {HASH_SIZE} bytes")
    if p.extra is not None and not p.extra:
        raise _malformed("empty extra data: use None for no extra line")
    _check_checkpoint(p.checkpoint)
    lines = [HEADER]
    if p.extra is not None:
        lines.append(f"extra {encode_base64(bytes(p.extra))}")
    lines.append(f"index {p.index}")
    lines.extend(encode_base64(bytes(h)) for h in p.proof)
    return "\n".join(lines) + "\n\n" + p.checkpoint


def parse_tlog_proof(text: str | bytes) -> TlogProof:
    """Parse strictly; the checkpoint must itself be a well-formed note and checkpoint body
    (refusals there keep their ``note.*`` / ``checkpoint.*`` codes)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _malformed("the proof is not valid UTF-8") from exc
    head, blank, checkpoint = text.partition("\n\n")
    if not blank:
        raise _malformed("no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise _malformed(f"the first line must be {HEADER}")
    position = 1
    extra: bytes | None = None
    if position < len(lines) and lines[position].startswith("extra "):
        extra = decode_base64(lines[position][len("extra ") :])
        if not extra:
            raise _malformed("the extra line must hold non-empty canonical base64")
        position += 1
    if position >= len(lines) or not lines[position].startswith("index "):
        raise _malformed("missing index line")
    index_text = lines[position][len("index ") :]
    if not _DECIMAL.fullmatch(index_text) or int(index_text) > MAX_INDEX:
        raise _malformed("the index must be a decimal uint64 without leading zeros")
    hash_lines = lines[position + 1 :]
    if len(hash_lines) > MAX_PROOF_HASHES:
        raise _malformed(f"an inclusion proof has at most {MAX_PROOF_HASHES} hashes")
    proof: list[bytes] = []
    for number, line in enumerate(hash_lines, start=1):
        digest = decode_base64(line)
        if digest is None or len(digest) != HASH_SIZE:
            raise _malformed(f"proof hash {number} is not canonical base64 of 32 bytes")
        proof.append(digest)
    _check_checkpoint(checkpoint)
    return TlogProof(int(index_text), tuple(proof), checkpoint, extra)
