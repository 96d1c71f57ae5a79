"""VOD: the operator's catalog of items and subscribers' rentals of them.

A rental is one transaction: the item for rent, the subscription watching (its row locked, so
that one subscription's concurrent rentals of an item queue and the second is refused), no
rental of that item still running (refused, ``vod.already_rented``, rather than extended: a
second charge for time already paid is never what a viewer meant), the price in the
subscription's currency, the money (a guarded wallet debit, or an external payment recorded
as received), the rental row with its window (now → now + hours), its journal entry and its
log entry (``vod_rental``, about the subscription, which is how the authorization index learns
of it). Any refusal raises and rolls all of it back.

A refund is a guarded ``paid → refunded`` update; only the caller whose update took the row
moves the money back to where it came from, so retried or concurrent refunds pay once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from iptv_billing.domain import journal
from iptv_billing.domain.entitlement import WATCHING
from iptv_billing.domain.errors import Conflict, InvalidInput, NotFound
from iptv_billing.domain.money import Money
from iptv_billing.domain.vod import DEFAULT_CATEGORY, RentalTerms, VodItem
from iptv_billing.services import sales
from iptv_billing.services.context import Context
from iptv_billing.services.lookup import get_subscription
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import LogDraft, Page
from iptv_billing.services.vod_records import (
    PAID,
    REFUNDED,
    VOD_RENTAL,
    WALLET,
    VodItemRecord,
    VodRentalRecord,
    rental_record,
)

# A set-top box may give a rental back (Ministra's unsubscribe hook) this soon after renting
# it, refunded; later it is kept (watching has likely begun).
STB_RETURN_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class CreateItem:
    code: str
    name: str
    source_url: str
    category: str = DEFAULT_CATEGORY
    poster_url: str | None = None
    year: int | None = None
    duration_minutes: int | None = None
    packages: tuple[str, ...] = ()
    rental: RentalTerms | None = None


@dataclass(frozen=True, slots=True)
class Rent:
    item_id: str
    subscription_id: str
    method: str  # wallet, card, manual, bank_transfer
    currency: str | None = None  # None: the subscription's currency
    reference: str | None = None  # the external payment's reference


# -- items -------------------------------------------------------------------------------------
def create_item(uow: UnitOfWork, ctx: Context, cmd: CreateItem) -> VodItemRecord:
    item = VodItem(
        code=cmd.code,
        name=cmd.name,
        source_url=cmd.source_url,
        category=cmd.category,
        poster_url=cmd.poster_url,
        year=cmd.year,
        duration_minutes=cmd.duration_minutes,
        packages=cmd.packages,
        rental=cmd.rental,
    )
    codes = list(item.packages)
    known = {p.code for p in uow.catalog.packages_by_code(ctx.tenant_id, codes)}
    if set(codes) - known:
        raise InvalidInput(
            "vod.unknown_packages", f"unknown packages: {sorted(set(codes) - known)}"
        )
    if uow.vod.item_by_code(ctx.tenant_id, item.code) is not None:
        raise Conflict("vod.duplicate_code", f"a VOD item with code {item.code!r} exists")
    now = ctx.now()
    stream_id = uow.vod.next_stream_id(ctx.tenant_id)
    record = VodItemRecord(ctx.ids.new("vod"), ctx.tenant_id, stream_id, item, now, now)
    uow.vod.add_item(record)
    return record


def get_item(uow: UnitOfWork, ctx: Context, item_id: str) -> VodItemRecord:
    record = uow.vod.get_item(ctx.tenant_id, item_id)
    if record is None:
        raise NotFound("vod_item.not_found", f"no VOD item {item_id}")
    return record


def get_rental(uow: UnitOfWork, ctx: Context, rental_id: str) -> VodRentalRecord:
    record = uow.vod.get_rental(ctx.tenant_id, rental_id)
    if record is None:
        raise NotFound("vod_rental.not_found", f"no VOD rental {rental_id}")
    return record


# -- rentals -----------------------------------------------------------------------------------
def rent(uow: UnitOfWork, ctx: Context, cmd: Rent) -> VodRentalRecord:
    """Rent an item for a subscription; refused (changing nothing) when it cannot be."""
    sales.check_payment("vod", cmd.method, cmd.reference)
    item = get_item(uow, ctx, cmd.item_id)
    if not item.item.rentable:
        raise Conflict("vod.not_rentable", f"{item.code} is not for rent")
    # The lock queues this subscription's concurrent rentals: the second sees the first.
    sub = get_subscription(uow, ctx, cmd.subscription_id, for_update=True)
    if sub.state.status not in WATCHING:
        raise Conflict("vod.subscription_inactive", "the subscription cannot watch anything now")
    now = ctx.now()
    if uow.vod.current_rental(ctx.tenant_id, item.id, sub.id, now) is not None:
        raise Conflict("vod.already_rented", "this subscription is renting the item already")
    price = item.item.rental_price(cmd.currency or sub.state.currency)
    sales.take(uow, ctx, sub.customer_id, cmd.method, price)
    window = item.item.rental_window(now)
    record = VodRentalRecord(
        ctx.ids.new("vodr"),
        ctx.tenant_id,
        item.id,
        sub.id,
        sub.customer_id,
        price.code,
        price.minor,
        cmd.method,
        cmd.reference,
        PAID,
        window.start,
        window.end,
        now,
    )
    uow.vod.add_rental(record)
    sales.book(uow, ctx, journal.RENTAL, sub.customer_id, cmd.method, price, record.id)
    _log(uow, ctx, record, item)
    return record


def _log(uow: UnitOfWork, ctx: Context, record: VodRentalRecord, item: VodItemRecord) -> None:
    at = ctx.now()
    draft = LogDraft(
        VOD_RENTAL, record.id, record.subscription_id, rental_record(record, item, at), at
    )
    uow.log.stage(ctx.tenant_id, [draft])


def rentals_of_subscription(
    uow: UnitOfWork, ctx: Context, subscription_id: str, limit: int, after: str | None
) -> Page[VodRentalRecord]:
    get_subscription(uow, ctx, subscription_id)
    return uow.vod.list_rentals(ctx.tenant_id, limit, after, subscription_id=subscription_id)


def _refund(uow: UnitOfWork, ctx: Context, rental: VodRentalRecord) -> VodRentalRecord | None:
    """Refund one rental if still paid; None when someone else refunded it first."""
    now = ctx.now()
    if not uow.vod.mark_refunded(rental.id, now):
        return None
    amount = Money.from_minor(rental.amount_minor, rental.currency)
    sales.give_back(uow, ctx, journal.RENTAL, rental.customer_id, rental.method, amount, rental.id)
    refunded = replace(rental, status=REFUNDED, refunded_at=now)
    _log(uow, ctx, refunded, get_item(uow, ctx, rental.item_id))
    return refunded


def refund_rental(uow: UnitOfWork, ctx: Context, rental_id: str) -> VodRentalRecord:
    """Refund one rental to where its money came from; once (``vod.already_refunded``)."""
    rental = get_rental(uow, ctx, rental_id)
    refunded = None if rental.status != PAID else _refund(uow, ctx, rental)
    if refunded is None:
        raise Conflict("vod.already_refunded", f"rental {rental_id} is refunded already")
    return refunded


# -- set-top boxes (Ministra) ------------------------------------------------------------------
def rent_by_code(uow: UnitOfWork, ctx: Context, code: str, subscription_id: str) -> VodRentalRecord:
    """A set-top box's rental (Ministra's package external id is the item code), from the
    wallet in the subscription's currency. A rental still running is returned as it is."""
    item = uow.vod.item_by_code(ctx.tenant_id, code)
    if item is None:
        raise NotFound("vod_item.not_found", f"no VOD item {code}")
    running = uow.vod.current_rental(ctx.tenant_id, item.id, subscription_id, ctx.now())
    if running is not None:
        return running
    return rent(uow, ctx, Rent(item.id, subscription_id, WALLET))


def return_by_code(
    uow: UnitOfWork, ctx: Context, code: str, subscription_id: str
) -> VodRentalRecord | None:
    """A set-top box gives a rental back (Ministra's unsubscribe hook): refunded within
    ``STB_RETURN_WINDOW`` of renting, refused after (the rental and its window stay).
    None: there was nothing to give back."""
    item = uow.vod.item_by_code(ctx.tenant_id, code)
    now = ctx.now()
    running = (
        None
        if item is None
        else uow.vod.current_rental(ctx.tenant_id, item.id, subscription_id, now)
    )
    if running is None:
        return None
    if now - running.created_at > STB_RETURN_WINDOW:
        raise Conflict("vod.return_window_over", "the rental has started: it cannot be returned")
    return _refund(uow, ctx, running)
