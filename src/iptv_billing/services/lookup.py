"""Look-ups by id that every service needs, beneath the services that act on the records (so
that, say, subscriptions and the usage invoices that subscriptions issue share one)."""

from __future__ import annotations

from iptv_billing.domain.errors import NotFound
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import SubscriptionRecord


def get_subscription(
    uow: UnitOfWork, ctx: Context, subscription_id: str, *, for_update: bool = False
) -> SubscriptionRecord:
    record = uow.subscriptions.get(ctx.tenant_id, subscription_id, for_update=for_update)
    if record is None:
        raise NotFound("subscription.not_found", f"no subscription {subscription_id}")
    return record
