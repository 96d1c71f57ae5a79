"""C2SP tlog-tiles math: tile paths, tile widths, stored tiles, node location, entry bundles.

A tile at level ``L`` holds 256 hashes of tree level ``8 * L``; it is the base of a complete
subtree of height 8. Our STORED tile keeps that subtree's internal nodes too: 511 hashes in level
order (256 base hashes, 128 parents, ..., 1 root), so any node inside a full tile is one slice,
no hashing. The served tile (C2SP) is the first ``width * 32`` bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.merkle import HASH_SIZE, MAX_U64, Coordinate, node_hash

__all__ = [
    "MAX_ENTRY_SIZE",
    "STORED_TILE_SIZE",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileRef",
    "build_stored_tile",
    "encode_tile_index",
    "entries_path",
    "entry_bundle",
    "full_tile_count",
    "locate",
    "node_in_stored_tile",
    "parse_entry_bundle",
    "parse_tile_path",
    "partial_tiles",
    "served_tile",
    "stored_tile_root",
    "subtree_from_base",
    "tile_path",
    "tile_width",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
STORED_TILE_HASHES = 2 * TILE_WIDTH - 1
STORED_TILE_SIZE = STORED_TILE_HASHES * HASH_SIZE
SERVED_TILE_SIZE = TILE_WIDTH * HASH_SIZE
MAX_TILE_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF

# Canonical forms only: no leading zeros (except "0" itself), 3-digit groups, ASCII digits.
_LEVEL_RE = re.compile(r"0|[1-9][0-9]?", re.ASCII)
_WIDTH_RE = re.compile(r"[1-9][0-9]{0,2}", re.ASCII)
_GROUP_RE = re.compile(r"x[0-9]{3}", re.ASCII)
_LAST_RE = re.compile(r"[0-9]{3}", re.ASCII)


def _bad_path(path: str, why: str) -> LedgerError:
    return LedgerError("tile.bad_path", f"bad tile path {path!r}: {why}")


def _check_int(name: str, value: int, low: int, high: int, code: str = "tile.bad_index") -> None:
    if type(value) is not int or not low <= value <= high:
        raise LedgerError(code, f"{name} must be an integer in [{low}, {high}], got {value!r}")


# --- paths ------------------------------------------------------------------------------------


def encode_tile_index(n: int) -> str:
    """Zero-padded 3-digit groups, all but the last prefixed with x: 1234067 -> x001/x234/067."""
    _check_int("tile index", n, 0, MAX_U64)
    digits = str(n)
    digits = digits.zfill(-(-len(digits) // 3) * 3)
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def _width_suffix(width: int | None) -> str:
    if width is None or width == TILE_WIDTH:
        return ""
    _check_int("tile width", width, 1, TILE_WIDTH)
    return f".p/{width}"


def tile_path(level: int, index: int, width: int | None = None) -> str:
    """``tile/<L>/<N>[.p/<W>]``; ``width`` None or 256 means a full tile."""
    _check_int("tile level", level, 0, MAX_TILE_LEVEL)
    return f"tile/{level}/{encode_tile_index(index)}{_width_suffix(width)}"


def entries_path(index: int, width: int | None = None) -> str:
    """``tile/entries/<N>[.p/<W>]``; ``width`` None or 256 means a full bundle."""
    return f"tile/entries/{encode_tile_index(index)}{_width_suffix(width)}"


@dataclass(frozen=True, slots=True)
class TileRef:
    """A tile (``level`` >= 0) or entry bundle (``level`` None); ``width`` 256 when full."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        if self.level is None:
            return entries_path(self.index, self.width)
        return tile_path(self.level, self.index, self.width)


def parse_tile_path(path: str) -> TileRef:
    """Parse a path relative to the log prefix, e.g. ``tile/1/x001/234.p/17``.

    Only the canonical encoding is accepted, so every tile has exactly one path.
    """
    if not isinstance(path, str):
        raise LedgerError("tile.bad_path", f"tile path must be a string, got {type(path)}")
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise _bad_path(path, "expected tile/<L>/<N>[.p/<W>]")
    level = _parse_level(path, parts[1])
    index, width = _parse_index_and_width(path, parts[2:])
    return TileRef(level, index, width)


