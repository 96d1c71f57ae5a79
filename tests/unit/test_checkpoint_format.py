"""C2SP checkpoints: body format, cosignature/v1 signing and verification, open_checkpoint."""

from __future__ import annotations

import base64
from contextlib import suppress

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_testing import refused, seed

from iptv_billing.ledger.checkpoint import (
    Checkpoint,
    CosignatureV1Signer,
    CosignatureV1Verifier,
    cosignature_message,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
    timestamp_of,
)
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import (
    Ed25519Signer,
    NoteSignature,
    format_note,
    parse_note,
    sign_note,
)

# tlog-checkpoint.md / tlog-cosignature.md example body.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
# tlog-cosignature.md §Ed25519 signed message, for timestamp 1679315147.
SPEC_COSIGNED_MESSAGE = (
    "cosignature/v1\n"
    "time 1679315147\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
ORIGIN = "billing.example/tenant-1"
ROOT = bytes(range(32))


def log_signer(name: str = ORIGIN, n: int = 1) -> Ed25519Signer:
    return Ed25519Signer.from_seed(name, seed(n))


def witness(name: str, n: int, now: int = 1_700_000_000) -> CosignatureV1Signer:
    return CosignatureV1Signer.from_seed(name, seed(n), clock=lambda: now)


# --- body -------------------------------------------------------------------------------------


def test_spec_checkpoint_parses_and_formats_back() -> None:
    cp = parse_checkpoint(SPEC_BODY)
    assert cp == Checkpoint(
        "example.com/behind-the-sofa",
        20852163,
        base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
    )
    assert format_checkpoint(cp) == SPEC_BODY
    assert parse_checkpoint(SPEC_BODY.encode()) == cp


def test_extensions_and_empty_tree_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 0, ROOT, ("ext one", "\u00e9xt two"))
    text = format_checkpoint(cp)
    assert text.count("\n") == 5
    assert "\n0\n" in text
    assert parse_checkpoint(text) == cp
    largest = Checkpoint(ORIGIN, 2**64 - 1, ROOT)
    assert parse_checkpoint(format_checkpoint(largest)) == largest


ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n1\n{ROOT_B64}",  # no final newline
        f"{ORIGIN}\n1\n",
        "",
        "\n",
        f"\n1\n{ROOT_B64}\n",  # empty origin
        f"{ORIGIN}\n01\n{ROOT_B64}\n",
        f"{ORIGIN}\n00\n{ROOT_B64}\n",
        f"{ORIGIN}\n-1\n{ROOT_B64}\n",
        f"{ORIGIN}\n+1\n{ROOT_B64}\n",
        f"{ORIGIN}\n 1\n{ROOT_B64}\n",
        f"{ORIGIN}\n1.0\n{ROOT_B64}\n",
        f"{ORIGIN}\n\u0661\n{ROOT_B64}\n",  # Arabic-Indic digit one
        f"{ORIGIN}\n{2**64}\n{ROOT_B64}\n",
        f"{ORIGIN}\n{'9' * 5000}\n{ROOT_B64}\n",
        f"{ORIGIN}\n\n{ROOT_B64}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(bytes(31)).decode()}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(bytes(33)).decode()}\n",
        f"{ORIGIN}\n1\n{ROOT_B64.rstrip('=')}\n",
        f"{ORIGIN}\n1\n{ROOT_B64[:-2]}9=\n",  # non-canonical trailing bits
        f"{ORIGIN}\n1\nnot base64 at all!!\n",
        f"{ORIGIN}\n1\n{ROOT_B64}\n\n",  # empty extension line
        f"{ORIGIN}\n1\n{ROOT_B64}\next\n\n",
        f"{ORIGIN}\r\n1\n{ROOT_B64}\n",
        f"{ORIGIN}\n1\n{ROOT_B64}\next\x00\n",
    ],
)
def test_malformed_bodies_are_refused(text: str) -> None:
    with refused("checkpoint.malformed"):
        parse_checkpoint(text)


