"""C2SP signed notes: the spec examples byte for byte, every malformation rule, the verification
rules of signed-note §Signatures, vkeys and private key texts, and fuzzing."""

from __future__ import annotations

import base64
import random
from contextlib import suppress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_testing import refused

from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    CosignatureV1Signer,
    CosignatureV1Verifier,
    Ed25519Signer,
    Ed25519Verifier,
    Note,
    NoteSignature,
    cosignature_timestamp,
    format_note,
    generate_ed25519_seed,
    key_id,
    open_note,
    parse_note,
    parse_private_key_text,
    parse_vkey,
    private_key_text,
    sign_note,
    vkey,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- examples copied from the C2SP texts (docs reference copy, commit 5ba5ee83) --------------

# signed-note.md §Verifier keys / Example: the only example with a published public key.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mF"
    "XmRKuwHjG1Yu72IneyaQM=\n"
)
# signed-note.md introduction: no public key is published, so it can only be parsed.
QUASIMODO_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed \u00e8 subito sera.\n"
    "\n"
    "\u2014 quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKO"
    "NrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
CHECKPOINT_BODY = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
LOG_SIGNATURE_LINE = (
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
# tlog-checkpoint.md introduction (no public key published).
CHECKPOINT_NOTE = CHECKPOINT_BODY + "\n" + LOG_SIGNATURE_LINE
# tlog-cosignature.md introduction (no public keys published).
COSIGNED_CHECKPOINT_NOTE = (
    CHECKPOINT_NOTE
    + "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9"
    "dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
# tlog-witness.md add-checkpoint request: the log signs with two keys of the same name.
WITNESS_REQUEST_CHECKPOINT = (
    CHECKPOINT_NOTE
    + "\u2014 example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2W"
    "ks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
)
# tlog-witness.md add-checkpoint response: cosignature lines to append to the checkpoint.
WITNESS_RESPONSE = (
    "\u2014 witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVj"
    "yQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n"
    "\u2014 witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vW"
    "hO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==\n"
    "\u2014 witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYK"
    "A7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==\n"
)
# tlog-witness.md sign-subtree: the spec elides part of the signature with "[...]".
ELIDED_SUBTREE_CHECKPOINT = (
    "example.com/behind-the-sofa\n14\n/CcKVZM9n65aH7jLaIZuUB4/MSlEFQ4+ldwUC21rDHM=\n\n"
    "\u2014 witness.example/w1 LijDAFSpKvDUj+ZtaJ4lUVcnvnooXd[...]azezGX6o5Vulg==\n"
)

# Go's golang.org/x/mod/sumdb/note test vector: a private key and the note it must produce.
GO_PRIVATE_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgK"
    "vqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def signer(name: str, seed: int = 1) -> Ed25519Signer:
    return Ed25519Signer.from_seed(name, generate_ed25519_seed(random.Random(seed).randbytes))


# --- the spec examples ------------------------------------------------------------------------


def test_spec_example_verifies_byte_for_byte() -> None:
    verifier = parse_vkey(SPEC_VKEY)
    for data in (SPEC_NOTE, SPEC_NOTE.encode("utf-8")):
        opened = open_note(data, [verifier])
        assert opened.text == "This is an example message.\n"
        assert [s.name for s in opened.verified] == ["example.com/foo"]
        assert opened.unknown == ()
    assert format_note(parse_note(SPEC_NOTE)).encode("utf-8") == SPEC_NOTE.encode("utf-8")


def test_spec_example_key_id_and_vkey_recompute() -> None:
    verifier = parse_vkey(SPEC_VKEY)
    assert isinstance(verifier, Ed25519Verifier)
    assert verifier.key_id.hex() == "530d903a"
    assert key_id("example.com/foo", SIG_ED25519, verifier.public_key).hex() == "530d903a"
    assert vkey("example.com/foo", SIG_ED25519, verifier.public_key) == SPEC_VKEY
    assert verifier.vkey == SPEC_VKEY
    assert parse_note(SPEC_NOTE).signatures[0].key_id.hex() == "530d903a"


def test_spec_example_fails_once_altered() -> None:
    verifier = parse_vkey(SPEC_VKEY)
    with refused("note.bad_signature"):
        open_note(SPEC_NOTE.replace("example message", "exemplary message"), [verifier])


def test_go_vector_signs_byte_for_byte() -> None:
    go_signer = parse_private_key_text(GO_PRIVATE_KEY)
    assert isinstance(go_signer, Ed25519Signer)
    assert go_signer.vkey == GO_VKEY
    assert go_signer.private_key_text() == GO_PRIVATE_KEY
    assert sign_note(GO_TEXT, [go_signer]) == GO_NOTE
    assert open_note(GO_NOTE, [parse_vkey(GO_VKEY)]).text == GO_TEXT
    # Signing again replaces the key's own earlier signature instead of adding a second one.
    again = sign_note(GO_TEXT, [go_signer], parse_note(GO_NOTE).signatures)
    assert again == GO_NOTE


@pytest.mark.parametrize(
    "example",
    [
        SPEC_NOTE,
        QUASIMODO_NOTE,
        CHECKPOINT_NOTE,
        COSIGNED_CHECKPOINT_NOTE,
        WITNESS_REQUEST_CHECKPOINT,
        CHECKPOINT_NOTE + WITNESS_RESPONSE,
        GO_NOTE,
    ],
)
def test_every_spec_example_reformats_to_the_same_bytes(example: str) -> None:
    assert format_note(parse_note(example)) == example
    assert format_note(parse_note(example.encode("utf-8"))) == example


def test_text_is_split_at_the_last_blank_line() -> None:
    note = parse_note(QUASIMODO_NOTE)
    assert note.text.endswith("ed \u00e8 subito sera.\n")
    assert "\n\n" in note.text  # the poem's own blank line stays in the text
    assert [s.name for s in note.signatures] == ["quasimodo.example/salvatore"]


def test_examples_without_a_published_key_are_ignored_as_unknown() -> None:
    # Only example.com/foo has a public key in the texts; to any other verifier the signatures
    # are unknown, and a note with only unknown signatures must be refused.
    with refused("note.unknown_key"):
        open_note(QUASIMODO_NOTE, [parse_vkey(SPEC_VKEY)])
    with refused("note.unknown_key"):
        open_note(CHECKPOINT_NOTE, [parse_vkey(SPEC_VKEY)])


def test_cosignature_example_decodes() -> None:
    note = parse_note(COSIGNED_CHECKPOINT_NOTE)
    assert note.text == CHECKPOINT_BODY
    log, witness = note.signatures
    assert log.name == "example.com/behind-the-sofa"
    assert len(log.signature) == 64
    assert witness.name == "witness.example.com/w1"
    assert witness.key_id.hex() == "8d66cf3f"
    assert len(witness.key_id) + len(witness.signature) == 76
    assert cosignature_timestamp(witness.signature) == 1679315147
    assert CosignatureV1Verifier.timestamp_of(witness.signature) == 1679315147


def test_witness_examples_decode() -> None:
    request = parse_note(WITNESS_REQUEST_CHECKPOINT)
    first, second = request.signatures
    assert first.name == second.name == "example.com/behind-the-sofa"
    assert first.key_id != second.key_id  # two log keys, e.g. during a rotation
    response = parse_note(CHECKPOINT_NOTE + WITNESS_RESPONSE)
    cosignatures = response.signatures[1:]
    assert [s.name for s in cosignatures] == ["witness.example/w1"] * 2 + ["witness.example/w2"]
    assert all(len(s.signature) == 72 for s in cosignatures)
    # The response's signature bytes are placeholders: the first one's "timestamp" has the top
    # bit set, which a cosignature/v1 timestamp never has.
    with refused("cosignature.bad_timestamp"):
        cosignature_timestamp(cosignatures[0].signature)


def test_elided_spec_signatures_are_refused() -> None:
    with refused("note.bad_signature_line"):
        parse_note(ELIDED_SUBTREE_CHECKPOINT)


# --- malformed notes ---------------------------------------------------------------------------

GOOD_LINE = parse_note(SPEC_NOTE).signatures[0].line()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"text\xff\n\n" + GOOD_LINE.encode(), "note.not_utf8"),
        (b"text\n\n\xe2\x80" + GOOD_LINE.encode()[3:], "note.not_utf8"),
        ("text\ud800\n\n" + GOOD_LINE, "note.not_utf8"),
        ("text\r\n\n" + GOOD_LINE, "note.control_character"),
        ("te\txt\n\n" + GOOD_LINE, "note.control_character"),
        ("text\n\n" + GOOD_LINE.replace(" ", "\t", 1), "note.control_character"),
        ("text\x00\n\n" + GOOD_LINE, "note.control_character"),
        ("text\n" + GOOD_LINE, "note.no_signatures"),
        ("text without any newline", "note.no_signatures"),
        ("text\n\n", "note.no_signatures"),
        ("", "note.no_signatures"),
        ("text\n\n" + GOOD_LINE[:-1], "note.bad_signature_line"),
        ("text\n\n" + GOOD_LINE + "\n", "note.no_signatures"),  # the last blank line wins
        ("text\n\n" + GOOD_LINE + "not a signature\n", "note.bad_signature_line"),
        ("text\n\n" + GOOD_LINE.replace("\u2014", "-"), "note.bad_signature_line"),
        ("text\n\n" + GOOD_LINE.replace("\u2014 ", "\u2014"), "note.bad_signature_line"),
        ("text\n\n" + GOOD_LINE.replace("\u2014 ", "\u2014  "), "note.bad_signature_line"),
        ("text\n\n" + GOOD_LINE.replace("example.com/foo", "ex+ample"), "note.bad_signature_line"),
        ("text\n\n" + GOOD_LINE.replace("example.com", "ex\u00a0ample"), "note.bad_signature_line"),
        ("text\n\n" + GOOD_LINE.replace("example.com", "ex\u2003ample"), "note.bad_signature_line"),
        ("text\n\n\u2014 example.com/foo\n", "note.bad_signature_line"),
        ("text\n\n\u2014 example.com/foo \n", "note.bad_signature_line"),
        ("text\n\n" + GOOD_LINE.replace("=\n", "\n"), "note.bad_signature_line"),  # padding
        ("text\n\n" + GOOD_LINE.replace("aQM=", "aQN="), "note.bad_signature_line"),  # stray bits
        ("text\n\n" + GOOD_LINE.replace(" Uw2Q", " Uw 2Q"), "note.bad_signature_line"),
        ("text\n\n\u2014 example.com/foo AAAAAA==\n", "note.bad_signature_line"),  # 4 bytes
    ],
)
def test_malformed_notes_are_refused(data: str | bytes, code: str) -> None:
    with refused(code):
        parse_note(data)
    with refused(code):
        open_note(data, [parse_vkey(SPEC_VKEY)])


