"""c2sp.org/tlog-policy: the spec example, k of n, nested groups, validation, verification."""

from __future__ import annotations

import base64
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_testing import refused, seed

from iptv_billing.ledger.checkpoint import Checkpoint, CosignatureV1Signer, sign_checkpoint
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import (
    SIG_COSIGNATURE_V1,
    Ed25519Signer,
    parse_note,
    sign_note,
    vkey,
)
from iptv_billing.ledger.policy import Group, format_policy, k_of_n_policy, parse_policy

ORIGIN = "billing.example/tenant-1"


LOG = Ed25519Signer.from_seed(ORIGIN, seed(1))
NAMES = ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
COSIGNERS = {
    name: CosignatureV1Signer.from_seed(
        f"{name.lower()}.witness.example", seed(10 + i), clock=lambda: 7
    )
    for i, name in enumerate(NAMES)
}


def wkey(name: str) -> str:
    return COSIGNERS[name].vkey


# tlog-policy.md "Example policy", with the elided keys filled in.
SPEC_TEMPLATE = """log <log>

witness X1 <X1>
witness X2 <X2>
witness X3 <X3>
group X-witnesses 2 X1 X2 X3

witness Y1 <Y1>
witness Y2 <Y2>
witness Y3 <Y3>
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


def spec_policy_text() -> str:
    text = SPEC_TEMPLATE.replace("<log>", LOG.vkey)
    for name in NAMES:
        text = text.replace(f"<{name}>", wkey(name))
    return text


def test_spec_example_with_elided_keys_is_refused() -> None:
    with refused("policy.malformed"):
        parse_policy(SPEC_TEMPLATE.replace("<log>", LOG.vkey))


def test_spec_example_parses() -> None:
    policy = parse_policy(spec_policy_text())
    assert [v.vkey for v in policy.logs] == [LOG.vkey]
    assert policy.log_urls == (None,)
    assert list(policy.witnesses) == NAMES
    assert policy.groups == {
        "X-witnesses": Group("X-witnesses", 2, ("X1", "X2", "X3")),
        "Y-witnesses": Group("Y-witnesses", 1, ("Y1", "Y2", "Y3")),
        "X-and-Y": Group("X-and-Y", 2, ("X-witnesses", "Y-witnesses")),
    }
    assert policy.quorum == "X-and-Y"
    assert len(policy.witness_verifiers()) == 6


def test_spec_example_quorum_semantics() -> None:
    policy = parse_policy(spec_policy_text())
    for size in range(len(NAMES) + 1):
        for subset in itertools.combinations(NAMES, size):
            xs = sum(name.startswith("X") for name in subset)
            ys = sum(name.startswith("Y") for name in subset)
            assert policy.satisfied(subset) == (xs >= 2 and ys >= 1), subset
    # Group names and unknown names are not cosigners.
    assert not policy.satisfied(["X-witnesses", "Y-witnesses"])
    assert not policy.satisfied(["X1", "X2", "Z9"])


def test_syntax_details() -> None:
    text = (
        "# a comment\n"
        "   # an indented comment\n"
        " \t \n"
        f"\tlog  {LOG.vkey}\thttps://log.example/\t \n"
        f"witness  X1 {wkey('X1')}  https://x1.example/submit\n"
        f"witness Y1 {wkey('Y1')}\n"
        "group g any X1 Y1 # not a comment, a member name\n"
    )
    with refused("policy.undefined_name"):
        parse_policy(text + "quorum g\n")
    text = text.replace(" # not a comment, a member name", "")
    policy = parse_policy(text + "quorum g")  # last line without a newline is accepted
    assert policy.log_urls == ("https://log.example/",)
    assert policy.witnesses["X1"][1] == "https://x1.example/submit"
    assert policy.witnesses["Y1"][1] is None
    assert policy.satisfied(["Y1"])
    assert parse_policy(text.encode() + b"quorum g\n") == policy


def test_quorum_none_and_single_witness() -> None:
    assert parse_policy("quorum none\n").satisfied([])
    single = parse_policy(f"witness W {wkey('X1')}\nquorum W\n")
    assert single.satisfied(["W"])
    assert not single.satisfied([])


def test_nested_groups() -> None:
    text = (
        "".join(f"witness {n} {wkey(n)}\n" for n in NAMES)
        + "group a all X1 X2\n"
        + "group b any X3 Y1\n"
        + "group ab 2 a b\n"
        + "group c 2 Y2 Y3\n"
        + "group top any ab c\n"
        + "quorum top\n"
    )
    policy = parse_policy(text)
    assert policy.satisfied(["X1", "X2", "Y1"])
    assert policy.satisfied(["Y2", "Y3"])
    assert not policy.satisfied(["X1", "X2", "Y2"])
    assert not policy.satisfied(["X1", "X3", "Y1", "Y2"])
    assert parse_policy(format_policy(policy)) == policy


def test_k_of_n() -> None:
    witnesses = [(n, wkey(n), None) for n in ("X1", "X2", "X3")]
    policy = k_of_n_policy(LOG.vkey, witnesses, 2)
    for size in range(4):
        for subset in itertools.combinations(("X1", "X2", "X3"), size):
            assert policy.satisfied(subset) == (size >= 2)
    assert parse_policy(format_policy(policy)) == policy

    assert k_of_n_policy(LOG.vkey, witnesses, 0).satisfied([])
    assert k_of_n_policy(LOG.vkey, [], 0).quorum == "none"
    with refused("policy.bad_threshold"):
        k_of_n_policy(LOG.vkey, witnesses, 4)
    with refused("policy.bad_threshold"):
        k_of_n_policy(LOG.vkey, witnesses, -1)
    # A witness may be called like the generated group: the group name moves aside.
    clash = k_of_n_policy(LOG.vkey, [("witnesses", wkey("Y1"), "https://w/")], 1)
    assert clash.satisfied(["witnesses"])
    assert clash.quorum != "witnesses"
    with refused("policy.malformed"):
        k_of_n_policy(LOG.vkey, [("bad name", wkey("Y1"), None)], 1)


def test_format_policy_round_trip_with_urls() -> None:
    policy = parse_policy(
        f"log {LOG.vkey} https://log/\nwitness A {wkey('X1')} https://a/\n"
        f"witness B {wkey('X2')}\ngroup G all A B\nquorum G\n"
    )
    assert parse_policy(format_policy(policy)) == policy


# --- invalid policies ---------------------------------------------------------------------


def same_key_other_name(name: str, other: str) -> str:
    public = COSIGNERS[name].public_key
    return vkey(f"{other}.example", SIG_COSIGNATURE_V1, public)


W1, W2 = wkey("X1"), wkey("X2")
INVALID = [
    ("", "policy.bad_quorum"),
    (f"log {LOG.vkey}\n", "policy.bad_quorum"),
    ("quorum none\nquorum none\n", "policy.bad_quorum"),
    ("quorum W\n", "policy.undefined_name"),
    (f"quorum W\nwitness W {W1}\n", "policy.undefined_name"),
    ("quorum\n", "policy.malformed"),
    ("quorum a b\n", "policy.malformed"),
    (f"witness A {W1}\ngroup G any A B\nquorum G\n", "policy.undefined_name"),
    (f"group G any A\nwitness A {W1}\nquorum G\n", "policy.undefined_name"),
    (f"witness A {W1}\ngroup G any A none\nquorum G\n", "policy.undefined_name"),
    (f"witness A {W1}\ngroup G 0 A\nquorum G\n", "policy.bad_threshold"),
    (f"witness A {W1}\ngroup G 2 A\nquorum G\n", "policy.bad_threshold"),
    (f"witness A {W1}\nwitness B {W2}\ngroup G 02 A B\nquorum G\n", "policy.bad_threshold"),
    (f"witness A {W1}\ngroup G two A\nquorum G\n", "policy.bad_threshold"),
    (f"witness A {W1}\ngroup G -1 A\nquorum G\n", "policy.bad_threshold"),
    (f"witness A {W1}\ngroup G any\nquorum G\n", "policy.malformed"),
    (f"witness A {W1}\ngroup G\nquorum G\n", "policy.malformed"),
    (f"witness A {W1}\nwitness A {W2}\nquorum A\n", "policy.duplicate_name"),
    (f"witness A {W1}\ngroup A any A\nquorum A\n", "policy.duplicate_name"),
    (f"witness none {W1}\nquorum none\n", "policy.duplicate_name"),
    (f"witness A {W1}\ngroup none any A\nquorum none\n", "policy.duplicate_name"),
    (f"witness A {W1}\ngroup G all A A\nquorum G\n", "policy.duplicate_member"),
    (
        f"witness A {W1}\nwitness B {W2}\ngroup G any A B\ngroup H any A\ngroup T all G H\n"
        "quorum T\n",
        "policy.duplicate_member",
    ),
    (f"log {LOG.vkey}\nlog {LOG.vkey}\nquorum none\n", "policy.duplicate_key"),
    (f"witness A {W1}\nwitness B {W1}\nquorum A\n", "policy.duplicate_key"),
    (
        f"witness A {W1}\nwitness B {same_key_other_name('X1', 'b')}\nquorum A\n",
        "policy.duplicate_key",
    ),
    (f"witness A {LOG.vkey}\nquorum A\n", "policy.bad_key_type"),
    (f"log {LOG.vkey[:-2]}\nquorum none\n", "policy.malformed"),
    (f"log {LOG.vkey} https://log/ extra\nquorum none\n", "policy.malformed"),
    ("log\nquorum none\n", "policy.malformed"),
    ("witness A\nquorum none\n", "policy.malformed"),
    (f"witness A {W1} https://a/ extra\nquorum none\n", "policy.malformed"),
    ("logs x\nquorum none\n", "policy.malformed"),
    ("Quorum none\n", "policy.malformed"),
    ("quorum none\r\n", "policy.malformed"),
    ("quorum none\x00\n", "policy.malformed"),
    ("quorum none\x7f\n", "policy.malformed"),
    ("quorum\x0bnone\n", "policy.malformed"),
    (b"# caf\xe9\nquorum none\n", "policy.malformed"),
]


@pytest.mark.parametrize(("text", "code"), INVALID)
def test_invalid_policies_are_refused(text: str | bytes, code: str) -> None:
    with refused(code):
        parse_policy(text)


def test_refusals_name_the_line() -> None:
    with pytest.raises(LedgerError, match="line 3"):
        parse_policy(f"# one\nwitness A {W1}\nquorum B\n")


# --- verifying checkpoints with a policy --------------------------------------------------


def cosigned_by(names: list[str], origin: str = ORIGIN, log: Ed25519Signer = LOG) -> str:
    signed = sign_checkpoint(Checkpoint(origin, 10, bytes(32)), [log])
    note = parse_note(signed)
    return sign_note(note.text, [COSIGNERS[n] for n in names], note.signatures)


def test_policy_opens_checkpoints_meeting_the_quorum() -> None:
    policy = parse_policy(spec_policy_text())
    opened = policy.open_checkpoint(cosigned_by(["X1", "X3", "Y2"]))
    assert policy.cosigners_of(opened.witness_signatures) == {"X1", "X3", "Y2"}
    assert opened.checkpoint.size == 10
    with refused("policy.quorum_not_met"):
        policy.open_checkpoint(cosigned_by(["X1", "Y1", "Y2"]))
    with refused("policy.quorum_not_met"):
        policy.open_checkpoint(cosigned_by([]))


def test_policy_checkpoint_refusals() -> None:
    policy = parse_policy(spec_policy_text())
    stranger = Ed25519Signer.from_seed(ORIGIN, seed(99))
    # Known witnesses cosigned, but no listed log signed.
    with refused("checkpoint.no_log_signature"):
        policy.open_checkpoint(cosigned_by(["X1", "X2", "Y1"], log=stranger))
    with refused("note.unknown_key"):
        policy.open_checkpoint(cosigned_by([], log=stranger))
    # A log whose key is named unlike the origin is refused.
    with refused("checkpoint.origin_mismatch"):
        policy.open_checkpoint(cosigned_by(["X1", "X2", "Y1"], origin="other.example/log"))
    # A policy without logs relies on logs known from context.
    witnesses_only = parse_policy(f"witness X1 {wkey('X1')}\nquorum X1\n")
    data = cosigned_by(["X1"])
    with refused("checkpoint.no_log_signature"):
        witnesses_only.open_checkpoint(data)
    assert witnesses_only.open_checkpoint(data, extra_logs=[LOG.verifier()]).cosignatures


def test_cosigners_are_matched_by_key_not_by_local_name() -> None:
    # Policy names differ from key names; a witness key under another policy name still counts.
    policy = parse_policy(f"witness Alice {wkey('Y3')}\nquorum Alice\n")
    opened = policy.open_checkpoint(cosigned_by(["Y3"]), extra_logs=[LOG.verifier()])
    assert policy.cosigners_of(opened.witness_signatures) == {"Alice"}
    assert opened.cosignatures == {"y3.witness.example": 7}


# --- fuzzing ------------------------------------------------------------------------------

VALID = spec_policy_text()
TOKENS = st.sampled_from(
    [
        "log",
        "witness",
        "group",
        "quorum",
        "none",
        "all",
        "any",
        "2",
        "X1",
        "G",
        " ",
        "\t",
        "\n",
        "#",
        W1,
        LOG.vkey,
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        st.lists(TOKENS, max_size=40).map("".join),
        st.tuples(st.integers(0, len(VALID)), st.integers(0, 5), st.text(max_size=3)).map(
            lambda t: VALID[: t[0]] + t[2] + VALID[t[0] + t[1] :]
        ),
    )
)
def test_fuzz_parser_only_raises_ledger_errors(data: str | bytes) -> None:
    try:
        policy = parse_policy(data)
    except LedgerError:
        return
    assert parse_policy(format_policy(policy)) == policy


def test_witness_vkeys_are_cosignature_keys() -> None:
    # A witness vkey's key part decodes to type 0x04 || 32-byte Ed25519 key.
    raw = base64.b64decode(W1.split("+", 2)[2])
    assert raw[0] == SIG_COSIGNATURE_V1
    assert len(raw) == 33
