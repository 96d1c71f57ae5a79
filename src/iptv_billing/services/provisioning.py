"""Provisioning: Xtream panels and webhook receivers kept in step with billing.

**The log is the outbox.** Every subscription change (billing runs included) and every
credential change is a transparency-log entry committed atomically with the change, and log
indices commit in order. So billing code has no provisioning hooks: each target follows its
tenant's log with a cursor (``follow``), turning entries into deliveries in the transaction
that moves the cursor. A worker (``deliver_due``) then claims due deliveries in one short
transaction, talks to the panel or receiver with no transaction open, and records the attempt
and the new status in a second short transaction.

Semantics:

* at least once: a delivery is retried until delivered (``domain.provisioning`` schedule),
  then ``dead``; a crashed worker's claim is taken over when its lease runs out. Receivers
  deduplicate on the event id (the delivery id, sent as ``Webhook-Id`` and ``id``);
* webhooks: one delivery per log entry, sent per target in log order, one at a time: while
  the oldest open event of a target waits for a retry, later ones wait too (``dead`` and
  ``rejected`` ones no longer hold the queue; a replayed one is sent before newer ones);
* Xtream panels: one ``xtream.sync`` per subscription, coalesced: while one is open
  (pending or failed) a new change only points it at the newer entry. A sync pushes the
  subscription's *current* state (read when it runs) for each of its lines and boxes; when a
  change lands while a sync is in flight, the sync runs again.

Deliveries keep their own times on the worker's clock (real time), not the tenant's test
clock: retries and signatures are about the real world.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from iptv_billing.domain.catalog import CODE_PATTERN, BillingTerms
from iptv_billing.domain.entitlement import entitlement_of
from iptv_billing.domain.errors import (
    BillingError,
    Conflict,
    InvalidInput,
    InvariantViolated,
    NotFound,
)
from iptv_billing.domain.provisioning import (
    MIN_SECRET_BYTES,
    Outcome,
    PanelLine,
    next_attempt,
    panel_line_for,
)
from iptv_billing.services.clock import Clock
from iptv_billing.services.context import Context
from iptv_billing.services.credentials import ACCESS_CREDENTIAL, DEVICE, LINE, RandomBytes, Sealer
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.log_records import SUBSCRIPTION_STATE
from iptv_billing.services.ports import UnitOfWork, UnitOfWorkFactory
from iptv_billing.services.records import (
    CredentialRecord,
    LogEntryRecord,
    Page,
    PanelLineRecord,
    ProvisioningAttemptRecord,
    ProvisioningDeliveryRecord,
    ProvisioningTargetRecord,
)

log = logging.getLogger(__name__)

XTREAM, WEBHOOK = "xtream", "webhook"
TARGET_KINDS = (XTREAM, WEBHOOK)
PENDING, DELIVERED, FAILED, DEAD, REJECTED = "pending", "delivered", "failed", "dead", "rejected"
STATUSES = (PENDING, DELIVERED, FAILED, DEAD, REJECTED)
OPEN_STATUSES = (PENDING, FAILED)
FOLLOWED_KINDS = (SUBSCRIPTION_STATE, ACCESS_CREDENTIAL)
PANEL_CREDENTIALS = (LINE, DEVICE)  # tokens do not exist on Xtream panels

# Event types.
XTREAM_SYNC = "xtream.sync"
SUBSCRIPTION_CREATED = "subscription.created"
SUBSCRIPTION_RENEWED = "subscription.renewed"
SUBSCRIPTION_STATUS_CHANGED = "subscription.status_changed"
SUBSCRIPTION_PLAN_CHANGED = "subscription.plan_changed"
SUBSCRIPTION_ADDONS_CHANGED = "subscription.addons_changed"
SUBSCRIPTION_UPDATED = "subscription.updated"
CREDENTIAL_CHANGED = "credential.changed"
WEBHOOK_EVENTS = (
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_RENEWED,
    SUBSCRIPTION_STATUS_CHANGED,
    SUBSCRIPTION_PLAN_CHANGED,
    SUBSCRIPTION_ADDONS_CHANGED,
    SUBSCRIPTION_UPDATED,
    CREDENTIAL_CHANGED,
)

WEBHOOK_SECRET_BYTES = 32
WEBHOOK_SECRET_PREFIX = "whsec_"
FOLLOW_LIMIT = 500  # log entries read per follow
DEFAULT_BATCH = 100  # deliveries claimed per round
PER_TARGET = 20  # webhook events of one target claimed at once (sent one after another)
# Longer than the worst panel sync (a password change, info, create, edit: 10 s each).
DEFAULT_LEASE = timedelta(minutes=2)
_MAX_NAME = 200
_MAX_URL = 1000
_MAX_SECRET = 200
_MAX_MAP_CODES = 1000
_MAX_BOUQUETS = 1000
_MAX_BOUQUET_ID = 2**31 - 1
_MAX_TEXT = 500
_URL = re.compile(r"https?://[^\s/?#@]+(/[^\s?#]*)?(\?[^\s#]*)?")
_XTREAM_URL = re.compile(r"https?://[^\s/?#@]+(/[^\s?#]*)?")


# -- transports (what adapters/panels offer) --------------------------------------------------
class SendResult(Protocol):
    """One webhook POST as the sender reports it (``adapters.panels.DeliveryResult``)."""

    @property
    def status(self) -> int | None: ...
    @property
    def outcome(self) -> Outcome: ...
    @property
    def response_excerpt(self) -> str: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def error(self) -> str | None: ...


class WebhookTransport(Protocol):
    """Sends one signed event (``adapters.panels.WebhookSender``); never raises for network
    trouble, which comes back as ``Outcome.RETRY``."""

    def send(
        self,
        url: str,
        secret: bytes,
        event_id: str,
        event_type: str,
        payload: Mapping[str, object],
        at_unix: int,
        *,
        created_unix: int | None = None,
    ) -> SendResult: ...


@dataclass(frozen=True, slots=True)
class LineSync:
    """What one line's sync came to. ``detail`` is for the delivery log (what was done, or
    the panel's error); neither it nor ``error`` (an error code) ever holds a secret."""

    outcome: Outcome
    status: int | None = None
    detail: str = ""
    error: str | None = None


