"""Following the log: turning a target's next log entries into deliveries (coalesced syncs
for panels, one event per entry for webhooks) and deriving the webhook events. Webhooks also
follow ``wallet_notice`` entries (customer-level events, no subscription); panels do not."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from iptv_billing.domain.errors import Conflict
from iptv_billing.domain.money import Money
from iptv_billing.domain.wallet_automation import AUTO_TOP_UP_FAILED, AUTO_TOPPED_UP, LOW_BALANCE
from iptv_billing.services.context import Context
from iptv_billing.services.log_records import SUBSCRIPTION_STATE
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.provisioning._common import (
    CREDENTIAL_CHANGED,
    FOLLOW_LIMIT,
    FOLLOWED_KINDS,
    PANEL_CREDENTIALS,
    PENDING,
    SUBSCRIPTION_ADDONS_CHANGED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_PLAN_CHANGED,
    SUBSCRIPTION_RENEWED,
    SUBSCRIPTION_STATUS_CHANGED,
    SUBSCRIPTION_UPDATED,
    WALLET_AUTO_TOP_UP_FAILED,
    WALLET_AUTO_TOPPED_UP,
    WALLET_LOW_BALANCE,
    WEBHOOK_FOLLOWED_KINDS,
    XTREAM,
    XTREAM_SYNC,
)
from iptv_billing.services.records import (
    LogEntryRecord,
    ProvisioningDeliveryRecord,
    ProvisioningTargetRecord,
)
from iptv_billing.services.wallet_notices import WALLET_NOTICE


@dataclass(frozen=True, slots=True)
class FollowResult:
    entries: int  # log entries read
    queued: int  # deliveries added
    coalesced: int  # changes folded into an open sync
    cursor: int


def follow(
    uow: UnitOfWork, ctx: Context, target: ProvisioningTargetRecord, limit: int = FOLLOW_LIMIT
) -> FollowResult:
    """Turn the target's next log entries into deliveries and move its cursor, all in this
    unit of work (commit it). ``target`` must be current and locked (``get_target(lock=True)``);
    ``ctx.clock`` is the worker's clock, which deliveries are scheduled on.

    Raises ``Conflict`` when the cursor moved meanwhile (another worker followed first): roll
    back, nothing is lost.
    """
    tenant_id = ctx.tenant_id
    head = uow.log.size(tenant_id)
    kinds = FOLLOWED_KINDS if target.kind == XTREAM else WEBHOOK_FOLLOWED_KINDS
    changes = uow.log.changes_since(tenant_id, target.cursor, kinds, limit)
    cursor = changes[-1][0] + 1 if changes else target.cursor
    if len(changes) < limit:
        # Every entry below ``head`` had committed before the read above: none of ours is left.
        cursor = max(cursor, head)
    queued = coalesced = 0
    if changes:
        if target.kind == XTREAM:
            queued, coalesced = _queue_syncs(uow, ctx, target, changes)
        else:
            queued = _queue_events(uow, ctx, target, changes)
    if cursor != target.cursor and not uow.provisioning.move_cursor(
        target.id, target.cursor, cursor
    ):
        raise Conflict("provisioning.cursor_moved", "another worker followed this target first")
    return FollowResult(len(changes), queued, coalesced, cursor)


def _queue_syncs(
    uow: UnitOfWork,
    ctx: Context,
    target: ProvisioningTargetRecord,
    changes: Sequence[tuple[int, str, str | None]],
) -> tuple[int, int]:
    about = sorted({a for _, _, a in changes if a is not None})
    creds = uow.credentials.of_subscriptions(ctx.tenant_id, about)
    on_panels = {c.subscription_id for c in creds if c.kind in PANEL_CREDENTIALS}
    latest: dict[str, int] = {}
    for idx, _, sub_id in changes:
        if sub_id in on_panels:
            latest[sub_id] = idx
    existing = uow.provisioning.open_syncs(target.id, sorted(latest))
    now = ctx.now()
    new: list[ProvisioningDeliveryRecord] = []
    for sub_id, idx in sorted(latest.items(), key=lambda item: item[1]):
        if sub_id in existing and uow.provisioning.retarget(existing[sub_id].id, idx):
            continue  # the open sync will push this change too
        payload = {"subscription": sub_id}
        new.append(_delivery(ctx, target, sub_id, XTREAM_SYNC, idx, payload, now))
    uow.provisioning.add_deliveries(new)
    return len(new), len(latest) - len(new)


def _queue_events(
    uow: UnitOfWork,
    ctx: Context,
    target: ProvisioningTargetRecord,
    changes: Sequence[tuple[int, str, str | None]],
) -> int:
    wanted = {idx for idx, _, _ in changes}
    about = sorted({a for _, _, a in changes if a is not None})
    previous: dict[str, dict[str, Any]] = {}  # subscription -> its last logged record so far
    now = ctx.now()
    new: list[ProvisioningDeliveryRecord] = []
    for entry in uow.log.entries_about(ctx.tenant_id, about):  # in log order
        if entry.kind not in WEBHOOK_FOLLOWED_KINDS or entry.about_id is None:
            continue
        if entry.kind == WALLET_NOTICE:  # about a customer: no subscription
            if entry.idx in wanted:
                event_type, data = wallet_event(json.loads(entry.record))
                data = _with_entry(data, entry)
                new.append(_delivery(ctx, target, None, event_type, entry.idx, data, now))
        elif entry.kind == SUBSCRIPTION_STATE:
            record = json.loads(entry.record)
            if entry.idx in wanted:
                event_type, data = subscription_event(record, previous.get(entry.about_id))
                data = _with_entry(data, entry)
                new.append(_delivery(ctx, target, entry.about_id, event_type, entry.idx, data, now))
            previous[entry.about_id] = record
        elif entry.idx in wanted:
            data = _with_entry(credential_event(json.loads(entry.record)), entry)
            new.append(
                _delivery(ctx, target, entry.about_id, CREDENTIAL_CHANGED, entry.idx, data, now)
            )
    new.sort(key=lambda d: d.log_index)
    uow.provisioning.add_deliveries(new)
    return len(new)


def subscription_event(
    record: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The event type of a ``subscription_state`` record, compared with the subscription's
    previous one, and the event's data.

    One type per entry, the first that applies: ``created`` (no previous state),
    ``status_changed`` (with ``from``/``to``), ``plan_changed`` (the terms hash changed; with
    ``previous_terms``), ``renewed`` (the period index went up), ``addons_changed``, and
    ``updated`` for anything else (cancellation at period end set or lifted, a plan change
    scheduled). ``changes`` names every field of ``state`` that differs.
    """
    state = dict(record["state"])
    data: dict[str, Any] = {
        "tenant": record.get("tenant"),
        "subscription": record["subscription"],
        "customer": record.get("customer"),
        "plan": record.get("plan"),
        "at": record.get("at"),
        "state": state,
    }
    if previous is None:
        data["changes"] = []
        return SUBSCRIPTION_CREATED, data
    before = previous["state"]
    data["changes"] = sorted(key for key in state if state.get(key) != before.get(key))
    if state["status"] != before["status"]:
        data["from"], data["to"] = before["status"], state["status"]
        return SUBSCRIPTION_STATUS_CHANGED, data
    if state["terms"] != before["terms"]:
        data["previous_terms"] = before["terms"]
        return SUBSCRIPTION_PLAN_CHANGED, data
    if state["period"]["index"] > before["period"]["index"]:
        return SUBSCRIPTION_RENEWED, data
    if state["addons"] != before["addons"]:
        return SUBSCRIPTION_ADDONS_CHANGED, data
    return SUBSCRIPTION_UPDATED, data


