"""Delivering: claiming due deliveries, making the attempts, and recording each attempt and
the delivery's new status."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from iptv_billing.domain.errors import InvariantViolated
from iptv_billing.domain.provisioning import Outcome, next_attempt
from iptv_billing.services.clock import Clock
from iptv_billing.services.credentials import Sealer
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import UnitOfWorkFactory
from iptv_billing.services.provisioning._common import (
    DEAD,
    DEFAULT_BATCH,
    DEFAULT_LEASE,
    DELIVERED,
    FAILED,
    PENDING,
    PER_TARGET,
    REJECTED,
    WEBHOOK,
)
from iptv_billing.services.provisioning.attempts import Attempt, send_webhook, sync_panel
from iptv_billing.services.provisioning.transports import Transports
from iptv_billing.services.records import (
    ProvisioningAttemptRecord,
    ProvisioningDeliveryRecord,
    ProvisioningTargetRecord,
)


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
                attempt = send_webhook(clock, sealer, transports.webhook, target, delivery)
            else:
                attempt = sync_panel(uow_factory, clock, sealer, transports.panel, target, delivery)
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


def _finish(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    claimed: ProvisioningDeliveryRecord,
    token: str,
    attempt: Attempt,
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
