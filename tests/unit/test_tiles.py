"""C2SP tlog-tiles math: paths, widths, stored tiles against MemoryTree, node location, bundles."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.merkle import MemoryTree, leaf_hash
from iptv_billing.ledger.tiles import (
    STORED_TILE_SIZE,
    TILE_WIDTH,
    TileRef,
    build_stored_tile,
    encode_tile_index,
    entries_path,
    entry_bundle,
    full_tile_count,
    locate,
    node_in_stored_tile,
    parse_entry_bundle,
    parse_tile_path,
    partial_tiles,
    served_tile,
    stored_tile_root,
    subtree_from_base,
    tile_path,
    tile_width,
)

# 256 full level-0 tiles and one full level-1 tile: every tree level 0..16 is reachable.
TWO_LEVEL_SIZE = TILE_WIDTH * TILE_WIDTH


@pytest.fixture(scope="module")
def big_tree() -> MemoryTree:
    return MemoryTree(leaf_hash(i.to_bytes(4, "big")) for i in range(TWO_LEVEL_SIZE))


def stored_tile(tree: MemoryTree, tile_level: int, tile_index: int) -> bytes:
    level = 8 * tile_level
    base = tree.read([(level, tile_index * TILE_WIDTH + i) for i in range(TILE_WIDTH)])
    return build_stored_tile(base)


# --- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "want"),
    [
        (1234067, "x001/x234/067"),
        (5, "005"),
        (0, "000"),
        (999, "999"),
        (1000, "x001/000"),
        (2**64 - 1, "x018/x446/x744/x073/x709/x551/615"),
    ],
)
def test_encode_tile_index(index: int, want: str) -> None:
    assert encode_tile_index(index) == want


def test_paths() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(0, 1234067, 5) == "tile/0/x001/x234/067.p/5"
    assert tile_path(1, 1234, 256) == "tile/1/x001/234"
    assert tile_path(63, 0, 255) == "tile/63/000.p/255"
    assert entries_path(5) == "tile/entries/005"
    assert entries_path(1234067, 17) == "tile/entries/x001/x234/067.p/17"
    for level, index, width in ((64, 0, None), (0, -1, None), (0, 0, 0), (0, 0, 257)):
        with pytest.raises(LedgerError):
            tile_path(level, index, width)


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("tile/0/x001/x234/067", TileRef(0, 1234067, 256)),
        ("tile/1/x001/234.p/17", TileRef(1, 1234, 17)),
        ("tile/63/000.p/255", TileRef(63, 0, 255)),
        ("tile/entries/005", TileRef(None, 5, 256)),
        ("tile/entries/x001/x234/067.p/1", TileRef(None, 1234067, 1)),
    ],
)
def test_parse_tile_path(path: str, want: TileRef) -> None:
    got = parse_tile_path(path)
    assert got == want
    assert got.path == path
    assert got.is_partial is (want.width < 256)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile",
        "tile/0",
        "tiles/0/000",
        "/tile/0/000",
        "tile//000",
        "tile/01/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/+1/000",
        "tile/entry/000",
        "tile/0/5",
        "tile/0/05",
        "tile/0/0005",
        "tile/0/x005",
        "tile/0/x000/005",
        "tile/0/001/002",
        "tile/0/x1/005",
        "tile/0/x00a/005",
        "tile/0/X001/005",
        "tile/0/٠٠٥",
        "tile/0/005/",
        "tile/0/005\n",
        "tile/0/005.p",
        "tile/0/005.p/",
        "tile/0/005.p/0",
        "tile/0/005.p/00",
        "tile/0/005.p/010",
        "tile/0/005.p/256",
        "tile/0/005.p/1000",
        "tile/0/005.p/1.5",
        "tile/0/005.p/+5",
        "tile/0/005.q/5",
        "tile/0/05.p/5",
        "tile/0/005.p/5/6",
        "tile/0/x005.p/001",
        "tile/entries/005.p/256",
        "tile/0/x018/x446/x744/x073/x709/x551/616",
    ],
)
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(LedgerError) as info:
        parse_tile_path(path)
    assert info.value.code == "tile.bad_path"


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.integers(min_value=0, max_value=63)),
    st.one_of(st.integers(min_value=0, max_value=10**7), st.integers(0, 2**64 - 1)),
    st.integers(min_value=1, max_value=256),
)
def test_path_round_trip(level: int | None, index: int, width: int) -> None:
    path = entries_path(index, width) if level is None else tile_path(level, index, width)
    assert parse_tile_path(path) == TileRef(level, index, width)


# --- widths and counts ---------------------------------------------------------------------


def test_spec_example_70000() -> None:
    assert [full_tile_count(level, 70_000) for level in range(4)] == [273, 1, 0, 0]
    assert [tile_width(level, 70_000) for level in range(4)] == [112, 17, 1, 0]
    assert partial_tiles(70_000) == [TileRef(0, 273, 112), TileRef(1, 1, 17), TileRef(2, 0, 1)]
    assert [t.path for t in partial_tiles(70_000)] == [
        "tile/0/273.p/112",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
    ]


def test_spec_example_256_and_edges() -> None:
    assert partial_tiles(256) == [TileRef(1, 0, 1)]
    assert full_tile_count(0, 256) == 1
    assert partial_tiles(0) == []
    assert partial_tiles(1) == [TileRef(0, 0, 1)]
    assert partial_tiles(255) == [TileRef(0, 0, 255)]
    assert partial_tiles(TWO_LEVEL_SIZE) == [TileRef(2, 0, 1)]
    assert partial_tiles(2**64 - 1)[-1] == TileRef(7, 0, 255)
    with pytest.raises(LedgerError):
        partial_tiles(-1)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_tiles_account_for_every_leaf(size: int) -> None:
    # At each level, full tiles plus the partial width cover floor(size / 256**level) hashes.
    for level in range(8):
        hashes = size >> (8 * level)
        assert full_tile_count(level, size) * 256 + tile_width(level, size) == hashes
    for ref in partial_tiles(size):
        assert ref.level is not None
        assert 0 < ref.width < 256
        assert ref.index == full_tile_count(ref.level, size)


# --- stored tiles ----------------------------------------------------------------------------


def test_stored_tile_layout(big_tree: MemoryTree) -> None:
    for tile_index in (0, 1, 255):
        stored = stored_tile(big_tree, 0, tile_index)
        assert len(stored) == STORED_TILE_SIZE == 16_352
        for height in range(9):
            width = 256 >> height
            want = big_tree.read([(height, tile_index * width + i) for i in range(width)])
            got = [node_in_stored_tile(stored, height, i) for i in range(width)]
            assert got == want, height
        assert stored_tile_root(stored) == big_tree.read([(8, tile_index)])[0]
        assert served_tile(stored) == stored[: 256 * 32]
    level1 = stored_tile(big_tree, 1, 0)
    assert stored_tile_root(level1) == big_tree.root()
    assert node_in_stored_tile(level1, 3, 7) == big_tree.read([(11, 7)])[0]


def test_served_tile(big_tree: MemoryTree) -> None:
    stored = stored_tile(big_tree, 0, 0)
    base = stored[: 256 * 32]
    assert served_tile(stored, 5) == base[: 5 * 32]
    assert served_tile(base[: 7 * 32], 7) == base[: 7 * 32]
    assert served_tile(base, 256) == base
    for blob, width in ((stored, 0), (stored, 257), (base[:-1], 5), (base[: 4 * 32], 5)):
        with pytest.raises(LedgerError):
            served_tile(blob, width)
    with pytest.raises(LedgerError):
        served_tile(stored + b"\0" * 32, 1)


def test_stored_tile_refusals(big_tree: MemoryTree) -> None:
    base = big_tree.read([(0, i) for i in range(256)])
    with pytest.raises(LedgerError):
        build_stored_tile(base[:255])
    with pytest.raises(LedgerError):
        build_stored_tile([*base[:255], b"short"])
    stored = build_stored_tile(base)
    for height, index in ((9, 0), (-1, 0), (0, 256), (8, 1), (1, -1)):
        with pytest.raises(LedgerError):
            node_in_stored_tile(stored, height, index)
    with pytest.raises(LedgerError):
        node_in_stored_tile(stored[:-32], 0, 0)
    with pytest.raises(LedgerError):
        stored_tile_root(stored[: 256 * 32])


@pytest.mark.parametrize("width", [1, 2, 3, 100, 128, 255, 256])
def test_subtree_from_base_partial(big_tree: MemoryTree, width: int) -> None:
    base = big_tree.read([(0, 256 + i) for i in range(width)])  # tile 1, possibly partial
    for height in range(9):
        count = width >> height  # complete subtrees at this height
        for index in range(count):
            want = big_tree.read([(height, (256 >> height) + index)])[0]
            assert subtree_from_base(base, height, index) == want
        if count < 256 >> height:
            with pytest.raises(LedgerError):
                subtree_from_base(base, height, count)


# --- locate ------------------------------------------------------------------------------------


def test_locate_convention() -> None:
    assert locate((0, 1234)) == (0, 4, 0, 210)
    assert locate((3, 100)) == (0, 3, 3, 4)
    assert locate((7, 5)) == (0, 2, 7, 1)
    assert locate((8, 5)) == (0, 5, 8, 0)  # root of level-0 tile 5, not base of a level-1 tile
    assert locate((9, 5)) == (1, 0, 1, 5)
    assert locate((16, 3)) == (1, 3, 8, 0)
    assert locate((17, 3)) == (2, 0, 1, 3)
    for bad in ((-1, 0), (0, -1), (64, 0), (63, 2)):
        with pytest.raises(LedgerError):
            locate(bad)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=63), st.data())
def test_locate_covers_the_same_leaves(level: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=(2**64 - 1) >> level))
    tile_level, tile_index, height, in_tile = locate((level, index))
    assert 0 <= height <= 8
    assert (height == 0) is (level == 0)
    assert 0 <= in_tile < 256 >> height
    # The node's first leaf, computed from the tile position, is the subtree's first leaf.
    first_leaf = (tile_index * 256 + (in_tile << height)) << (8 * tile_level)
    assert first_leaf == index << level
    assert 8 * tile_level + height == level


def test_locate_reads_every_node_from_stored_tiles(big_tree: MemoryTree) -> None:
    tiles: dict[tuple[int, int], bytes] = {}
    for level in range(17):
        count = TWO_LEVEL_SIZE >> level
        for index in sorted({0, 1, count // 2, count - 1} & set(range(count))):
            tile_level, tile_index, height, in_tile = locate((level, index))
            key = (tile_level, tile_index)
            if key not in tiles:
                tiles[key] = stored_tile(big_tree, tile_level, tile_index)
            got = node_in_stored_tile(tiles[key], height, in_tile)
            assert got == big_tree.read([(level, index)])[0], (level, index)


# --- entry bundles ----------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_entry_bundle_round_trip(entries: list[bytes]) -> None:
    data = entry_bundle(entries)
    assert len(data) == sum(2 + len(e) for e in entries)
    assert parse_entry_bundle(data) == entries
    # Every cut that is not an entry boundary is a truncation and must be refused.
    boundaries = {0}
    pos = 0
    for entry in entries:
        pos += 2 + len(entry)
        boundaries.add(pos)
    for cut in range(len(data)):
        if cut in boundaries:
            assert parse_entry_bundle(data[:cut]) == entries[: sorted(boundaries).index(cut)]
        else:
            with pytest.raises(LedgerError) as info:
                parse_entry_bundle(data[:cut])
            assert info.value.code == "tile.bad_bundle"


def test_entry_bundle_limits() -> None:
    assert entry_bundle([]) == b""
    assert parse_entry_bundle(b"") == []
    assert entry_bundle([b"", b"ab"]) == b"\x00\x00\x00\x02ab"
    big = b"x" * 65_535
    assert parse_entry_bundle(entry_bundle([big])) == [big]
    with pytest.raises(LedgerError) as info:
        entry_bundle([b"x" * 65_536])
    assert info.value.code == "tile.entry_too_large"
    with pytest.raises(LedgerError):
        parse_entry_bundle(b"\x00")
    with pytest.raises(LedgerError):
        parse_entry_bundle(b"\xff\xff" + b"x" * 100)