def test_non_utf8_body_is_refused() -> None:
    with refused("checkpoint.malformed"):
        parse_checkpoint(b"\xff\n1\n" + ROOT_B64.encode() + b"\n")


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint("", 1, ROOT),
        Checkpoint("two\nlines", 1, ROOT),
        Checkpoint(ORIGIN, -1, ROOT),
        Checkpoint(ORIGIN, 2**64, ROOT),
        Checkpoint(ORIGIN, True, ROOT),
        Checkpoint(ORIGIN, 1, ROOT[:31]),
        Checkpoint(ORIGIN, 1, ROOT, ("",)),
        Checkpoint(ORIGIN, 1, ROOT, ("a\nb",)),
    ],
)
def test_format_refuses_bad_checkpoints(cp: Checkpoint) -> None:
    with refused("checkpoint.malformed"):
        format_checkpoint(cp)


# --- cosignature/v1 ---------------------------------------------------------------------------


def test_cosignature_message_matches_the_spec() -> None:
    assert cosignature_message(SPEC_BODY, 1679315147) == SPEC_COSIGNED_MESSAGE.encode()


def test_cosignature_sign_and_verify() -> None:
    w = witness("witness.example/w1", 7, now=1679315147)
    signature = w.sign(SPEC_BODY)
    assert len(signature) == 72
    assert signature[:8] == (1679315147).to_bytes(8, "big")
    assert timestamp_of(signature) == 1679315147
    verifier = w.verifier()
    assert verifier.verify(SPEC_BODY, signature)
    # The Ed25519 part signs exactly the spec's message.
    key = Ed25519PublicKey.from_public_bytes(w.public_key)
    key.verify(signature[8:], SPEC_COSIGNED_MESSAGE.encode())  # raises if not

    assert not verifier.verify(SPEC_BODY.replace("20852163", "20852164"), signature)
    later = (1679315148).to_bytes(8, "big") + signature[8:]
    assert not verifier.verify(SPEC_BODY, later)
    assert not verifier.verify(SPEC_BODY, signature[8:])  # a bare Ed25519 signature
    assert not verifier.verify(SPEC_BODY, signature + b"\x00")
    huge = (2**63).to_bytes(8, "big") + signature[8:]
    assert not verifier.verify(SPEC_BODY, huge)
    assert not verifier.verify("lone \ud800 surrogate\n", signature)
    assert not witness("witness.example/w2", 8).verifier().verify(SPEC_BODY, signature)


@pytest.mark.parametrize("bad", [-1, 2**63, True, 1.5])
def test_cosigner_refuses_a_bad_clock(bad: object) -> None:
    w = CosignatureV1Signer.from_seed("w.example", seed(1), clock=lambda: bad)  # type: ignore[arg-type,return-value]
    with refused("cosignature.bad_timestamp"):
        w.sign(SPEC_BODY)


def test_timestamp_of_refuses_bad_signatures() -> None:
    with refused("cosignature.malformed"):
        timestamp_of(bytes(64))
    with refused("cosignature.bad_timestamp"):
        timestamp_of(b"\x80" + bytes(71))
    assert CosignatureV1Verifier.timestamp_of(bytes(72)) == 0


# --- open_checkpoint --------------------------------------------------------------------------


def cosigned(cp: Checkpoint, log: Ed25519Signer, witnesses: list[CosignatureV1Signer]) -> str:
    """The witness protocol flow: the log signs, each witness appends its cosignature."""
    signed = sign_checkpoint(cp, [log])
    for w in witnesses:
        note = parse_note(signed)
        signed = sign_note(note.text, [w], note.signatures)
    return signed


def test_open_checkpoint_with_log_and_two_witnesses() -> None:
    log = log_signer()
    w1, w2 = witness("w1.example", 11, 1_700_000_001), witness("w2.example", 12, 1_700_000_002)
    cp = Checkpoint(ORIGIN, 42, ROOT)
    data = cosigned(cp, log, [w1, w2])
    opened = open_checkpoint(data, [log.verifier()], [w1.verifier(), w2.verifier()])
    assert opened.checkpoint == cp
    assert [s.name for s in opened.log_signatures] == [ORIGIN]
    assert opened.cosignatures == {"w1.example": 1_700_000_001, "w2.example": 1_700_000_002}
    assert len(opened.witness_signatures) == 2
    assert format_note(opened.note) == data

    only_one = open_checkpoint(data, [log.verifier()], [w2.verifier()])
    assert only_one.cosignatures == {"w2.example": 1_700_000_002}
    assert open_checkpoint(data.encode(), [log.verifier()]).cosignatures == {}


