"""One attempt at one delivery, made with no transaction open: a signed webhook POST, or a
panel sync that pushes each line and box of the subscription as it is now."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.entitlement import entitlement_of
from iptv_billing.domain.errors import BillingError, InvariantViolated, NotFound
from iptv_billing.domain.provisioning import Outcome, PanelLine, panel_line_for
from iptv_billing.services.clock import Clock
from iptv_billing.services.credentials import DEVICE, Sealer
from iptv_billing.services.ports import UnitOfWorkFactory
from iptv_billing.services.provisioning._common import PANEL_CREDENTIALS
from iptv_billing.services.provisioning.targets import bouquet_map_of
from iptv_billing.services.provisioning.transports import (
    LineSync,
    PanelTransport,
    WebhookTransport,
)
from iptv_billing.services.records import (
    CredentialRecord,
    PanelLineRecord,
    ProvisioningDeliveryRecord,
    ProvisioningTargetRecord,
)

_MAX_TEXT = 500


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt came to, as the attempt log records it; ``lines`` are the panel
    lines to save (those the panel accepted)."""

    outcome: Outcome
    status: int | None
    duration_ms: int
    excerpt: str
    error: str | None
    lines: tuple[PanelLineRecord, ...] = field(default=())


def send_webhook(
    clock: Clock,
    sealer: Sealer,
    transport: WebhookTransport,
    target: ProvisioningTargetRecord,
    delivery: ProvisioningDeliveryRecord,
) -> Attempt:
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
        return Attempt(Outcome.REJECTED, None, 0, "", _text(_describe(exc)))
    error = result.error
    if error is None and result.outcome is not Outcome.DELIVERED:
        error = f"HTTP {result.status}"
    return Attempt(
        result.outcome,
        result.status,
        result.duration_ms,
        _text(result.response_excerpt) or "",
        _text(error),
    )


def sync_panel(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    sealer: Sealer,
    transport: PanelTransport,
    target: ProvisioningTargetRecord,
    delivery: ProvisioningDeliveryRecord,
) -> Attempt:
    try:
        api_pass, planned = _plan_sync(uow_factory, sealer, target, delivery)
    except (BillingError, InvariantViolated) as exc:  # an unmapped package, a bad sealed value
        return Attempt(Outcome.REJECTED, None, 0, "", _text(_describe(exc)))
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
    return Attempt(
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
        if delivery.subscription_id is None:  # customer-level events are never panel syncs
            raise InvariantViolated(f"sync {delivery.id} names no subscription")
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BillingError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _text(value: str | None) -> str | None:
    return None if value is None else value[:_MAX_TEXT]