class PanelTransport(Protocol):
    """Makes a panel's line match ``line``, idempotently. ``previous_password`` is the one
    the panel last accepted for it when that differs: Xtream finds a line by username *and*
    password, so the transport first changes the password with the old one."""

    def sync_line(
        self, url: str, api_pass: str, line: PanelLine, previous_password: str | None
    ) -> LineSync: ...


@dataclass(frozen=True, slots=True)
class Transports:
    panel: PanelTransport
    webhook: WebhookTransport


# -- targets ----------------------------------------------------------------------------------
def create_target(
    uow: UnitOfWork,
    ctx: Context,
    sealer: Sealer,
    random_bytes: RandomBytes,
    kind: str,
    name: str,
    url: str,
    secret: str | None,
    bouquet_map: Mapping[str, Sequence[int]] | None,
    *,
    from_beginning: bool | None = None,
) -> tuple[ProvisioningTargetRecord, str | None]:
    """A new target, and the webhook signing secret when it was generated here (shown once).

    Xtream: ``secret`` is the panel's ``api_pass`` (required), ``bouquet_map`` maps our
    package codes to the panel's bouquet ids. Webhooks: ``secret`` is the signing secret
    (16+ characters), generated (``whsec_`` + 32 random bytes) when absent; no bouquet map.
    ``from_beginning`` (default: True for Xtream, False for webhooks) starts the target at
    the log's first entry, so a new panel receives every existing line, rather than at its
    end (only changes from now on).
    """
    if kind not in TARGET_KINDS:
        raise InvalidInput("provisioning.invalid_kind", f"kind is one of {', '.join(TARGET_KINDS)}")
    name = _check_name(name)
    url = _check_url(kind, url)
    generated: str | None = None
    if kind == XTREAM:
        if secret is None:
            raise InvalidInput("provisioning.secret_required", "an Xtream panel needs its api_pass")
        secret = _check_secret(secret, 1)
        mapping = _check_bouquet_map(bouquet_map or {})
    else:
        if bouquet_map:
            raise InvalidInput(
                "provisioning.bouquet_map_not_allowed", "only Xtream targets map bouquets"
            )
        mapping = None
        if secret is None:
            generated = secret = new_webhook_secret(random_bytes)
        secret = _check_secret(secret, MIN_SECRET_BYTES)
    start = (kind == XTREAM) if from_beginning is None else from_beginning
    now = ctx.now()
    target_id = ctx.ids.new("ptg")
    record = ProvisioningTargetRecord(
        id=target_id,
        tenant_id=ctx.tenant_id,
        kind=kind,
        name=name,
        url=url,
        sealed_secret=sealer.seal(secret, target_id),
        bouquet_map=mapping,
        enabled=True,
        cursor=0 if start else uow.log.size(ctx.tenant_id),
        created_at=now,
        updated_at=now,
    )
    uow.provisioning.add_target(record)
    return record, generated