def test_signature_count_is_capped_but_sixteen_are_accepted() -> None:
    sixteen = "text\n\n" + GOOD_LINE * 16
    assert len(parse_note(sixteen).signatures) == 16
    assert len(parse_note("text\n\n" + GOOD_LINE * 100).signatures) == 100
    with refused("note.too_many_signatures"):
        parse_note("text\n\n" + GOOD_LINE * 101)
    with refused("note.too_many_signatures"):
        parse_note(sixteen, max_signatures=15)


def test_format_refuses_what_parse_would_refuse() -> None:
    good = parse_note(SPEC_NOTE)
    with refused("note.text_not_terminated"):
        format_note(Note("no newline", good.signatures))
    with refused("note.control_character"):
        format_note(Note("bell\a\n", good.signatures))
    with refused("note.no_signatures"):
        format_note(Note("text\n", ()))
    with refused("note.bad_signature_line"):
        format_note(Note("text\n", (NoteSignature("a b", b"1234", b"sig"),)))
    with refused("note.bad_signature_line"):
        format_note(Note("text\n", (NoteSignature("ab", b"123", b"sig"),)))
    with refused("note.bad_signature_line"):
        format_note(Note("text\n", (NoteSignature("ab", b"1234", b""),)))


# --- signing and the verification rules -------------------------------------------------------


