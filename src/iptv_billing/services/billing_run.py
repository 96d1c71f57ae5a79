"""The billing run: renew every due subscription of a tenant up to the clock's now.

Due subscriptions are claimed in keyset-ordered batches (locked, SKIP LOCKED on PostgreSQL, so
several workers can share a run). Each batch is one transaction: invoices with their lines,
journal entries, wallet collection and the new subscription states commit together. A crash
loses at most the batch in flight, and rerunning is harmless: renewed subscriptions are no
longer due, and the (subscription, cycle start) unique key refuses a second invoice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from iptv_billing.domain import billing
from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.errors import BillingError, Conflict, InvariantViolated
from iptv_billing.domain.invoice import InvoiceLine
from iptv_billing.domain.subscription import SubscriptionEvent, apply_events
from iptv_billing.services import catalog, invoicing, usage_billing, usage_invoices
from iptv_billing.services.clock import Clock
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.log_records import post_journal, save_subscriptions
from iptv_billing.services.ports import UnitOfWork, UnitOfWorkFactory
from iptv_billing.services.records import BillingRunRecord, InvoiceRecord, SubscriptionRecord

log = logging.getLogger(__name__)
RETRY_DELAY = 0.05  # seconds before the first retry of a batch; doubles after each
Progress = Callable[[int], None]


@dataclass
class BatchOutcome:
    renewed: list[SubscriptionRecord] = field(default_factory=list)
    drafts: list[InvoiceRecord] = field(default_factory=list)
    due_days: list[int] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    transitions: int = 0


@dataclass
class RunTotals:
    seen: int = 0
    invoices: int = 0
    transitions: int = 0
    failures: int = 0


class BillingRunner:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        system_clock: Clock,
        ids: IdGenerator,
        *,
        batch_size: int = 1000,
        is_transient: Callable[[BaseException], bool] = lambda _error: False,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        after_run: Callable[[str], None] | None = None,
    ) -> None:
        self._uow = uow_factory
        # Publishing the log (a checkpoint of what the run wrote); it must not raise.
        self._after_run = after_run
        self._clock = system_clock
        self._ids = ids
        self._batch_size = batch_size
        # The storage adapter knows which of its errors are worth a retry (deadlock,
        # serialization failure, busy SQLite); a batch is one transaction, so rerunning it whole
        # is safe.
        self._is_transient = is_transient
        self._attempts = attempts
        self._sleep = sleep
        self._terms: dict[str, BillingTerms] = {}
        self._plan_of: dict[str, str] = {}  # terms id → plan id

    def run(self, tenant_id: str, progress: Progress | None = None) -> BillingRunRecord:
        run = self._start(tenant_id)
        totals = RunTotals()
        after: str | None = None
        while True:
            claimed, after = self._renew_batch(run, after, totals)
            if progress:
                progress(claimed)
            if claimed < self._batch_size:
                break
        totals.invoices += self._usage_thresholds(tenant_id)
        self._dunning(run, totals)
        finished = self._finish(run, totals)
        if self._after_run is not None:
            self._after_run(tenant_id)
        return finished

    def _usage_thresholds(self, tenant_id: str) -> int:
        """Invoice early the usage that reached a plan's threshold (progressive billing)."""
        with self._uow() as uow:
            invoices = usage_invoices.invoice_thresholds(uow, self._context(uow, tenant_id))
            uow.commit()
        return len(invoices)

    def _context(self, uow: UnitOfWork, tenant_id: str) -> Context:
        return load_context(uow, tenant_id, self._clock, self._ids)

    def _start(self, tenant_id: str) -> BillingRunRecord:
        with self._uow() as uow:
            ctx = self._context(uow, tenant_id)
            now = ctx.now()
            run = BillingRunRecord(
                self._ids.new("run"), tenant_id, "running", now, now, None, 0, 0, 0, 0
            )
            uow.billing_runs.add(run)
            uow.commit()
        return run

    def _finish(self, run: BillingRunRecord, totals: RunTotals) -> BillingRunRecord:
        with self._uow() as uow:
            done = replace(
                run,
                status="completed",
                finished_at=self._context(uow, run.tenant_id).now(),
                subscriptions_seen=totals.seen,
                invoices_created=totals.invoices,
                transitions=totals.transitions,
                failures=totals.failures,
            )
            uow.billing_runs.update(done)
            uow.commit()
        return done

    # -- renewals ---------------------------------------------------------------------------
    def _renew_batch(
        self, run: BillingRunRecord, after: str | None, totals: RunTotals
    ) -> tuple[int, str | None]:
        for attempt in range(1, self._attempts + 1):
            try:
                return self._renew_batch_once(run, after, totals)
            except Exception as error:
                if attempt >= self._attempts or not self._is_transient(error):
                    raise
                log.info("billing run %s: transient failure, batch retried: %s", run.id, error)
                self._sleep(RETRY_DELAY * 2 ** (attempt - 1))
        raise InvariantViolated("a billing run needs at least one attempt per batch")

    def _renew_batch_once(
        self, run: BillingRunRecord, after: str | None, totals: RunTotals
    ) -> tuple[int, str | None]:
        with self._uow() as uow:
            ctx = self._context(uow, run.tenant_id)
            due = uow.subscriptions.due(run.tenant_id, run.as_of, after, self._batch_size)
            if not due:
                return 0, after
            try:
                outcome = self._plan(uow, ctx, run, due)
                self._write(uow, ctx, run, outcome)
                uow.commit()
            except BillingError:
                uow.rollback()
                outcome = self._one_by_one(run, due)
        totals.seen += len(due)
        totals.invoices += len(outcome.drafts)
        totals.transitions += outcome.transitions
        totals.failures += len(outcome.failures)
        return len(due), due[-1].id

    def _one_by_one(self, run: BillingRunRecord, due: Sequence[SubscriptionRecord]) -> BatchOutcome:
        """A batch failed in the database: isolate the culprit, keep every other renewal."""
        total = BatchOutcome()
        for sub in due:
            with self._uow() as uow:
                ctx = self._context(uow, run.tenant_id)
                fresh = uow.subscriptions.get(run.tenant_id, sub.id, for_update=True)
                try:
                    outcome = self._plan(uow, ctx, run, [fresh] if fresh else [])
                    self._write(uow, ctx, run, outcome, check_existing=True)
                except BillingError as error:
                    uow.rollback()
                    outcome = BatchOutcome(failures=[(sub.id, error.code, error.message)])
                    self._record_failures(run, outcome.failures)
                else:
                    uow.commit()
            total.drafts += outcome.drafts
            total.failures += outcome.failures
            total.transitions += outcome.transitions
        return total

    def _record_failures(self, run: BillingRunRecord, failures: list[tuple[str, str, str]]) -> None:
        with self._uow() as uow:
            for sub_id, code, message in failures:
                uow.billing_runs.add_failure(run.id, run.tenant_id, sub_id, code, message[:1000])
            uow.commit()

    def _load_terms(self, uow: UnitOfWork, due: Sequence[SubscriptionRecord]) -> None:
        wanted = {s.terms_id for s in due} | {s.pending_terms_id for s in due if s.pending_terms_id}
        missing = [t for t in wanted if t not in self._terms]
        for record in uow.catalog.terms_by_ids(missing) if missing else ():
            self._terms[record.id] = catalog.load_terms(record)
            self._plan_of[record.id] = record.plan_id

    def _plan(
        self,
        uow: UnitOfWork,
        ctx: Context,
        run: BillingRunRecord,
        due: Sequence[SubscriptionRecord],
    ) -> BatchOutcome:
        self._load_terms(uow, due)
        outcome = BatchOutcome()
        for sub in due:
            try:
                self._plan_one(uow, ctx, run, sub, outcome)
            except BillingError as error:
                outcome.failures.append((sub.id, error.code, error.message))
        return outcome

    def _plan_one(
        self,
        uow: UnitOfWork,
        ctx: Context,
        run: BillingRunRecord,
        sub: SubscriptionRecord,
        outcome: BatchOutcome,
    ) -> None:
        terms = self._terms[sub.terms_id]
        pending = self._terms.get(sub.pending_terms_id) if sub.pending_terms_id else None
        result = billing.renew(sub.state, terms, pending, ctx.tz, run.as_of)
        switched = pending is not None and result.state.terms_hash == pending.terms_hash
        renewed = replace(sub, state=result.state, updated_at=run.as_of)
        if switched and sub.pending_terms_id:
            renewed = replace(
                renewed,
                plan_id=self._plan_of[sub.pending_terms_id],
                terms_id=sub.pending_terms_id,
                pending_terms_id=None,
            )
        in_force = pending if switched and pending else terms
        usage = self._usage_in_arrears(uow, ctx, sub, terms, in_force, result)
        # One usage tuple per planned invoice; with none planned, the final period's usage.
        for planned, lines in zip(result.invoices, usage, strict=False):
            billed = replace(planned, lines=planned.lines + lines)
            outcome.drafts.append(self._draft(ctx, renewed, billed, in_force))
            outcome.due_days.append(in_force.payment_due_days)
        if SubscriptionEvent.CANCELLED in result.events and not result.invoices and usage[0]:
            final = billing.PlannedInvoice(sub.state.current_period, usage[0], terms.terms_hash)
            reason = "subscription_final_usage"
            outcome.drafts.append(self._draft(ctx, renewed, final, terms, reason, final.period.end))
            outcome.due_days.append(terms.payment_due_days)
        outcome.renewed.append(renewed)
        outcome.transitions += len(result.events)

    def _usage_in_arrears(
        self,
        uow: UnitOfWork,
        ctx: Context,
        sub: SubscriptionRecord,
        terms: BillingTerms,
        in_force: BillingTerms,
        result: billing.RenewalResult,
    ) -> list[tuple[InvoiceLine, ...]]:
        """Usage lines per planned invoice: each bills the period that just ended (the first
        under the terms it was used under) and the first also late events of the one before."""
        if not (terms.usage_charges or in_force.usage_charges):
            return [() for _ in result.invoices] or [()]
        ended = [sub.state.current_period, *(p.period for p in result.invoices[:-1])]
        per_invoice = [
            usage_billing.unbilled_lines(uow, ctx.tenant_id, sub, terms if i == 0 else in_force, p)
            for i, p in enumerate(ended)
        ]
        before = usage_billing.previous_period(ctx, sub.state, terms)
        if before is not None:
            late = usage_billing.unbilled_lines(uow, ctx.tenant_id, sub, terms, before)
            per_invoice[0] = late + per_invoice[0]
        return per_invoice

    def _draft(
        self,
        ctx: Context,
        sub: SubscriptionRecord,
        planned: billing.PlannedInvoice,
        terms: BillingTerms,
        reason: str = "subscription_cycle",
        cycle_start: datetime | None = None,
    ) -> InvoiceRecord:
        return invoicing.draft_record(
            ctx,
            invoicing.InvoiceDraft(
                customer_id=sub.customer_id,
                currency=sub.state.currency,
                lines=planned.lines,
                billing_reason=reason,
                subscription_id=sub.id,
                terms_hash=planned.terms_hash or terms.terms_hash,
                cycle_start=cycle_start or planned.period.start,
                period=planned.period,
            ),
        )

    def _write(
        self,
        uow: UnitOfWork,
        ctx: Context,
        run: BillingRunRecord,
        outcome: BatchOutcome,
        *,
        check_existing: bool = False,
    ) -> None:
        # A batch trusts its claim (the subscriptions are locked and due, so their next cycles
        # cannot be stored yet) and lets the cycle key catch the anomaly; the one-by-one retry
        # then drops cycles that are stored, so one bad row never blocks a subscription.
        fresh = self._without_existing(uow, outcome) if check_existing else outcome.drafts
        post_journal(uow, ctx, invoicing.finalization_entries(ctx, fresh))
        failed = {f[0] for f in outcome.failures}
        save_subscriptions(uow, ctx, [s for s in outcome.renewed if s.id not in failed])
        for sub_id, code, message in outcome.failures:
            uow.billing_runs.add_failure(run.id, run.tenant_id, sub_id, code, message[:1000])
        # Numbers last: the series counter is locked from here to commit, and workers sharing
        # the run queue on it, so everything that does not need a number is already written.
        finalized = invoicing.number_and_finalize(uow, ctx, fresh, outcome.due_days[: len(fresh)])
        if uow.invoices.add_many(finalized) != len(finalized):
            # A cycle appeared after we checked (another writer): the numbers just taken
            # would leave a gap, so undo the batch and take it one subscription at a time.
            raise Conflict("billing.cycle_invoiced_concurrently", "retrying one by one")
        invoicing.credit_negative_totals(uow, ctx, finalized)
        self._collect(uow, ctx, finalized)
        outcome.drafts = finalized

    def _without_existing(self, uow: UnitOfWork, outcome: BatchOutcome) -> list[InvoiceRecord]:
        """Drop planned invoices whose period was invoiced by an earlier, interrupted run."""
        ids = sorted({d.subscription_id for d in outcome.drafts if d.subscription_id})
        existing = uow.invoices.existing_cycles(ids) if ids else set()
        keep = [
            i
            for i, d in enumerate(outcome.drafts)
            if (d.subscription_id, d.cycle_start) not in existing
        ]
        outcome.due_days = [outcome.due_days[i] for i in keep]
        return [outcome.drafts[i] for i in keep]

    def _collect(self, uow: UnitOfWork, ctx: Context, invoices: list[InvoiceRecord]) -> None:
        owed = [i for i in invoices if i.amount_due_minor > 0]
        if not owed:
            return
        methods = uow.customers.collection_methods(ctx.tenant_id, [i.customer_id for i in owed])
        for invoice in owed:
            if methods.get(invoice.customer_id) == "charge_wallet":
                invoicing.pay_from_wallet(uow, ctx, invoice, required=False)

    # -- dunning ----------------------------------------------------------------------------
    def _dunning(self, run: BillingRunRecord, totals: RunTotals) -> None:
        after: str | None = None
        while True:
            with self._uow() as uow:
                ctx = self._context(uow, run.tenant_id)
                overdue = uow.invoices.overdue_subscriptions(
                    run.tenant_id, run.as_of, after, self._batch_size
                )
                for sub_id, oldest_due in overdue:
                    totals.transitions += self._dun_one(uow, ctx, run, sub_id, oldest_due)
                uow.commit()
            if len(overdue) < self._batch_size:
                return
            after = overdue[-1][0]

    def _dun_one(
        self,
        uow: UnitOfWork,
        ctx: Context,
        run: BillingRunRecord,
        sub_id: str,
        oldest_due: datetime,
    ) -> int:
        sub = uow.subscriptions.get(ctx.tenant_id, sub_id, for_update=True)
        if sub is None:
            return 0
        self._load_terms(uow, [sub])
        terms = self._terms[sub.terms_id]
        events = billing.dunning_events(sub.state.status, oldest_due, terms, ctx.tz, run.as_of)
        if not events:
            return 0
        result = apply_events(sub.state, events, run.as_of)
        save_subscriptions(
            uow, ctx, [replace(sub, state=result.state, updated_at=run.as_of)], at=run.as_of
        )
        return len(events)
