"""Double-entry journal: balanced entries and one builder per money flow.

Amounts are signed: positive debits, negative credits. Every entry sums to zero in each
currency, checked on construction, so an unbalanced entry cannot exist to be stored.
The wallet account is a liability, so a customer's wallet balance is minus its account sum.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.invoice import InvoiceLine, LineKind
from iptv_billing.domain.money import Currency, Money

_ACCOUNT = re.compile(r"^[a-z_]+:[A-Za-z0-9_.:-]{1,128}$")
_KIND = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")

INVOICE_FINALIZED = "invoice_finalized"
INVOICE_VOIDED = "invoice_voided"
PAYMENT_RECEIVED = "payment_received"
WALLET_TOPPED_UP = "wallet_topped_up"
INVOICE_PAID_FROM_WALLET = "invoice_paid_from_wallet"

_REVENUE_BY_LINE_KIND = {
    LineKind.SUBSCRIPTION: "subscription",
    LineKind.SETUP_FEE: "setup_fee",
    LineKind.ADDON: "addon",
    LineKind.PRORATION_CREDIT: "proration",
    LineKind.PRORATION_CHARGE: "proration",
    LineKind.ADJUSTMENT: "adjustment",
    LineKind.USAGE: "usage",
}


# -- accounts ----------------------------------------------------------------------------------
RECEIVABLE_PREFIX = "receivable:"
WALLET_PREFIX = "wallet:"
HELD_PREFIX = "wallet_held:"


def receivable(customer_id: str) -> str:
    return _account("receivable", customer_id)


def wallet(customer_id: str) -> str:
    return _account("wallet", customer_id)


def held(customer_id: str) -> str:
    """Wallet money reserved by pending holds: a liability to the customer, like the wallet."""
    return _account("wallet_held", customer_id)


def revenue(kind: str) -> str:
    return _account("revenue", kind)


def cash(method: str) -> str:
    return _account("cash", method)


def _account(prefix: str, name: str) -> str:
    account = f"{prefix}:{name}"
    if not isinstance(name, str) or not _ACCOUNT.fullmatch(account):
        raise InvalidInput("journal.invalid_account", f"not a valid account name: {account!r}")
    return account


# -- entries -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    amount: Money  # positive: debit; negative: credit

    def __post_init__(self) -> None:
        if not isinstance(self.account, str) or not _ACCOUNT.fullmatch(self.account):
            raise InvalidInput("journal.invalid_account", f"bad account: {self.account!r}")
        if not isinstance(self.amount, Money) or self.amount.is_zero():
            raise InvalidInput("journal.zero_posting", "a posting moves a non-zero Money")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    kind: str
    postings: tuple[Posting, ...]
    memo: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not _KIND.fullmatch(self.kind):
            raise InvalidInput("journal.invalid_kind", f"bad entry kind: {self.kind!r}")
        postings = tuple(self.postings)
        if not all(isinstance(p, Posting) for p in postings):
            raise InvalidInput("journal.invalid_posting", "postings must be Posting objects")
        object.__setattr__(self, "postings", postings)
        # One non-zero posting can never balance, so too few postings is the same failure.
        if len(postings) < 2:
            raise InvalidInput("journal.unbalanced", "an entry needs at least two postings")
        sums: dict[str, int] = {}
        for posting in postings:
            sums[posting.amount.code] = sums.get(posting.amount.code, 0) + posting.amount.minor
        unbalanced = sorted(code for code, minor in sums.items() if minor != 0)
        if unbalanced:
            raise InvalidInput(
                "journal.unbalanced", f"postings do not sum to zero in {', '.join(unbalanced)}"
            )


# -- builders, one per flow in docs/architecture.md --------------------------------------------
def invoice_finalized(customer_id: str, lines: Iterable[InvoiceLine]) -> JournalEntry | None:
    """Dr receivable T, Cr revenue per line kind; a negative total T credits the wallet instead.

    ``None`` when the invoice totals zero: there is nothing to record.
    """
    by_account: dict[str, int] = {}
    cur: Currency | None = None
    for item in lines:
        if cur is None:
            cur = item.amount.currency
        elif item.amount.currency != cur:
            raise InvalidInput("invoice.mixed_currencies", "an invoice has one currency")
        account = revenue(_REVENUE_BY_LINE_KIND[item.kind])
        by_account[account] = by_account.get(account, 0) + item.amount.minor
    total = sum(by_account.values())
    if cur is None or total == 0:
        return None
    counter = receivable(customer_id) if total > 0 else wallet(customer_id)
    postings = [Posting(counter, Money(total, cur))]
    postings += [Posting(a, Money(-m, cur)) for a, m in sorted(by_account.items()) if m != 0]
    return JournalEntry(INVOICE_FINALIZED, tuple(postings))


def invoice_voided(original: JournalEntry) -> JournalEntry:
    """The exact reverse of an unpaid invoice's finalization entry."""
    if original.kind != INVOICE_FINALIZED:
        raise InvalidInput("journal.not_reversible", f"cannot void a {original.kind} entry")
    reversed_postings = tuple(Posting(p.account, -p.amount) for p in original.postings)
    return JournalEntry(INVOICE_VOIDED, reversed_postings, memo="reversal of invoice_finalized")