def test_sign_then_open_round_trip() -> None:
    alice, bob = signer("log.example/alice", 1), signer("log.example/bob", 2)
    text = "size 3\n\nblank lines are fine\n"
    signed = sign_note(text, [alice, bob])
    assert format_note(parse_note(signed)) == signed
    opened = open_note(signed, [alice.verifier(), bob.verifier()])
    assert opened.text == text
    assert [s.name for s in opened.verified] == ["log.example/alice", "log.example/bob"]
    assert open_note(signed, [bob.verifier()]).unknown[0].name == "log.example/alice"


def test_sign_refuses_bad_text() -> None:
    with refused("note.text_not_terminated"):
        sign_note("no newline", [signer("a")])
    with refused("note.control_character"):
        sign_note("tab\there\n", [signer("a")])
    with refused("note.no_signatures"):
        sign_note("nobody signs\n", [])


def test_unknown_signatures_are_ignored_even_when_name_or_id_match() -> None:
    known = signer("log.example", 1)
    same_name = signer("log.example", 2)  # same name, other key id
    stranger = signer("other.example", 3)
    # Same key id as the known key but another name: forge the line directly.
    same_id = NoteSignature("other.example", known.key_id, b"\x00" * 64)
    signed = sign_note("hello\n", [same_name, stranger, known], [same_id])
    opened = open_note(signed, [known.verifier()])
    assert [s.name for s in opened.verified] == ["log.example"]
    assert {(s.name, s.key_id) for s in opened.unknown} == {
        ("other.example", known.key_id),
        ("log.example", same_name.key_id),
        ("other.example", stranger.key_id),
    }