def new_webhook_secret(random_bytes: RandomBytes) -> str:
    """``whsec_`` and 32 random bytes, base64url without padding; the HMAC key is the whole
    string's ASCII bytes."""
    raw = base64.urlsafe_b64encode(random_bytes(WEBHOOK_SECRET_BYTES)).decode("ascii")
    return WEBHOOK_SECRET_PREFIX + raw.rstrip("=")


def update_target(
    uow: UnitOfWork,
    ctx: Context,
    sealer: Sealer,
    target_id: str,
    *,
    name: str | None = None,
    url: str | None = None,
    secret: str | None = None,
    bouquet_map: Mapping[str, Sequence[int]] | None = None,
) -> ProvisioningTargetRecord:
    """Rename, move, re-key or re-map a target (what is None stays). Deliveries already
    queued use the new values when they run; replay rejected ones after fixing a mapping."""
    target = get_target(uow, ctx, target_id)
    changed = target
    if name is not None:
        changed = replace(changed, name=_check_name(name))
    if url is not None:
        changed = replace(changed, url=_check_url(target.kind, url))
    if secret is not None:
        least = 1 if target.kind == XTREAM else MIN_SECRET_BYTES
        changed = replace(
            changed, sealed_secret=sealer.seal(_check_secret(secret, least), target.id)
        )
    if bouquet_map is not None:
        if target.kind != XTREAM:
            raise InvalidInput(
                "provisioning.bouquet_map_not_allowed", "only Xtream targets map bouquets"
            )
        changed = replace(changed, bouquet_map=_check_bouquet_map(bouquet_map))
    if changed == target:
        return target
    changed = replace(changed, updated_at=ctx.now())
    uow.provisioning.update_target(changed)
    return changed


def get_target(uow: UnitOfWork, ctx: Context, target_id: str) -> ProvisioningTargetRecord:
    target = uow.provisioning.get_target(ctx.tenant_id, target_id)
    if target is None:
        raise NotFound("provisioning_target.not_found", f"no provisioning target {target_id}")
    return target


def list_targets(
    uow: UnitOfWork, ctx: Context, limit: int, after: str | None
) -> Page[ProvisioningTargetRecord]:
    return uow.provisioning.list_targets(ctx.tenant_id, limit, after)


def set_enabled(
    uow: UnitOfWork, ctx: Context, target_id: str, enabled: bool
) -> ProvisioningTargetRecord:
    """A disabled target reads no log and sends nothing; enabled again, it catches up from
    where its cursor stopped (nothing is lost meanwhile)."""
    target = get_target(uow, ctx, target_id)
    if target.enabled == enabled:
        return target
    changed = replace(target, enabled=enabled, updated_at=ctx.now())
    uow.provisioning.update_target(changed)
    return changed


