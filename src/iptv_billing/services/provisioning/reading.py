"""Reading deliveries and their attempts, and replaying a delivery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from iptv_billing.domain.errors import InvalidInput, NotFound
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.provisioning._common import FAILED, PENDING, STATUSES
from iptv_billing.services.records import (
    Page,
    ProvisioningAttemptRecord,
    ProvisioningDeliveryRecord,
)


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
