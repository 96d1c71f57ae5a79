"""Pay-per-view refunds and cancellations: every buyer refunded exactly once.

A refund is a guarded ``paid → refunded`` update; only the caller whose update took the row
moves money (the wallet credited back, or the reverse entry to the cash account the payment
came in on), so retried, concurrent or overlapping refunds never pay twice. Cancelling marks
the event first (the index then stops treating its channel as PPV) and refunds its buyers in
bounded transactions; an interrupted cancellation is finished by cancelling again or by the
recurring job (``finish_cancellations``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from iptv_billing.domain import journal
from iptv_billing.domain.errors import Conflict
from iptv_billing.domain.money import Money
from iptv_billing.services import sales
from iptv_billing.services.clock import Clock
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import UnitOfWork, UnitOfWorkFactory
from iptv_billing.services.ppv import get_event, get_purchase, log_purchase
from iptv_billing.services.ppv_records import (
    PAID,
    REFUNDED,
    PpvEventRecord,
    PpvPurchaseRecord,
)

T = TypeVar("T")
Work = Callable[[UnitOfWork, Context], T]
# Runs one unit of work committed (``api.routers._work.write`` or a job's own loop).
Transact = Callable[[Work[int]], int]
REFUND_CHUNK = 200  # purchases refunded per transaction


def _refund(
    uow: UnitOfWork, ctx: Context, purchase: PpvPurchaseRecord, event: PpvEventRecord
) -> PpvPurchaseRecord | None:
    """Refund one purchase if still paid; None when someone else refunded it first."""
    now = ctx.now()
    if not uow.ppv.mark_refunded(purchase.id, now):
        return None
    uow.ppv.release_seat(event.id)
    amount = Money.from_minor(purchase.amount_minor, purchase.currency)
    sales.give_back(
        uow, ctx, journal.PPV, purchase.customer_id, purchase.method, amount, purchase.id
    )
    refunded = replace(purchase, status=REFUNDED, refunded_at=now)
    log_purchase(uow, ctx, refunded, event)
    return refunded


def refund_purchase(uow: UnitOfWork, ctx: Context, purchase_id: str) -> PpvPurchaseRecord:
    """Refund one purchase (an operator's goodwill, a set-top box unsubscribing early)."""
    purchase = get_purchase(uow, ctx, purchase_id)
    if purchase.status != PAID:
        raise Conflict("ppv.already_refunded", f"purchase {purchase_id} is refunded already")
    event = get_event(uow, ctx, purchase.event_id)
    refunded = _refund(uow, ctx, purchase, event)
    if refunded is None:
        raise Conflict("ppv.already_refunded", f"purchase {purchase_id} is refunded already")
    return refunded


def mark_cancelled(uow: UnitOfWork, ctx: Context, event_id: str) -> PpvEventRecord:
    """Cancel the event (again: nothing changes); its refunds follow in ``refund_batch``."""
    get_event(uow, ctx, event_id)
    uow.ppv.cancel_event(ctx.tenant_id, event_id, ctx.now())
    return get_event(uow, ctx, event_id)


def refund_batch(uow: UnitOfWork, ctx: Context, event_id: str, limit: int = REFUND_CHUNK) -> int:
    """Refund up to ``limit`` paid purchases of a cancelled event; how many were looked at
    (fewer than ``limit``: none are left)."""
    event = get_event(uow, ctx, event_id)
    if not event.cancelled:
        raise Conflict("ppv.not_cancelled", f"event {event_id} is not cancelled")
    paid = uow.ppv.paid_purchases(ctx.tenant_id, event_id, limit)
    for purchase in paid:
        _refund(uow, ctx, purchase, event)
    return len(paid)


def finish_cancellation(transact: Transact, event_id: str, chunk: int = REFUND_CHUNK) -> int:
    """Refund every paid purchase of a cancelled event, ``chunk`` per transaction; resumable
    (each chunk commits on its own). How many purchases were looked at."""
    total = 0
    while True:
        seen = transact(lambda u, c: refund_batch(u, c, event_id, chunk))
        total += seen
        if seen < chunk:
            return total


def cancel(transact: Callable[[Work[PpvEventRecord]], PpvEventRecord], event_id: str) -> None:
    """Mark the event cancelled in its own transaction (so the index sees it at once)."""
    transact(lambda u, c: mark_cancelled(u, c, event_id))


def finish_cancellations(
    read: Callable[[Work[list[str]]], list[str]], transact: Transact, chunk: int = REFUND_CHUNK
) -> int:
    """The recurring job: finish every cancelled event of a tenant still owing refunds."""
    pending = read(lambda u, c: list(u.ppv.cancelled_with_paid(c.tenant_id)))
    return sum(finish_cancellation(transact, event_id, chunk) for event_id in pending)


def finish_tenant_cancellations(
    uow_factory: UnitOfWorkFactory, tenant_id: str, clock: Clock, ids: IdGenerator
) -> int:
    """``finish_cancellations`` for one tenant, each chunk in its own committed unit of work
    (what ``RecurringJobs.tick`` runs)."""

    def run(work: Work[T], *, read_only: bool = False) -> T:
        with uow_factory(read_only=read_only) as uow:
            result = work(uow, load_context(uow, tenant_id, clock, ids))
            if not read_only:
                uow.commit()
            return result

    return finish_cancellations(lambda w: run(w, read_only=True), run)


def return_by_code(
    uow: UnitOfWork, ctx: Context, code: str, subscription_id: str
) -> PpvPurchaseRecord | None:
    """A set-top box gives a PPV package back (Ministra's ``on_unsubscribe_hook_url``): refunded
    to where the money came from while the event has not started; refused once it has (the
    purchase stays, and so does the right to watch). None: there was nothing to give back."""
    event = uow.ppv.event_by_code(ctx.tenant_id, code)
    bought = (
        None if event is None else uow.ppv.purchase_of(ctx.tenant_id, event.id, subscription_id)
    )
    if event is None or bought is None or bought.status != PAID:
        return None
    if ctx.now() >= event.event.starts_at:
        raise Conflict("ppv.already_started", "the event has started: it cannot be returned")
    return _refund(uow, ctx, bought, event)
