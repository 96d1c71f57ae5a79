"""The programme guide: importing programmes, and reading them for XMLTV, the Xtream short EPG
and the admin API.

An import replaces, per channel, whatever the guide held in the time the batch covers (from
its first start to its last stop), so re-sending a day's schedule corrects it instead of
piling up duplicates. Programmes are validated here, not at the edges: every text must be
representable in XML (the guide ends up in XMLTV) and in PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from iptv_billing.domain.epg import Programme
from iptv_billing.domain.errors import InvalidInput, NotFound
from iptv_billing.domain.periods import require_aware
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import ChannelRecord, ProgrammeRecord

MAX_BATCH = 10_000
MAX_TITLE = 500
MAX_DESCRIPTION = 5_000
MAX_CATEGORY = 100
# Also what lets window queries use the (tenant, channel, start) key: see the repository.
LONGEST_PROGRAMME = timedelta(hours=24)
MAX_WINDOW = timedelta(days=15)
# Guides describe broadcast television: anything outside is a typo (and stays far from the
# ends of datetime, so that window arithmetic cannot overflow).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
DEFAULT_LANGUAGE = "en"
_LANG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}")
# Characters XML 1.0 cannot carry (and NUL, which PostgreSQL text refuses).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MAX_LISTED = 20


@dataclass(frozen=True, slots=True)
class ProgrammeItem:
    channel_id: str
    start: datetime
    stop: datetime
    title: str
    description: str | None = None
    category: str | None = None
    lang: str | None = None  # BCP 47, e.g. "en" or "pt-BR"


@dataclass(frozen=True, slots=True)
class ImportResult:
    channels: int
    added: int
    replaced: int  # programmes that were in the covered ranges before


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    stop: datetime


# -- import ------------------------------------------------------------------------------------
def import_programmes(
    uow: UnitOfWork, ctx: Context, items: Sequence[ProgrammeItem]
) -> ImportResult:
    if len(items) > MAX_BATCH:
        raise InvalidInput("epg.too_many", f"at most {MAX_BATCH} programmes per call")
    by_channel = _by_channel(items)
    _require_channels(uow, ctx.tenant_id, list(by_channel))
    replaced = 0
    for channel_id, programmes in by_channel.items():
        last_stop = max(p.stop for p in programmes)
        replaced += uow.guide.remove_between(
            ctx.tenant_id, channel_id, programmes[0].start, last_stop
        )
        uow.guide.add_many([_record(ctx.tenant_id, p) for p in programmes])
    return ImportResult(len(by_channel), len(items), replaced)


def _by_channel(items: Sequence[ProgrammeItem]) -> dict[str, list[ProgrammeItem]]:
    grouped: dict[str, list[ProgrammeItem]] = {}
    for number, item in enumerate(items):
        grouped.setdefault(item.channel_id, []).append(_checked(item, number))
    for programmes in grouped.values():
        programmes.sort(key=lambda p: p.start)
        for before, after in pairwise(programmes):
            if after.start < before.stop:
                raise InvalidInput(
                    "epg.overlapping_programmes",
                    f"two programmes of channel {after.channel_id} overlap at "
                    f"{after.start.isoformat()}",
                    channel_id=after.channel_id,
                )
    return grouped


def _checked(item: ProgrammeItem, number: int) -> ProgrammeItem:
    """The item in UTC, or InvalidInput naming the item's position."""
    start = require_aware(item.start, "start")
    stop = require_aware(item.stop, "stop")
    problem = _time_problem(start, stop) or _text_problem(item)
    if problem:
        raise InvalidInput("epg.invalid_programme", f"programme {number}: {problem}", item=number)
    title = item.title.strip()
    return ProgrammeItem(
        item.channel_id, start, stop, title, item.description, item.category, item.lang
    )


def _time_problem(start: datetime, stop: datetime) -> str | None:
    if stop <= start:
        return "it must end after it starts"
    if stop - start > LONGEST_PROGRAMME:
        return f"it may last at most {LONGEST_PROGRAMME}"
    if start < EARLIEST or stop > LATEST:
        return f"it must air between {EARLIEST.year} and {LATEST.year}"
    return None