def _parse_level(path: str, text: str) -> int | None:
    if text == "entries":
        return None
    if not _LEVEL_RE.fullmatch(text) or int(text) > MAX_TILE_LEVEL:
        raise _bad_path(path, f"level {text!r} is not a decimal 0..63 without leading zeros")
    return int(text)


def _parse_index_and_width(path: str, rest: list[str]) -> tuple[int, int]:
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _WIDTH_RE.fullmatch(rest[-1]) or int(rest[-1]) >= TILE_WIDTH:
            raise _bad_path(path, f"width {rest[-1]!r} is not a decimal 1..255")
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][:-2]]
    if not _LAST_RE.fullmatch(rest[-1]):
        raise _bad_path(path, "index must end in a 3-digit group")
    for group in rest[:-1]:
        if not _GROUP_RE.fullmatch(group):
            raise _bad_path(path, f"index group {group!r} is not x<3 digits>")
    index = int("".join(g[-3:] for g in rest))
    # Re-encoding rejects redundant leading groups such as x000/005.
    if index > MAX_U64 or encode_tile_index(index) != "/".join(rest):
        raise _bad_path(path, "index is not canonically encoded")
    return index, width


# --- widths and counts ---------------------------------------------------------------------


def full_tile_count(level: int, size: int) -> int:
    """Number of full tiles at ``level`` in a tree of ``size``."""
    _check_int("tile level", level, 0, MAX_TILE_LEVEL)
    _check_int("tree size", size, 0, MAX_U64, "tile.bad_size")
    return size >> (TILE_HEIGHT * (level + 1))


def tile_width(level: int, size: int) -> int:
    """Width of the partial tile at ``level`` for ``size``: floor(size / 256**level) mod 256
    (0 means there is no partial tile at that level)."""
    _check_int("tile level", level, 0, MAX_TILE_LEVEL)
    _check_int("tree size", size, 0, MAX_U64, "tile.bad_size")
    return (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)


def partial_tiles(size: int) -> list[TileRef]:
    """The partial Merkle tiles (every level, bottom up) a checkpoint of ``size`` requires.

    The level-0 entry has the same index and width as the partial entry bundle, if any.
    """
    _check_int("tree size", size, 0, MAX_U64, "tile.bad_size")
    out: list[TileRef] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        width = tile_width(level, size)
        if width:
            out.append(TileRef(level, full_tile_count(level, size), width))
        level += 1
    return out


# --- stored tiles ----------------------------------------------------------------------------


def _level_offset(height: int) -> int:
    # Hashes before height h in level order: 256 + 128 + ... = 512 - (512 >> h).
    return 2 * TILE_WIDTH - ((2 * TILE_WIDTH) >> height)


def _check_base(base: Sequence[bytes], max_count: int) -> None:
    if not 0 < len(base) <= max_count:
        raise LedgerError("tile.bad_size", f"expected 1..{max_count} tile hashes, got {len(base)}")
    for i, h in enumerate(base):
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise LedgerError("tile.bad_size", f"tile hash {i} is not {HASH_SIZE} bytes")


def build_stored_tile(base: Sequence[bytes]) -> bytes:
    """Exactly 256 base hashes -> the 511-hash level-order stored tile."""
    if len(base) != TILE_WIDTH:
        raise LedgerError("tile.bad_size", f"a full tile has {TILE_WIDTH} hashes, got {len(base)}")
    _check_base(base, TILE_WIDTH)
    out = [bytes(h) for h in base]
    row = out
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
        out.extend(row)
    return b"".join(out)


def _check_stored(stored: bytes) -> None:
    if len(stored) != STORED_TILE_SIZE:
        raise LedgerError(
            "tile.bad_size", f"stored tile must be {STORED_TILE_SIZE} bytes, got {len(stored)}"
        )


