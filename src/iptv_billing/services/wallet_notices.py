"""Wallet notices: log records about a customer's wallet that operators are told of (webhooks).

A notice is a ``wallet_notice`` log entry (``about`` = the customer), staged in the same
transaction as the wallet flag or payment it reports, so the log, which webhook targets
follow, is the outbox: no notice is lost or sent for a change that rolled back.

Low balance is found by a recurring pass rather than by hooks in every spending path (holds,
debits, PPV purchases, invoices paid from the wallet are written by several services): one
notice per crossing, flagged on the wallet, the flag lowered once the wallet is back at or
above its threshold.
"""

from __future__ import annotations

from datetime import datetime

from iptv_billing.domain.wallet_automation import LOW_BALANCE
from iptv_billing.ledger.entries import RECORD_VERSION, moment
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import LogDraft, WalletRecord

WALLET_NOTICE = "wallet_notice"  # log kind; subject = the wallet, about = the customer
NOTICE_BATCH = 500


def notice_record(
    wallet: WalletRecord, notice: str, at: datetime, **extra: object
) -> dict[str, object]:
    """Money in minor units of ``currency``; ``available`` is balance minus what is held."""
    return {
        "v": RECORD_VERSION,
        "type": WALLET_NOTICE,
        "tenant": wallet.tenant_id,
        "customer": wallet.customer_id,
        "wallet": wallet.id,
        "currency": wallet.currency,
        "notice": notice,
        "available": wallet.available_minor,
        "at": moment(at),
        **extra,
    }


def stage_notice(
    uow: UnitOfWork, ctx: Context, wallet: WalletRecord, notice: str, **extra: object
) -> None:
    at = ctx.now()
    record = notice_record(wallet, notice, at, **extra)
    uow.log.stage(
        ctx.tenant_id, [LogDraft(WALLET_NOTICE, wallet.id, wallet.customer_id, record, at)]
    )


def notify_low_balances(
    uow: UnitOfWork, ctx: Context, limit: int = NOTICE_BATCH
) -> tuple[int, int]:
    """Lower the flag of recovered wallets, then notify up to ``limit`` new crossings (each
    flag set by a guarded update, so concurrent passes notify once). (wallets read, notices)."""
    repo = uow.wallet_automation
    repo.clear_recovered(ctx.tenant_id)
    due = repo.low_balance_due(ctx.tenant_id, limit)
    sent = 0
    for wallet in due:
        flagged = repo.mark_notified(wallet.id)
        if flagged is None:  # another pass notified it, or it was topped up meanwhile
            continue
        stage_notice(uow, ctx, flagged, LOW_BALANCE, threshold=flagged.low_balance_threshold_minor)
        sent += 1
    return len(due), sent
