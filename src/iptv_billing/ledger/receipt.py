"""Invoice receipts: everything a customer needs to check a charge offline, and the check.

A receipt (JSON) carries the invoice's log records with their salts, one c2sp.org/tlog-proof
per record (inclusion proof + the signed, cosigned checkpoint), and the chain anchor of that
checkpoint. ``verify_receipt`` trusts nothing in it but what the given keys vouch for, reports
each check separately with its reason, and never raises on malformed input.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from iptv_billing.domain.journal import INVOICE_FINALIZED, RECEIVABLE_PREFIX
from iptv_billing.ledger import merkle
from iptv_billing.ledger.checkpoint import SignedCheckpoint, open_checkpoint
from iptv_billing.ledger.entries import SALT_SIZE, check_record, commitment, encode_record
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import NoteVerifier, parse_vkey
from iptv_billing.ledger.proof_file import parse_tlog_proof

RECEIPT_FORMAT = "iptv-billing.receipt/v1"
MAX_ENTRIES = 10_000

# Looks a chain anchor up: (origin, size) → the root stored on chain, or None.
ChainLookup = Callable[[str, int], bytes | None]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class ReceiptReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise LedgerError("receipt.malformed", f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LedgerError("receipt.malformed", f"{what} is not valid base64") from exc


def _field(obj: object, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(obj, dict) or key not in obj or not isinstance(obj[key], kind):
        raise LedgerError("receipt.malformed", f"{what}.{key} is missing or of the wrong type")
    if isinstance(obj[key], bool) and kind is int:
        raise LedgerError("receipt.malformed", f"{what}.{key} must be an integer")
    return obj[key]


def _verifiers(vkeys: Sequence[str], report: ReceiptReport, role: str) -> list[NoteVerifier]:
    verifiers: list[NoteVerifier] = []
    for text in vkeys:
        try:
            verifiers.append(parse_vkey(text))
        except LedgerError as exc:
            report.add(f"{role}_key", False, f"{text!r}: {exc.message}")
    return verifiers


def verify_receipt(
    data: str | bytes,
    log_keys: Sequence[str],
    witness_keys: Sequence[str] = (),
    quorum: int | None = None,
    chain: ChainLookup | None = None,
) -> ReceiptReport:
    """Check a receipt against the log's public keys (vkeys), and optionally witness keys
    (``quorum`` of them must have cosigned; default all) and a chain lookup."""
    report = ReceiptReport()
    try:
        receipt = json.loads(data)
        if not isinstance(receipt, dict) or receipt.get("format") != RECEIPT_FORMAT:
            raise LedgerError("receipt.malformed", f"not an {RECEIPT_FORMAT} document")
        _verify(receipt, log_keys, witness_keys, quorum, chain, report)
    except (ValueError, RecursionError) as exc:  # LedgerError and JSON errors are ValueErrors
        code = exc.code if isinstance(exc, LedgerError) else "receipt.malformed"
        message = exc.message if isinstance(exc, LedgerError) else f"not JSON: {exc}"
        report.add("receipt", False, f"{code}: {message}")
    return report


def _verify(
    receipt: dict[str, Any],
    log_keys: Sequence[str],
    witness_keys: Sequence[str],
    quorum: int | None,
    chain: ChainLookup | None,
    report: ReceiptReport,
) -> None:
    origin = _field(receipt, "origin", str, "receipt")
    signed = _checkpoint(receipt, origin, log_keys, witness_keys, quorum, report)
    invoice = _field(receipt, "invoice", dict, "receipt")
    entries = _field(receipt, "entries", list, "receipt")
    if not entries or len(entries) > MAX_ENTRIES:
        raise LedgerError("receipt.malformed", f"a receipt holds 1 to {MAX_ENTRIES} entries")
    note = receipt["checkpoint"]
    records = [_entry(i, e, signed, note, report) for i, e in enumerate(entries)]
    _invoice(invoice, records, report)
    _anchor(receipt.get("anchor"), origin, signed, chain, report)


def _checkpoint(
    receipt: dict[str, Any],
    origin: str,
    log_keys: Sequence[str],
    witness_keys: Sequence[str],
    quorum: int | None,
    report: ReceiptReport,
) -> SignedCheckpoint | None:
    note = _field(receipt, "checkpoint", str, "receipt")
    logs = _verifiers(log_keys, report, "log")
    witnesses = _verifiers(witness_keys, report, "witness")
    try:
        signed = open_checkpoint(note, logs, witnesses)
    except LedgerError as exc:
        report.add("checkpoint.signature", False, f"{exc.code}: {exc.message}")
        return None
    if signed.checkpoint.origin != origin:
        report.add("checkpoint.origin", False, f"signed for {signed.checkpoint.origin!r}")
        return None
    report.add(
        "checkpoint.signature",
        True,
        f"{origin} size {signed.checkpoint.size} signed by the log key",
    )
    need = len(witnesses) if quorum is None else quorum
    if need:
        got = sorted(signed.cosignatures)
        report.add(
            "checkpoint.cosignatures",
            len(got) >= need,
            f"{len(got)} of {len(witnesses)} witnesses cosigned ({', '.join(got) or 'none'}); "
            f"{need} required",
        )
    return signed


def _entry(
    position: int,
    entry: object,
    signed: SignedCheckpoint | None,
    note: str,
    report: ReceiptReport,
) -> dict[str, Any] | None:
    name = f"entry[{position}]"
    try:
        index = _field(entry, "index", int, name)
        salt = _unb64(_field(entry, "salt", str, name), f"{name}.salt")
        record: dict[str, Any] = _field(entry, "record", dict, name)
        check_record(record)
        if len(salt) != SALT_SIZE:
            raise LedgerError("receipt.malformed", f"{name}.salt is not {SALT_SIZE} bytes")
        proof = parse_tlog_proof(_field(entry, "tlog_proof", str, name))
    except LedgerError as exc:
        report.add(name, False, f"{exc.code}: {exc.message}")
        return None
    leaf = merkle.leaf_hash(commitment(salt, encode_record(record)))
    if signed is None:
        report.add(f"{name}.inclusion", False, "no trusted checkpoint to check it against")
        return None
    if proof.index != index:
        report.add(f"{name}.inclusion", False, f"the proof is for entry {proof.index}")
        return None
    if proof.checkpoint != note:
        report.add(f"{name}.inclusion", False, "the proof is against another checkpoint")
        return None
    cp = signed.checkpoint
    try:
        merkle.verify_inclusion(leaf, index, cp.size, proof.proof, cp.root)
    except LedgerError as exc:
        report.add(f"{name}.inclusion", False, f"entry {index}: {exc.code}: {exc.message}")
        return None
    kind = record.get("type", "record")
    report.add(f"{name}.inclusion", True, f"{kind} at index {index} is in the signed log")
    return record


def _invoice(
    invoice: dict[str, Any], records: list[dict[str, Any] | None], report: ReceiptReport
) -> None:
    """The proven records must be the invoice's: its finalization charges its total."""
    invoice_id = _field(invoice, "id", str, "invoice")
    total = _field(invoice, "total_minor", int, "invoice")
    currency = _field(invoice, "currency", str, "invoice")
    charged = 0
    found = False
    for record in records:
        if record is None or record.get("type") != "journal_entry":
            continue
        if record.get("reference") != invoice_id or record.get("kind") != INVOICE_FINALIZED:
            continue
        found = True
        postings = record.get("postings")
        for posting in postings if isinstance(postings, list) else []:
            if not isinstance(posting, dict):
                continue
            account, amount = posting.get("account"), posting.get("minor")
            if not (isinstance(account, str) and account.startswith(RECEIVABLE_PREFIX)):
                continue
            if posting.get("currency") != currency:
                continue
            if type(amount) is not int:  # bool is an int subclass; neither counts as money
                report.add("invoice.charge", False, "a posting's amount is not an integer")
                return
            charged += amount
    if not found:
        report.add("invoice.charge", False, f"no proven finalization of invoice {invoice_id}")
        return
    report.add(
        "invoice.charge",
        charged == total,
        f"the log charges {charged} {currency} (minor units) for {invoice_id}; "
        f"the invoice says {total}",
    )