def served_tile(stored: bytes, width: int = TILE_WIDTH) -> bytes:
    """The C2SP tile of ``width`` hashes: a prefix of the stored tile (a partial tile for an
    older size is a prefix of the later full tile). Also accepts a bare base-hash blob."""
    _check_int("tile width", width, 1, TILE_WIDTH, "tile.bad_size")
    n = len(stored)
    if n != STORED_TILE_SIZE and (n % HASH_SIZE or n > SERVED_TILE_SIZE):
        raise LedgerError("tile.bad_size", f"not a stored tile or tile base: {n} bytes")
    if n < width * HASH_SIZE:
        raise LedgerError("tile.bad_size", f"tile of {n // HASH_SIZE} hashes has no width {width}")
    return bytes(stored[: width * HASH_SIZE])


def stored_tile_root(stored: bytes) -> bytes:
    """Root of the height-8 subtree a full stored tile represents (its last hash)."""
    _check_stored(stored)
    return bytes(stored[-HASH_SIZE:])


def node_in_stored_tile(stored: bytes, height: int, index: int) -> bytes:
    """Hash of the node at ``height`` (0 = base, 8 = root) and ``index`` within the tile."""
    _check_stored(stored)
    _check_int("height in tile", height, 0, TILE_HEIGHT)
    _check_int("index in tile", index, 0, (TILE_WIDTH >> height) - 1)
    start = (_level_offset(height) + index) * HASH_SIZE
    return bytes(stored[start : start + HASH_SIZE])


def subtree_from_base(base: Sequence[bytes], height: int, index: int) -> bytes:
    """MTH of ``base[index * 2**height : (index + 1) * 2**height]``, a complete subtree of a
    (possibly partial) tile's base hashes; for partial tiles, which are not stored expanded."""
    _check_int("height in tile", height, 0, TILE_HEIGHT)
    _check_int("index in tile", index, 0, (TILE_WIDTH >> height) - 1)
    _check_base(base, TILE_WIDTH)
    lo = index << height
    hi = lo + (1 << height)
    if hi > len(base):
        raise LedgerError(
            "tile.bad_index", f"subtree ({height}, {index}) is not complete in {len(base)} hashes"
        )
    row = list(base[lo:hi])
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return bytes(row[0])


def locate(coord: Coordinate) -> tuple[int, int, int, int]:
    """Where complete subtree ``(level, index)`` lives: ``(tile_level, tile_index,
    height_in_tile, index_in_tile)``.

    Convention: tree level 0 is tile level 0, height 0. Any other tree level ``8k + r`` maps to
    tile level ``k``, height ``r`` for r in 1..7, and a level ``8k`` (k > 0) maps to the ROOT
    (height 8) of tile ``index`` at tile level ``k - 1``, not to the base of tile level ``k``.
    So base hashes of level >= 1 tiles are never needed: that node is available from the full
    tile below as soon as it is complete, without waiting for (partial) tiles above.
    """
    level, index = coord
    _check_int("subtree level", level, 0, 63)
    _check_int("subtree index", index, 0, MAX_U64 >> level)
    if level == 0:
        return 0, index >> TILE_HEIGHT, 0, index & (TILE_WIDTH - 1)
    tile_level, height = divmod(level, TILE_HEIGHT)
    if height == 0:
        tile_level, height = tile_level - 1, TILE_HEIGHT
    shift = TILE_HEIGHT - height
    return tile_level, index >> shift, height, index & ((1 << shift) - 1)


# --- entry bundles --------------------------------------------------------------------------


def entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Big-endian uint16 length-prefixed entries (C2SP entry bundle)."""
    parts: list[bytes] = []
    for i, entry in enumerate(entries):
        n = len(entry)
        if n > MAX_ENTRY_SIZE:
            raise LedgerError(
                "tile.entry_too_large", f"entry {i} has {n} bytes, at most {MAX_ENTRY_SIZE}"
            )
        parts.append(n.to_bytes(2, "big"))
        parts.append(bytes(entry))
    return b"".join(parts)


def parse_entry_bundle(data: bytes) -> list[bytes]:
    """Split an entry bundle; a truncated length prefix or entry is refused."""
    out: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 2:
            raise LedgerError("tile.bad_bundle", f"truncated length prefix at byte {pos}")
        n = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if end - pos < n:
            raise LedgerError(
                "tile.bad_bundle", f"entry {len(out)} needs {n} bytes, {end - pos} left"
            )
        out.append(bytes(data[pos : pos + n]))
        pos += n
    return out
