"""Two-phase charging on prepaid wallets: place a hold when a metered session or a purchase
starts, post what was used, void the rest; holds nobody resolved expire and release once.

Every step is one transaction: the guarded wallet change, the hold's status and a balanced
journal entry (with its log entry) land together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from iptv_billing.domain import journal
from iptv_billing.domain.errors import Conflict, InsufficientFunds, InvalidInput, NotFound
from iptv_billing.domain.money import Money
from iptv_billing.domain.wallet_holds import (
    HoldStatus,
    amount_to_post,
    check_purpose,
    check_resolvable,
    hold_expiry,
)
from iptv_billing.services import invoicing
from iptv_billing.services.context import Context
from iptv_billing.services.customers import get_customer
from iptv_billing.services.log_records import post_journal
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import InvoiceRecord, Page, WalletHoldRecord

EXPIRY_BATCH = 500


@dataclass(frozen=True, slots=True)
class PlaceHold:
    customer_id: str
    amount: Money
    purpose: str
    ttl_seconds: int | None = None
    reference: str | None = None
    description: str = ""
    # A session hold: the subscription and the start of the metered period it reserves for.
    subscription_id: str | None = None
    period_start: datetime | None = None


def place_hold(uow: UnitOfWork, ctx: Context, cmd: PlaceHold) -> WalletHoldRecord:
    """Reserve ``amount``; refused (402, nothing changed) when the available balance is short."""
    get_customer(uow, ctx, cmd.customer_id)
    check_purpose(cmd.purpose)
    if cmd.amount.minor <= 0:
        raise InvalidInput("wallet_hold.invalid_amount", "a hold reserves a positive amount")
    now = ctx.now()
    wallet = invoicing.ensure_wallet(uow, ctx, cmd.customer_id, cmd.amount.code)
    hold = WalletHoldRecord(
        id=ctx.ids.new("hold"),
        tenant_id=ctx.tenant_id,
        wallet_id=wallet.id,
        customer_id=cmd.customer_id,
        currency=cmd.amount.code,
        amount_minor=cmd.amount.minor,
        posted_minor=0,
        status=HoldStatus.PENDING,
        purpose=cmd.purpose,
        reference=cmd.reference,
        description=cmd.description[:500],
        created_at=now,
        expires_at=hold_expiry(now, cmd.ttl_seconds),
        subscription_id=cmd.subscription_id,
        period_start=cmd.period_start,
    )
    if not uow.holds.reserve(hold):
        raise InsufficientFunds(
            "wallet.insufficient_funds",
            f"the wallet's available balance does not cover {cmd.amount}",
            requested=str(cmd.amount),
        )
    entry = journal.hold_placed(cmd.customer_id, cmd.amount)
    post_journal(uow, ctx, [(ctx.ids.new("je"), entry, hold.id)])
    return hold


def post_hold(
    uow: UnitOfWork, ctx: Context, hold_id: str, amount: Money | None = None
) -> WalletHoldRecord:
    """Charge all of the hold, or ``amount`` of it, and release the rest."""
    hold = get_hold(uow, ctx, hold_id)
    now = ctx.now()
    check_resolvable(hold.status, hold.expires_at, now)
    if hold.subscription_id is not None:
        raise Conflict(
            "wallet_hold.session_hold",
            "a session's hold is charged by the usage invoice of what it played; void it to "
            "release it",
        )
    held = Money.from_minor(hold.amount_minor, hold.currency)
    posted = amount_to_post(held, amount)
    entry = journal.hold_posted(hold.customer_id, held, posted, hold.purpose)
    return _resolve(uow, ctx, hold, HoldStatus.POSTED, posted.minor, entry)


def pay_invoice_from_hold(
    uow: UnitOfWork, ctx: Context, hold: WalletHoldRecord, invoice: InvoiceRecord
) -> InvoiceRecord:
    """Pay what the hold covers of ``invoice`` (finalized, the hold's customer's and currency)
    and release the rest of the hold, in this transaction; the invoice as it stands after."""
    check_resolvable(hold.status, hold.expires_at, ctx.now())
    if (invoice.customer_id, invoice.currency) != (hold.customer_id, hold.currency):
        raise InvalidInput("wallet_hold.wrong_invoice", "a hold pays its customer's invoices")
    paid = Money.from_minor(min(hold.amount_minor, invoice.amount_due_minor), hold.currency)
    if paid.minor <= 0:
        void_hold(uow, ctx, hold.id)
        return invoice
    entry = journal.hold_paid_invoice(hold.customer_id, _held(hold), paid)
    _resolve(uow, ctx, hold, HoldStatus.POSTED, paid.minor, entry, invoice.id)
    payment = invoicing.new_payment(ctx, hold.customer_id, invoice.id, "wallet", paid, "succeeded")
    uow.payments.add(replace(payment, applied_minor=paid.minor, reference=hold.id))
    return invoicing.apply_to_invoice(uow, ctx, invoice, paid.minor)


def void_hold(uow: UnitOfWork, ctx: Context, hold_id: str) -> WalletHoldRecord:
    """Release the whole hold: nothing is charged."""
    hold = get_hold(uow, ctx, hold_id)
    check_resolvable(hold.status, hold.expires_at, ctx.now())
    entry = journal.hold_released(hold.customer_id, _held(hold), expired=False)
    return _resolve(uow, ctx, hold, HoldStatus.VOIDED, 0, entry)


def expire_lapsed(uow: UnitOfWork, ctx: Context, limit: int = EXPIRY_BATCH) -> int:
    """Release holds whose time ran out; a hold another worker ended meanwhile is skipped."""
    expired = 0
    for hold in uow.holds.lapsed(ctx.tenant_id, ctx.now(), limit):
        entry = journal.hold_released(hold.customer_id, _held(hold), expired=True)
        if _try_resolve(uow, ctx, hold, HoldStatus.EXPIRED, 0, entry):
            expired += 1
    return expired


def get_hold(uow: UnitOfWork, ctx: Context, hold_id: str) -> WalletHoldRecord:
    hold = uow.holds.get(ctx.tenant_id, hold_id)
    if hold is None:
        raise NotFound("wallet_hold.not_found", f"no hold {hold_id}")
    return hold


def holds_of(
    uow: UnitOfWork,
    ctx: Context,
    customer_id: str,
    limit: int,
    after: str | None,
    status: HoldStatus | None = None,
) -> Page[WalletHoldRecord]:
    get_customer(uow, ctx, customer_id)
    return uow.holds.list(ctx.tenant_id, customer_id, limit, after, status)


def _held(hold: WalletHoldRecord) -> Money:
    return Money.from_minor(hold.amount_minor, hold.currency)


def _resolve(
    uow: UnitOfWork,
    ctx: Context,
    hold: WalletHoldRecord,
    status: HoldStatus,
    posted_minor: int,
    entry: journal.JournalEntry,
    reference: str | None = None,
) -> WalletHoldRecord:
    if not _try_resolve(uow, ctx, hold, status, posted_minor, entry, reference):
        raise Conflict("wallet_hold.not_pending", "the hold was resolved concurrently")
    return get_hold(uow, ctx, hold.id)


def _try_resolve(
    uow: UnitOfWork,
    ctx: Context,
    hold: WalletHoldRecord,
    status: HoldStatus,
    posted_minor: int,
    entry: journal.JournalEntry,
    reference: str | None = None,
) -> bool:
    if not uow.holds.resolve(hold, status, posted_minor, ctx.now()):
        return False
    post_journal(uow, ctx, [(ctx.ids.new("je"), entry, reference or hold.id)])
    return True