def _anchor(
    anchor: object,
    origin: str,
    signed: SignedCheckpoint | None,
    chain: ChainLookup | None,
    report: ReceiptReport,
) -> None:
    if anchor is None:
        report.add("anchor", False, "the checkpoint is not anchored on a chain yet")
        return
    try:
        size = _field(anchor, "size", int, "anchor")
        root = _unb64(_field(anchor, "root", str, "anchor"), "anchor.root")
        tx_hash = _field(anchor, "tx_hash", str, "anchor")
        chain_id = _field(anchor, "chain_id", int, "anchor")
    except LedgerError as exc:
        report.add("anchor", False, f"{exc.code}: {exc.message}")
        return
    if signed is None or (size, root) != (signed.checkpoint.size, signed.checkpoint.root):
        report.add("anchor", False, "the anchor names another tree than the checkpoint")
        return
    where = f"chain {chain_id}, transaction {tx_hash}"
    if chain is None:
        report.add("anchor", True, f"names this checkpoint ({where}); chain not consulted")
        return
    try:
        on_chain = chain(origin, size)
    except Exception as exc:  # any chain failure is a failed check, never a crash
        report.add("anchor.on_chain", False, f"the chain could not be read: {exc}")
        return
    report.add(
        "anchor.on_chain",
        on_chain == root,
        f"{where}: "
        + ("holds this root" if on_chain == root else "does not hold this root for that size"),
    )
