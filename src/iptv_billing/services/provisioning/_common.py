"""The package's shared vocabulary: target kinds, delivery statuses, event types, limits."""

from __future__ import annotations

from datetime import timedelta

from iptv_billing.services.credentials import ACCESS_CREDENTIAL, DEVICE, LINE
from iptv_billing.services.log_records import SUBSCRIPTION_STATE
from iptv_billing.services.wallet_notices import WALLET_NOTICE

XTREAM, WEBHOOK = "xtream", "webhook"
TARGET_KINDS = (XTREAM, WEBHOOK)
PENDING, DELIVERED, FAILED, DEAD, REJECTED = "pending", "delivered", "failed", "dead", "rejected"
STATUSES = (PENDING, DELIVERED, FAILED, DEAD, REJECTED)
OPEN_STATUSES = (PENDING, FAILED)
FOLLOWED_KINDS = (SUBSCRIPTION_STATE, ACCESS_CREDENTIAL)  # what panels sync
# Webhooks are told of customer-level notices too; panels have nothing to do with them.
WEBHOOK_FOLLOWED_KINDS = (*FOLLOWED_KINDS, WALLET_NOTICE)
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
WALLET_LOW_BALANCE = "wallet.low_balance"
WALLET_AUTO_TOP_UP_FAILED = "wallet.auto_top_up_failed"
WALLET_AUTO_TOPPED_UP = "wallet.auto_topped_up"
WEBHOOK_EVENTS = (
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_RENEWED,
    SUBSCRIPTION_STATUS_CHANGED,
    SUBSCRIPTION_PLAN_CHANGED,
    SUBSCRIPTION_ADDONS_CHANGED,
    SUBSCRIPTION_UPDATED,
    CREDENTIAL_CHANGED,
    WALLET_LOW_BALANCE,
    WALLET_AUTO_TOP_UP_FAILED,
    WALLET_AUTO_TOPPED_UP,
)

WEBHOOK_SECRET_BYTES = 32
WEBHOOK_SECRET_PREFIX = "whsec_"
FOLLOW_LIMIT = 500  # log entries read per follow
DEFAULT_BATCH = 100  # deliveries claimed per round
PER_TARGET = 20  # webhook events of one target claimed at once (sent one after another)
# Longer than the worst panel sync (a password change, info, create, edit: 10 s each).
DEFAULT_LEASE = timedelta(minutes=2)
