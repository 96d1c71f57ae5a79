"""M3U Plus playlists, in the form IPTV players read (Xtream ``get.php?type=m3u_plus``, Kodi
``pvr.iptvsimple``, TiviMate, VLC): a ``#EXTM3U`` header naming the XMLTV guide, then an
``#EXTINF`` line with ``tvg-*``, ``group-title`` and catch-up attributes and the stream URL for
each channel the subscriber is entitled to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from iptv_billing.domain.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class PlaylistEntry:
    name: str
    url: str
    tvg_id: str | None = None  # the channel id in the XMLTV guide
    logo: str | None = None
    group: str | None = None
    number: int | None = None  # tvg-chno
    catchup_days: int = 0  # 0: no archive
    catchup_source: str | None = None  # URL template for "default" catch-up

    def __post_init__(self) -> None:
        for text in (self.name, self.url):
            if not text or "\n" in text or "\r" in text:
                raise InvalidInput("playlist.invalid_entry", "name and URL are one line each")


def _attribute(value: str) -> str:
    # Players split attributes on quotes and lines on newlines: neither may appear inside.
    return value.replace('"', "'").replace("\r", " ").replace("\n", " ")


def _extinf(entry: PlaylistEntry) -> str:
    attributes = []
    if entry.tvg_id:
        attributes.append(("tvg-id", entry.tvg_id))
    attributes.append(("tvg-name", entry.name))
    if entry.logo:
        attributes.append(("tvg-logo", entry.logo))
    if entry.number is not None:
        attributes.append(("tvg-chno", str(entry.number)))
    if entry.group:
        attributes.append(("group-title", entry.group))
    if entry.catchup_days:
        mode = "default" if entry.catchup_source else "xc"
        attributes += [("catchup", mode), ("catchup-days", str(entry.catchup_days))]
        if entry.catchup_source:
            attributes.append(("catchup-source", entry.catchup_source))
    rendered = " ".join(f'{key}="{_attribute(value)}"' for key, value in attributes)
    title = entry.name.replace(",", " ")  # the title follows the last comma
    return f"#EXTINF:-1 {rendered},{title}"


def render_m3u(entries: Iterable[PlaylistEntry], epg_url: str | None = None) -> str:
    header = "#EXTM3U" + (f' x-tvg-url="{_attribute(epg_url)}"' if epg_url else "")
    lines = [header]
    for entry in entries:
        lines += [_extinf(entry), entry.url]
    return "\n".join(lines) + "\n"
