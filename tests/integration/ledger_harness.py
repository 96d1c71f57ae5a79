"""An operator with a transparency log: billing activity, a key store and a publisher."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from operator_harness import Operator

from iptv_billing.adapters.keys import KeyStore
from iptv_billing.ledger.note import NoteVerifier, parse_vkey
from iptv_billing.services import receipts
from iptv_billing.services.publishing import LedgerPublisher
from iptv_billing.services.records import InvoiceRecord

ORIGIN_PREFIX = "billing.test/log"


class LoggedOperator(Operator):
    def __init__(self, url: str, key_dir: Path) -> None:
        super().__init__(url)
        self.publisher = LedgerPublisher(
            uow_factory=self.database.uow,
            keys=KeyStore(key_dir),
            origin_prefix=ORIGIN_PREFIX,
            now=self.system.now,
        )

    def activity(self, subscribers: int = 3, months: int = 2) -> None:
        """Sign-ups, wallet top-ups, renewals, payments: every kind of log entry."""
        self.plan("basic", "9.99")
        self.plan("plus", "19.99")
        for n in range(subscribers):
            method = "charge_wallet" if n % 2 else "send_invoice"
            customer = self.customer(method=method, top_up="100.00" if n % 2 else None)
            self.subscribe(customer.id, "basic" if n % 3 else "plus")
        for _ in range(months):
            self.advance(31)
            self.bill()

    def log_keys(self) -> list[NoteVerifier]:
        return [parse_vkey(v) for v in self.publisher.public_vkeys(self.tenant_id)]

    def vkeys(self) -> list[str]:
        return self.publisher.public_vkeys(self.tenant_id)

    def invoices(self) -> list[InvoiceRecord]:
        page = self.read(lambda u, c: u.invoices.list(c.tenant_id, 100, None, status=None))
        return [i for i in page.items if i.status != "draft"]

    def receipt(self, invoice_id: str) -> dict[str, Any]:
        origin = self.publisher.origin(self.tenant_id)
        vkeys = self.vkeys()
        return self.read(
            lambda u, c: receipts.invoice_receipt(u, c.tenant_id, invoice_id, origin, vkeys)
        )

    def receipt_text(self, invoice_id: str) -> str:
        return json.dumps(self.receipt(invoice_id))


def entries(op: Operator) -> Iterator[Any]:
    with op.database.uow(read_only=True) as uow:
        yield from uow.log.iter_entries(op.tenant_id)
