"""Do the books agree with themselves? The checks an operator (or an auditor) runs on demand,
set-based so that they stay cheap for a tenant with millions of rows:

- every journal entry balances per currency;
- each wallet's kept balance equals its journal account (credit-normal);
- each customer's receivable account equals what their finalized invoices still owe;
- each invoice series is numbered 1..n without gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

from iptv_billing.domain import journal
from iptv_billing.services.context import get_tenant
from iptv_billing.services.ports import UnitOfWork


@dataclass(frozen=True, slots=True)
class Discrepancy:
    check: str  # unbalanced_entry, wallet/held/hold_mismatch, receivable_mismatch, numbering_gap
    subject: str  # the entry, customer or series concerned
    currency: str | None
    expected: int
    found: int


@dataclass(frozen=True, slots=True)
class BooksReport:
    tenant_id: str
    discrepancies: tuple[Discrepancy, ...]

    @property
    def consistent(self) -> bool:
        return not self.discrepancies


def check_books(uow: UnitOfWork, tenant_id: str) -> BooksReport:
    get_tenant(uow, tenant_id)  # an unknown tenant is an error, not a clean bill of health
    found = [
        *_unbalanced(uow, tenant_id),
        *_wallets(uow, tenant_id),
        *_receivables(uow, tenant_id),
        *_numbering(uow, tenant_id),
    ]
    return BooksReport(tenant_id, tuple(found))


def _unbalanced(uow: UnitOfWork, tenant_id: str) -> list[Discrepancy]:
    return [
        Discrepancy("unbalanced_entry", entry, currency, 0, total)
        for entry, currency, total in uow.journal.imbalances(tenant_id)
    ]


def _customer_of(account: str) -> str:
    return account.split(":", 1)[1]


def _compare(
    check: str, expected: dict[tuple[str, str], int], found: dict[tuple[str, str], int]
) -> list[Discrepancy]:
    return [
        Discrepancy(check, customer, currency, expected.get(key, 0), found.get(key, 0))
        for key in sorted(set(expected) | set(found))
        for customer, currency in [key]
        if expected.get(key, 0) != found.get(key, 0)
    ]


def _wallets(uow: UnitOfWork, tenant_id: str) -> list[Discrepancy]:
    """The wallet account holds what is spendable and the held account what holds reserve;
    the kept balance is their sum, its pending part the sum of the pending holds."""
    kept = uow.wallets.balances(tenant_id)
    available = {key: balance - pending for key, (balance, pending) in kept.items()}
    pending = {key: p for key, (_, p) in kept.items() if p}
    return [
        *_compare(
            "wallet_mismatch", _credit_normal(uow, tenant_id, journal.WALLET_PREFIX), available
        ),
        *_compare("held_mismatch", _credit_normal(uow, tenant_id, journal.HELD_PREFIX), pending),
        *_compare("hold_mismatch", uow.holds.pending_by_customer(tenant_id), pending),
    ]


def _credit_normal(uow: UnitOfWork, tenant_id: str, prefix: str) -> dict[tuple[str, str], int]:
    posted = uow.journal.balances_by_account(tenant_id, prefix)
    return {(_customer_of(a), c): -total for (a, c), total in posted.items() if total}


def _receivables(uow: UnitOfWork, tenant_id: str) -> list[Discrepancy]:
    posted = uow.journal.balances_by_account(tenant_id, journal.RECEIVABLE_PREFIX)
    from_journal = {(_customer_of(a), c): total for (a, c), total in posted.items()}
    return _compare("receivable_mismatch", uow.invoices.owed_by_customer(tenant_id), from_journal)


def _numbering(uow: UnitOfWork, tenant_id: str) -> list[Discrepancy]:
    return [
        Discrepancy("numbering_gap", series, None, top, count)
        for series, count, top in uow.invoices.numbering(tenant_id)
        if count != top
    ]
