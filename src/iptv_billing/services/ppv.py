"""Pay-per-view: the operator's events and subscribers' purchases.

A purchase is one transaction: the sale window, the blackout, a seat (a guarded increment
that concurrent buyers cannot overrun), the price for the subscription's packages, the money
(a guarded wallet debit, or an external payment recorded as received), the purchase row
(unique per subscription and event), its journal entry and its log entry (``ppv_purchase``,
about the subscription, which is how the authorization index learns of it). Any refusal
raises and rolls all of it back. Refunds and cancellations are in ``ppv_refunds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from iptv_billing.domain import journal
from iptv_billing.domain.entitlement import WATCHING, entitlement_of
from iptv_billing.domain.errors import Conflict, InvalidInput, NotFound
from iptv_billing.domain.money import Money
from iptv_billing.domain.ppv import PpvEvent, SubscriberDiscount
from iptv_billing.services import sales
from iptv_billing.services.catalog import load_terms
from iptv_billing.services.context import Context
from iptv_billing.services.lookup import get_subscription
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.ppv_records import (
    PAID,
    PPV_PURCHASE,
    WALLET,
    PpvEventRecord,
    PpvPurchaseRecord,
    purchase_record,
)
from iptv_billing.services.records import LogDraft, Page, SubscriptionRecord


@dataclass(frozen=True, slots=True)
class CreateEvent:
    code: str
    name: str
    channel_id: str
    starts_at: datetime
    ends_at: datetime
    prices: tuple[Money, ...]
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None
    replay_hours: int = 0
    blackout_countries: tuple[str, ...] = ()
    capacity: int | None = None
    discounts: tuple[SubscriberDiscount, ...] = ()


@dataclass(frozen=True, slots=True)
class Purchase:
    event_id: str
    subscription_id: str
    method: str  # wallet, card, manual, bank_transfer
    currency: str | None = None  # None: the subscription's currency
    reference: str | None = None  # the external payment's reference
    country: str | None = None  # the buyer's country, checked against blackouts


# -- events ------------------------------------------------------------------------------------
def create_event(uow: UnitOfWork, ctx: Context, cmd: CreateEvent) -> PpvEventRecord:
    event = PpvEvent(
        code=cmd.code,
        name=cmd.name,
        channel_id=cmd.channel_id,
        starts_at=cmd.starts_at,
        ends_at=cmd.ends_at,
        prices=cmd.prices,
        sale_starts_at=cmd.sale_starts_at,
        sale_ends_at=cmd.sale_ends_at,
        replay_hours=cmd.replay_hours,
        blackout_countries=cmd.blackout_countries,
        capacity=cmd.capacity,
        discounts=cmd.discounts,
    )
    if uow.catalog.get_channel(ctx.tenant_id, event.channel_id) is None:
        raise InvalidInput("ppv.unknown_channel", f"no channel {event.channel_id}")
    codes = sorted({d.package_code for d in event.discounts})
    known = {p.code for p in uow.catalog.packages_by_code(ctx.tenant_id, codes)}
    if set(codes) - known:
        raise InvalidInput(
            "ppv.unknown_packages", f"unknown packages: {sorted(set(codes) - known)}"
        )
    if uow.ppv.event_by_code(ctx.tenant_id, event.code) is not None:
        raise Conflict("ppv.duplicate_code", f"an event with code {event.code!r} exists")
    _check_channel_free(uow, ctx, event)
    now = ctx.now()
    record = PpvEventRecord(ctx.ids.new("ppv"), ctx.tenant_id, event, 0, now, now)
    uow.ppv.add_event(record)
    return record


def _check_channel_free(uow: UnitOfWork, ctx: Context, event: PpvEvent) -> None:
    """Two events may not air on one channel at once: the channel is one of them then."""
    for other in uow.ppv.scheduled_events(ctx.tenant_id):
        o = other.event
        overlaps = o.starts_at < event.ends_at and event.starts_at < o.ends_at
        if o.channel_id == event.channel_id and overlaps:
            raise Conflict("ppv.channel_busy", f"event {o.code} airs on that channel then")


def get_event(
    uow: UnitOfWork, ctx: Context, event_id: str, *, for_update: bool = False
) -> PpvEventRecord:
    record = uow.ppv.get_event(ctx.tenant_id, event_id, for_update=for_update)
    if record is None:
        raise NotFound("ppv_event.not_found", f"no pay-per-view event {event_id}")
    return record


def get_purchase(uow: UnitOfWork, ctx: Context, purchase_id: str) -> PpvPurchaseRecord:
    record = uow.ppv.get_purchase(ctx.tenant_id, purchase_id)
    if record is None:
        raise NotFound("ppv_purchase.not_found", f"no pay-per-view purchase {purchase_id}")
    return record


# -- purchases ---------------------------------------------------------------------------------
def packages_of(uow: UnitOfWork, ctx: Context, sub: SubscriptionRecord) -> frozenset[str]:
    """The packages a subscription holds now (its plan's and its add-ons')."""
    terms = uow.catalog.get_terms(ctx.tenant_id, sub.terms_id)
    if terms is None:
        raise NotFound("terms.not_found", f"no terms {sub.terms_id}")
    return entitlement_of(sub.id, sub.state, load_terms(terms)).packages


def quote(
    uow: UnitOfWork, ctx: Context, event: PpvEventRecord, sub: SubscriptionRecord, currency: str
) -> Money:
    return event.event.price_for(currency, packages_of(uow, ctx, sub))


def purchase(uow: UnitOfWork, ctx: Context, cmd: Purchase) -> PpvPurchaseRecord:
    """Buy an event for a subscription; refused (changing nothing) when it cannot be."""
    sales.check_payment("ppv", cmd.method, cmd.reference)
    country = cmd.country.upper() if cmd.country else None
    event = get_event(uow, ctx, cmd.event_id)
    sub = get_subscription(uow, ctx, cmd.subscription_id)
    now = ctx.now()
    event.event.check_sale(now)
    if event.event.blacked_out(country):
        raise Conflict("ppv.blacked_out", f"the event is not sold in {country}")
    if sub.state.status not in WATCHING:
        raise Conflict("ppv.subscription_inactive", "the subscription cannot watch anything now")
    if uow.ppv.purchase_of(ctx.tenant_id, event.id, sub.id) is not None:
        raise Conflict("ppv.already_purchased", "this subscription has bought the event already")
    price = quote(uow, ctx, event, sub, cmd.currency or sub.state.currency)
    if not uow.ppv.take_seat(event.id):
        raise Conflict("ppv.sold_out", f"all {event.event.capacity} seats are sold")
    sales.take(uow, ctx, sub.customer_id, cmd.method, price)
    record = PpvPurchaseRecord(
        ctx.ids.new("ppvp"),
        ctx.tenant_id,
        event.id,
        sub.id,
        sub.customer_id,
        price.code,
        price.minor,
        cmd.method,
        cmd.reference,
        country,
        PAID,
        now,
    )
    uow.ppv.add_purchase(record)
    sales.book(uow, ctx, journal.PPV, sub.customer_id, cmd.method, price, record.id)
    log_purchase(uow, ctx, record, event)
    return record


def log_purchase(
    uow: UnitOfWork, ctx: Context, record: PpvPurchaseRecord, event: PpvEventRecord
) -> None:
    at = ctx.now()
    draft = LogDraft(
        PPV_PURCHASE, record.id, record.subscription_id, purchase_record(record, event, at), at
    )
    uow.log.stage(ctx.tenant_id, [draft])


def purchases_of_subscription(
    uow: UnitOfWork, ctx: Context, subscription_id: str, limit: int, after: str | None
) -> Page[PpvPurchaseRecord]:
    get_subscription(uow, ctx, subscription_id)
    return uow.ppv.list_purchases(ctx.tenant_id, limit, after, subscription_id=subscription_id)


def purchases_of_event(
    uow: UnitOfWork, ctx: Context, event_id: str, limit: int, after: str | None
) -> Page[PpvPurchaseRecord]:
    get_event(uow, ctx, event_id)
    return uow.ppv.list_purchases(ctx.tenant_id, limit, after, event_id=event_id)


def buy_by_code(
    uow: UnitOfWork, ctx: Context, code: str, subscription_id: str
) -> PpvPurchaseRecord:
    """A set-top box's purchase (Ministra's package external id is the event code), from the
    wallet in the subscription's currency. A purchase made already is returned as it is."""
    event = uow.ppv.event_by_code(ctx.tenant_id, code)
    if event is None:
        raise NotFound("ppv_event.not_found", f"no pay-per-view event {code}")
    bought = uow.ppv.purchase_of(ctx.tenant_id, event.id, subscription_id)
    if bought is not None and bought.status == PAID:
        return bought
    return purchase(uow, ctx, Purchase(event.id, subscription_id, WALLET))
