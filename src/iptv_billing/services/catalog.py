"""Channels, packages (bouquets of channels) and plans with versioned billing terms."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.errors import Conflict, InvalidInput, NotFound
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import (
    ChannelRecord,
    PackageRecord,
    PlanRecord,
    TermsRecord,
)


@dataclass(frozen=True, slots=True)
class CreateChannel:
    code: str
    name: str
    number: int
    logo_url: str | None = None
    category: str = "General"
    epg_id: str | None = None
    source_url: str | None = None
    catchup_days: int = 0


@dataclass(frozen=True, slots=True)
class CreatePackage:
    code: str
    name: str
    channel_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PublishTerms:
    """Everything of a plan version but its plan code and version number (the service adds
    those). ``terms`` holds the BillingTerms document fields."""

    terms: Mapping[str, Any]
    effective_from: datetime | None = None


def create_channel(uow: UnitOfWork, ctx: Context, cmd: CreateChannel) -> ChannelRecord:
    if uow.catalog.channels_by_code(ctx.tenant_id, [cmd.code]):
        raise Conflict("channel.duplicate_code", f"channel {cmd.code} exists already")
    channel = ChannelRecord(
        ctx.ids.new("chn"),
        ctx.tenant_id,
        cmd.code,
        cmd.name,
        cmd.number,
        cmd.logo_url,
        ctx.now(),
        stream_id=uow.catalog.next_stream_id(ctx.tenant_id),
        category=cmd.category,
        epg_id=cmd.epg_id,
        source_url=cmd.source_url,
        catchup_days=cmd.catchup_days,
    )
    uow.catalog.add_channel(channel)
    return channel


def create_package(uow: UnitOfWork, ctx: Context, cmd: CreatePackage) -> PackageRecord:
    if uow.catalog.packages_by_code(ctx.tenant_id, [cmd.code]):
        raise Conflict("package.duplicate_code", f"package {cmd.code} exists already")
    channels = uow.catalog.channels_by_code(ctx.tenant_id, cmd.channel_codes)
    missing = set(cmd.channel_codes) - {c.code for c in channels}
    if missing:
        raise InvalidInput("package.unknown_channels", f"unknown channels: {sorted(missing)}")
    package = PackageRecord(
        ctx.ids.new("pkg"),
        ctx.tenant_id,
        cmd.code,
        cmd.name,
        tuple(sorted(c.id for c in channels)),
        ctx.now(),
    )
    uow.catalog.add_package(package)
    return package


def create_plan(
    uow: UnitOfWork, ctx: Context, code: str, name: str, first_terms: PublishTerms
) -> tuple[PlanRecord, TermsRecord]:
    if uow.catalog.plan_by_code(ctx.tenant_id, code):
        raise Conflict("plan.duplicate_code", f"plan {code} exists already")
    plan = PlanRecord(ctx.ids.new("plan"), ctx.tenant_id, code, name, ctx.now())
    uow.catalog.add_plan(plan)
    return plan, _publish(uow, ctx, plan, first_terms, version=1)


def publish_terms(uow: UnitOfWork, ctx: Context, plan_id: str, cmd: PublishTerms) -> TermsRecord:
    """A price or rule change is a new immutable version, never an edit of an old one."""
    plan = get_plan(uow, ctx, plan_id)
    versions = uow.catalog.terms_of_plan(ctx.tenant_id, plan.id)
    return _publish(uow, ctx, plan, cmd, version=max(v.version for v in versions) + 1)


def _publish(
    uow: UnitOfWork, ctx: Context, plan: PlanRecord, cmd: PublishTerms, version: int
) -> TermsRecord:
    effective = (cmd.effective_from or ctx.now()).astimezone(UTC)
    terms = build_terms(plan, cmd.terms, version, effective)
    _check_packages_exist(uow, ctx, terms)
    _check_metrics_exist(uow, ctx, terms)
    record = TermsRecord(
        ctx.ids.new("terms"),
        ctx.tenant_id,
        plan.id,
        version,
        terms.terms_hash,
        terms.canonical().decode(),
        effective,
        ctx.now(),
    )
    uow.catalog.add_terms(record)
    return record


def build_terms(
    plan: PlanRecord, fields: Mapping[str, Any], version: int, effective: datetime
) -> BillingTerms:
    reserved = {"plan_code", "version", "effective_from"} & set(fields)
    if reserved:
        raise InvalidInput("terms.reserved_field", f"set by the service: {sorted(reserved)}")
    usage_defaults: dict[str, Any] = (
        {"usage_threshold": [], "usage_cap": []} if "usage_charges" in fields else {}
    )
    document = {
        **_terms_defaults(),
        **usage_defaults,
        **fields,
        "plan_code": plan.code,
        "version": version,
        "effective_from": _rfc3339(effective),
    }
    return BillingTerms.from_document(document)


@lru_cache(maxsize=1)
def _terms_defaults() -> dict[str, Any]:
    """Optional fields' defaults, in document form, taken from the domain's own defaults."""
    probe = BillingTerms(
        plan_code="probe",
        version=1,
        name="probe",
        interval=BillingInterval(PeriodUnit.MONTH),
        prices=(Money.zero("EUR"),),
        effective_from=datetime(2000, 1, 1, tzinfo=UTC),
    ).to_document()
    required = {"plan_code", "version", "name", "interval", "prices", "effective_from"}
    return {k: v for k, v in probe.items() if k not in required}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_packages_exist(uow: UnitOfWork, ctx: Context, terms: BillingTerms) -> None:
    codes = set(terms.package_codes)
    for addon in terms.addons:
        codes.update(addon.package_codes)
    found = {p.code for p in uow.catalog.packages_by_code(ctx.tenant_id, sorted(codes))}
    if codes - found:
        raise InvalidInput("terms.unknown_packages", f"unknown packages: {sorted(codes - found)}")


def _check_metrics_exist(uow: UnitOfWork, ctx: Context, terms: BillingTerms) -> None:
    """Usage is charged on metrics the tenant defined, aggregated the way they were defined."""
    if not terms.usage_charges:
        return
    known = uow.usage.metrics_by_code(ctx.tenant_id, [c.metric for c in terms.usage_charges])
    for charge in terms.usage_charges:
        metric = known.get(charge.metric)
        if metric is None or metric.archived:
            raise InvalidInput("terms.unknown_metric", f"no billable metric {charge.metric!r}")
        if metric.aggregation != charge.aggregation:
            raise InvalidInput(
                "terms.aggregation_mismatch",
                f"{charge.metric} is aggregated by {metric.aggregation}, not {charge.aggregation}",
            )


def get_plan(uow: UnitOfWork, ctx: Context, plan_id: str) -> PlanRecord:
    plan = uow.catalog.get_plan(ctx.tenant_id, plan_id)
    if plan is None:
        raise NotFound("plan.not_found", f"no plan {plan_id}")
    return plan


def terms_in_force(uow: UnitOfWork, ctx: Context, plan_id: str) -> TermsRecord:
    """The newest version already effective now; what new subscribers are sold."""
    now = ctx.now()
    versions = [
        v for v in uow.catalog.terms_of_plan(ctx.tenant_id, plan_id) if v.effective_from <= now
    ]
    if not versions:
        raise Conflict("plan.no_terms_in_force", f"plan {plan_id} has no version in force yet")
    return max(versions, key=lambda v: v.version)


def load_terms(record: TermsRecord) -> BillingTerms:
    return BillingTerms.from_document(json.loads(record.document))


def get_terms(uow: UnitOfWork, ctx: Context, terms_id: str) -> TermsRecord:
    terms = uow.catalog.get_terms(ctx.tenant_id, terms_id)
    if terms is None:
        raise NotFound("terms.not_found", f"no terms {terms_id}")
    return terms
