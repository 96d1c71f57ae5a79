"""c2sp.org/tlog-proof@v1 files: the spec example, round trips, strict refusals, fuzzing."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_testing import refused, seed

from iptv_billing.ledger.checkpoint import (
    Checkpoint,
    CosignatureV1Signer,
    open_checkpoint,
    sign_checkpoint,
)
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import Ed25519Signer, parse_note, sign_note
from iptv_billing.ledger.proof_file import TlogProof, format_tlog_proof, parse_tlog_proof

SPEC_HEAD = (
    "c2sp.org/tlog-proof@v1\n"
    "extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
    "index 73894\n"
    "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
    "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
    "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
    "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
    "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
    "\n"
)
SPEC_BODY = "example.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n"
# The spec elides the signatures ("[...]"), so its checkpoint is not a valid note as printed.
SPEC_ELIDED_SIGNATURES = (
    "\n"
    "\u2014 example.com/fancylog hI2DJw[...]1roloI=\n"
    "\u2014 witness1.example mJirIklj[...]qY9v2B/5bg==\n"
    "\u2014 witness2.example TnKKVHLX[...]xwYwrSjgow==\n"
    "\u2014 witness3.example S4X82uH5[...]3oEcROGLFQ==\n"
)


LOG = Ed25519Signer.from_seed("example.com/fancylog", seed(1))
WITNESSES = [
    CosignatureV1Signer.from_seed(f"witness{i}.example", seed(10 + i), clock=lambda: 1_700_000_000)
    for i in (1, 2, 3)
]


def spec_checkpoint_signed_for_real() -> str:
    signed = sign_checkpoint(Checkpoint("example.com/fancylog", 109482, _root()), [LOG])
    note = parse_note(signed)
    return sign_note(note.text, WITNESSES, note.signatures)


def _root() -> bytes:
    return base64.b64decode("sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=")


CHECKPOINT = spec_checkpoint_signed_for_real()


def test_spec_example_as_printed_is_refused_for_its_elided_signatures() -> None:
    with refused("note.bad_signature_line"):
        parse_tlog_proof(SPEC_HEAD + SPEC_BODY + SPEC_ELIDED_SIGNATURES)


def test_spec_example_with_real_signatures_parses_and_formats_back() -> None:
    assert CHECKPOINT.startswith(SPEC_BODY + "\n")
    text = SPEC_HEAD + CHECKPOINT
    proof = parse_tlog_proof(text)
    assert proof.index == 73894
    assert proof.extra is not None
    assert proof.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert len(proof.proof) == 5
    assert proof.proof[0] == base64.b64decode("gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=")
    assert proof.checkpoint == CHECKPOINT
    assert format_tlog_proof(proof) == text
    assert parse_tlog_proof(text.encode()) == proof
    opened = open_checkpoint(proof.checkpoint, [LOG.verifier()], [w.verifier() for w in WITNESSES])
    assert set(opened.cosignatures) == {"witness1.example", "witness2.example", "witness3.example"}


@pytest.mark.parametrize(
    "proof",
    [
        TlogProof(0, (), CHECKPOINT),
        TlogProof(2**64 - 1, tuple(bytes([i]) * 32 for i in range(64)), CHECKPOINT, b"x"),
        TlogProof(7, (bytes(32),), CHECKPOINT, bytes(range(256))),
    ],
)
def test_round_trip(proof: TlogProof) -> None:
    text = format_tlog_proof(proof)
    assert parse_tlog_proof(text) == proof
    assert format_tlog_proof(parse_tlog_proof(text)) == text


def test_no_extra_line_when_there_is_no_extra() -> None:
    text = format_tlog_proof(TlogProof(3, (bytes(32),), CHECKPOINT))
    assert text.splitlines()[:2] == ["c2sp.org/tlog-proof@v1", "index 3"]


HASH = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    ("head", "checkpoint", "code"),
    [
        ("c2sp.org/tlog-proof@v2\nindex 1\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1 \nindex 1\n", CHECKPOINT, "proof_file.malformed"),
        ("index 1\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\nindex\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\nindex 01\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\nindex -1\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\nindex  1\n", CHECKPOINT, "proof_file.malformed"),
        (f"c2sp.org/tlog-proof@v1\nindex {2**64}\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\nindex \u0661\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\nextra \nindex 1\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\nextra YQ\nindex 1\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\nextra YR==\nindex 1\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\nindex 1\nextra YQ==\n", CHECKPOINT, "proof_file.malformed"),
        (
            "c2sp.org/tlog-proof@v1\nextra YQ==\nextra YQ==\nindex 1\n",
            CHECKPOINT,
            "proof_file.malformed",
        ),
        ("c2sp.org/tlog-proof@v1\r\nindex 1\n", CHECKPOINT, "proof_file.malformed"),
        ("c2sp.org/tlog-proof@v1\nindex 1\r\n", CHECKPOINT, "proof_file.malformed"),
        (f"c2sp.org/tlog-proof@v1\nindex 1\n{HASH[:-4]}\n", CHECKPOINT, "proof_file.malformed"),
        (f"c2sp.org/tlog-proof@v1\nindex 1\n{HASH} \n", CHECKPOINT, "proof_file.malformed"),
        (
            f"c2sp.org/tlog-proof@v1\nindex 1\n{base64.b64encode(bytes(33)).decode()}\n",
            CHECKPOINT,
            "proof_file.malformed",
        ),
        (
            "c2sp.org/tlog-proof@v1\nindex 1\n" + f"{HASH}\n" * 65,
            CHECKPOINT,
            "proof_file.malformed",
        ),
        ("c2sp.org/tlog-proof@v1\nindex 1\n", "", "note.no_signatures"),
        ("c2sp.org/tlog-proof@v1\nindex 1\n", CHECKPOINT.rstrip("\n"), "note.bad_signature_line"),
        (
            "c2sp.org/tlog-proof@v1\nindex 1\n",
            sign_note("not a checkpoint\n", [LOG]),
            "checkpoint.malformed",
        ),
    ],
)
def test_malformed_proofs_are_refused(head: str, checkpoint: str, code: str) -> None:
    with refused(code):
        parse_tlog_proof(head + "\n" + checkpoint)


def test_missing_blank_line_and_bad_encoding() -> None:
    with refused("proof_file.malformed"):
        parse_tlog_proof("c2sp.org/tlog-proof@v1\nindex 1\n" + CHECKPOINT.replace("\n\n", "\n"))
    with refused("proof_file.malformed"):
        parse_tlog_proof(b"c2sp.org/tlog-proof@v1\nindex 1\n\xff\n\n")


@pytest.mark.parametrize(
    ("proof", "code"),
    [
        (TlogProof(-1, (), CHECKPOINT), "proof_file.malformed"),
        (TlogProof(2**64, (), CHECKPOINT), "proof_file.malformed"),
        (TlogProof(1, (bytes(31),), CHECKPOINT), "proof_file.malformed"),
        (TlogProof(1, (bytes(32),) * 65, CHECKPOINT), "proof_file.malformed"),
        (TlogProof(1, (), CHECKPOINT, b""), "proof_file.malformed"),
        (TlogProof(1, (), "no signatures\n"), "note.no_signatures"),
    ],
)
def test_format_refuses_bad_proofs(proof: TlogProof, code: str) -> None:
    with refused(code):
        format_tlog_proof(proof)


VALID = format_tlog_proof(TlogProof(5, (bytes(32), bytes([1]) * 32), CHECKPOINT, b"extra"))


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        st.text(max_size=100).map(lambda s: "c2sp.org/tlog-proof@v1\n" + s),
        st.tuples(st.integers(0, len(VALID)), st.integers(0, 3), st.text(max_size=3)).map(
            lambda t: VALID[: t[0]] + t[2] + VALID[t[0] + t[1] :]
        ),
    )
)
def test_fuzz_parser_only_raises_ledger_errors(data: str | bytes) -> None:
    try:
        proof = parse_tlog_proof(data)
    except LedgerError:
        return
    assert format_tlog_proof(proof) == (data.decode() if isinstance(data, bytes) else data)