def _text_problem(item: ProgrammeItem) -> str | None:
    title = item.title.strip()
    if not title or len(title) > MAX_TITLE:
        return f"the title needs 1 to {MAX_TITLE} characters"
    if item.description is not None and len(item.description) > MAX_DESCRIPTION:
        return f"the description has at most {MAX_DESCRIPTION} characters"
    if item.category is not None and not 0 < len(item.category) <= MAX_CATEGORY:
        return f"the category needs 1 to {MAX_CATEGORY} characters"
    if item.lang is not None and not _LANG.fullmatch(item.lang):
        return "the language is a code such as en or pt-BR"
    texts = (item.title, item.description or "", item.category or "")
    if any(_NOT_XML.search(text) for text in texts):
        return "texts may not contain control characters"
    return None


def _require_channels(uow: UnitOfWork, tenant_id: str, channel_ids: list[str]) -> None:
    missing = [c for c in channel_ids if uow.catalog.get_channel(tenant_id, c) is None]
    if missing:
        raise InvalidInput(
            "epg.unknown_channels",
            f"no such channels: {', '.join(missing[:_MAX_LISTED])}",
            channel_ids=missing[:_MAX_LISTED],
        )


def _record(tenant_id: str, item: ProgrammeItem) -> ProgrammeRecord:
    return ProgrammeRecord(
        tenant_id,
        item.channel_id,
        item.start,
        item.stop,
        item.title,
        item.description,
        item.category,
        item.lang,
    )


# -- reads -------------------------------------------------------------------------------------
def window(start: datetime | None, stop: datetime | None, now: datetime) -> Window:
    """A guide window: from ``start`` (default now) to ``stop`` (default a day later), at
    most MAX_WINDOW long."""
    begin = require_aware(start, "from") if start is not None else now
    if not EARLIEST <= begin < LATEST:
        raise InvalidInput("epg.invalid_window", f"from lies between {EARLIEST.year} and 2200")
    end = require_aware(stop, "to") if stop is not None else begin + timedelta(days=1)
    if not begin < end <= begin + MAX_WINDOW:
        raise InvalidInput(
            "epg.invalid_window", f"to must be after from, and at most {MAX_WINDOW.days} days on"
        )
    return Window(begin, end)


def channel_programmes(
    uow: UnitOfWork, ctx: Context, channel_id: str, span: Window
) -> Sequence[ProgrammeRecord]:
    """The admin API's read: one channel's programmes overlapping ``span``."""
    if uow.catalog.get_channel(ctx.tenant_id, channel_id) is None:
        raise NotFound("channel.not_found", f"no channel {channel_id}")
    return uow.guide.between(ctx.tenant_id, [channel_id], span.start, span.stop)


def programmes_of(
    uow: UnitOfWork, tenant_id: str, channels: Sequence[ChannelRecord], span: Window
) -> list[Programme]:
    """The guide of these channels (XMLTV), under their guide ids."""
    ids = {c.id: guide_id(c) for c in channels}
    found = uow.guide.between(tenant_id, list(ids), span.start, span.stop)
    return [as_programme(p, ids[p.channel_id]) for p in found]


def upcoming(
    uow: UnitOfWork, tenant_id: str, channel: ChannelRecord, now: datetime, limit: int
) -> list[Programme]:
    """What a channel shows now and next (the Xtream short EPG)."""
    found = uow.guide.between(tenant_id, [channel.id], now, now + MAX_WINDOW, limit)
    return [as_programme(p, guide_id(channel)) for p in found]


def printable(text: str) -> str:
    """``text`` without the characters XML cannot carry (channel names in guides)."""
    return _NOT_XML.sub("", text)


def guide_id(channel: ChannelRecord) -> str:
    """The channel's id in XMLTV and the playlist's tvg-id: its epg_id, else its code (so
    that a channel without one still finds its programmes)."""
    return channel.epg_id or channel.code


def as_programme(record: ProgrammeRecord, channel_guide_id: str) -> Programme:
    return Programme(
        channel_guide_id,
        record.start,
        record.stop,
        record.title,
        record.description,
        record.lang or DEFAULT_LANGUAGE,
    )
