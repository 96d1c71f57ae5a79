"""Real-time charging of metered viewing from a prepaid wallet, as an online charging system
does: reserve before the session plays, charge what was used, reserve again while it lasts.

A session of a ``charge_wallet`` customer whose plan charges ``viewing_seconds`` reserves the
price of the next ``RESERVE_SECONDS`` of viewing (at the tier they fall in, after allowances
and the cap) before it may play. When the balance cannot cover that, it reserves one minute;
when it cannot cover a minute, the session is refused.

Settling a hold invoices the subscription's usage not billed yet for the hold's period, pays
that invoice from the hold and releases the rest. Whatever the hold did not cover is paid
from the wallet if it can be, and is otherwise left to dunning. The charge being an ordinary
invoice means that:
- every later invoice of the period nets it (``usage_invoiced``), so nothing is billed twice;
- numbering, proofs and the journal are those of any invoice.

A hold nobody settles (its process crashed) lapses and releases its money once. The usage it
reserved for is then billed by the period's own invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.errors import InsufficientFunds, InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import Period
from iptv_billing.domain.rating import Aggregation
from iptv_billing.domain.usage_rating import marginal_charge
from iptv_billing.domain.wallet_holds import HoldStatus
from iptv_billing.services import catalog, invoicing, usage_billing, usage_invoices, wallet_holds
from iptv_billing.services.context import Context
from iptv_billing.services.lookup import get_subscription
from iptv_billing.services.metrics import VIEWING_SECONDS
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import InvoiceRecord, SubscriptionRecord, WalletHoldRecord

RESERVE_SECONDS = 900
MINUTE = 60
SETTLE_MARGIN = timedelta(minutes=10)  # a hold outlives its reservation by this much
SESSION_REASON = "usage_session"
PURPOSE = "usage"


@dataclass(frozen=True, slots=True)
class Reservation:
    metered: bool  # False: the subscription is not charged per session, nothing is held
    hold_id: str | None  # None when nothing needed holding (an allowance, a trial, the cap)
    seconds: int  # the viewing it covers


NOT_METERED = Reservation(False, None, 0)


def reserve(
    uow: UnitOfWork,
    ctx: Context,
    subscription_id: str,
    seconds: int = RESERVE_SECONDS,
    reference: str | None = None,
) -> Reservation:
    """Hold the price of ``seconds`` of viewing (or of a minute, when that is all the wallet
    covers); refused with 402 ``wallet.insufficient_funds`` when it covers not even that."""
    if not MINUTE <= seconds <= 86_400:
        raise InvalidInput("usage.invalid_reservation", "reserve one minute to one day")
    sub = get_subscription(uow, ctx, subscription_id)
    terms = catalog.load_terms(catalog.get_terms(uow, ctx, sub.terms_id))
    aggregation = _viewing_aggregation(terms)
    if aggregation is None or not _prepaid(uow, ctx, sub):
        return NOT_METERED
    period = sub.state.current_period
    if usage_billing.was_trial(sub.state, period):
        return Reservation(True, None, seconds)
    metrics = {charge.metric: charge.aggregation for charge in terms.usage_charges}
    quantities = uow.usage.period_totals(
        ctx.tenant_id, sub.customer_id, sub.id, metrics, period.start, period.end
    )
    for granted in sorted({seconds, MINUTE}, reverse=True):
        more = Decimal(granted) if aggregation == Aggregation.SUM else Decimal(granted // MINUTE)
        cost = marginal_charge(terms, sub.state.currency, period, quantities, VIEWING_SECONDS, more)
        if cost.minor <= 0:
            return Reservation(True, None, granted)
        hold = _try_hold(uow, ctx, sub, period, cost, granted, reference)
        if hold is not None:
            return Reservation(True, hold.id, granted)
    raise InsufficientFunds(
        "wallet.insufficient_funds", "the wallet's available balance does not cover a minute"
    )


def settle(uow: UnitOfWork, ctx: Context, hold_id: str) -> InvoiceRecord | None:
    """Invoice the period's unbilled usage and pay it from the hold, releasing the rest; the
    invoice, or None when there was nothing to charge. A hold no longer pending (settled,
    voided, lapsed) is left as it is: settling twice charges once."""
    hold = wallet_holds.get_hold(uow, ctx, hold_id)
    start = hold.period_start
    if hold.subscription_id is None or start is None:
        raise InvalidInput("wallet_hold.not_a_session_hold", "the hold is not a session's")
    # Locked first: a threshold pass or a renewal never bills the same usage alongside.
    sub = get_subscription(uow, ctx, hold.subscription_id, for_update=True)
    hold = wallet_holds.get_hold(uow, ctx, hold_id)
    if hold.status != HoldStatus.PENDING or ctx.now() >= hold.expires_at:
        return None  # a lapsed one is the sweeper's to release; the period invoice bills
    terms = catalog.load_terms(catalog.get_terms(uow, ctx, sub.terms_id))
    period = _period_of(ctx, sub, terms, start)
    lines = usage_billing.unbilled_lines(uow, ctx.tenant_id, sub, terms, period) if period else ()
    invoice = None
    if period is None or sum(item.amount.minor for item in lines) <= 0:
        wallet_holds.void_hold(uow, ctx, hold.id)
    else:
        invoice = usage_invoices.usage_invoice(
            uow, ctx, sub, terms, period, lines, SESSION_REASON, collect=False
        )
        invoice = wallet_holds.pay_invoice_from_hold(uow, ctx, hold, invoice)
    # The money released (and the wallet) pays what is still owed, this invoice included:
    # a renewal that the reservation left unpaid must not suspend the viewer.
    invoicing.settle_open_from_wallet(uow, ctx, hold.customer_id, hold.currency)
    return invoice if invoice is None else invoicing.get_invoice(uow, ctx, invoice.id)


def _try_hold(
    uow: UnitOfWork,
    ctx: Context,
    sub: SubscriptionRecord,
    period: Period,
    cost: Money,
    seconds: int,
    reference: str | None,
) -> WalletHoldRecord | None:
    ttl = int((timedelta(seconds=seconds) + SETTLE_MARGIN).total_seconds())
    command = wallet_holds.PlaceHold(
        sub.customer_id,
        cost,
        PURPOSE,
        ttl_seconds=ttl,
        reference=reference,
        description=f"{seconds // MINUTE} min of viewing on {sub.id}",
        subscription_id=sub.id,
        period_start=period.start,
    )
    try:
        return wallet_holds.place_hold(uow, ctx, command)
    except InsufficientFunds:  # the guarded reserve changed nothing
        return None


def _viewing_aggregation(terms: BillingTerms) -> Aggregation | None:
    """How the plan aggregates viewing, when it charges for it by time (sum of seconds or
    count of minute events); None when viewing is not charged per unit of time."""
    for charge in terms.usage_charges:
        if charge.metric == VIEWING_SECONDS and charge.aggregation in (
            Aggregation.SUM,
            Aggregation.COUNT,
        ):
            return charge.aggregation
    return None


def _prepaid(uow: UnitOfWork, ctx: Context, sub: SubscriptionRecord) -> bool:
    customer = uow.customers.get(ctx.tenant_id, sub.customer_id)
    return customer is not None and customer.collection_method == "charge_wallet"


def _period_of(
    ctx: Context, sub: SubscriptionRecord, terms: BillingTerms, start: datetime
) -> Period | None:
    """The hold's period: the current one, or the one before when it renewed meanwhile."""
    current = sub.state.current_period
    if current.start == start:
        return current
    before = usage_billing.previous_period(ctx, sub.state, terms)
    return before if before is not None and before.start == start else None
