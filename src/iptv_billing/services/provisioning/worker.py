"""The worker the scheduler runs: follow every enabled target's log, then deliver."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from iptv_billing.services.clock import Clock
from iptv_billing.services.context import Context
from iptv_billing.services.credentials import Sealer
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import UnitOfWorkFactory
from iptv_billing.services.provisioning._common import DEFAULT_BATCH, DEFAULT_LEASE, FOLLOW_LIMIT
from iptv_billing.services.provisioning.delivery import DeliveryStats, deliver_due
from iptv_billing.services.provisioning.events import FollowResult, follow
from iptv_billing.services.provisioning.transports import Transports
from iptv_billing.services.records import ProvisioningTargetRecord

# The package's logger, named as before the module became a package.
log = logging.getLogger("iptv_billing.services.provisioning")


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
