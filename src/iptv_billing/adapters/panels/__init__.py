"""Telling panels about subscription changes: the Xtream admin API and signed webhooks.

Both clients are what the provisioning outbox drives; the rules they follow (desired line
state, signatures, retry schedule, outcome classification) live in
``iptv_billing.domain.provisioning``.

* ``XtreamPanelClient(base_url, api_pass, http=None, timeout=10.0)``: ``info``, ``create``,
  ``edit``, ``enable``, ``disable`` and the idempotent ``sync`` (the outbox's call); failures
  raise ``PanelError`` (``code``, ``retryable``, ``status``, ``outcome``).
* ``WebhookSender(http=None, timeout=10.0).send(...)``: one signed POST, answered by a
  ``DeliveryResult`` (never raises for network trouble).
"""

from iptv_billing.adapters.panels.webhooks import DeliveryResult, WebhookSender, webhook_body
from iptv_billing.adapters.panels.xtream import (
    PanelError,
    SyncAction,
    SyncResult,
    XtreamPanelClient,
)

__all__ = [
    "DeliveryResult",
    "PanelError",
    "SyncAction",
    "SyncResult",
    "WebhookSender",
    "XtreamPanelClient",
    "webhook_body",
]
