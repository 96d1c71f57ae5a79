"""The offline receipt check: every part verified on its own, every failure named, and no
input (however malformed) makes it raise."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iptv_billing.ledger import merkle
from iptv_billing.ledger.checkpoint import Checkpoint, sign_checkpoint
from iptv_billing.ledger.entries import commitment, encode_record
from iptv_billing.ledger.note import CosignatureV1Signer, Ed25519Signer, parse_note, sign_note
from iptv_billing.ledger.proof_file import TlogProof, format_tlog_proof
from iptv_billing.ledger.receipt import RECEIPT_FORMAT, b64, verify_receipt

ORIGIN = "billing.test/log/ten_1"
LOG = Ed25519Signer.from_seed(ORIGIN, bytes(range(32)))
WITNESS = CosignatureV1Signer.from_seed("witness.test/w1", bytes(32), clock=lambda: 1_700_000_000)
INVOICE = "inv_1"


def _records() -> list[dict[str, object]]:
    finalization = {
        "type": "journal_entry",
        "kind": "invoice_finalized",
        "reference": INVOICE,
        "postings": [
            {"account": "receivable:cus_1", "currency": "EUR", "minor": 1999},
            {"account": "revenue:subscriptions", "currency": "EUR", "minor": -1999},
        ],
    }
    other = {"type": "subscription_state", "subscription": "sub_1"}
    return [{**other, "index": i} for i in range(5)] + [{**finalization, "index": 5}]


def _receipt(anchor: bool = True, amount: object = 1999) -> dict[str, Any]:
    records = _records()
    records[5]["postings"][0]["minor"] = amount  # type: ignore[index]
    salts = [bytes([i]) * 32 for i in range(len(records))]
    leaves = [
        merkle.leaf_hash(commitment(s, encode_record(r)))
        for s, r in zip(salts, records, strict=True)
    ]
    tree = merkle.MemoryTree(leaves)
    body = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), [LOG])
    note = parse_note(body)
    cosigned = sign_note(note.text, [WITNESS], note.signatures)
    proof = TlogProof(5, tuple(tree.inclusion_proof(5, tree.size)), cosigned)
    return {
        "format": RECEIPT_FORMAT,
        "origin": ORIGIN,
        "invoice": {"id": INVOICE, "currency": "EUR", "total_minor": 1999},
        "checkpoint": cosigned,
        "entries": [
            {
                "index": 5,
                "salt": b64(salts[5]),
                "record": records[5],
                "tlog_proof": format_tlog_proof(proof),
            }
        ],
        "anchor": {
            "size": tree.size,
            "root": b64(tree.root()),
            "tx_hash": "0x01",
            "chain_id": 1,
        }
        if anchor
        else None,
    }


def _check(receipt: dict[str, Any], **kwargs: Any) -> dict[str, bool]:
    report = verify_receipt(json.dumps(receipt), [LOG.vkey], **kwargs)
    return {c.name: c.ok for c in report.checks}


def test_a_good_receipt_verifies_with_its_witness_and_chain() -> None:
    receipt = _receipt()
    anchored = base64.b64decode(receipt["anchor"]["root"])
    report = verify_receipt(
        json.dumps(receipt),
        [LOG.vkey],
        [WITNESS.vkey],
        chain=lambda origin, size: anchored if (origin, size) == (ORIGIN, 6) else None,
    )
    assert report.ok, report.failures()
    assert {c.name for c in report.checks} >= {
        "checkpoint.signature",
        "checkpoint.cosignatures",
        "entry[0].inclusion",
        "invoice.charge",
        "anchor.on_chain",
    }


def _mutations() -> list[tuple[str, Any, str]]:
    def amount(r: dict[str, Any]) -> None:
        r["entries"][0]["record"]["postings"][0]["minor"] += 1
        r["entries"][0]["record"]["postings"][1]["minor"] -= 1

    def salt(r: dict[str, Any]) -> None:
        r["entries"][0]["salt"] = b64(bytes(32))

    def index(r: dict[str, Any]) -> None:
        r["entries"][0]["index"] = 4

    def total(r: dict[str, Any]) -> None:
        r["invoice"]["total_minor"] = 2999

    def other_invoice(r: dict[str, Any]) -> None:
        r["invoice"]["id"] = "inv_2"

    def checkpoint_text(r: dict[str, Any]) -> None:
        r["checkpoint"] = r["checkpoint"].replace("\n6\n", "\n7\n")

    def anchor_root(r: dict[str, Any]) -> None:
        r["anchor"]["root"] = b64(bytes(32))

    def no_anchor(r: dict[str, Any]) -> None:
        r["anchor"] = None

    return [
        ("amount", amount, "entry[0].inclusion"),
        ("salt", salt, "entry[0].inclusion"),
        ("index", index, "entry[0].inclusion"),
        ("total", total, "invoice.charge"),
        ("other-invoice", other_invoice, "invoice.charge"),
        ("checkpoint", checkpoint_text, "checkpoint.signature"),
        ("anchor-root", anchor_root, "anchor"),
        ("no-anchor", no_anchor, "anchor"),
    ]


@pytest.mark.parametrize(("name", "mutate", "failing"), _mutations(), ids=lambda v: str(v))
def test_each_change_fails_its_own_check(name: str, mutate: Any, failing: str) -> None:
    receipt = copy.deepcopy(_receipt())
    mutate(receipt)
    checks = _check(receipt)
    assert checks.get(failing) is False, (name, checks)


def test_a_missing_witness_fails_the_quorum() -> None:
    receipt = _receipt()
    other = CosignatureV1Signer.from_seed("witness.test/w2", bytes([9]) * 32, clock=lambda: 1)
    checks = _check(receipt, witness_keys=[WITNESS.vkey, other.vkey])
    assert checks["checkpoint.cosignatures"] is False
    assert _check(receipt, witness_keys=[WITNESS.vkey, other.vkey], quorum=1)[
        "checkpoint.cosignatures"
    ]


@pytest.mark.parametrize("amount", [None, "1999", True, {"x": 1}, [1999]])
def test_a_signed_record_with_a_non_integer_amount_fails_the_charge(amount: object) -> None:
    """Even a record the log signed cannot make the check raise or count a non-integer."""
    checks = _check(_receipt(amount=amount))
    assert checks["entry[0].inclusion"] is True
    assert checks["invoice.charge"] is False


def test_a_stranger_key_verifies_nothing() -> None:
    stranger = Ed25519Signer.from_seed(ORIGIN, bytes([7]) * 32)
    report = verify_receipt(json.dumps(_receipt()), [stranger.vkey])
    assert not report.ok
    assert "checkpoint.signature" in {c.name for c in report.failures()}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=300), json_values.map(json.dumps)))
def test_garbage_is_refused_never_raised(data: bytes | str) -> None:
    assert not verify_receipt(data, [LOG.vkey]).ok


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_receipt_with_any_field_replaced_is_refused_never_raised(data: st.DataObject) -> None:
    receipt = _receipt()
    paths = [("origin",), ("invoice",), ("checkpoint",), ("entries",), ("anchor",)]
    paths += [("entries", 0, k) for k in ("index", "salt", "record", "tlog_proof")]
    path = data.draw(st.sampled_from(paths))
    target: Any = receipt
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(json_values)
    report = verify_receipt(json.dumps(receipt), [LOG.vkey])
    assert not report.ok or (path == ("origin",) and target[path[-1]] == ORIGIN)