def test_a_failing_known_signature_rejects_the_whole_note() -> None:
    good, other = signer("log.example", 1), signer("witness.example", 2)
    text = "hello\n"
    forged = NoteSignature(other.name, other.key_id, b"\x01" * 64)
    signed = sign_note(text, [good], [forged])
    assert open_note(signed, [good.verifier()]).text == text  # forged line is unknown here
    with refused("note.bad_signature"):
        open_note(signed, [good.verifier(), other.verifier()])
    wrong_length = NoteSignature(good.name, good.key_id, b"\x01" * 10)
    with refused("note.bad_signature"):
        open_note(format_note(Note(text, (wrong_length,))), [good.verifier()])


def test_no_known_signature_rejects() -> None:
    signed = sign_note("hello\n", [signer("a.example", 1)])
    with refused("note.unknown_key"):
        open_note(signed, [])
    with refused("note.unknown_key"):
        open_note(signed, [signer("b.example", 2).verifier()])


def test_repeated_lines_count_once() -> None:
    alice = signer("a.example")
    signed = sign_note("hello\n", [alice])
    line = parse_note(signed).signatures[0].line()
    opened = open_note(signed + line, [alice.verifier()])
    assert len(opened.verified) == 1


def test_signature_types_do_not_mix() -> None:
    seed = generate_ed25519_seed(random.Random(5).randbytes)
    plain = Ed25519Signer.from_seed("w.example", seed)
    cosigner = CosignatureV1Signer.from_seed("w.example", seed, clock=lambda: 1_700_000_000)
    assert plain.key_id != cosigner.key_id  # the type byte is in the key id
    text = "origin\n1\n" + base64.b64encode(bytes(32)).decode() + "\n"
    with refused("note.unknown_key"):
        open_note(sign_note(text, [cosigner]), [plain.verifier()])
    opened = open_note(sign_note(text, [plain, cosigner]), [cosigner.verifier()])
    assert [s.key_id for s in opened.verified] == [cosigner.key_id]


# --- vkeys and private keys --------------------------------------------------------------------


