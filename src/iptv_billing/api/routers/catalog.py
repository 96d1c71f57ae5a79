"""Channels, packages and plans with their versioned billing terms."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import AwareDatetime, Field

from iptv_billing.api.deps import AdminWrite, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.money import MoneyIn, MoneyOut
from iptv_billing.api.pagination import ListResponse, Pagination
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.api.usage_terms import MeteredTermsIn
from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.errors import NotFound
from iptv_billing.services import catalog
from iptv_billing.services.records import ChannelRecord, PackageRecord, PlanRecord, TermsRecord

router = APIRouter(route_class=IdempotentRoute, tags=["catalog"])
Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", examples=["sports-hd"])]
Name = Annotated[str, Field(min_length=1, max_length=200)]
ResourceId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


class ChannelIn(ApiModel):
    code: Code
    name: Name
    number: int = Field(ge=1, le=99_999)
    logo_url: str | None = Field(default=None, max_length=500)
    category: str = Field(default="General", min_length=1, max_length=100)
    epg_id: str | None = Field(
        default=None, max_length=100, description="the XMLTV channel id (M3U tvg-id)"
    )
    source_url: str | None = Field(
        default=None,
        max_length=1000,
        pattern=r"^(https?|rtmp|rtsp|srt)://[^\s]+$",
        description="where entitled players are sent (HLS, TS, RTMP …); "
        "`{user}` and `{token}` may appear in it",
    )
    catchup_days: int = Field(default=0, ge=0, le=30, description="archive depth; 0: none")


class ChannelOut(ApiModel):
    object: Literal["channel"] = "channel"
    id: str
    code: str
    name: str
    number: int
    logo_url: str | None
    stream_id: int | None
    category: str
    epg_id: str | None
    source_url: str | None
    catchup_days: int
    created_at: datetime

    @classmethod
    def of(cls, r: ChannelRecord) -> ChannelOut:
        return cls(
            id=r.id,
            code=r.code,
            name=r.name,
            number=r.number,
            logo_url=r.logo_url,
            stream_id=r.stream_id,
            category=r.category,
            epg_id=r.epg_id,
            source_url=r.source_url,
            catchup_days=r.catchup_days,
            created_at=r.created_at,
        )


class PackageIn(ApiModel):
    code: Code
    name: Name
    channel_codes: list[Code] = Field(max_length=5000)


class PackageOut(ApiModel):
    object: Literal["package"] = "package"
    id: str
    code: str
    name: str
    channel_ids: list[str]
    created_at: datetime

    @classmethod
    def of(cls, r: PackageRecord) -> PackageOut:
        return cls(
            id=r.id,
            code=r.code,
            name=r.name,
            channel_ids=list(r.channel_ids),
            created_at=r.created_at,
        )


class IntervalIn(ApiModel):
    unit: Literal["day", "week", "month", "year"]
    count: int = Field(default=1, ge=1, le=36)


class AddOnIn(ApiModel):
    code: Code
    name: Name
    kind: Literal["extra_connection", "extra_package"]
    prices: list[MoneyIn] = Field(min_length=1, max_length=50)
    connections: int = Field(default=0, ge=0, le=100)
    package_codes: list[Code] = Field(default_factory=list, max_length=100)


class TermsIn(MeteredTermsIn):
    """One version of a plan's billing terms. Prices are per currency; a change is a new
    version, never an edit. Metered plans add usage charges (and a threshold, a cap)."""

    name: Name
    interval: IntervalIn
    prices: list[MoneyIn] = Field(min_length=1, max_length=50)
    setup_fees: list[MoneyIn] = Field(default_factory=list, max_length=50)
    trial_days: int = Field(default=0, ge=0, le=365)
    max_connections: int = Field(default=1, ge=1, le=100)
    package_codes: list[Code] = Field(default_factory=list, max_length=100)
    addons: list[AddOnIn] = Field(default_factory=list, max_length=50)
    payment_due_days: int = Field(default=0, ge=0, le=90)
    grace_days: int = Field(default=3, ge=0, le=365)
    suspend_after_days: int = Field(default=14, ge=0, le=365)
    expire_after_days: int = Field(default=60, ge=0, le=3650)
    effective_from: AwareDatetime | None = None

    def command(self) -> catalog.PublishTerms:
        fields = self.model_dump(exclude={"effective_from", *MeteredTermsIn.model_fields})
        fields["prices"] = _money_docs(self.prices)
        fields["setup_fees"] = _money_docs(self.setup_fees)
        for doc, addon in zip(fields["addons"], self.addons, strict=True):
            doc["prices"] = _money_docs(addon.prices)
        return catalog.PublishTerms(fields | self.metered_document(), self.effective_from)


def _money_docs(values: list[MoneyIn]) -> list[dict[str, Any]]:
    return [{"currency": m.currency, "minor": m.to_money().minor} for m in values]


class PlanIn(ApiModel):
    code: Code
    name: Name
    terms: TermsIn


class TermsOut(ApiModel):
    object: Literal["terms"] = "terms"
    id: str
    plan_id: str
    version: int
    terms_hash: str = Field(description="SHA-256 of the canonical terms document")
    effective_from: datetime
    prices: list[MoneyOut]
    document: dict[str, Any]

    @classmethod
    def of(cls, r: TermsRecord) -> TermsOut:
        terms = BillingTerms.from_document(json.loads(r.document))
        return cls(
            id=r.id,
            plan_id=r.plan_id,
            version=r.version,
            terms_hash=r.terms_hash,
            effective_from=r.effective_from,
            prices=[MoneyOut.of(p) for p in terms.prices],
            document=json.loads(r.document),
        )


class PlanOut(ApiModel):
    object: Literal["plan"] = "plan"
    id: str
    code: str
    name: str
    created_at: datetime
    versions: list[TermsOut] = Field(default_factory=list)

    @classmethod
    def of(cls, r: PlanRecord, versions: list[TermsRecord] | None = None) -> PlanOut:
        return cls(
            id=r.id,
            code=r.code,
            name=r.name,
            created_at=r.created_at,
            versions=[TermsOut.of(v) for v in versions or []],
        )


@router.post("/v1/channels", status_code=201, response_model=ChannelOut)
def create_channel(body: ChannelIn, caller: AdminWrite, services: Services) -> ChannelOut:
    cmd = catalog.CreateChannel(
        body.code,
        body.name,
        body.number,
        body.logo_url,
        body.category,
        body.epg_id,
        body.source_url,
        body.catchup_days,
    )
    return ChannelOut.of(write(services, caller, lambda u, c: catalog.create_channel(u, c, cmd)))


@router.get("/v1/channels", response_model=ListResponse[ChannelOut])
def list_channels(page: Pagination, caller: ReadAccess, services: Services) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.catalog.list_channels(c.tenant_id, page.limit, page.starting_after),
    )
    return ListResponse.of(records, ChannelOut.of)


@router.get("/v1/channels/{channel_id}", response_model=ChannelOut)
def get_channel(channel_id: ResourceId, caller: ReadAccess, services: Services) -> ChannelOut:
    record = read(services, caller, lambda u, c: u.catalog.get_channel(c.tenant_id, channel_id))
    if record is None:
        raise NotFound("channel.not_found", f"no channel {channel_id}")
    return ChannelOut.of(record)


@router.post("/v1/packages", status_code=201, response_model=PackageOut)
def create_package(body: PackageIn, caller: AdminWrite, services: Services) -> PackageOut:
    cmd = catalog.CreatePackage(body.code, body.name, tuple(body.channel_codes))
    return PackageOut.of(write(services, caller, lambda u, c: catalog.create_package(u, c, cmd)))


@router.get("/v1/packages", response_model=ListResponse[PackageOut])
def list_packages(page: Pagination, caller: ReadAccess, services: Services) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.catalog.list_packages(c.tenant_id, page.limit, page.starting_after),
    )
    return ListResponse.of(records, PackageOut.of)


@router.get("/v1/packages/{package_id}", response_model=PackageOut)
def get_package(package_id: ResourceId, caller: ReadAccess, services: Services) -> PackageOut:
    record = read(services, caller, lambda u, c: u.catalog.get_package(c.tenant_id, package_id))
    if record is None:
        raise NotFound("package.not_found", f"no package {package_id}")
    return PackageOut.of(record)


@router.post("/v1/plans", status_code=201, response_model=PlanOut)
def create_plan(body: PlanIn, caller: AdminWrite, services: Services) -> PlanOut:
    plan, terms = write(
        services,
        caller,
        lambda u, c: catalog.create_plan(u, c, body.code, body.name, body.terms.command()),
    )
    return PlanOut.of(plan, [terms])


@router.get("/v1/plans", response_model=ListResponse[PlanOut])
def list_plans(page: Pagination, caller: ReadAccess, services: Services) -> Any:
    records = read(
        services,
        caller,
        lambda u, c: u.catalog.list_plans(c.tenant_id, page.limit, page.starting_after),
    )
    return ListResponse.of(records, PlanOut.of)


@router.get("/v1/plans/{plan_id}", response_model=PlanOut)
def get_plan(plan_id: ResourceId, caller: ReadAccess, services: Services) -> PlanOut:
    def work(u: Any, c: Any) -> PlanOut:
        plan = catalog.get_plan(u, c, plan_id)
        return PlanOut.of(plan, list(u.catalog.terms_of_plan(c.tenant_id, plan.id)))

    return read(services, caller, work)


@router.post("/v1/plans/{plan_id}/versions", status_code=201, response_model=TermsOut)
def publish_version(
    plan_id: ResourceId, body: TermsIn, caller: AdminWrite, services: Services
) -> TermsOut:
    """A new version of the plan's terms (e.g. a price change from an effective date).
    Existing subscriptions keep the terms they were sold under."""
    record = write(
        services, caller, lambda u, c: catalog.publish_terms(u, c, plan_id, body.command())
    )
    return TermsOut.of(record)


@router.get("/v1/terms/{terms_id}", response_model=TermsOut)
def get_terms(terms_id: ResourceId, caller: ReadAccess, services: Services) -> TermsOut:
    return TermsOut.of(read(services, caller, lambda u, c: catalog.get_terms(u, c, terms_id)))
