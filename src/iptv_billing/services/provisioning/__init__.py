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

The package, by idea: ``transports`` (what the adapters offer), ``targets`` (creating and
changing targets), ``events`` (following the log into deliveries), ``attempts`` (one webhook
POST or panel sync), ``delivery`` (claiming and recording attempts), ``reading`` (deliveries
and replays), ``worker`` (what the scheduler runs); ``_common`` holds the shared constants.
Every public name is re-exported here.
"""

from __future__ import annotations

from iptv_billing.services.provisioning._common import (
    CREDENTIAL_CHANGED,
    DEAD,
    DEFAULT_BATCH,
    DEFAULT_LEASE,
    DELIVERED,
    FAILED,
    FOLLOW_LIMIT,
    FOLLOWED_KINDS,
    OPEN_STATUSES,
    PANEL_CREDENTIALS,
    PENDING,
    PER_TARGET,
    REJECTED,
    STATUSES,
    SUBSCRIPTION_ADDONS_CHANGED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_PLAN_CHANGED,
    SUBSCRIPTION_RENEWED,
    SUBSCRIPTION_STATUS_CHANGED,
    SUBSCRIPTION_UPDATED,
    TARGET_KINDS,
    WALLET_AUTO_TOP_UP_FAILED,
    WALLET_AUTO_TOPPED_UP,
    WALLET_LOW_BALANCE,
    WEBHOOK,
    WEBHOOK_EVENTS,
    WEBHOOK_FOLLOWED_KINDS,
    WEBHOOK_SECRET_BYTES,
    WEBHOOK_SECRET_PREFIX,
    XTREAM,
    XTREAM_SYNC,
)
from iptv_billing.services.provisioning.attempts import (
    panel_line_context,
)
from iptv_billing.services.provisioning.delivery import (
    DeliveryStats,
    claim_due,
    deliver_due,
)
from iptv_billing.services.provisioning.events import (
    FollowResult,
    credential_event,
    follow,
    subscription_event,
    wallet_event,
)
from iptv_billing.services.provisioning.reading import (
    delivery_with_attempts,
    get_delivery,
    list_deliveries,
    replay,
)
from iptv_billing.services.provisioning.targets import (
    bouquet_map_of,
    create_target,
    get_target,
    list_targets,
    new_webhook_secret,
    set_enabled,
    update_target,
)
from iptv_billing.services.provisioning.transports import (
    LineSync,
    PanelTransport,
    SendResult,
    Transports,
    WebhookTransport,
)
from iptv_billing.services.provisioning.worker import (
    ProvisioningWorker,
    TickResult,
)

__all__ = [
    "CREDENTIAL_CHANGED",
    "DEAD",
    "DEFAULT_BATCH",
    "DEFAULT_LEASE",
    "DELIVERED",
    "FAILED",
    "FOLLOWED_KINDS",
    "FOLLOW_LIMIT",
    "OPEN_STATUSES",
    "PANEL_CREDENTIALS",
    "PENDING",
    "PER_TARGET",
    "REJECTED",
    "STATUSES",
    "SUBSCRIPTION_ADDONS_CHANGED",
    "SUBSCRIPTION_CREATED",
    "SUBSCRIPTION_PLAN_CHANGED",
    "SUBSCRIPTION_RENEWED",
    "SUBSCRIPTION_STATUS_CHANGED",
    "SUBSCRIPTION_UPDATED",
    "TARGET_KINDS",
    "WALLET_AUTO_TOPPED_UP",
    "WALLET_AUTO_TOP_UP_FAILED",
    "WALLET_LOW_BALANCE",
    "WEBHOOK",
    "WEBHOOK_EVENTS",
    "WEBHOOK_FOLLOWED_KINDS",
    "WEBHOOK_SECRET_BYTES",
    "WEBHOOK_SECRET_PREFIX",
    "XTREAM",
    "XTREAM_SYNC",
    "DeliveryStats",
    "FollowResult",
    "LineSync",
    "PanelTransport",
    "ProvisioningWorker",
    "SendResult",
    "TickResult",
    "Transports",
    "WebhookTransport",
    "bouquet_map_of",
    "claim_due",
    "create_target",
    "credential_event",
    "deliver_due",
    "delivery_with_attempts",
    "follow",
    "get_delivery",
    "get_target",
    "list_deliveries",
    "list_targets",
    "new_webhook_secret",
    "panel_line_context",
    "replay",
    "set_enabled",
    "subscription_event",
    "update_target",
    "wallet_event",
]
