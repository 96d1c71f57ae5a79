"""M3U Plus playlists read back by an independent parser from PyPI (m3u-parser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from m3u_parser import M3uParser

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.playlists import PlaylistEntry, render_m3u

ENTRIES = [
    PlaylistEntry(
        "News 24",
        "http://tv.example/live/alice/s3cret/101.ts",
        tvg_id="news24.example",
        logo="http://tv.example/logos/news24.png",
        group="News",
        number=1,
        catchup_days=7,
    ),
    PlaylistEntry(
        'Kids "Fun" TV',
        "http://tv.example/live/alice/s3cret/102.ts",
        tvg_id="kids.example",
        group="Kids",
        number=2,
    ),
]


def test_an_independent_parser_reads_every_channel_and_attribute(tmp_path: Path) -> None:
    text = render_m3u(ENTRIES, epg_url="http://tv.example/xmltv.php?username=alice")
    assert text.startswith('#EXTM3U x-tvg-url="http://tv.example/xmltv.php?username=alice"\n')
    path = tmp_path / "playlist.m3u"
    path.write_text(text, encoding="utf-8")
    parser = M3uParser()
    parser.parse_m3u(str(path), check_live=False)
    streams = parser.get_list()
    assert [s["url"] for s in streams] == [e.url for e in ENTRIES]
    assert [s["tvg"]["id"] for s in streams] == ["news24.example", "kids.example"]
    assert [s["category"] for s in streams] == ["News", "Kids"]
    assert streams[0]["logo"] == "http://tv.example/logos/news24.png"
    assert streams[0]["name"] == "News 24"


def test_catchup_attributes_only_for_channels_with_an_archive() -> None:
    first, second = render_m3u(ENTRIES).splitlines()[1::2]
    assert 'catchup="xc" catchup-days="7"' in first
    assert "catchup" not in second
    assert "tvg-name=\"Kids 'Fun' TV\"" in second  # a quote cannot end the attribute early


def test_entries_with_line_breaks_are_refused() -> None:
    with pytest.raises(InvalidInput):
        PlaylistEntry("News\n#EXTINF:-1,Injected", "http://tv.example/1.ts")
    with pytest.raises(InvalidInput):
        PlaylistEntry("News", "")