def test_open_checkpoint_refusals() -> None:
    log, w1, w2 = log_signer(), witness("w1.example", 11), witness("w2.example", 12)
    cp = Checkpoint(ORIGIN, 42, ROOT)
    data = cosigned(cp, log, [w1, w2])

    # A known witness whose cosignature fails refuses the note (here: cosigned another size).
    other = parse_note(cosigned(Checkpoint(ORIGIN, 43, ROOT), log, [w2])).signatures[-1]
    note = parse_note(data)
    tampered = format_note(type(note)(note.text, (*note.signatures[:2], other)))
    with refused("note.bad_signature"):
        open_checkpoint(tampered, [log.verifier()], [w1.verifier(), w2.verifier()])
    # ... but it is ignored when that witness is unknown.
    assert open_checkpoint(tampered, [log.verifier()], [w1.verifier()]).cosignatures.keys() == {
        "w1.example"
    }

    with refused("checkpoint.no_log_signature"):
        open_checkpoint(data, [], [w1.verifier()])
    with refused("note.unknown_key"):
        open_checkpoint(data, [log_signer(n=99).verifier()])

    misnamed = log_signer("someone.else/log", 3)
    with refused("checkpoint.origin_mismatch"):
        open_checkpoint(sign_checkpoint(cp, [misnamed]), [misnamed.verifier()])

    with refused("cosignature.bad_timestamp"):
        open_checkpoint(data, [log.verifier()], [w1.verifier()], not_after=1_699_999_999)
    assert open_checkpoint(data, [log.verifier()], [w1.verifier()], not_after=1_700_000_000)

    body = "not a checkpoint\n"
    with refused("checkpoint.malformed"):
        open_checkpoint(sign_note(body, [log]), [log.verifier()])

    # A witness key of the wrong type: its 64-byte signature carries no timestamp.
    plain_witness = Ed25519Signer.from_seed("w3.example", seed(13))
    mixed = sign_note(note.text, [plain_witness], note.signatures)
    with refused("cosignature.malformed"):
        open_checkpoint(mixed, [log.verifier()], [plain_witness.verifier()])


def test_log_rotation_either_key_verifies() -> None:
    old, new = log_signer(n=1), log_signer(n=2)
    data = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), [new, old])
    assert open_checkpoint(data, [old.verifier()]).log_signatures[0].key_id == old.key_id
    assert open_checkpoint(data, [new.verifier()]).log_signatures[0].key_id == new.key_id
    both = open_checkpoint(data, [old.verifier(), new.verifier()])
    assert len(both.log_signatures) == 2


def test_repeated_witness_keeps_its_latest_timestamp() -> None:
    log = log_signer()
    early, late = witness("w.example", 5, 100), witness("w.example", 5, 200)
    signed = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), [log])
    note = parse_note(signed)
    first = NoteSignature(early.name, early.key_id, early.sign(note.text))
    second = NoteSignature(late.name, late.key_id, late.sign(note.text))
    data = format_note(type(note)(note.text, (*note.signatures, second, first)))
    assert open_checkpoint(data, [log.verifier()], [early.verifier()]).cosignatures == {
        "w.example": 200
    }


# --- fuzzing ----------------------------------------------------------------------------------

LOG = log_signer()
W1 = witness("w1.example", 11)
GOOD = cosigned(Checkpoint(ORIGIN, 42, ROOT), LOG, [W1])


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        st.tuples(st.integers(0, len(GOOD)), st.integers(0, 3), st.text(max_size=3)).map(
            lambda t: GOOD[: t[0]] + t[2] + GOOD[t[0] + t[1] :]
        ),
    )
)
def test_fuzz_checkpoint_parsers_only_raise_ledger_errors(data: str | bytes) -> None:
    with suppress(LedgerError):
        parse_checkpoint(data)
    try:
        opened = open_checkpoint(data, [LOG.verifier()], [W1.verifier()])
    except LedgerError:
        return
    assert opened.checkpoint == Checkpoint(ORIGIN, 42, ROOT)
