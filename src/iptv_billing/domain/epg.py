"""XMLTV guides (``xmltv.php``): the channels a subscriber may watch and their programmes,
in the format every IPTV player and Kodi's pvr.iptvsimple read."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.periods import require_aware


@dataclass(frozen=True, slots=True)
class GuideChannel:
    id: str  # the tvg-id the playlist names
    name: str
    icon: str | None = None


@dataclass(frozen=True, slots=True)
class Programme:
    channel_id: str
    start: datetime
    stop: datetime
    title: str
    description: str | None = None
    language: str = "en"

    def __post_init__(self) -> None:
        require_aware(self.start)
        require_aware(self.stop)
        if self.stop <= self.start:
            raise InvalidInput("epg.invalid_programme", "a programme ends after it starts")


def xmltv_time(at: datetime) -> str:
    """XMLTV's ``YYYYmmddHHMMSS +0000``."""
    return at.astimezone(UTC).strftime("%Y%m%d%H%M%S +0000")


def render_xmltv(
    channels: Iterable[GuideChannel], programmes: Iterable[Programme], generator: str
) -> bytes:
    """The guide as UTF-8 XML. Programmes of channels not listed are left out, so a guide
    never names what the subscriber cannot watch."""
    tv = ET.Element("tv", {"generator-info-name": generator})
    listed = set()
    for channel in channels:
        listed.add(channel.id)
        element = ET.SubElement(tv, "channel", {"id": channel.id})
        ET.SubElement(element, "display-name").text = channel.name
        if channel.icon:
            ET.SubElement(element, "icon", {"src": channel.icon})
    for programme in programmes:
        if programme.channel_id not in listed:
            continue
        element = ET.SubElement(
            tv,
            "programme",
            {
                "start": xmltv_time(programme.start),
                "stop": xmltv_time(programme.stop),
                "channel": programme.channel_id,
            },
        )
        ET.SubElement(element, "title", {"lang": programme.language}).text = programme.title
        if programme.description:
            desc = ET.SubElement(element, "desc", {"lang": programme.language})
            desc.text = programme.description
    body = ET.tostring(tv, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")
