"""Invoice rules: status transitions, lines, totals, numbering and payment application."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.money import Money, currency
from iptv_billing.domain.periods import Period

MAX_DESCRIPTION_LENGTH = 500
_PREFIX = re.compile(r"^[A-Za-z0-9_/-]{0,16}$")


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    FINALIZED = "finalized"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class InvoiceAction(StrEnum):
    FINALIZE = "finalize"
    PAY = "pay"
    VOID = "void"
    MARK_UNCOLLECTIBLE = "mark_uncollectible"


_S, _A = InvoiceStatus, InvoiceAction
INVOICE_TRANSITIONS: Mapping[tuple[InvoiceStatus, InvoiceAction], InvoiceStatus] = MappingProxyType(
    {
        (_S.DRAFT, _A.FINALIZE): _S.FINALIZED,
        (_S.DRAFT, _A.VOID): _S.VOID,
        (_S.FINALIZED, _A.PAY): _S.PAID,
        (_S.FINALIZED, _A.VOID): _S.VOID,
        (_S.FINALIZED, _A.MARK_UNCOLLECTIBLE): _S.UNCOLLECTIBLE,
        # Written off, yet money may still arrive, or the debt may be cancelled.
        (_S.UNCOLLECTIBLE, _A.PAY): _S.PAID,
        (_S.UNCOLLECTIBLE, _A.VOID): _S.VOID,
    }
)


def next_invoice_status(status: InvoiceStatus, action: InvoiceAction) -> InvoiceStatus:
    try:
        return INVOICE_TRANSITIONS[(status, action)]
    except KeyError:
        raise Conflict(
            "invoice.illegal_transition",
            f"cannot {action} an invoice that is {status}",
            status=str(status),
            action=str(action),
        ) from None


class LineKind(StrEnum):
    SUBSCRIPTION = "subscription"
    SETUP_FEE = "setup_fee"
    ADDON = "addon"
    PRORATION_CREDIT = "proration_credit"
    PRORATION_CHARGE = "proration_charge"
    ADJUSTMENT = "adjustment"
    USAGE = "usage"  # metered usage of the period, in arrears


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """``quantity`` × ``unit_amount`` = ``amount``, exactly; credits have a negative unit."""

    kind: LineKind
    description: str
    quantity: int
    unit_amount: Money
    amount: Money
    period: Period | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, LineKind):
            raise InvalidInput("invoice.invalid_line", f"unknown line kind: {self.kind!r}")
        description = self.description
        if not isinstance(description, str) or not 0 < len(description) <= MAX_DESCRIPTION_LENGTH:
            raise InvalidInput("invoice.invalid_line", "a line needs a description (<= 500)")
        quantity = self.quantity
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise InvalidInput("invoice.invalid_line", "quantity must be a positive integer")
        unit, amount = self.unit_amount, self.amount
        if amount.currency != unit.currency or amount.minor != unit.minor * quantity:
            raise InvalidInput("invoice.invalid_line", "amount must be quantity × unit amount")


def line(
    kind: LineKind,
    description: str,
    unit_amount: Money,
    quantity: int = 1,
    period: Period | None = None,
) -> InvoiceLine:
    """An invoice line whose amount is computed, so it cannot disagree with its unit price."""
    if not isinstance(quantity, int) or isinstance(quantity, bool):
        raise InvalidInput("invoice.invalid_line", "quantity must be a positive integer")
    # Money is immutable, so a single unit can share its object (renewals build many lines).
    amount = (
        unit_amount if quantity == 1 else Money(unit_amount.minor * quantity, unit_amount.currency)
    )
    return InvoiceLine(kind, description, quantity, unit_amount, amount, period)


@dataclass(frozen=True, slots=True)
class InvoiceTotals:
    subtotal: Money
    total: Money  # = subtotal until taxes and discounts exist


def invoice_totals(lines: Iterable[InvoiceLine], currency_code: str) -> InvoiceTotals:
    """Totals of ``lines``, which must all be in ``currency_code`` (no lines: zero)."""
    cur = currency(currency_code)
    minor = 0
    for item in lines:
        if item.amount.currency != cur:
            raise InvalidInput(
                "invoice.mixed_currencies", f"a {item.amount.code} line on a {cur.code} invoice"
            )
        minor += item.amount.minor
    subtotal = Money(minor, cur)
    return InvoiceTotals(subtotal=subtotal, total=subtotal)


def check_invoice_prefix(prefix: object) -> str:
    """A series prefix as it will print on invoices: letters, digits, ``_``, ``/``, ``-``."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise InvalidInput(
            "invoice.invalid_prefix",
            "an invoice prefix is at most 16 letters, digits, '_', '/' or '-'",
        )
    return prefix


def format_invoice_number(prefix: str, number: int) -> str:
    """``("INV-", 42)`` → ``"INV-000042"``: six digits at least, more when needed."""
    check_invoice_prefix(prefix)
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise InvalidInput("invoice.invalid_number", "invoice numbers start at 1")
    return f"{prefix}{number:06d}"


@dataclass(frozen=True, slots=True)
class PaymentApplication:
    applied: Money  # what goes against the invoice
    excess: Money  # what is left over, for the customer's wallet
    settles: bool  # nothing remains due afterwards


def apply_payment(amount_due: Money, payment: Money) -> PaymentApplication:
    """Apply ``payment`` to what remains unpaid; partial payments and overpayments allowed."""
    if payment.currency != amount_due.currency:
        raise InvalidInput(
            "money.currency_mismatch", f"a {payment.code} payment on a {amount_due.code} invoice"
        )
    if payment.minor <= 0:
        raise InvalidInput("payment.invalid_amount", "a payment must be positive")
    if amount_due.is_negative():
        raise InvalidInput("payment.invalid_amount_due", "the amount due is never negative")
    applied = min(payment.minor, amount_due.minor)
    return PaymentApplication(
        applied=Money(applied, payment.currency),
        excess=Money(payment.minor - applied, payment.currency),
        settles=applied == amount_due.minor,
    )
