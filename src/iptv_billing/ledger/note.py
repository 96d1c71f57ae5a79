"""C2SP signed notes (c2sp.org/signed-note): parse, format, sign, verify; vkeys and private keys.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> <base64(4-byte key id || signature)>``. Two signature types are implemented, both
Ed25519: ``0x01`` (plain note signatures, used by logs) and ``0x04`` (timestamped
``cosignature/v1``, used by witnesses, see c2sp.org/tlog-cosignature). They live together here
because vkeys and private key texts of either type are parsed here.

Pure: no I/O, no clock, no randomness of its own (both are injected). Every refusal is a
``LedgerError`` with a stable code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from iptv_billing.ledger.errors import LedgerError

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04

KEY_ID_SIZE = 4
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SEED_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
COSIGNATURE_V1_SIZE = 8 + ED25519_SIGNATURE_SIZE
MAX_COSIGNATURE_TIMESTAMP = 2**63 - 1
# The spec requires accepting at least 16; Go's x/mod/sumdb/note stops at 100.
DEFAULT_MAX_SIGNATURES = 100

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
# ASCII controls other than newline; DEL (0x7f) is not below U+0020 and so is allowed.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


# --- helpers shared by the ledger text formats ---------------------------------------------


def decode_base64(text: str) -> bytes | None:
    """Standard padded base64 (RFC 4648 §4) in its canonical form, or None.

    Non-canonical encodings (stray padding bits, missing padding, whitespace) are refused so that
    re-formatting a parsed artefact reproduces it byte for byte.
    """
    if not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def encode_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def is_valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode space, no ``+``, encodable as UTF-8, no control characters."""
    if not name or "+" in name or _CONTROL.search(name):
        return False
    if any(char.isspace() for char in name):
        return False
    return _is_utf8_encodable(name)


def _is_utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || type || public key)[:4]``, the recommended key id."""
    if not 0 <= sig_type <= 0xFF:
        raise LedgerError("vkey.malformed", f"signature type {sig_type} is not a byte")
    if not _is_utf8_encodable(name):
        raise LedgerError("vkey.malformed", "the key name is not valid Unicode")
    material = name.encode("utf-8") + b"\n" + bytes([sig_type]) + bytes(public_key)
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


# --- notes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the signer's key name, 4-byte key id, and the signature proper."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line, including its final newline."""
        payload = encode_base64(bytes(self.key_id) + bytes(self.signature))
        return f"{_SIGNATURE_PREFIX}{self.name} {payload}\n"


@dataclass(frozen=True)
class Note:
    """A note's text (including its final newline) and its signatures in wire order."""

    text: str
    signatures: tuple[NoteSignature, ...]


def _decode_text(data: bytes | str) -> str:
    if isinstance(data, str):
        if not _is_utf8_encodable(data):
            raise LedgerError("note.not_utf8", "the note is not valid Unicode (lone surrogate)")
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LedgerError(
            "note.not_utf8", f"the note is not valid UTF-8 at byte {exc.start}"
        ) from exc


def _check_characters(text: str) -> None:
    found = _CONTROL.search(text)
    if found is not None:
        raise LedgerError(
            "note.control_character",
            f"control character U+{ord(found.group()):04X} at offset {found.start()}",
        )


