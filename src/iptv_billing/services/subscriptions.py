"""Subscription use cases: subscribe, change plan, pause, resume, cancel.

Each decision is made by the pure lifecycle functions; this module loads what they need,
stores what they return, and turns their invoice lines into finalized invoices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from iptv_billing.domain import addons as addon_rules
from iptv_billing.domain import subscription as lifecycle
from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.errors import Conflict
from iptv_billing.domain.proration import ProrationMode
from iptv_billing.domain.subscription import LifecycleResult, SubscriptionState
from iptv_billing.services import catalog, invoicing, log_records, usage_invoices
from iptv_billing.services.context import Context
from iptv_billing.services.customers import get_customer
from iptv_billing.services.lookup import get_subscription
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import InvoiceRecord, SubscriptionRecord


@dataclass(frozen=True, slots=True)
class CreateSubscription:
    customer_id: str
    plan_id: str
    trial: bool = True
    addons: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ChangePlan:
    plan_id: str
    proration: ProrationMode


@dataclass(frozen=True, slots=True)
class ChangeAddons:
    addons: tuple[tuple[str, int], ...]  # the full set wanted; () drops every add-on
    proration: ProrationMode


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    subscription: SubscriptionRecord
    invoice: InvoiceRecord | None


def create_subscription(
    uow: UnitOfWork, ctx: Context, cmd: CreateSubscription
) -> SubscriptionChange:
    customer = get_customer(uow, ctx, cmd.customer_id)
    if customer.status != "active":
        raise Conflict("customer.closed", f"customer {customer.id} is closed")
    terms_record = catalog.terms_in_force(uow, ctx, catalog.get_plan(uow, ctx, cmd.plan_id).id)
    terms = catalog.load_terms(terms_record)
    addons = lifecycle.normalise_addons(terms, customer.currency, cmd.addons)
    result = lifecycle.start(terms, customer.currency, ctx.now(), ctx.tz, cmd.trial, addons)
    record = SubscriptionRecord(
        id=ctx.ids.new("sub"),
        tenant_id=ctx.tenant_id,
        customer_id=customer.id,
        plan_id=cmd.plan_id,
        terms_id=terms_record.id,
        pending_terms_id=None,
        state=result.state,
        created_at=ctx.now(),
        updated_at=ctx.now(),
    )
    log_records.add_subscription(uow, ctx, record)
    invoice = _invoice_lines(uow, ctx, record, terms, result, "subscription_create")
    return SubscriptionChange(record, invoice)


def change_plan(
    uow: UnitOfWork, ctx: Context, subscription_id: str, cmd: ChangePlan
) -> SubscriptionChange:
    current = get_subscription(uow, ctx, subscription_id, for_update=True)
    old_terms = catalog.load_terms(catalog.get_terms(uow, ctx, current.terms_id))
    new_record = catalog.terms_in_force(uow, ctx, catalog.get_plan(uow, ctx, cmd.plan_id).id)
    new_terms = catalog.load_terms(new_record)
    result = lifecycle.change_plan(
        current.state, old_terms, new_terms, cmd.proration, ctx.now(), ctx.tz
    )
    updated = _with_state(current, ctx, result.state)
    # Follow what the rules decided, not the mode asked for: during a trial, for one, a change
    # "at period end" applies at once.
    if result.state.terms_hash == new_terms.terms_hash:
        updated = replace(
            updated, plan_id=cmd.plan_id, terms_id=new_record.id, pending_terms_id=None
        )
    elif result.state.pending_terms_hash == new_terms.terms_hash:
        updated = replace(updated, pending_terms_id=new_record.id)
    log_records.save_subscriptions(uow, ctx, [updated])
    log_records.accept_terms(uow, ctx, updated, new_terms.terms_hash)
    invoice = _invoice_lines(uow, ctx, updated, new_terms, result, "subscription_update")
    return SubscriptionChange(_bumped(updated), invoice)


def change_addons(
    uow: UnitOfWork, ctx: Context, subscription_id: str, cmd: ChangeAddons
) -> SubscriptionChange:
    """Buy or drop add-ons now; with proration the difference is invoiced at once."""
    current = get_subscription(uow, ctx, subscription_id, for_update=True)
    terms = catalog.load_terms(catalog.get_terms(uow, ctx, current.terms_id))
    result = addon_rules.change_addons(current.state, terms, cmd.addons, cmd.proration, ctx.now())
    return _store(uow, ctx, current, result, terms)


def pause(uow: UnitOfWork, ctx: Context, subscription_id: str) -> SubscriptionChange:
    current = get_subscription(uow, ctx, subscription_id, for_update=True)
    result = lifecycle.pause(current.state, ctx.now())
    return _store(uow, ctx, current, result, None)


def resume(uow: UnitOfWork, ctx: Context, subscription_id: str) -> SubscriptionChange:
    current = get_subscription(uow, ctx, subscription_id, for_update=True)
    terms = catalog.load_terms(catalog.get_terms(uow, ctx, current.terms_id))
    result = lifecycle.resume(current.state, terms, ctx.now(), ctx.tz)
    return _store(uow, ctx, current, result, terms, reason="subscription_resume")


def cancel(
    uow: UnitOfWork, ctx: Context, subscription_id: str, at_period_end: bool
) -> SubscriptionChange:
    current = get_subscription(uow, ctx, subscription_id, for_update=True)
    result = lifecycle.cancel(current.state, ctx.now(), at_period_end)
    change = _store(uow, ctx, current, result, None)
    if at_period_end:  # the billing run invoices the last period's usage at its end
        return change
    terms = catalog.load_terms(catalog.get_terms(uow, ctx, current.terms_id))
    if not terms.usage_charges:
        return change
    final = usage_invoices.final_usage_invoice(uow, ctx, change.subscription, terms)
    return replace(change, invoice=final) if final else change


def _store(
    uow: UnitOfWork,
    ctx: Context,
    current: SubscriptionRecord,
    result: LifecycleResult,
    terms: BillingTerms | None,
    reason: str = "subscription_update",
) -> SubscriptionChange:
    updated = _with_state(current, ctx, result.state)
    log_records.save_subscriptions(uow, ctx, [updated])
    invoice = _invoice_lines(uow, ctx, updated, terms, result, reason) if terms else None
    return SubscriptionChange(_bumped(updated), invoice)


def _with_state(
    record: SubscriptionRecord, ctx: Context, state: SubscriptionState
) -> SubscriptionRecord:
    return replace(record, state=state, updated_at=ctx.now())


def _bumped(record: SubscriptionRecord) -> SubscriptionRecord:
    """The record as stored after an update (the repository bumped its version)."""
    return replace(record, version=record.version + 1)


def _invoice_lines(
    uow: UnitOfWork,
    ctx: Context,
    sub: SubscriptionRecord,
    terms: BillingTerms | None,
    result: LifecycleResult,
    reason: str,
) -> InvoiceRecord | None:
    if not result.lines or terms is None:
        return None
    period = sub.state.current_period
    cycle_start = period.start if reason in ("subscription_create", "subscription_resume") else None
    draft = invoicing.draft_record(
        ctx,
        invoicing.InvoiceDraft(
            customer_id=sub.customer_id,
            currency=sub.state.currency,
            lines=result.lines,
            billing_reason=reason,
            subscription_id=sub.id,
            terms_hash=sub.state.terms_hash,
            cycle_start=cycle_start,
            period=period,
        ),
    )
    (final,) = invoicing.finalize_all(uow, ctx, [draft], [terms.payment_due_days])
    if uow.invoices.add_many([final]) != 1:
        raise Conflict("invoice.duplicate_cycle", "this period is invoiced already")
    invoicing.credit_negative_totals(uow, ctx, [final])
    return invoicing.collect_from_wallet_if_due(uow, ctx, final)