def bouquet_map_of(target: ProvisioningTargetRecord) -> dict[str, list[int]]:
    if target.bouquet_map is None:
        return {}
    mapping: dict[str, list[int]] = json.loads(target.bouquet_map)
    return mapping


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= _MAX_NAME or not name.isprintable():
        raise InvalidInput("provisioning.invalid_name", f"a name is 1-{_MAX_NAME} characters")
    return name


def _check_url(kind: str, url: object) -> str:
    pattern = _XTREAM_URL if kind == XTREAM else _URL
    if (
        not isinstance(url, str)
        or len(url) > _MAX_URL
        or not url.isascii()
        or not url.isprintable()
        or not pattern.fullmatch(url)
    ):
        what = "the folder holding api.php, without query" if kind == XTREAM else "a URL"
        raise InvalidInput("provisioning.invalid_url", f"an http(s) URL is expected: {what}")
    return url


def _check_secret(secret: object, least: int) -> str:
    if (
        not isinstance(secret, str)
        or not least <= len(secret) <= _MAX_SECRET
        or not secret.isascii()
        or not secret.isprintable()
        or " " in secret
    ):
        raise InvalidInput(
            "provisioning.invalid_secret",
            f"a secret is {least}-{_MAX_SECRET} printable ASCII characters, no spaces",
        )
    return secret


def _check_bouquet_map(mapping: object) -> str:
    """Canonical JSON of ``{package code: [bouquet id, ...]}`` (ids sorted, unique)."""

    def bad(why: str) -> InvalidInput:
        return InvalidInput("provisioning.invalid_bouquet_map", f"bouquet map: {why}")

    if not isinstance(mapping, Mapping):
        raise bad("an object of package code to bouquet ids")
    if len(mapping) > _MAX_MAP_CODES:
        raise bad(f"at most {_MAX_MAP_CODES} packages")
    canonical: dict[str, list[int]] = {}
    for code, ids in mapping.items():
        if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
            raise bad(f"not a package code: {code!r}")
        if isinstance(ids, str | bytes) or not isinstance(ids, Sequence):
            raise bad(f"{code}: a list of bouquet ids")
        if len(ids) > _MAX_BOUQUETS:
            raise bad(f"{code}: at most {_MAX_BOUQUETS} bouquets")
        for value in ids:
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 1 <= value <= _MAX_BOUQUET_ID
            ):
                raise bad(f"{code}: not a bouquet id: {value!r}")
        canonical[code] = sorted(set(ids))
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"))


# -- following the log ------------------------------------------------------------------------
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
    changes = uow.log.changes_since(tenant_id, target.cursor, FOLLOWED_KINDS, limit)
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
        if entry.kind not in FOLLOWED_KINDS or entry.about_id is None:
            continue
        if entry.kind == SUBSCRIPTION_STATE:
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


def _with_entry(data: dict[str, Any], entry: LogEntryRecord) -> dict[str, Any]:
    return {**data, "log_index": entry.idx}


