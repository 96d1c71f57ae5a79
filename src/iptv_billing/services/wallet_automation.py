"""Wallet automation: the settings (low-balance threshold, auto top-up from a saved payment
method) and the recurring pass that notifies low balances and tops wallets up.

Auto top-up, per wallet, one transaction per step with the wallet row locked:

* start: when the available balance is under ``below``, no top-up is in flight and no
  decline's back-off runs, charge ``amount`` through the provider with the idempotency key
  ``auto_top_up:<wallet>:<attempt>`` and record a pending card payment for no invoice. The
  attempt counter moves only when that commits: a retried tick, or one that crashed between
  the charge and the commit, sends the same key and the provider returns the same charge;
* settle: the provider confirms at once or later (``payments.reconcile_pending``, which the
  tick runs first): the payment credits the wallet (``payment_received`` with the excess to
  the wallet), then this pass closes the attempt with an ``auto_topped_up`` notice;
* decline: the failed payment is kept, an ``auto_top_up_failed`` notice is logged and the
  wallet backs off (``TOP_UP_BACKOFF`` of tenant time, a settings change, or the wallet
  having been back above ``below``), so a declined card is not charged every tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from iptv_billing.domain.errors import BillingError, Conflict, InvariantViolated
from iptv_billing.domain.money import Money, currency
from iptv_billing.domain.wallet_automation import (
    AUTO_TOP_UP_FAILED,
    AUTO_TOPPED_UP,
    check_auto_top_up,
    check_threshold,
    parse_amount,
    retry_after_decline,
    top_up_due,
)
from iptv_billing.ledger.entries import RECORD_VERSION, moment
from iptv_billing.services import invoicing, payments
from iptv_billing.services.clock import Clock
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.customers import get_customer
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import UnitOfWork, UnitOfWorkFactory
from iptv_billing.services.providers import PaymentProvider
from iptv_billing.services.records import LogDraft, PaymentRecord, WalletRecord
from iptv_billing.services.wallet_notices import NOTICE_BATCH, notify_low_balances, stage_notice

WALLET_SETTINGS = "wallet_settings"  # log kind: a wallet's automation settings changed
log = logging.getLogger(__name__)

TOP_UP_BATCH = 200
AUTO_TOP_UP_REFERENCE = "auto_top_up"


# -- settings ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AutoTopUpSettings:
    below: str  # decimal strings in the wallet's currency
    amount: str
    payment_method: str


@dataclass(frozen=True, slots=True)
class ConfigureWallet:
    """Only the settings flagged ``set_*`` change; a None value clears that setting."""

    customer_id: str
    currency: str
    set_threshold: bool = False
    low_balance_threshold: str | None = None
    set_auto_top_up: bool = False
    auto_top_up: AutoTopUpSettings | None = None


def configure_wallet(uow: UnitOfWork, ctx: Context, cmd: ConfigureWallet) -> WalletRecord:
    """Change a wallet's automation settings, creating the wallet if missing."""
    get_customer(uow, ctx, cmd.customer_id)
    code = currency(cmd.currency.upper()).code
    threshold = None
    if cmd.set_threshold and cmd.low_balance_threshold is not None:
        amount = parse_amount(cmd.low_balance_threshold, code, "low_balance_threshold")
        threshold = check_threshold(amount).minor
    auto = None
    if cmd.set_auto_top_up and cmd.auto_top_up is not None:
        given = cmd.auto_top_up
        auto = check_auto_top_up(
            parse_amount(given.below, code, "auto_top_up.below"),
            parse_amount(given.amount, code, "auto_top_up.amount"),
            given.payment_method,
        )
    created = invoicing.ensure_wallet(uow, ctx, cmd.customer_id, code)
    wallet = _locked(uow, ctx, created.id)
    changed = wallet
    if cmd.set_threshold and threshold != wallet.low_balance_threshold_minor:
        # A new threshold is a new watch: a wallet already under it is notified once more.
        changed = replace(
            changed, low_balance_threshold_minor=threshold, low_balance_notified=False
        )
    if cmd.set_auto_top_up:
        # Any change of the auto top-up ends a decline's back-off (a new card is worth a try).
        changed = replace(
            changed,
            auto_top_up_below_minor=None if auto is None else auto.below.minor,
            auto_top_up_amount_minor=None if auto is None else auto.amount.minor,
            auto_top_up_payment_method=None if auto is None else auto.payment_method,
            auto_top_up_retry_at=None,
        )
    if changed != wallet:
        uow.wallet_automation.save_settings(changed)
        _log_settings(uow, ctx, changed)
    return _locked(uow, ctx, wallet.id)


def _log_settings(uow: UnitOfWork, ctx: Context, wallet: WalletRecord) -> None:
    """The settings as they now stand, in the log: who may be charged automatically, and
    when, is part of what the operator answers for."""
    at = ctx.now()
    record = {
        "v": RECORD_VERSION,
        "type": WALLET_SETTINGS,
        "tenant": ctx.tenant_id,
        "wallet": wallet.id,
        "customer": wallet.customer_id,
        "currency": wallet.currency,
        "low_balance_threshold_minor": wallet.low_balance_threshold_minor,
        "auto_top_up_below_minor": wallet.auto_top_up_below_minor,
        "auto_top_up_amount_minor": wallet.auto_top_up_amount_minor,
        "auto_top_up_payment_method": wallet.auto_top_up_payment_method,
        "at": moment(at),
    }
    uow.log.stage(
        ctx.tenant_id, [LogDraft(WALLET_SETTINGS, wallet.id, wallet.customer_id, record, at)]
    )