def test_vkey_round_trip_for_both_types() -> None:
    seed = generate_ed25519_seed(random.Random(7).randbytes)
    plain = Ed25519Signer.from_seed("log.example/t1", seed)
    cosigner = CosignatureV1Signer.from_seed("witness.example", seed, clock=lambda: 0)
    assert parse_vkey(plain.vkey) == plain.verifier()
    parsed = parse_vkey(cosigner.vkey)
    assert isinstance(parsed, CosignatureV1Verifier)
    assert parsed == cosigner.verifier()
    assert parsed.sig_type == SIG_COSIGNATURE_V1


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "vkey.malformed"),
        ("example.com/foo+530d903a", "vkey.malformed"),
        ("+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "vkey.malformed"),
        ("ex ample+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "vkey.malformed"),
        ("example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "vkey.malformed"),
        ("example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "vkey.malformed"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2", "vkey.malformed"),
        ("example.com/foo+530d903a+AQ==", "vkey.malformed"),
        (
            "example.com/foo+530d903a+" + base64.b64encode(b"\x01" + bytes(31)).decode(),
            "vkey.malformed",
        ),
        (
            "example.com/foo+530d903a+" + base64.b64encode(b"\x02" + bytes(32)).decode(),
            "vkey.unsupported_type",
        ),
        (
            "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "vkey.key_id_mismatch",
        ),
        (
            "example.com/foo+00000000+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "vkey.key_id_mismatch",
        ),
        (SPEC_VKEY + "\n", "vkey.malformed"),
    ],
)
def test_bad_vkeys_are_refused(text: str, code: str) -> None:
    with refused(code):
        parse_vkey(text)


def test_private_key_text_round_trip_and_errors() -> None:
    seed = generate_ed25519_seed(random.Random(9).randbytes)
    text = private_key_text("log.example", SIG_ED25519, seed)
    assert text.startswith("PRIVATE+KEY+log.example+")
    loaded = parse_private_key_text(text)
    assert loaded == Ed25519Signer.from_seed("log.example", seed)

    cosig_text = private_key_text("w.example", SIG_COSIGNATURE_V1, seed)
    with refused("private_key.clock_required"):
        parse_private_key_text(cosig_text)
    cosigner = parse_private_key_text(cosig_text, clock=lambda: 42)
    assert isinstance(cosigner, CosignatureV1Signer)
    assert cosigner.private_key_text() == cosig_text

    with refused("private_key.malformed"):
        parse_private_key_text(text.removeprefix("PRIVATE+KEY+"))
    with refused("private_key.malformed"):
        parse_private_key_text("PRIVATE+KEY+log.example+0000000+AA==")
    with refused("private_key.key_id_mismatch"):
        parse_private_key_text(text.replace("PRIVATE+KEY+log.example", "PRIVATE+KEY+log.other"))
    with refused("private_key.unsupported_type"):
        parse_private_key_text(
            "PRIVATE+KEY+a+00000000+" + base64.b64encode(b"\x06" + seed).decode()
        )
    with refused("private_key.unsupported_type"):
        private_key_text("a", 0x02, seed)


def test_private_key_errors_never_echo_the_key() -> None:
    text = private_key_text("log.example", SIG_ED25519, bytes(range(32)))
    secret = text.rsplit("+", 1)[1]
    for broken in (text[:-2], text.replace("log.example", "log.other"), text + "x"):
        with pytest.raises(LedgerError) as caught:
            parse_private_key_text(broken)
        assert secret[:10] not in caught.value.message


def test_seed_generation_uses_the_injected_randomness() -> None:
    first = generate_ed25519_seed(random.Random(3).randbytes)
    assert first == generate_ed25519_seed(random.Random(3).randbytes)
    assert first != generate_ed25519_seed(random.Random(4).randbytes)
    with pytest.raises(ValueError, match="wrong number"):
        generate_ed25519_seed(lambda n: b"short")


# --- fuzzing ---------------------------------------------------------------------------------

# Text built from the characters that matter to the grammar, plus anything else.
GRAMMAR = st.text(
    alphabet=st.sampled_from(["\n", "\u2014", " ", "+", "=", "/", "a", "Z", "0", "\t", "\u00a0"])
    | st.characters(),
    max_size=200,
)
KNOWN = [parse_vkey(SPEC_VKEY), signer("fuzz.example").verifier()]


@FUZZ
@given(data=st.one_of(GRAMMAR, st.binary(max_size=200), GRAMMAR.map(lambda s: SPEC_NOTE + s)))
def test_fuzz_parse_and_open_only_raise_ledger_errors(data: str | bytes) -> None:
    try:
        note = parse_note(data)
    except LedgerError:
        return
    assert parse_note(format_note(note)) == note
    with suppress(LedgerError):
        open_note(data, KNOWN)


@FUZZ
@given(
    position=st.integers(min_value=0, max_value=len(SPEC_NOTE)),
    cut=st.integers(min_value=0, max_value=4),
    insert=st.text(max_size=3),
)
def test_fuzz_mutated_spec_note_never_verifies_other_text(
    position: int, cut: int, insert: str
) -> None:
    mutated = SPEC_NOTE[:position] + insert + SPEC_NOTE[position + cut :]
    try:
        opened = open_note(mutated, [parse_vkey(SPEC_VKEY)])
    except LedgerError:
        return
    assert opened.text == "This is an example message.\n"


@FUZZ
@given(text=st.one_of(GRAMMAR, st.just(SPEC_VKEY).map(lambda s: s[:-3] + "==")))
def test_fuzz_key_parsers_only_raise_ledger_errors(text: str) -> None:
    for parse in (parse_vkey, parse_private_key_text):
        with suppress(LedgerError):
            parse(text)
        with suppress(LedgerError):
            parse("PRIVATE+KEY+" + text)


@FUZZ
@given(
    lines=st.lists(
        st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=30), min_size=1, max_size=5
    ),
    name=st.text(
        st.characters(exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"], exclude_characters="+"),
        min_size=1,
        max_size=20,
    ),
)
def test_fuzz_sign_parse_format_is_identity(lines: list[str], name: str) -> None:
    text = "\n".join(lines) + "\n"
    try:
        key = signer(name)
    except LedgerError:  # e.g. a name with a character Python counts as a space
        return
    signed = sign_note(text, [key])
    assert format_note(parse_note(signed)) == signed
    assert open_note(signed.encode("utf-8"), [key.verifier()]).text == text