def _delivery(
    ctx: Context,
    target: ProvisioningTargetRecord,
    subscription_id: str,
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


# -- delivering -------------------------------------------------------------------------------
@dataclass
class DeliveryStats:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0  # will be retried
    dead: int = 0
    rejected: int = 0
    requeued: int = 0  # synced, but a newer change came in meanwhile: runs again
    superseded: int = 0  # the lease ran out and another worker took the delivery
    released: int = 0  # claimed webhooks left for later, behind a failed one


@dataclass(frozen=True, slots=True)
class _Attempt:
    outcome: Outcome
    status: int | None
    duration_ms: int
    excerpt: str
    error: str | None
    lines: tuple[PanelLineRecord, ...] = field(default=())


def claim_due(
    uow_factory: UnitOfWorkFactory,
    now: datetime,
    token: str,
    *,
    batch: int = DEFAULT_BATCH,
    lease: timedelta = DEFAULT_LEASE,
    per_target: int = PER_TARGET,
) -> Sequence[ProvisioningDeliveryRecord]:
    """Lease due deliveries to ``token`` (one short transaction)."""
    with uow_factory() as uow:
        claimed = uow.provisioning.claim(now, now + lease, token, batch, per_target)
        uow.commit()
    return claimed


def deliver_due(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    sealer: Sealer,
    transports: Transports,
    now: datetime | None = None,
    batch: int = DEFAULT_BATCH,
    *,
    lease: timedelta = DEFAULT_LEASE,
    per_target: int = PER_TARGET,
    jitter: Callable[[], float] = random.random,
) -> DeliveryStats:
    """Claim what is due at ``now`` (default: the clock's), deliver it with no transaction
    open, and record every attempt and new status, each in a short transaction of its own.

    DELIVERED → ``delivered``; RETRY → ``failed`` with ``next_attempt_at`` from the retry
    schedule, or ``dead`` when it is exhausted; REJECTED → ``rejected``.
    """
    token = secrets.token_hex(16)
    claimed = claim_due(
        uow_factory,
        now or clock.now(),
        token,
        batch=batch,
        lease=lease,
        per_target=per_target,
    )
    stats = DeliveryStats(claimed=len(claimed))
    if not claimed:
        return stats
    targets = _targets_of(uow_factory, claimed)
    queues: dict[str, list[ProvisioningDeliveryRecord]] = {}
    for delivery in claimed:
        queues.setdefault(delivery.target_id, []).append(delivery)
    for target_id, queue in queues.items():
        target = targets[target_id]
        for n, delivery in enumerate(queue):
            if target.kind == WEBHOOK:
                attempt = _send(clock, sealer, transports.webhook, target, delivery)
            else:
                attempt = _sync(uow_factory, clock, sealer, transports.panel, target, delivery)
            status = _finish(uow_factory, clock, ids, delivery, token, attempt, jitter)
            _count(stats, status)
            # Webhooks: later events wait behind a failed one (log order). Panels: one that
            # asks to retry (down, timing out) is not asked again before the next pass.
            held = status in (FAILED, "superseded") if target.kind == WEBHOOK else status == FAILED
            if held:
                rest = [d.id for d in queue[n + 1 :]]
                if rest:
                    with uow_factory() as uow:
                        uow.provisioning.release(rest, token)
                        uow.commit()
                    stats.released += len(rest)
                break
    return stats


def _count(stats: DeliveryStats, status: str) -> None:
    name = {PENDING: "requeued"}.get(status, status)
    setattr(stats, name, getattr(stats, name) + 1)


def _targets_of(
    uow_factory: UnitOfWorkFactory, deliveries: Sequence[ProvisioningDeliveryRecord]
) -> dict[str, ProvisioningTargetRecord]:
    wanted = {(d.tenant_id, d.target_id) for d in deliveries}
    found: dict[str, ProvisioningTargetRecord] = {}
    with uow_factory(read_only=True) as uow:
        for tenant_id, target_id in sorted(wanted):
            target = uow.provisioning.get_target(tenant_id, target_id)
            if target is None:
                raise InvariantViolated(f"a delivery names a missing target {target_id}")
            found[target_id] = target
    return found


def _send(
    clock: Clock,
    sealer: Sealer,
    transport: WebhookTransport,
    target: ProvisioningTargetRecord,
    delivery: ProvisioningDeliveryRecord,
) -> _Attempt:
    try:
        secret = sealer.unseal(target.sealed_secret, target.id).encode("ascii")
        result = transport.send(
            target.url,
            secret,
            delivery.id,
            delivery.event_type,
            json.loads(delivery.payload),
            int(clock.now().timestamp()),
            created_unix=int(delivery.created_at.timestamp()),
        )
    except (BillingError, InvariantViolated) as exc:  # a weak secret, a key that does not open
        return _Attempt(Outcome.REJECTED, None, 0, "", _text(_describe(exc)))
    error = result.error
    if error is None and result.outcome is not Outcome.DELIVERED:
        error = f"HTTP {result.status}"
    return _Attempt(
        result.outcome,
        result.status,
        result.duration_ms,
        _text(result.response_excerpt) or "",
        _text(error),
    )


def _sync(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    sealer: Sealer,
    transport: PanelTransport,
    target: ProvisioningTargetRecord,
    delivery: ProvisioningDeliveryRecord,
) -> _Attempt:
    try:
        api_pass, planned = _plan_sync(uow_factory, sealer, target, delivery)
    except (BillingError, InvariantViolated) as exc:  # an unmapped package, a bad sealed value
        return _Attempt(Outcome.REJECTED, None, 0, "", _text(_describe(exc)))
    started = clock.now()
    results: list[tuple[_Planned, LineSync]] = []
    for item in planned:
        results.append((item, transport.sync_line(target.url, api_pass, item.line, item.previous)))
    duration = max(0, round((clock.now() - started).total_seconds() * 1000))
    outcomes = {sync.outcome for _, sync in results}
    outcome = (
        Outcome.RETRY
        if Outcome.RETRY in outcomes
        else Outcome.REJECTED
        if Outcome.REJECTED in outcomes
        else Outcome.DELIVERED
    )
    statuses = [sync.status for _, sync in results if sync.status is not None]
    excerpt = "; ".join(f"{item.label}: {sync.detail}" for item, sync in results)
    failures = [
        f"{item.label}: {sync.error}: {sync.detail}"
        if sync.error
        else f"{item.label}: {sync.detail}"
        for item, sync in results
        if sync.outcome is not Outcome.DELIVERED
    ]
    now = clock.now()
    lines = tuple(
        PanelLineRecord(
            target_id=target.id,
            credential_id=item.credential.id,
            tenant_id=delivery.tenant_id,
            remote_username=(item.line.username or item.line.mac or "")[:64],
            sealed_password=(
                None
                if item.line.mac is not None
                else sealer.seal(
                    item.line.password, panel_line_context(target.id, item.credential.id)
                )
            ),
            synced_at=now,
        )
        for item, sync in results
        if sync.outcome is Outcome.DELIVERED
    )
    return _Attempt(
        outcome,
        statuses[-1] if statuses else None,
        duration,
        _text(excerpt or "no lines or boxes on this subscription") or "",
        _text("; ".join(failures)) if failures else None,
        lines,
    )


def panel_line_context(target_id: str, credential_id: str) -> str:
    """The sealing context of a password a panel accepted."""
    return f"{target_id}:{credential_id}"


@dataclass(frozen=True, slots=True)
class _Planned:
    credential: CredentialRecord
    line: PanelLine
    previous: str | None

    @property
    def label(self) -> str:
        return f"{self.credential.kind} {self.credential.login}"


def _plan_sync(
    uow_factory: UnitOfWorkFactory,
    sealer: Sealer,
    target: ProvisioningTargetRecord,
    delivery: ProvisioningDeliveryRecord,
) -> tuple[str, list[_Planned]]:
    """The api_pass and the desired line of each line and box, from the current state."""
    tenant_id = delivery.tenant_id
    with uow_factory(read_only=True) as uow:
        sub = uow.subscriptions.get(tenant_id, delivery.subscription_id)
        if sub is None:
            raise NotFound("subscription.not_found", f"no subscription {delivery.subscription_id}")
        terms_record = uow.catalog.get_terms(tenant_id, sub.terms_id)
        if terms_record is None:
            raise NotFound("terms.not_found", f"no terms {sub.terms_id}")
        creds = [
            c
            for c in uow.credentials.of_subscriptions(tenant_id, [sub.id])
            if c.kind in PANEL_CREDENTIALS
        ]
        synced = uow.provisioning.panel_lines(target.id, [c.id for c in creds])
    terms = BillingTerms.from_document(json.loads(terms_record.document))
    mapping = bouquet_map_of(target)
    planned: list[_Planned] = []
    for cred in sorted(creds, key=lambda c: c.id):
        known = synced.get(cred.id)
        removed = cred.removed_at is not None
        if removed and known is None:
            continue  # never reached this panel: nothing to switch off
        entitlement = entitlement_of(sub.id, sub.state, terms, enabled=cred.enabled and not removed)
        if cred.kind == DEVICE:
            line = panel_line_for(
                entitlement, username="", password="", mapping=mapping, mac=cred.login
            )
            planned.append(_Planned(cred, line, None))
            continue
        if cred.sealed_secret is None:
            raise InvariantViolated(f"line {cred.id} has no sealed password")
        password = sealer.unseal(cred.sealed_secret, cred.id)
        previous = None
        if known is not None and known.sealed_password is not None:
            accepted = sealer.unseal(known.sealed_password, panel_line_context(target.id, cred.id))
            previous = accepted if accepted != password else None
        line = panel_line_for(entitlement, username=cred.login, password=password, mapping=mapping)
        planned.append(_Planned(cred, line, previous))
    return sealer.unseal(target.sealed_secret, target.id), planned


def _finish(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    claimed: ProvisioningDeliveryRecord,
    token: str,
    attempt: _Attempt,
    jitter: Callable[[], float],
) -> str:
    """Record the attempt and the delivery's new status; the status, or ``superseded`` when
    this worker's lease was lost (the attempt is logged all the same)."""
    at = clock.now()
    with uow_factory() as uow:
        repo = uow.provisioning
        # Lock order: panel lines (the target's key) before the delivery row.
        for line in attempt.lines:
            repo.save_panel_line(line)
        repo.add_attempt(
            ProvisioningAttemptRecord(
                id=ids.new("pat"),
                delivery_id=claimed.id,
                tenant_id=claimed.tenant_id,
                attempted_at=at,
                status_code=attempt.status,
                outcome=attempt.outcome.value,
                duration_ms=attempt.duration_ms,
                response_excerpt=attempt.excerpt,
                error=attempt.error,
            )
        )
        current = repo.get_delivery(claimed.tenant_id, claimed.id, for_update=True)
        if current is None or current.claim_token != token:
            uow.commit()
            return "superseded"
        tries = current.attempts + 1
        done = replace(current, attempts=tries, locked_until=None, claim_token=None)
        if attempt.outcome is Outcome.DELIVERED:
            if current.log_index != claimed.log_index:  # a change landed while we synced
                done = replace(
                    done, status=PENDING, attempts=0, next_attempt_at=at, last_error=None
                )
            else:
                done = replace(done, status=DELIVERED, delivered_at=at, last_error=None)
        elif attempt.outcome is Outcome.RETRY:
            retry_at = next_attempt(tries, at, jitter())
            if retry_at is None:
                done = replace(done, status=DEAD, last_error=attempt.error)
            else:
                done = replace(
                    done, status=FAILED, next_attempt_at=retry_at, last_error=attempt.error
                )
        else:
            done = replace(done, status=REJECTED, last_error=attempt.error)
        repo.update_delivery(done)
        uow.commit()
    return done.status


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BillingError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _text(value: str | None) -> str | None:
    return None if value is None else value[:_MAX_TEXT]


# -- reading and replaying ----------------------------------------------------------------------
def get_delivery(uow: UnitOfWork, ctx: Context, delivery_id: str) -> ProvisioningDeliveryRecord:
    delivery = uow.provisioning.get_delivery(ctx.tenant_id, delivery_id)
    if delivery is None:
        raise NotFound("provisioning_delivery.not_found", f"no provisioning delivery {delivery_id}")
    return delivery


def delivery_with_attempts(
    uow: UnitOfWork, ctx: Context, delivery_id: str
) -> tuple[ProvisioningDeliveryRecord, Sequence[ProvisioningAttemptRecord]]:
    delivery = get_delivery(uow, ctx, delivery_id)
    return delivery, uow.provisioning.attempts_of(ctx.tenant_id, delivery.id)


def list_deliveries(
    uow: UnitOfWork,
    ctx: Context,
    limit: int,
    after: str | None,
    status: str | None = None,
    target_id: str | None = None,
    subscription_id: str | None = None,
) -> Page[ProvisioningDeliveryRecord]:
    if status is not None and status not in STATUSES:
        raise InvalidInput("provisioning.invalid_status", f"status is one of {', '.join(STATUSES)}")
    return uow.provisioning.list_deliveries(
        ctx.tenant_id, limit, after, status, target_id, subscription_id
    )


def replay(
    uow: UnitOfWork, ctx: Context, delivery_id: str, now: datetime
) -> ProvisioningDeliveryRecord:
    """Queue a delivered, dead or rejected delivery again, due at ``now`` (the worker's
    clock), with a fresh retry budget; a failed one is made due at once. The attempt log is
    kept. A pending one is left as it is. A replayed webhook keeps its event id and body."""
    delivery = uow.provisioning.get_delivery(ctx.tenant_id, delivery_id, for_update=True)
    if delivery is None:
        raise NotFound("provisioning_delivery.not_found", f"no provisioning delivery {delivery_id}")
    if delivery.status == PENDING:
        return delivery
    if delivery.status == FAILED:
        changed = replace(delivery, next_attempt_at=now)
    else:
        changed = replace(
            delivery, status=PENDING, attempts=0, next_attempt_at=now, delivered_at=None
        )
    uow.provisioning.update_delivery(changed)
    return changed


# -- the worker ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TickResult:
    followed: int  # log entries read
    queued: int
    deliveries: DeliveryStats


class ProvisioningWorker:
    """What the scheduler runs: every enabled target of every tenant follows its log, then
    due deliveries go out. Several workers (processes) may run at once."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        sealer: Sealer,
        transports: Transports,
        *,
        batch: int = DEFAULT_BATCH,
        follow_limit: int = FOLLOW_LIMIT,
        rounds: int = 10,
        lease: timedelta = DEFAULT_LEASE,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._ids = ids
        self._sealer = sealer
        self._transports = transports
        self._batch = batch
        self._follow_limit = follow_limit
        self._rounds = rounds
        self._lease = lease
        self._jitter = jitter

    def tick(self) -> TickResult:
        with self._uow(read_only=True) as uow:
            targets = list(uow.provisioning.enabled_targets())
        if not targets:  # nothing to follow, nothing claimable: no write transaction at all
            return TickResult(0, 0, DeliveryStats())
        followed, queued = self.follow_all(targets)
        return TickResult(followed, queued, self.deliver())

    def follow_all(
        self, targets: Sequence[ProvisioningTargetRecord] | None = None
    ) -> tuple[int, int]:
        """(log entries read, deliveries queued) over every enabled target."""
        if targets is None:
            with self._uow(read_only=True) as uow:
                targets = list(uow.provisioning.enabled_targets())
        read = queued = 0
        for target in targets:
            for _ in range(self._rounds):
                try:
                    result = self.follow_target(target.tenant_id, target.id)
                except Exception:  # one target's trouble must not stop the others
                    log.exception("following the log for target %s failed", target.id)
                    break
                if result is None:
                    break
                read += result.entries
                queued += result.queued
                if result.entries < self._follow_limit:
                    break
        return read, queued

    def follow_target(self, tenant_id: str, target_id: str) -> FollowResult | None:
        """One follow of one target in its own transaction; None when the target is busy
        (another worker holds it), disabled or gone."""
        with self._uow() as uow:
            target = uow.provisioning.get_target(tenant_id, target_id, lock=True)
            tenant = uow.tenants.get(tenant_id)
            if target is None or tenant is None or not target.enabled:
                return None
            result = follow(
                uow, Context(tenant, self._clock, self._ids), target, self._follow_limit
            )
            uow.commit()
            return result

    def deliver(self) -> DeliveryStats:
        total = DeliveryStats()
        for _ in range(self._rounds):
            stats = deliver_due(
                self._uow,
                self._clock,
                self._ids,
                self._sealer,
                self._transports,
                batch=self._batch,
                lease=self._lease,
                jitter=self._jitter,
            )
            for name in DeliveryStats.__dataclass_fields__:
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            if not stats.claimed or stats.failed or stats.released:
                break  # nothing more, or a target in trouble: the next pass goes on
        return total
