"""Channels, packages (channel bundles), plans and their immutable terms versions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, case, func, select

from iptv_billing.adapters.sql.repositories._common import (
    CHANNELS,
    PACKAGE_CHANNELS,
    PACKAGES,
    PLANS,
    TERMS,
    chunked,
    from_db,
    insert_unique,
    page,
    to_record,
    to_values,
)
from iptv_billing.adapters.sql.repositories.ppv import PPV_EVENTS
from iptv_billing.adapters.sql.repositories.vod import VOD_ITEMS
from iptv_billing.services.records import (
    ChannelRecord,
    PackageRecord,
    Page,
    PlanRecord,
    TermsRecord,
)


def _channel(row: Row[Any]) -> ChannelRecord:
    return to_record(ChannelRecord, row)


def _plan(row: Row[Any]) -> PlanRecord:
    return to_record(PlanRecord, row)


def _terms(row: Row[Any]) -> TermsRecord:
    return to_record(TermsRecord, row)


_PARTS = 9  # channels 2, packages 2, PPV events 3, VOD items 2


def _stamp(latest: datetime | None) -> int:
    return int(from_db(latest).timestamp() * 1_000_000) if latest else 0


class SqlCatalogRepository:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    # -- channels ----------------------------------------------------------------------------
    def add_channel(self, channel: ChannelRecord) -> None:
        insert_unique(
            self._c,
            CHANNELS,
            to_values(channel),
            "channel.duplicate_code",
            f"a channel with code {channel.code!r} exists",
        )

    def get_channel(self, tenant_id: str, channel_id: str) -> ChannelRecord | None:
        row = self._c.execute(
            select(CHANNELS).where(CHANNELS.c.tenant_id == tenant_id, CHANNELS.c.id == channel_id)
        ).first()
        return None if row is None else _channel(row)

    def channels_by_code(self, tenant_id: str, codes: Sequence[str]) -> Sequence[ChannelRecord]:
        found: list[ChannelRecord] = []
        for part in chunked(codes):
            query = select(CHANNELS).where(
                CHANNELS.c.tenant_id == tenant_id, CHANNELS.c.code.in_(part)
            )
            found += map(_channel, self._c.execute(query.order_by(CHANNELS.c.id)))
        return found

    def list_channels(self, tenant_id: str, limit: int, after: str | None) -> Page[ChannelRecord]:
        query = select(CHANNELS).where(CHANNELS.c.tenant_id == tenant_id)
        return page(self._c, query, CHANNELS, limit, after, _channel)

    def fingerprints(self) -> dict[str, tuple[int, ...]]:
        """Per tenant, what changes whenever a channel or package is added, a PPV event
        is created or cancelled, or a VOD item is added: four grouped reads, cheap enough to
        ask every second."""
        found: dict[str, list[int]] = {}
        for position, table_ in enumerate((CHANNELS, PACKAGES)):
            query = select(
                table_.c.tenant_id, func.count(), func.max(table_.c.created_at)
            ).group_by(table_.c.tenant_id)
            for tenant_id, count, latest in self._c.execute(query):
                parts = found.setdefault(tenant_id, [0] * _PARTS)
                parts[2 * position : 2 * position + 2] = [count, _stamp(latest)]
        # Events: how many, how many still scheduled (a cancellation at a frozen test-clock
        # instant moves no timestamp), and the latest change.
        scheduled = func.sum(case((PPV_EVENTS.c.status == "scheduled", 1), else_=0))
        events = select(
            PPV_EVENTS.c.tenant_id, func.count(), scheduled, func.max(PPV_EVENTS.c.updated_at)
        ).group_by(PPV_EVENTS.c.tenant_id)
        for tenant_id, count, still, latest in self._c.execute(events):
            parts = found.setdefault(tenant_id, [0] * _PARTS)
            parts[4:7] = [count, int(still or 0), _stamp(latest)]
        items = select(
            VOD_ITEMS.c.tenant_id, func.count(), func.max(VOD_ITEMS.c.updated_at)
        ).group_by(VOD_ITEMS.c.tenant_id)
        for tenant_id, count, latest in self._c.execute(items):
            parts = found.setdefault(tenant_id, [0] * _PARTS)
            parts[7:9] = [count, _stamp(latest)]
        return {tenant: tuple(parts) for tenant, parts in found.items()}

    def next_stream_id(self, tenant_id: str) -> int:
        query = select(func.coalesce(func.max(CHANNELS.c.stream_id), 0)).where(
            CHANNELS.c.tenant_id == tenant_id
        )
        return int(self._c.execute(query).scalar_one()) + 1

    # -- packages ----------------------------------------------------------------------------
    def add_package(self, package: PackageRecord) -> None:
        values = to_values(package, exclude=frozenset({"channel_ids"}))
        insert_unique(
            self._c,
            PACKAGES,
            values,
            "package.duplicate_code",
            f"a package with code {package.code!r} exists",
        )
        if package.channel_ids:
            links = [
                {"package_id": package.id, "channel_id": c, "tenant_id": package.tenant_id}
                for c in package.channel_ids
            ]
            self._c.execute(PACKAGE_CHANNELS.insert(), links)

    def get_package(self, tenant_id: str, package_id: str) -> PackageRecord | None:
        query = select(PACKAGES).where(
            PACKAGES.c.tenant_id == tenant_id, PACKAGES.c.id == package_id
        )
        return next(iter(self._packages(self._c.execute(query).all())), None)

    def packages_by_code(self, tenant_id: str, codes: Sequence[str]) -> Sequence[PackageRecord]:
        found: list[PackageRecord] = []
        for part in chunked(codes):
            query = select(PACKAGES).where(
                PACKAGES.c.tenant_id == tenant_id, PACKAGES.c.code.in_(part)
            )
            found += self._packages(self._c.execute(query.order_by(PACKAGES.c.id)).all())
        return found

    def list_packages(self, tenant_id: str, limit: int, after: str | None) -> Page[PackageRecord]:
        query = select(PACKAGES).where(PACKAGES.c.tenant_id == tenant_id)
        rows = page(self._c, query, PACKAGES, limit, after, lambda row: row)
        return Page(tuple(self._packages(rows.items)), rows.has_more)

    def _packages(self, rows: Sequence[Row[Any]]) -> list[PackageRecord]:
        """Records for package rows with their channel ids (sorted: the link has no order)."""
        ids = [row.id for row in rows]
        channels: dict[str, list[str]] = {package_id: [] for package_id in ids}
        if ids:
            links = select(PACKAGE_CHANNELS.c.package_id, PACKAGE_CHANNELS.c.channel_id).where(
                PACKAGE_CHANNELS.c.package_id.in_(ids)
            )
            for package_id, channel_id in self._c.execute(
                links.order_by(PACKAGE_CHANNELS.c.channel_id)
            ):
                channels[package_id].append(channel_id)
        return [to_record(PackageRecord, row, channel_ids=tuple(channels[row.id])) for row in rows]

    # -- plans and terms ---------------------------------------------------------------------
    def add_plan(self, plan: PlanRecord) -> None:
        insert_unique(
            self._c,
            PLANS,
            to_values(plan),
            "plan.duplicate_code",
            f"a plan with code {plan.code!r} exists",
        )

    def get_plan(self, tenant_id: str, plan_id: str) -> PlanRecord | None:
        row = self._c.execute(
            select(PLANS).where(PLANS.c.tenant_id == tenant_id, PLANS.c.id == plan_id)
        ).first()
        return None if row is None else _plan(row)

    def plan_by_code(self, tenant_id: str, code: str) -> PlanRecord | None:
        row = self._c.execute(
            select(PLANS).where(PLANS.c.tenant_id == tenant_id, PLANS.c.code == code)
        ).first()
        return None if row is None else _plan(row)

    def list_plans(self, tenant_id: str, limit: int, after: str | None) -> Page[PlanRecord]:
        query = select(PLANS).where(PLANS.c.tenant_id == tenant_id)
        return page(self._c, query, PLANS, limit, after, _plan)

    def add_terms(self, terms: TermsRecord) -> None:
        # Both (plan, version) and (tenant, terms_hash) are unique: either means "exists".
        insert_unique(
            self._c,
            TERMS,
            to_values(terms),
            "terms.duplicate",
            f"terms version {terms.version} or hash {terms.terms_hash} exists",
        )

    def get_terms(self, tenant_id: str, terms_id: str) -> TermsRecord | None:
        row = self._c.execute(
            select(TERMS).where(TERMS.c.tenant_id == tenant_id, TERMS.c.id == terms_id)
        ).first()
        return None if row is None else _terms(row)

    def terms_by_ids(self, terms_ids: Sequence[str]) -> Sequence[TermsRecord]:
        found: list[TermsRecord] = []
        for part in chunked(sorted(set(terms_ids))):
            query = select(TERMS).where(TERMS.c.id.in_(part)).order_by(TERMS.c.id)
            found += map(_terms, self._c.execute(query))
        return found

    def all_terms(self, tenant_id: str) -> Sequence[TermsRecord]:
        query = select(TERMS).where(TERMS.c.tenant_id == tenant_id).order_by(TERMS.c.id)
        return [_terms(row) for row in self._c.execute(query)]

    def terms_of_plan(self, tenant_id: str, plan_id: str) -> Sequence[TermsRecord]:
        query = select(TERMS).where(TERMS.c.tenant_id == tenant_id, TERMS.c.plan_id == plan_id)
        return [_terms(row) for row in self._c.execute(query.order_by(TERMS.c.version))]