def parse_note(data: bytes | str, *, max_signatures: int = DEFAULT_MAX_SIGNATURES) -> Note:
    """Parse a signed note strictly, without verifying anything.

    The text ends at the last blank line; every line after it must be a well-formed signature
    line. A note with more than ``max_signatures`` signature lines is refused before any
    signature is decoded.
    """
    message = _decode_text(data)
    _check_characters(message)
    split = message.rfind("\n\n")
    if split < 0:
        raise LedgerError("note.no_signatures", "no blank line separates the text from signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block:
        raise LedgerError("note.no_signatures", "the note has no signature lines")
    if not block.endswith("\n"):
        raise LedgerError("note.bad_signature_line", "the last signature line has no newline")
    if block.count("\n") > max_signatures:
        raise LedgerError(
            "note.too_many_signatures", f"more than {max_signatures} signatures on one note"
        )
    signatures = tuple(_parse_signature_line(line) for line in block[:-1].split("\n"))
    return Note(text, signatures)


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise LedgerError("note.bad_signature_line", "a signature line must start with '— '")
    name, space, payload = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space:
        raise LedgerError(
            "note.bad_signature_line", "a signature line needs a name and a signature"
        )
    if not is_valid_key_name(name):
        raise LedgerError("note.bad_signature_line", f"invalid key name {name!r}")
    raw = decode_base64(payload)
    if raw is None:
        raise LedgerError("note.bad_signature_line", f"signature by {name} is not canonical base64")
    if len(raw) <= KEY_ID_SIZE:
        raise LedgerError("note.bad_signature_line", f"signature by {name} is too short")
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


def _check_note_text(text: str) -> None:
    if not _is_utf8_encodable(text):
        raise LedgerError("note.not_utf8", "the note text is not valid Unicode")
    _check_characters(text)
    if not text.endswith("\n"):
        raise LedgerError("note.text_not_terminated", "the note text must end with a newline")


def _check_signature(signature: NoteSignature) -> None:
    if not is_valid_key_name(signature.name):
        raise LedgerError("note.bad_signature_line", f"invalid key name {signature.name!r}")
    if len(signature.key_id) != KEY_ID_SIZE or not signature.signature:
        raise LedgerError("note.bad_signature_line", f"malformed signature by {signature.name}")


def format_note(note: Note) -> str:
    """The wire form of ``note``; ``format_note(parse_note(x)) == x`` for every valid ``x``."""
    _check_note_text(note.text)
    if not note.signatures:
        raise LedgerError("note.no_signatures", "a note needs at least one signature")
    for signature in note.signatures:
        _check_signature(signature)
    return note.text + "\n" + "".join(signature.line() for signature in note.signatures)


# --- signers and verifiers ------------------------------------------------------------------


class NoteSigner(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def sign(self, text: str) -> bytes:
        """The signature over ``text`` (without the key id)."""
        ...


class NoteVerifier(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: str, signature: bytes) -> bool:
        """Whether ``signature`` (without the key id) is valid for ``text``; never raises."""
        ...


def _public_bytes(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _seed_bytes(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes_raw()


@dataclass(frozen=True)
class _Ed25519Verifier:
    """An Ed25519 public key under a name; subclasses fix the signature type and message."""

    SIG_TYPE: ClassVar[int]

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise LedgerError("vkey.malformed", f"invalid key name {self.name!r}")
        if len(self.public_key) != ED25519_PUBLIC_KEY_SIZE:
            raise LedgerError("vkey.malformed", "an Ed25519 public key is 32 bytes")
        try:
            loaded = Ed25519PublicKey.from_public_bytes(bytes(self.public_key))
        except ValueError as exc:
            raise LedgerError("vkey.malformed", "not an Ed25519 public key") from exc
        object.__setattr__(self, "public_key", bytes(self.public_key))
        object.__setattr__(self, "key_id", key_id(self.name, self.SIG_TYPE, self.public_key))
        object.__setattr__(self, "_key", loaded)

    @property
    def sig_type(self) -> int:
        return self.SIG_TYPE

    @property
    def vkey(self) -> str:
        return vkey(self.name, self.SIG_TYPE, self.public_key)

    def _verify_message(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            self._key.verify(bytes(signature), message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Ed25519Verifier(_Ed25519Verifier):
    """Signature type 0x01: Ed25519 over the note text."""

    SIG_TYPE: ClassVar[int] = SIG_ED25519

    def verify(self, text: str, signature: bytes) -> bool:
        if not _is_utf8_encodable(text):
            return False
        return self._verify_message(text.encode("utf-8"), signature)


def cosignature_message(text: str, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs: header, time line, then the checkpoint body."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosignature_timestamp(signature: bytes) -> int:
    """The POSIX timestamp of a cosignature/v1 ``timestamped_signature`` (72 bytes)."""
    if len(signature) != COSIGNATURE_V1_SIZE:
        raise LedgerError(
            "cosignature.malformed",
            f"a cosignature/v1 signature is {COSIGNATURE_V1_SIZE} bytes, not {len(signature)}",
        )
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp > MAX_COSIGNATURE_TIMESTAMP:
        raise LedgerError("cosignature.bad_timestamp", "the cosignature timestamp exceeds 2^63-1")
    return timestamp


@dataclass(frozen=True)
class CosignatureV1Verifier(_Ed25519Verifier):
    """Signature type 0x04: timestamped Ed25519 checkpoint cosignatures (cosignature/v1)."""

    SIG_TYPE: ClassVar[int] = SIG_COSIGNATURE_V1

    def verify(self, text: str, signature: bytes) -> bool:
        if len(signature) != COSIGNATURE_V1_SIZE or not _is_utf8_encodable(text):
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_COSIGNATURE_TIMESTAMP:
            return False
        return self._verify_message(cosignature_message(text, timestamp), signature[8:])

    @staticmethod
    def timestamp_of(signature: bytes) -> int:
        return cosignature_timestamp(signature)


# Everything parse_vkey can return; both satisfy NoteVerifier.
VkeyVerifier = Ed25519Verifier | CosignatureV1Verifier


@dataclass(frozen=True)
class _Ed25519Signer:
    SIG_TYPE: ClassVar[int]

    name: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise LedgerError("private_key.malformed", f"invalid key name {self.name!r}")
        public = _public_bytes(self.private_key)
        object.__setattr__(self, "key_id", key_id(self.name, self.SIG_TYPE, public))

    @property
    def public_key(self) -> bytes:
        return _public_bytes(self.private_key)

    @property
    def vkey(self) -> str:
        return vkey(self.name, self.SIG_TYPE, self.public_key)

    def private_key_text(self) -> str:
        return private_key_text(self.name, self.SIG_TYPE, _seed_bytes(self.private_key))


@dataclass(frozen=True)
class Ed25519Signer(_Ed25519Signer):
    """Signature type 0x01: signs the note text bytes."""

    SIG_TYPE: ClassVar[int] = SIG_ED25519

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Ed25519Signer:
        return cls(name, _private_key_from_seed(seed))

    def sign(self, text: str) -> bytes:
        return self.private_key.sign(text.encode("utf-8"))

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.name, self.public_key)


@dataclass(frozen=True)
class CosignatureV1Signer(_Ed25519Signer):
    """Signature type 0x04: ``timestamp (8 bytes, big-endian) || Ed25519 signature``.

    ``clock`` returns POSIX seconds; it is injected so that witnesses and tests stay
    deterministic.
    """

    SIG_TYPE: ClassVar[int] = SIG_COSIGNATURE_V1

    clock: Callable[[], int] = field(kw_only=True, compare=False, repr=False)

    @classmethod
    def from_seed(cls, name: str, seed: bytes, *, clock: Callable[[], int]) -> CosignatureV1Signer:
        return cls(name, _private_key_from_seed(seed), clock=clock)

    def sign(self, text: str) -> bytes:
        timestamp = self.clock()
        if (
            not isinstance(timestamp, int)
            or isinstance(timestamp, bool)
            or not 0 <= timestamp <= MAX_COSIGNATURE_TIMESTAMP
        ):
            raise LedgerError(
                "cosignature.bad_timestamp", f"clock returned {timestamp!r}, not 0..2^63-1"
            )
        signature = self.private_key.sign(cosignature_message(text, timestamp))
        return timestamp.to_bytes(8, "big") + signature

    def verifier(self) -> CosignatureV1Verifier:
        return CosignatureV1Verifier(self.name, self.public_key)


def _private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    if len(seed) != ED25519_SEED_SIZE:
        raise LedgerError("private_key.malformed", "an Ed25519 seed is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(bytes(seed))


# --- signing and opening ----------------------------------------------------------------------


def sign_note(
    text: str, signers: Sequence[NoteSigner], existing: Sequence[NoteSignature] = ()
) -> str:
    """Sign ``text`` and return the formatted note.

    New signatures follow ``existing`` ones; an existing signature by the same (name, key id) as
    a new signer is replaced, as in Go's ``note.Sign``.
    """
    _check_note_text(text)
    fresh = [NoteSignature(s.name, bytes(s.key_id), bytes(s.sign(text))) for s in signers]
    replaced = {(s.name, s.key_id) for s in fresh}
    kept = [s for s in existing if (s.name, bytes(s.key_id)) not in replaced]
    return format_note(Note(text, (*kept, *fresh)))


@dataclass(frozen=True)
class VerifiedNote:
    """A note whose text may be trusted: ``verified`` by known keys, ``unknown`` ignored."""

    text: str
    verified: tuple[NoteSignature, ...]
    unknown: tuple[NoteSignature, ...]


def verify_note(note: Note, verifiers: Sequence[NoteVerifier]) -> VerifiedNote:
    """Apply signed-note §Signatures to an already parsed note.

    Signatures whose (name, key id) pair matches no verifier are ignored; every signature that
    matches one must verify, or the whole note is refused; at least one must match.
    """
    known: dict[tuple[str, bytes], list[NoteVerifier]] = {}
    for verifier in verifiers:
        known.setdefault((verifier.name, bytes(verifier.key_id)), []).append(verifier)
    verified: dict[NoteSignature, None] = {}  # ordered set: repeated lines count once
    unknown: dict[NoteSignature, None] = {}
    for signature in note.signatures:
        candidates = known.get((signature.name, signature.key_id))
        if not candidates:
            unknown[signature] = None
            continue
        if not any(v.verify(note.text, signature.signature) for v in candidates):
            raise LedgerError(
                "note.bad_signature",
                f"the signature by {signature.name}+{signature.key_id.hex()} does not verify",
            )
        verified[signature] = None
    if not verified:
        raise LedgerError("note.unknown_key", "the note is not signed by any known key")
    return VerifiedNote(note.text, tuple(verified), tuple(unknown))


def open_note(
    data: bytes | str,
    verifiers: Sequence[NoteVerifier],
    *,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
) -> VerifiedNote:
    """Parse and verify a signed note; its text is only returned if a known key signed it."""
    return verify_note(parse_note(data, max_signatures=max_signatures), verifiers)


# --- key texts ------------------------------------------------------------------------------


def vkey(name: str, sig_type: int, public_key: bytes) -> str:
    """``<name>+<hex key id>+<base64(type || public key)>``."""
    if not is_valid_key_name(name):
        raise LedgerError("vkey.malformed", f"invalid key name {name!r}")
    kid = key_id(name, sig_type, public_key)
    return f"{name}+{kid.hex()}+{encode_base64(bytes([sig_type]) + bytes(public_key))}"


def parse_vkey(text: str) -> VkeyVerifier:
    """A verifier for an Ed25519 (0x01) or cosignature/v1 (0x04) vkey; the key id must match."""
    # The name cannot contain "+", base64 can: split only twice.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise LedgerError("vkey.malformed", "a vkey is <name>+<key id>+<key>")
    name, id_hex, payload = parts
    if not is_valid_key_name(name):
        raise LedgerError("vkey.malformed", f"invalid key name {name!r}")
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise LedgerError("vkey.malformed", "the key id must be 8 lowercase hex digits")
    raw = decode_base64(payload)
    if raw is None or len(raw) < 2:
        raise LedgerError("vkey.malformed", "the key must be canonical base64 of type || key")
    sig_type, public_key = raw[0], raw[1:]
    verifier: VkeyVerifier
    if sig_type == SIG_ED25519:
        verifier = Ed25519Verifier(name, public_key)
    elif sig_type == SIG_COSIGNATURE_V1:
        verifier = CosignatureV1Verifier(name, public_key)
    else:
        raise LedgerError("vkey.unsupported_type", f"signature type 0x{sig_type:02x}")
    if verifier.key_id.hex() != id_hex:
        raise LedgerError(
            "vkey.key_id_mismatch", f"key id {id_hex} should be {verifier.key_id.hex()}"
        )
    return verifier


def private_key_text(name: str, sig_type: int, seed: bytes) -> str:
    """Go x/mod/sumdb/note's private key form ``PRIVATE+KEY+<name>+<hex id>+<base64>``."""
    if sig_type not in (SIG_ED25519, SIG_COSIGNATURE_V1):
        raise LedgerError("private_key.unsupported_type", f"signature type 0x{sig_type:02x}")
    if not is_valid_key_name(name):
        raise LedgerError("private_key.malformed", f"invalid key name {name!r}")
    public = _public_bytes(_private_key_from_seed(seed))
    kid = key_id(name, sig_type, public)
    return f"{_PRIVATE_KEY_PREFIX}{name}+{kid.hex()}+{encode_base64(bytes([sig_type]) + seed)}"


def parse_private_key_text(
    text: str, *, clock: Callable[[], int] | None = None
) -> Ed25519Signer | CosignatureV1Signer:
    """Load a signer; ``clock`` is required for cosignature (0x04) keys.

    Messages never echo the input: it is a secret.
    """
    if not text.startswith(_PRIVATE_KEY_PREFIX):
        raise LedgerError("private_key.malformed", "a private key starts with PRIVATE+KEY+")
    parts = text[len(_PRIVATE_KEY_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise LedgerError("private_key.malformed", "expected PRIVATE+KEY+<name>+<id>+<key>")
    name, id_hex, payload = parts
    if not is_valid_key_name(name) or not _KEY_ID_HEX.fullmatch(id_hex):
        raise LedgerError("private_key.malformed", "bad key name or key id")
    raw = decode_base64(payload)
    if raw is None or len(raw) != 1 + ED25519_SEED_SIZE:
        raise LedgerError("private_key.malformed", "the key must be base64 of type || 32-byte seed")
    sig_type, seed = raw[0], raw[1:]
    signer: Ed25519Signer | CosignatureV1Signer
    if sig_type == SIG_ED25519:
        signer = Ed25519Signer.from_seed(name, seed)
    elif sig_type == SIG_COSIGNATURE_V1:
        if clock is None:
            raise LedgerError("private_key.clock_required", "a cosignature key needs a clock")
        signer = CosignatureV1Signer.from_seed(name, seed, clock=clock)
    else:
        raise LedgerError("private_key.unsupported_type", f"signature type 0x{sig_type:02x}")
    if signer.key_id.hex() != id_hex:
        raise LedgerError("private_key.key_id_mismatch", "the key id does not match the key")
    return signer


def generate_ed25519_seed(random_bytes: Callable[[int], bytes]) -> bytes:
    """32 bytes from the injected source (``os.urandom`` in production, seeded in tests)."""
    seed = random_bytes(ED25519_SEED_SIZE)
    if len(seed) != ED25519_SEED_SIZE:
        raise ValueError("random_bytes returned the wrong number of bytes")
    return bytes(seed)