def credential_event(record: Mapping[str, Any]) -> dict[str, Any]:
    """The data of ``credential.changed``: the credential's login and state, never a secret
    (log records hold none). ``change`` is issued, registered, enabled, disabled,
    secret_reset or removed."""
    return {
        "tenant": record.get("tenant"),
        "subscription": record["subscription"],
        "credential": record["credential"],
        "kind": record["kind"],
        "login": record["login"],
        "label": record.get("label"),
        "enabled": record["enabled"],
        "removed": record["removed"],
        "change": record["event"],
        "at": record.get("at"),
    }


_WALLET_EVENTS = {
    LOW_BALANCE: WALLET_LOW_BALANCE,
    AUTO_TOP_UP_FAILED: WALLET_AUTO_TOP_UP_FAILED,
    AUTO_TOPPED_UP: WALLET_AUTO_TOPPED_UP,
}
_WALLET_MONEY = ("available", "threshold", "amount")


def wallet_event(record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The event of a ``wallet_notice`` record: ``wallet.low_balance`` (with ``threshold``),
    ``wallet.auto_top_up_failed`` (``payment``, ``amount``, ``failure_code``, ``retry_at``)
    or ``wallet.auto_topped_up`` (``payment``, ``amount``). Money is given as
    ``{"amount", "currency", "minor"}`` in the wallet's currency; ``available`` is what can
    be spent (balance minus held), after the change."""
    code = record["currency"]
    data: dict[str, Any] = {
        key: value for key, value in record.items() if key not in ("v", "type", "notice")
    }
    for key in _WALLET_MONEY:
        if isinstance(record.get(key), int):
            data[key] = _money(record[key], code)
    return _WALLET_EVENTS[record["notice"]], data


def _money(minor: int, code: str) -> dict[str, Any]:
    money = Money.from_minor(minor, code)
    return {"amount": format(money.amount, "f"), "currency": code, "minor": minor}


def _with_entry(data: dict[str, Any], entry: LogEntryRecord) -> dict[str, Any]:
    return {**data, "log_index": entry.idx}


def _delivery(
    ctx: Context,
    target: ProvisioningTargetRecord,
    subscription_id: str | None,
    event_type: str,
    log_index: int,
    data: Mapping[str, Any],
    now: datetime,
) -> ProvisioningDeliveryRecord:
    return ProvisioningDeliveryRecord(
        id=ctx.ids.new("pdl"),
        tenant_id=ctx.tenant_id,
        target_id=target.id,
        subscription_id=subscription_id,
        event_type=event_type,
        log_index=log_index,
        payload=json.dumps(data, sort_keys=True, separators=(",", ":")),
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        locked_until=None,
        claim_token=None,
        last_error=None,
        created_at=now,
    )