def payment_received(customer_id: str, method: str, applied: Money, excess: Money) -> JournalEntry:
    """Dr cash P (= A + E); Cr receivable A; Cr wallet E (the overpayment)."""
    if applied.is_negative() or excess.is_negative():
        raise InvalidInput("payment.invalid_amount", "applied and excess are never negative")
    received = applied + excess
    if received.is_zero():
        raise InvalidInput("payment.invalid_amount", "a payment must be positive")
    postings = [Posting(cash(method), received)]
    if not applied.is_zero():
        postings.append(Posting(receivable(customer_id), -applied))
    if not excess.is_zero():
        postings.append(Posting(wallet(customer_id), -excess))
    return JournalEntry(PAYMENT_RECEIVED, tuple(postings))


def wallet_topped_up(customer_id: str, method: str, amount: Money) -> JournalEntry:
    """Dr cash T; Cr wallet T."""
    _require_positive(amount)
    return JournalEntry(
        WALLET_TOPPED_UP, (Posting(cash(method), amount), Posting(wallet(customer_id), -amount))
    )


def invoice_paid_from_wallet(customer_id: str, amount: Money) -> JournalEntry:
    """Dr wallet A; Cr receivable A."""
    _require_positive(amount)
    return JournalEntry(
        INVOICE_PAID_FROM_WALLET,
        (Posting(wallet(customer_id), amount), Posting(receivable(customer_id), -amount)),
    )


# -- wallet holds ------------------------------------------------------------------------------
WALLET_HOLD_PLACED = "wallet_hold_placed"
WALLET_HOLD_POSTED = "wallet_hold_posted"
WALLET_HOLD_VOIDED = "wallet_hold_voided"
WALLET_HOLD_EXPIRED = "wallet_hold_expired"


def hold_placed(customer_id: str, amount: Money) -> JournalEntry:
    """Dr wallet H; Cr held H: the money stays the customer's but can no longer be spent."""
    _require_positive(amount)
    return JournalEntry(
        WALLET_HOLD_PLACED,
        (Posting(wallet(customer_id), amount), Posting(held(customer_id), -amount)),
    )


def hold_posted(customer_id: str, held_amount: Money, posted: Money, purpose: str) -> JournalEntry:
    """Dr held H; Cr revenue P; Cr wallet H - P (what was reserved but not used goes back)."""
    return _hold_charged(customer_id, held_amount, posted, revenue(purpose))


def hold_paid_invoice(customer_id: str, held_amount: Money, paid: Money) -> JournalEntry:
    """Dr held H; Cr receivable P; Cr wallet H - P: a session hold pays the invoice of the
    usage it reserved for (the invoice recognised the revenue)."""
    return _hold_charged(customer_id, held_amount, paid, receivable(customer_id))


def _hold_charged(
    customer_id: str, held_amount: Money, charged: Money, credited: str
) -> JournalEntry:
    _require_positive(charged)
    if charged > held_amount:
        raise InvalidInput("wallet_hold.post_exceeds_hold", "a hold posts at most what it holds")
    postings = [Posting(held(customer_id), held_amount), Posting(credited, -charged)]
    if charged != held_amount:
        postings.append(Posting(wallet(customer_id), charged - held_amount))
    return JournalEntry(WALLET_HOLD_POSTED, tuple(postings))


def hold_released(customer_id: str, amount: Money, *, expired: bool) -> JournalEntry:
    """Dr held H; Cr wallet H: a void, or an expiry nobody posted before."""
    _require_positive(amount)
    kind = WALLET_HOLD_EXPIRED if expired else WALLET_HOLD_VOIDED
    return JournalEntry(
        kind, (Posting(held(customer_id), amount), Posting(wallet(customer_id), -amount))
    )


# -- pay-per-view -------------------------------------------------------------------------------
def _sale_source(customer_id: str, method: str) -> str:
    """Where a sale's money came from: the customer's wallet, or cash by method."""
    return wallet(customer_id) if method == "wallet" else cash(method)


def sold(product: str, customer_id: str, method: str, amount: Money) -> JournalEntry:
    """``{product}_purchased``: Dr wallet(customer) or cash(method) A; Cr revenue:product A."""
    _require_positive(amount)
    source = _sale_source(customer_id, method)
    postings = (Posting(source, amount), Posting(revenue(product), -amount))
    return JournalEntry(f"{product}_purchased", postings)


def sale_refunded(product: str, customer_id: str, method: str, amount: Money) -> JournalEntry:
    """``{product}_refunded``, the exact reverse of ``sold``."""
    _require_positive(amount)
    source = _sale_source(customer_id, method)
    postings = (Posting(revenue(product), amount), Posting(source, -amount))
    return JournalEntry(f"{product}_refunded", postings)


PPV, RENTAL = "ppv", "rental"  # products sold one at a time
ppv_purchased = partial(sold, PPV)
ppv_refunded = partial(sale_refunded, PPV)
rental_purchased = partial(sold, RENTAL)
rental_refunded = partial(sale_refunded, RENTAL)


def _require_positive(amount: Money) -> None:
    if amount.minor <= 0:
        raise InvalidInput("journal.invalid_amount", "the amount must be positive")


def balances(entries: Iterable[JournalEntry]) -> dict[tuple[str, str], int]:
    """(account, currency) → sum of minor units over ``entries``."""
    result: dict[tuple[str, str], int] = {}
    for entry in entries:
        for posting in entry.postings:
            key = (posting.account, posting.amount.code)
            result[key] = result.get(key, 0) + posting.amount.minor
    return result
