"""An invoice's receipt: its log records, salts, proofs, the checkpoint and its anchor.

The checkpoint chosen is the newest anchored one that covers every record of the invoice, so
the receipt is as strong as it can be; failing that, the newest checkpoint (the receipt then
says it is not anchored yet, and a later download will be).
"""

from __future__ import annotations

import json
from typing import Any

from iptv_billing.domain.errors import Conflict, NotFound
from iptv_billing.domain.invoice import format_invoice_number
from iptv_billing.ledger.proof_file import format_tlog_proof
from iptv_billing.ledger.receipt import RECEIPT_FORMAT, b64
from iptv_billing.services import transparency
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import AnchorRecord, CheckpointRecord, InvoiceRecord

MAX_PAYMENTS = 100


def invoice_receipt(
    uow: UnitOfWork, tenant_id: str, invoice_id: str, origin: str, log_vkeys: list[str]
) -> dict[str, Any]:
    invoice = uow.invoices.get(tenant_id, invoice_id)
    if invoice is None:
        raise NotFound("invoice.not_found", f"no invoice {invoice_id}")
    payments = uow.payments.list(tenant_id, MAX_PAYMENTS, None, invoice_id=invoice_id).items
    entries = uow.log.entries_about(tenant_id, [invoice_id, *(p.id for p in payments)])
    if not entries:
        raise Conflict("receipt.not_logged", f"invoice {invoice_id} has no log entries")
    needed = max(e.idx for e in entries) + 1
    checkpoint, anchor = _checkpoint_for(uow, tenant_id, needed)
    return {
        "format": RECEIPT_FORMAT,
        "origin": origin,
        "log_keys": log_vkeys,
        "invoice": _invoice(invoice),
        "checkpoint": transparency.cosigned_note(uow, checkpoint),
        "entries": [
            {
                "index": e.idx,
                "salt": b64(e.salt),
                "record": json.loads(e.record),
                "tlog_proof": format_tlog_proof(transparency.prove_entry(uow, checkpoint, e.idx)),
            }
            for e in entries
        ],
        "anchor": None if anchor is None else _anchor(anchor),
    }


def _checkpoint_for(
    uow: UnitOfWork, tenant_id: str, needed: int
) -> tuple[CheckpointRecord, AnchorRecord | None]:
    anchor = uow.log.latest_anchor(tenant_id)
    if anchor is not None and anchor.size >= needed:
        checkpoint = uow.log.checkpoint(tenant_id, anchor.size)
        if checkpoint is not None:
            return checkpoint, anchor
    latest = uow.log.latest_checkpoint(tenant_id)
    if latest is None or latest.size < needed:
        raise Conflict(
            "receipt.not_checkpointed",
            "the invoice's records are not in a signed checkpoint yet; "
            "retry after the next checkpoint",
        )
    return latest, uow.log.anchor_at(tenant_id, latest.size)


def _invoice(invoice: InvoiceRecord) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": None
        if invoice.number is None
        else format_invoice_number(invoice.series, invoice.number),
        "customer": invoice.customer_id,
        "currency": invoice.currency,
        "total_minor": invoice.total_minor,
        "status": invoice.status,
    }


def _anchor(anchor: AnchorRecord) -> dict[str, Any]:
    return {
        "chain_id": anchor.chain_id,
        "contract": anchor.contract,
        "tx_hash": anchor.tx_hash,
        "block_number": anchor.block_number,
        "size": anchor.size,
        "root": b64(anchor.root),
        "anchored_at": anchor.anchored_at.isoformat(),
    }
