"""Provisioning: targets, the delivery queue (claimed with leases) and the delivery log.

Claims are short transactions. On PostgreSQL, panel syncs are claimed ``FOR UPDATE SKIP
LOCKED`` (concurrent workers take disjoint rows) and webhook targets are locked the same way
while their deliveries are leased, so only one worker sends a target's events, in log order.
SQLite has a single writer (``BEGIN IMMEDIATE``), which serializes claims by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, exists, select, update

from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.repositories._common import (
    chunked,
    from_db,
    insert_ignoring,
    is_postgresql,
    page,
    table,
    to_db,
    to_record,
    to_values,
)
from iptv_billing.services.records import (
    Page,
    PanelLineRecord,
    ProvisioningAttemptRecord,
    ProvisioningDeliveryRecord,
    ProvisioningTargetRecord,
)

TARGETS = table(tables.ProvisioningTarget)
DELIVERIES = table(tables.ProvisioningDelivery)
ATTEMPTS = table(tables.ProvisioningAttempt)
PANEL_LINES = table(tables.ProvisioningPanelLine)

OPEN = ("pending", "failed")
SYNC_KIND = "xtream"
WEBHOOK_KIND = "webhook"


def _target(row: Row[Any]) -> ProvisioningTargetRecord:
    return to_record(ProvisioningTargetRecord, row)


def _delivery(row: Row[Any]) -> ProvisioningDeliveryRecord:
    return to_record(ProvisioningDeliveryRecord, row)


class SqlProvisioningRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    # -- targets -------------------------------------------------------------------------------
    def add_target(self, target: ProvisioningTargetRecord) -> None:
        self._c.execute(TARGETS.insert(), to_values(target))

    def get_target(
        self, tenant_id: str, target_id: str, *, lock: bool = False
    ) -> ProvisioningTargetRecord | None:
        query = select(TARGETS).where(TARGETS.c.tenant_id == tenant_id, TARGETS.c.id == target_id)
        if lock and is_postgresql(self._c):
            query = query.with_for_update(skip_locked=True, key_share=True)
        row = self._c.execute(query).first()
        return None if row is None else _target(row)

    def list_targets(
        self, tenant_id: str, limit: int, after: str | None
    ) -> Page[ProvisioningTargetRecord]:
        query = select(TARGETS).where(TARGETS.c.tenant_id == tenant_id)
        return page(self._c, query, TARGETS, limit, after, _target)

    def enabled_targets(self) -> Sequence[ProvisioningTargetRecord]:
        query = select(TARGETS).where(TARGETS.c.enabled.is_(True)).order_by(TARGETS.c.id)
        return [_target(row) for row in self._c.execute(query)]

    def update_target(self, target: ProvisioningTargetRecord) -> None:
        values = to_values(
            target, exclude=frozenset({"id", "tenant_id", "kind", "cursor", "created_at"})
        )
        self._c.execute(
            update(TARGETS)
            .where(TARGETS.c.tenant_id == target.tenant_id, TARGETS.c.id == target.id)
            .values(values)
        )

    def move_cursor(self, target_id: str, expected: int, cursor: int) -> bool:
        result = self._c.execute(
            update(TARGETS)
            .where(TARGETS.c.id == target_id, TARGETS.c.cursor == expected)
            .values(cursor=cursor)
        )
        return bool(result.rowcount)

    # -- deliveries ----------------------------------------------------------------------------
    def add_deliveries(self, deliveries: Sequence[ProvisioningDeliveryRecord]) -> None:
        if deliveries:
            self._c.execute(DELIVERIES.insert(), [to_values(d) for d in deliveries])

    def open_syncs(
        self, target_id: str, subscription_ids: Sequence[str]
    ) -> dict[str, ProvisioningDeliveryRecord]:
        found: dict[str, ProvisioningDeliveryRecord] = {}
        for part in chunked(subscription_ids):
            query = (
                select(DELIVERIES)
                .where(
                    DELIVERIES.c.target_id == target_id,
                    DELIVERIES.c.subscription_id.in_(part),
                    DELIVERIES.c.status.in_(OPEN),
                )
                .order_by(DELIVERIES.c.id)
            )
            for row in self._c.execute(query):
                found.setdefault(row.subscription_id, _delivery(row))
        return found

    def retarget(self, delivery_id: str, log_index: int) -> bool:
        # The status is checked again here: a worker may have closed the delivery since it
        # was read (PostgreSQL re-evaluates the condition after waiting for that worker).
        result = self._c.execute(
            update(DELIVERIES)
            .where(
                DELIVERIES.c.id == delivery_id,
                DELIVERIES.c.status.in_(OPEN),
                DELIVERIES.c.log_index <= log_index,
            )
            .values(log_index=log_index)
        )
        return bool(result.rowcount)

    def claim(
        self, now: datetime, lease_until: datetime, token: str, limit: int, per_target: int
    ) -> Sequence[ProvisioningDeliveryRecord]:
        at = to_db(now)
        ids = self._claimable_syncs(at, limit)
        if len(ids) < limit:
            ids += self._claimable_webhooks(at, limit - len(ids), per_target)
        if not ids:
            return []
        for part in chunked(ids):
            self._c.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_(part))
                .values(locked_until=to_db(lease_until), claim_token=token)
            )
        claimed: dict[str, ProvisioningDeliveryRecord] = {}
        for part in chunked(ids):
            for row in self._c.execute(select(DELIVERIES).where(DELIVERIES.c.id.in_(part))):
                claimed[row.id] = _delivery(row)
        return [claimed[i] for i in ids]

    def _claimable_syncs(self, at: datetime, limit: int) -> list[str]:
        query = (
            select(DELIVERIES.c.id)
            .join(TARGETS, TARGETS.c.id == DELIVERIES.c.target_id)
            .where(
                TARGETS.c.kind == SYNC_KIND,
                TARGETS.c.enabled.is_(True),
                DELIVERIES.c.status.in_(OPEN),
                DELIVERIES.c.next_attempt_at <= at,
                (DELIVERIES.c.locked_until.is_(None)) | (DELIVERIES.c.locked_until <= at),
            )
            .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
            .limit(limit)
        )
        if is_postgresql(self._c):
            query = query.with_for_update(of=DELIVERIES, skip_locked=True)
        return [str(i) for i in self._c.execute(query).scalars()]

    def _claimable_webhooks(self, at: datetime, limit: int, per_target: int) -> list[str]:
        due = exists().where(
            DELIVERIES.c.target_id == TARGETS.c.id,
            DELIVERIES.c.status.in_(OPEN),
            DELIVERIES.c.next_attempt_at <= at,
        )
        query = (
            select(TARGETS.c.id)
            .where(TARGETS.c.kind == WEBHOOK_KIND, TARGETS.c.enabled.is_(True), due)
            .order_by(TARGETS.c.id)
        )
        if is_postgresql(self._c):
            # The target's row lock makes claims of one target's events exclusive: whoever
            # holds it sees the leases of any earlier claim, which committed first.
            query = query.with_for_update(of=TARGETS, skip_locked=True, key_share=True)
        ids: list[str] = []
        for target_id in self._c.execute(query).scalars():
            head = self._c.execute(
                select(DELIVERIES.c.id, DELIVERIES.c.next_attempt_at, DELIVERIES.c.locked_until)
                .where(DELIVERIES.c.target_id == target_id, DELIVERIES.c.status.in_(OPEN))
                .order_by(DELIVERIES.c.log_index, DELIVERIES.c.id)
                .limit(min(per_target, limit - len(ids)))
            ).all()
            leased = any(r.locked_until is not None and _after(r.locked_until, at) for r in head)
            if not head or leased or _after(head[0].next_attempt_at, at):
                continue
            ids += [str(r.id) for r in head]
            if len(ids) >= limit:
                break
        return ids

    def release(self, delivery_ids: Sequence[str], token: str) -> None:
        for part in chunked(delivery_ids):
            self._c.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_(part), DELIVERIES.c.claim_token == token)
                .values(locked_until=None, claim_token=None)
            )

    def get_delivery(
        self, tenant_id: str, delivery_id: str, *, for_update: bool = False
    ) -> ProvisioningDeliveryRecord | None:
        query = select(DELIVERIES).where(
            DELIVERIES.c.tenant_id == tenant_id, DELIVERIES.c.id == delivery_id
        )
        if for_update and is_postgresql(self._c):
            query = query.with_for_update(key_share=True)
        row = self._c.execute(query).first()
        return None if row is None else _delivery(row)

    def update_delivery(self, delivery: ProvisioningDeliveryRecord) -> None:
        values = to_values(
            delivery,
            exclude=frozenset(
                {"id", "tenant_id", "target_id", "subscription_id", "event_type", "created_at"}
            ),
        )
        self._c.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.tenant_id == delivery.tenant_id, DELIVERIES.c.id == delivery.id)
            .values(values)
        )

    def list_deliveries(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        status: str | None = None,
        target_id: str | None = None,
        subscription_id: str | None = None,
    ) -> Page[ProvisioningDeliveryRecord]:
        query = select(DELIVERIES).where(DELIVERIES.c.tenant_id == tenant_id)
        if status is not None:
            query = query.where(DELIVERIES.c.status == status)
        if target_id is not None:
            query = query.where(DELIVERIES.c.target_id == target_id)
        if subscription_id is not None:
            query = query.where(DELIVERIES.c.subscription_id == subscription_id)
        return page(self._c, query, DELIVERIES, limit, after, _delivery)

    # -- the delivery log and the panels' lines ---------------------------------------------------
    def add_attempt(self, attempt: ProvisioningAttemptRecord) -> None:
        self._c.execute(ATTEMPTS.insert(), to_values(attempt))

    def attempts_of(self, tenant_id: str, delivery_id: str) -> Sequence[ProvisioningAttemptRecord]:
        query = (
            select(ATTEMPTS)
            .where(ATTEMPTS.c.tenant_id == tenant_id, ATTEMPTS.c.delivery_id == delivery_id)
            .order_by(ATTEMPTS.c.attempted_at, ATTEMPTS.c.id)
        )
        return [to_record(ProvisioningAttemptRecord, row) for row in self._c.execute(query)]

    def panel_lines(
        self, target_id: str, credential_ids: Sequence[str]
    ) -> dict[str, PanelLineRecord]:
        found: dict[str, PanelLineRecord] = {}
        for part in chunked(credential_ids):
            query = select(PANEL_LINES).where(
                PANEL_LINES.c.target_id == target_id, PANEL_LINES.c.credential_id.in_(part)
            )
            for row in self._c.execute(query):
                found[row.credential_id] = to_record(PanelLineRecord, row)
        return found

    def save_panel_line(self, line: PanelLineRecord) -> None:
        values = to_values(line)
        changed = {k: v for k, v in values.items() if k not in ("target_id", "credential_id")}
        result = self._c.execute(
            update(PANEL_LINES)
            .where(
                PANEL_LINES.c.target_id == line.target_id,
                PANEL_LINES.c.credential_id == line.credential_id,
            )
            .values(changed)
        )
        if not result.rowcount:
            insert = insert_ignoring(self._c, PANEL_LINES, ("target_id", "credential_id"))
            self._c.execute(insert, values)


def _after(moment: datetime, at: datetime) -> bool:
    """``moment > at`` for a value read back (SQLite hands back naive UTC)."""
    return from_db(moment) > at