def _locked(uow: UnitOfWork, ctx: Context, wallet_id: str) -> WalletRecord:
    wallet = uow.wallet_automation.lock(ctx.tenant_id, wallet_id)
    if wallet is None:  # pragma: no cover - ensured or read in this transaction
        raise InvariantViolated(f"wallet {wallet_id} vanished")
    return wallet


# -- auto top-up ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Step:
    charged: bool = False  # a charge was made in this step
    outcome: str | None = None  # succeeded | failed: an attempt was closed in this step


def top_up_step(uow: UnitOfWork, ctx: Context, provider: PaymentProvider, wallet_id: str) -> Step:
    """One step for one wallet: close the attempt in flight once the provider settled it,
    else start one if due (closed at once when the provider answers at once)."""
    wallet = uow.wallet_automation.lock(ctx.tenant_id, wallet_id)
    if wallet is None:
        return Step()
    if wallet.auto_top_up_payment_id is not None:
        # Read without a lock: reconciliation locks the payment, then the wallet.
        payment = uow.payments.get(ctx.tenant_id, wallet.auto_top_up_payment_id)
        if payment is not None and payment.status == "pending":
            return Step()  # never a second top-up while one is in flight
        return Step(outcome=_close(uow, ctx, wallet, wallet.auto_top_up_payment_id, payment))
    below, amount, method = (
        wallet.auto_top_up_below_minor,
        wallet.auto_top_up_amount_minor,
        wallet.auto_top_up_payment_method,
    )
    now = ctx.now()
    if amount is None or method is None:
        return Step()
    if not top_up_due(wallet.available_minor, below, None, wallet.auto_top_up_retry_at, now):
        return Step()
    attempt = wallet.auto_top_up_attempt + 1
    cmd = payments.ChargeToWallet(
        customer_id=wallet.customer_id,
        amount=Money.from_minor(amount, wallet.currency),
        payment_method=method,
        request_key=f"{AUTO_TOP_UP_REFERENCE}:{wallet.id}:{attempt}",
        reference=AUTO_TOP_UP_REFERENCE,
    )
    payment = payments.charge_to_wallet(uow, ctx, provider, cmd)
    if not uow.wallet_automation.start_top_up(wallet.id, attempt, payment.id):
        raise Conflict("wallet.auto_top_up_raced", f"wallet {wallet.id} moved on meanwhile")
    if payment.status == "pending":
        return Step(charged=True)
    return Step(charged=True, outcome=_close(uow, ctx, wallet, payment.id, payment))


def _close(
    uow: UnitOfWork,
    ctx: Context,
    wallet: WalletRecord,
    payment_id: str,
    payment: PaymentRecord | None,
) -> str | None:
    succeeded = payment is not None and payment.status == "succeeded"
    retry_at = None if succeeded else retry_after_decline(ctx.now())
    if not uow.wallet_automation.finish_top_up(wallet.id, payment_id, retry_at):
        return None
    if payment is None:  # pragma: no cover - payments are never deleted
        return "failed"
    now = _locked(uow, ctx, wallet.id)  # credited by the payment when it succeeded
    amount = {"payment": payment.id, "amount": payment.amount_minor}
    if succeeded:
        stage_notice(uow, ctx, now, AUTO_TOPPED_UP, **amount)
        return "succeeded"
    failure = {"failure_code": payment.failure_code, "retry_at": moment(retry_at or ctx.now())}
    stage_notice(uow, ctx, now, AUTO_TOP_UP_FAILED, **amount, **failure)
    return "failed"


# -- the recurring pass -----------------------------------------------------------------------
@dataclass
class AutomationReport:
    notices: int = 0  # low-balance notices
    top_ups_charged: int = 0
    top_ups_succeeded: int = 0
    top_ups_failed: int = 0
    errors: int = 0


class WalletAutomation:
    """What ``RecurringJobs.tick`` runs for each tenant, on the tenant's clock: auto top-ups
    first (a card that confirms at once spares the customer a low-balance notice), then
    low-balance notices. One wallet's trouble never stops the others."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        provider: PaymentProvider,
        is_transient: Callable[[BaseException], bool] = lambda _error: False,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._provider = provider
        self._is_transient = is_transient

    def run(self, tenant_id: str) -> AutomationReport:
        report = AutomationReport()
        self._top_ups(tenant_id, report)
        while True:
            with self._uow() as uow:
                ctx = load_context(uow, tenant_id, self._clock, self._ids)
                read, sent = notify_low_balances(uow, ctx)
                uow.commit()
            report.notices += sent
            if read < NOTICE_BATCH:
                return report

    def _top_ups(self, tenant_id: str, report: AutomationReport) -> None:
        with self._uow() as uow:
            ctx = load_context(uow, tenant_id, self._clock, self._ids)
            uow.wallet_automation.end_recovered_backoffs(tenant_id)
            candidates = uow.wallet_automation.top_up_candidates(tenant_id, ctx.now(), TOP_UP_BATCH)
            uow.commit()
        # At most one step per wallet and tick; the rest of a large backlog waits a tick.
        for wallet_id in candidates:
            try:
                with self._uow() as uow:
                    ctx = load_context(uow, tenant_id, self._clock, self._ids)
                    step = top_up_step(uow, ctx, self._provider, wallet_id)
                    uow.commit()
            except BillingError as error:
                report.errors += 1
                log.warning("auto top-up of wallet %s failed: %s", wallet_id, error)
                continue
            except Exception as error:
                if not self._is_transient(error):
                    raise
                report.errors += 1  # a lost race: the next tick tries again
                continue
            report.top_ups_charged += step.charged
            report.top_ups_succeeded += step.outcome == "succeeded"
            report.top_ups_failed += step.outcome == "failed"
