"""The billing events that enter the transparency log, and the one way services write them.

``post_journal`` and ``save_subscription(s)`` replace direct repository writes: the change and
its log entry land in the same transaction, or neither does. ``ledger verify`` checks the
reverse too (every journal entry has its log entry), so a forgotten call is found.

Records hold only what the customer or an auditor needs to recompute a charge, in the
engine-independent canonical form of ``ledger.entries``: money in minor units with its
currency, times as fixed-width UTC strings, enums as their values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from iptv_billing.domain.journal import JournalEntry
from iptv_billing.domain.subscription import SubscriptionState
from iptv_billing.ledger.entries import RECORD_VERSION, moment
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import LogDraft, StoredJournalEntry, SubscriptionRecord

JOURNAL_ENTRY = "journal_entry"
SUBSCRIPTION_STATE = "subscription_state"
TERMS_ACCEPTED = "terms_accepted"
KINDS = (JOURNAL_ENTRY, SUBSCRIPTION_STATE, TERMS_ACCEPTED)


def _opt_moment(at: datetime | None) -> str | None:
    return None if at is None else moment(at)


def journal_record(
    tenant_id: str, entry_id: str, entry: JournalEntry, reference_id: str | None, at: datetime
) -> dict[str, object]:
    postings = [(p.account, p.amount.currency.code, p.amount.minor) for p in entry.postings]
    stored = StoredJournalEntry(entry_id, entry.kind, entry.memo, reference_id, at, tuple(postings))
    return stored_journal_record(tenant_id, stored)


def stored_journal_record(tenant_id: str, entry: StoredJournalEntry) -> dict[str, object]:
    """The record of a journal entry, from what the database holds (audits compare the two)."""
    return {
        "v": RECORD_VERSION,
        "type": JOURNAL_ENTRY,
        "tenant": tenant_id,
        "entry": entry.id,
        "kind": entry.kind,
        "memo": entry.memo,
        "reference": entry.reference_id,
        "at": moment(entry.created_at),
        "postings": [
            {"account": account, "currency": currency, "minor": amount}
            for account, currency, amount in entry.postings
        ],
    }


def state_record(state: SubscriptionState) -> dict[str, object]:
    return {
        "status": state.status.value,
        "currency": state.currency,
        "terms": state.terms_hash,
        "pending_terms": state.pending_terms_hash,
        "anchor": moment(state.anchor),
        "period": {
            "index": state.period_index,
            "start": moment(state.current_period.start),
            "end": moment(state.current_period.end),
        },
        "trial_end": _opt_moment(state.trial_end),
        "cancel_at_period_end": state.cancel_at_period_end,
        "addons": [[code, quantity] for code, quantity in state.addons],
        "paused_at": _opt_moment(state.paused_at),
        "ended_at": _opt_moment(state.ended_at),
    }


def subscription_record(sub: SubscriptionRecord, at: datetime) -> dict[str, object]:
    return {
        "v": RECORD_VERSION,
        "type": SUBSCRIPTION_STATE,
        "tenant": sub.tenant_id,
        "subscription": sub.id,
        "customer": sub.customer_id,
        "plan": sub.plan_id,
        "at": moment(at),
        "state": state_record(sub.state),
    }


def terms_record(sub: SubscriptionRecord, terms_hash: str, at: datetime) -> dict[str, object]:
    return {
        "v": RECORD_VERSION,
        "type": TERMS_ACCEPTED,
        "tenant": sub.tenant_id,
        "subscription": sub.id,
        "customer": sub.customer_id,
        "terms": terms_hash,
        "at": moment(at),
    }


def journal_drafts(
    tenant_id: str, entries: Sequence[tuple[str, JournalEntry, str | None]], at: datetime
) -> list[LogDraft]:
    return [
        LogDraft(JOURNAL_ENTRY, entry_id, ref, journal_record(tenant_id, entry_id, e, ref, at), at)
        for entry_id, e, ref in entries
    ]


def subscription_drafts(subs: Sequence[SubscriptionRecord], at: datetime) -> list[LogDraft]:
    return [LogDraft(SUBSCRIPTION_STATE, s.id, s.id, subscription_record(s, at), at) for s in subs]


# -- the writes -------------------------------------------------------------------------------
def post_journal(
    uow: UnitOfWork, ctx: Context, entries: Sequence[tuple[str, JournalEntry, str | None]]
) -> None:
    """Append (entry id, entry, reference id) to the journal, and each to the log."""
    if not entries:
        return
    at = ctx.now()
    uow.journal.add(ctx.tenant_id, entries, at)
    uow.log.stage(ctx.tenant_id, journal_drafts(ctx.tenant_id, entries, at))


def add_subscription(uow: UnitOfWork, ctx: Context, sub: SubscriptionRecord) -> None:
    """A new subscription: its first state, and the customer's acceptance of its terms."""
    at = ctx.now()
    uow.subscriptions.add(sub)
    terms = _terms_draft(sub, sub.state.terms_hash, at)
    uow.log.stage(ctx.tenant_id, [*subscription_drafts([sub], at), terms])


def accept_terms(uow: UnitOfWork, ctx: Context, sub: SubscriptionRecord, terms_hash: str) -> None:
    """The customer agreed to other terms (a plan change), whenever they take effect."""
    uow.log.stage(ctx.tenant_id, [_terms_draft(sub, terms_hash, ctx.now())])


def save_subscriptions(
    uow: UnitOfWork, ctx: Context, subs: Sequence[SubscriptionRecord], at: datetime | None = None
) -> None:
    """Write new states (optimistic versions checked by the repository), each logged."""
    if not subs:
        return
    when = at or ctx.now()
    if len(subs) == 1:
        uow.subscriptions.update(subs[0])
    else:
        uow.subscriptions.update_many(subs)
    uow.log.stage(ctx.tenant_id, subscription_drafts(subs, when))


def _terms_draft(sub: SubscriptionRecord, terms_hash: str, at: datetime) -> LogDraft:
    return LogDraft(TERMS_ACCEPTED, sub.id, sub.id, terms_record(sub, terms_hash, at), at)
