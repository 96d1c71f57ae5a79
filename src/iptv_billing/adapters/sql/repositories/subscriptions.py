"""Subscriptions: optimistic locking on ``version``, and due-subscription claims for billing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, func, select

from iptv_billing.adapters.sql.repositories._bulk import update_matching_versions
from iptv_billing.adapters.sql.repositories._common import (
    SUBSCRIPTIONS,
    TERMS,
    chunked,
    from_db,
    in_ids,
    is_postgresql,
    opt_from_db,
    opt_to_db,
    page,
    to_db,
    unindexed,
)
from iptv_billing.domain.errors import Conflict
from iptv_billing.domain.periods import Period
from iptv_billing.domain.subscription import SubscriptionState, SubscriptionStatus
from iptv_billing.services.records import Page, SubscriptionRecord

# Statuses whose period end means work for the billing run.
DUE_STATUSES = ("trialing", "active", "past_due")

_PENDING = TERMS.alias("pending_terms")
_SELECT = select(SUBSCRIPTIONS, _PENDING.c.terms_hash.label("pending_terms_hash")).outerjoin(
    _PENDING, _PENDING.c.id == SUBSCRIPTIONS.c.pending_terms_id
)

_MUTABLE = (
    "plan_id",
    "terms_id",
    "pending_terms_id",
    "terms_hash",
    "status",
    "currency",
    "anchor",
    "period_index",
    "current_period_start",
    "current_period_end",
    "trial_end",
    "cancel_at_period_end",
    "addons",
    "paused_at",
    "ended_at",
    "updated_at",
)
# Compare-and-set on version: the write only lands on the version the record was read at.
_UPDATE = (
    SUBSCRIPTIONS.update()
    .where(
        SUBSCRIPTIONS.c.id == bindparam("k_id"),
        SUBSCRIPTIONS.c.tenant_id == bindparam("k_tenant_id"),
        SUBSCRIPTIONS.c.version == bindparam("k_version"),
    )
    .values(
        {
            **{name: bindparam(f"v_{name}") for name in _MUTABLE},
            "version": SUBSCRIPTIONS.c.version + 1,
        }
    )
)


def _addons_from_db(text: str) -> tuple[tuple[str, int], ...]:
    if text == "[]":  # most subscriptions: skip the JSON parser on the billing-run path
        return ()
    return tuple((str(code), int(quantity)) for code, quantity in json.loads(text))


def _addons_to_db(addons: tuple[tuple[str, int], ...]) -> str:
    return json.dumps([[code, quantity] for code, quantity in addons], separators=(",", ":"))


def _state(row: Row[Any]) -> SubscriptionState:
    return SubscriptionState(
        status=SubscriptionStatus(row.status),
        currency=row.currency,
        terms_hash=row.terms_hash,
        anchor=from_db(row.anchor),
        period_index=row.period_index,
        current_period=Period(from_db(row.current_period_start), from_db(row.current_period_end)),
        trial_end=opt_from_db(row.trial_end),
        cancel_at_period_end=bool(row.cancel_at_period_end),
        pending_terms_hash=row.pending_terms_hash,
        addons=_addons_from_db(row.addons),
        paused_at=opt_from_db(row.paused_at),
        ended_at=opt_from_db(row.ended_at),
    )


def _subscription(row: Row[Any]) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        customer_id=row.customer_id,
        plan_id=row.plan_id,
        terms_id=row.terms_id,
        pending_terms_id=row.pending_terms_id,
        state=_state(row),
        created_at=from_db(row.created_at),
        updated_at=from_db(row.updated_at),
        version=row.version,
    )


def _mutable_values(record: SubscriptionRecord) -> dict[str, Any]:
    state = record.state
    return {
        "plan_id": record.plan_id,
        "terms_id": record.terms_id,
        "pending_terms_id": record.pending_terms_id,
        "terms_hash": state.terms_hash,
        "status": state.status.value,
        "currency": state.currency,
        "anchor": to_db(state.anchor),
        "period_index": state.period_index,
        "current_period_start": to_db(state.current_period.start),
        "current_period_end": to_db(state.current_period.end),
        "trial_end": opt_to_db(state.trial_end),
        "cancel_at_period_end": state.cancel_at_period_end,
        "addons": _addons_to_db(state.addons),
        "paused_at": opt_to_db(state.paused_at),
        "ended_at": opt_to_db(state.ended_at),
        "updated_at": to_db(record.updated_at),
    }


def _update_params(record: SubscriptionRecord) -> dict[str, Any]:
    values = {f"v_{name}": value for name, value in _mutable_values(record).items()}
    return {
        "k_id": record.id,
        "k_tenant_id": record.tenant_id,
        "k_version": record.version,
        **values,
    }


def _bulk_row(record: SubscriptionRecord) -> tuple[Any, ...]:
    """(id, tenant_id, version, *_MUTABLE) for the COPY path; datetimes are aware already."""
    s = record.state
    return (
        record.id, record.tenant_id, record.version, record.plan_id, record.terms_id,
        record.pending_terms_id, s.terms_hash, s.status.value, s.currency, s.anchor,
        s.period_index, s.current_period.start, s.current_period.end, s.trial_end,
        s.cancel_at_period_end, _addons_to_db(s.addons), s.paused_at, s.ended_at,
        record.updated_at,
    )  # fmt: skip


class SqlSubscriptionRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, subscription: SubscriptionRecord) -> None:
        row = {
            "id": subscription.id,
            "tenant_id": subscription.tenant_id,
            "customer_id": subscription.customer_id,
            "created_at": to_db(subscription.created_at),
            "version": subscription.version,
            **_mutable_values(subscription),
        }
        self._c.execute(SUBSCRIPTIONS.insert(), row)

    def get(
        self, tenant_id: str, subscription_id: str, *, for_update: bool = False
    ) -> SubscriptionRecord | None:
        query = _SELECT.where(
            SUBSCRIPTIONS.c.tenant_id == tenant_id, SUBSCRIPTIONS.c.id == subscription_id
        )
        if for_update:
            query = self._locked(query, skip_locked=False)
        row = self._c.execute(query).first()
        return None if row is None else _subscription(row)

    def get_many(self, tenant_id: str, ids: Sequence[str]) -> dict[str, SubscriptionRecord]:
        found: dict[str, SubscriptionRecord] = {}
        for part in chunked(ids):
            query = _SELECT.where(
                SUBSCRIPTIONS.c.tenant_id == tenant_id, in_ids(self._c, SUBSCRIPTIONS.c.id, part)
            )
            found.update((row.id, _subscription(row)) for row in self._c.execute(query))
        return found

    def update(self, subscription: SubscriptionRecord) -> None:
        """Write the new state; the record's ``version`` must still be the stored one."""
        self.update_many([subscription])

    def update_many(self, subscriptions: Sequence[SubscriptionRecord]) -> None:
        if not subscriptions:
            return
        if is_postgresql(self._c) and len(subscriptions) > 1:
            rows = [_bulk_row(s) for s in subscriptions]
            matched = update_matching_versions(self._c, SUBSCRIPTIONS, _MUTABLE, rows)
            self._check_matched(matched, len(subscriptions))
            return
        params = [_update_params(s) for s in subscriptions]
        if self._c.dialect.supports_sane_multi_rowcount or len(params) == 1:
            matched = self._c.execute(_UPDATE, params).rowcount
        else:  # pragma: no cover - both supported drivers report executemany row counts
            matched = sum(self._c.execute(_UPDATE, p).rowcount for p in params)
        self._check_matched(matched, len(params))

    @staticmethod
    def _check_matched(matched: int, expected: int) -> None:
        if matched != expected:
            raise Conflict(
                "subscription.concurrent_update",
                "the subscription changed since it was read; reload and retry",
                expected=expected,
                updated=matched,
            )

    def list(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        customer_id: str | None = None,
        status: str | None = None,
    ) -> Page[SubscriptionRecord]:
        query = _SELECT.where(SUBSCRIPTIONS.c.tenant_id == tenant_id)
        if customer_id is not None:
            query = query.where(SUBSCRIPTIONS.c.customer_id == customer_id)
        if status is not None:
            query = query.where(SUBSCRIPTIONS.c.status == status)
        return page(self._c, query, SUBSCRIPTIONS, limit, after, _subscription)

    def on_terms(
        self,
        tenant_id: str,
        terms_ids: Sequence[str],
        statuses: Sequence[str],
        after: str | None,
        limit: int,
    ) -> Page[SubscriptionRecord]:
        query = _SELECT.where(
            SUBSCRIPTIONS.c.tenant_id == tenant_id,
            SUBSCRIPTIONS.c.terms_id.in_(terms_ids),
            SUBSCRIPTIONS.c.status.in_(statuses),
        )
        return page(self._c, query, SUBSCRIPTIONS, limit, after, _subscription)

    def due(
        self, tenant_id: str, now: datetime, after: str | None, limit: int
    ) -> Sequence[SubscriptionRecord]:
        # On SQLite, walk the primary key in id order and stop at ``limit``: the due index
        # would mean sorting every remaining due row again for each batch of a run.
        query = _SELECT.where(
            unindexed(self._c, SUBSCRIPTIONS.c.tenant_id) == tenant_id,
            SUBSCRIPTIONS.c.status.in_(DUE_STATUSES),
            unindexed(self._c, SUBSCRIPTIONS.c.current_period_end) <= to_db(now),
        )
        if after is not None:
            query = query.where(SUBSCRIPTIONS.c.id > after)
        query = self._locked(query.order_by(SUBSCRIPTIONS.c.id).limit(limit), skip_locked=True)
        return [_subscription(row) for row in self._c.execute(query)]

    def count_by_status(self, tenant_id: str) -> dict[str, int]:
        query = (
            select(SUBSCRIPTIONS.c.status, func.count())
            .where(SUBSCRIPTIONS.c.tenant_id == tenant_id)
            .group_by(SUBSCRIPTIONS.c.status)
        )
        return {status: int(count) for status, count in self._c.execute(query)}

    def _locked(self, query: Select[Any], *, skip_locked: bool) -> Select[Any]:
        """Row locks on PostgreSQL; SQLite has none and needs none (BEGIN IMMEDIATE)."""
        if not is_postgresql(self._c):
            return query
        # OF: the outer-joined pending terms row must not (and cannot) be locked. NO KEY
        # UPDATE (ids never change): rows that only refer to the subscription (a wallet hold,
        # an invoice) can be inserted meanwhile, so a writer holding a wallet row while it
        # inserts one never deadlocks with the subscription's holder waiting for that wallet.
        return query.with_for_update(of=SUBSCRIPTIONS, skip_locked=skip_locked, key_share=True)
