"""The programme guide (EPG): batch imports and per-channel reads for operators' tools."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, Field

from iptv_billing.api.deps import AdminWrite, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import read, write
from iptv_billing.api.schemas import ApiModel
from iptv_billing.services import guide
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import ProgrammeRecord

router = APIRouter(route_class=IdempotentRoute, tags=["guide"])


class ProgrammeIn(ApiModel):
    channel_id: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    start: AwareDatetime
    stop: AwareDatetime
    title: str = Field(min_length=1, max_length=guide.MAX_TITLE)
    description: str | None = Field(default=None, max_length=guide.MAX_DESCRIPTION)
    category: str | None = Field(default=None, min_length=1, max_length=guide.MAX_CATEGORY)
    lang: str | None = Field(default=None, max_length=35, examples=["en", "pt-BR"])

    def item(self) -> guide.ProgrammeItem:
        return guide.ProgrammeItem(
            self.channel_id,
            self.start,
            self.stop,
            self.title,
            self.description,
            self.category,
            self.lang,
        )


class ProgrammesIn(ApiModel):
    programmes: list[ProgrammeIn] = Field(max_length=guide.MAX_BATCH)


class ImportOut(ApiModel):
    object: Literal["programme_import"] = "programme_import"
    channels: int
    added: int
    replaced: int = Field(description="programmes that were in the covered time ranges before")


class ProgrammeOut(ApiModel):
    object: Literal["programme"] = "programme"
    channel_id: str
    start: datetime
    stop: datetime
    title: str
    description: str | None
    category: str | None
    lang: str | None

    @classmethod
    def of(cls, r: ProgrammeRecord) -> ProgrammeOut:
        return cls(
            channel_id=r.channel_id,
            start=r.start,
            stop=r.stop,
            title=r.title,
            description=r.description,
            category=r.category,
            lang=r.lang,
        )


class ProgrammesOut(ApiModel):
    object: Literal["programme_list"] = "programme_list"
    channel_id: str
    window_start: datetime
    window_stop: datetime
    data: list[ProgrammeOut]


@router.post("/v1/epg/programmes", response_model=ImportOut)
def import_programmes(body: ProgrammesIn, caller: AdminWrite, services: Services) -> ImportOut:
    """Load programmes (at most 10,000 and 1 MB per call). Per channel, the programmes the
    guide held from the batch's first start to its last stop are replaced by the batch's, so
    re-sending a corrected schedule is safe. Programmes last at most 24 hours and may not
    overlap within a channel; unknown channels refuse the whole batch."""
    items = [p.item() for p in body.programmes]
    result = write(services, caller, lambda u, c: guide.import_programmes(u, c, items))
    return ImportOut(channels=result.channels, added=result.added, replaced=result.replaced)


@router.get("/v1/channels/{channel_id}/programmes", response_model=ProgrammesOut)
def channel_programmes(
    channel_id: ResourceId,
    caller: ReadAccess,
    services: Services,
    start: Annotated[AwareDatetime | None, Query(alias="from", description="default: now")] = None,
    stop: Annotated[
        AwareDatetime | None, Query(alias="to", description="default: a day after `from`")
    ] = None,
) -> ProgrammesOut:
    """The channel's programmes overlapping [from, to) (at most 15 days), by start time."""

    def work(u: UnitOfWork, c: Context) -> ProgrammesOut:
        span = guide.window(start, stop, c.now())
        found = guide.channel_programmes(u, c, channel_id, span)
        return ProgrammesOut(
            channel_id=channel_id,
            window_start=span.start,
            window_stop=span.stop,
            data=[ProgrammeOut.of(p) for p in found],
        )

    return read(services, caller, work)
