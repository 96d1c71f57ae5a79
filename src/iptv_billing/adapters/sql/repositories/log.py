"""The transparency log in SQL: entries, stored tiles, checkpoints, cosignatures, anchors.

Appends are staged during a unit of work and written when it commits, last, so the tenant's
sequencer row (``log_heads``) is locked only for the append itself: a billing-run batch and an
API call interleave their entries in commit order, with gapless indices.

Tiles that fill up are written in the same transaction, with their inner nodes, so that any
proof for any size is a handful of reads: the complete subtrees it needs come from stored tiles
(immutable, hence cached in memory) or, at the right edge, from the few entries and tile roots
of the partial tiles.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, tuple_

from iptv_billing.adapters.sql.repositories._bulk import copy_text, insert_tuples
from iptv_billing.adapters.sql.repositories._common import (
    LOG_ANCHORS,
    LOG_CHECKPOINTS,
    LOG_COSIGNATURES,
    LOG_ENTRIES,
    LOG_HEADS,
    LOG_TILES,
    in_ids,
    insert_ignoring,
    is_postgresql,
    to_db,
    to_record,
    to_values,
)
from iptv_billing.domain.errors import InvariantViolated
from iptv_billing.ledger import tiles
from iptv_billing.ledger.entries import SALT_SIZE, encode_record
from iptv_billing.ledger.merkle import HASH_SIZE, Coordinate, node_hash
from iptv_billing.services.records import (
    AnchorRecord,
    CheckpointRecord,
    CosignatureRecord,
    LogDraft,
    LogEntryRecord,
)

_ENTRY_COLUMNS = (
    "tenant_id",
    "idx",
    "kind",
    "subject_id",
    "about_id",
    "salt",
    "record",
    "commitment",
    "created_at",
)
_TILE_COLUMNS = ("tenant_id", "level", "idx", "hashes", "root")
_LEAF_PREFIX = b"\x00"
_WIDTH = tiles.TILE_WIDTH
_HEIGHT = tiles.TILE_HEIGHT
# Where each height starts in a stored tile (level order: 256 base hashes, 128 parents, …).
_LEVEL_START = [2 * _WIDTH - ((2 * _WIDTH) >> h) for h in range(_HEIGHT + 1)]


class TileCache:
    """Full tiles never change, nor does a partial tile of a given width (entries are only
    appended), so a process keeps the recently used ones (LRU, bounded)."""

    def __init__(self, capacity: int = 2048) -> None:
        self._capacity = capacity
        self._tiles: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            blob = self._tiles.get(key)
            if blob is not None:
                self._tiles.move_to_end(key)
            return blob

    def put(self, key: Hashable, blob: Any) -> None:
        with self._lock:
            self._tiles[key] = blob
            self._tiles.move_to_end(key)
            while len(self._tiles) > self._capacity:
                self._tiles.popitem(last=False)


def _postgresql_time(at: datetime) -> str:
    return to_db(at).isoformat()


def _sqlite_time(at: datetime) -> str:
    return to_db(at).replace(tzinfo=None).isoformat(" ", "microseconds")


def _timestamp_writer(connection: Connection) -> Callable[[datetime], str]:
    """Driver-level timestamps as text: ISO 8601 with offset for PostgreSQL's COPY; for SQLite
    the text SQLAlchemy's DateTime writes (naive UTC), so reads through Core parse it back."""
    render = _postgresql_time if is_postgresql(connection) else _sqlite_time
    cache: dict[datetime, str] = {}  # a batch shares a handful of instants

    def stamp(at: datetime) -> str:
        text = cache.get(at)
        if text is None:
            text = cache[at] = render(at)
        return text

    return stamp


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str | None) -> str:
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_line(row: tuple[Any, ...]) -> str:
    """One log entry in COPY's text format, built directly: at appends of 100,000s a second
    the per-field adaptation of ``write_row`` costs more than the rest of the row. A record
    is orjson output, which escapes every control character itself: only its backslashes
    need doubling."""
    tenant, index, kind, subject, about, salt, record, commitment, at = row
    return (
        f"{_copy_text(tenant)}\t{index}\t{_copy_text(kind)}\t{_copy_text(subject)}\t"
        f"{_copy_text(about)}\t\\\\x{salt.hex()}\t{record.replace(chr(92), chr(92) * 2)}\t"
        f"\\\\x{commitment.hex()}\t{at}\n"
    )


def _leaf(commitment: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + commitment).digest()


class SqlLogRepository:
    def __init__(
        self, connection: Connection, random_bytes: Callable[[int], bytes], cache: TileCache
    ) -> None:
        self._c = connection
        self._random_bytes = random_bytes
        self._cache = cache
        self._staged: dict[str, list[LogDraft]] = {}

    # -- appending -------------------------------------------------------------------------
    def stage(self, tenant_id: str, drafts: Sequence[LogDraft]) -> None:
        if drafts:
            self._staged.setdefault(tenant_id, []).extend(drafts)

    def append_staged(self) -> None:
        staged, self._staged = self._staged, {}
        for tenant_id, drafts in staged.items():
            self._append(tenant_id, drafts, drafts[-1].at)

    def discard_staged(self) -> None:
        self._staged = {}

    def _append(self, tenant_id: str, drafts: Sequence[LogDraft], at: datetime) -> None:
        """The hot path of every write (two entries per renewal in a billing run): plain
        tuples, one ``executemany`` or COPY, no per-row SQLAlchemy processing."""
        start = self._reserve(tenant_id, len(drafts), at)
        salts = self._random_bytes(SALT_SIZE * len(drafts))
        stamp = _timestamp_writer(self._c)
        sha256 = hashlib.sha256
        rows = []
        commitments = []
        for offset, draft in enumerate(drafts):
            salt = salts[offset * SALT_SIZE : (offset + 1) * SALT_SIZE]
            # The index is part of what is committed: a row moved, inserted or removed is
            # then found at its exact place, not only as a wrong root.
            encoded = encode_record({**draft.record, "index": start + offset})
            commitment = sha256(salt + encoded).digest()
            commitments.append(commitment)
            rows.append(
                (
                    tenant_id,
                    start + offset,
                    draft.kind,
                    draft.subject_id,
                    draft.about_id,
                    salt,
                    encoded.decode("utf-8"),
                    commitment,
                    stamp(draft.at),
                )
            )
        if is_postgresql(self._c):
            copy_text(self._c, "log_entries", _ENTRY_COLUMNS, "".join(map(_copy_line, rows)))
        else:
            marks = ", ".join("?" * len(_ENTRY_COLUMNS))
            statement = f"INSERT INTO log_entries ({', '.join(_ENTRY_COLUMNS)}) VALUES ({marks})"
            self._c.exec_driver_sql(statement, rows)
        self._store_full_tiles(tenant_id, start, start + len(drafts), commitments)

    def _reserve(self, tenant_id: str, count: int, at: datetime) -> int:
        """Take ``count`` indices; the head row stays locked until commit."""
        create = insert_ignoring(self._c, LOG_HEADS, ("tenant_id",))
        self._c.execute(create, {"tenant_id": tenant_id, "size": 0, "updated_at": to_db(at)})
        bump = (
            LOG_HEADS.update()
            .where(LOG_HEADS.c.tenant_id == tenant_id)
            .values(size=LOG_HEADS.c.size + count, updated_at=to_db(at))
            .returning(LOG_HEADS.c.size)
        )
        return int(self._c.execute(bump).scalar_one()) - count

    def _store_full_tiles(
        self, tenant_id: str, old_size: int, new_size: int, new_commitments: list[bytes]
    ) -> None:
        """Write every tile, at every level, that this append completes."""
        first, last = old_size // _WIDTH, new_size // _WIDTH
        if first == last:
            return
        prior = self.commitments(tenant_id, first * _WIDTH, old_size)
        leaves = [_leaf(c) for c in prior + new_commitments[: last * _WIDTH - old_size]]
        rows = []
        roots: dict[int, bytes] = {}
        for index in range(first, last):
            offset = (index - first) * _WIDTH
            blob = tiles.build_stored_tile(leaves[offset : offset + _WIDTH])
            roots[index] = tiles.stored_tile_root(blob)
            rows.append((tenant_id, 0, index, blob, roots[index]))
        level = 1
        while new_size // _WIDTH ** (level + 1) > old_size // _WIDTH ** (level + 1):
            roots = self._store_level(tenant_id, level, old_size, new_size, roots, rows)
            level += 1
        insert_tuples(self._c, LOG_TILES, _TILE_COLUMNS, rows)

    def _store_level(
        self,
        tenant_id: str,
        level: int,
        old_size: int,
        new_size: int,
        fresh_below: dict[int, bytes],
        rows: list[tuple[str, int, int, bytes, bytes]],
    ) -> dict[int, bytes]:
        span = _WIDTH ** (level + 1)
        first, last = old_size // span, new_size // span
        below = self._tile_roots(tenant_id, level - 1, first * _WIDTH, min(fresh_below))
        below.update(fresh_below)
        roots: dict[int, bytes] = {}
        for index in range(first, last):
            base = [below[i] for i in range(index * _WIDTH, (index + 1) * _WIDTH)]
            blob = tiles.build_stored_tile(base)
            roots[index] = tiles.stored_tile_root(blob)
            rows.append((tenant_id, level, index, blob, roots[index]))
        return roots

    # -- reading the tree ---------------------------------------------------------------------
    def size(self, tenant_id: str) -> int:
        query = select(LOG_HEADS.c.size).where(LOG_HEADS.c.tenant_id == tenant_id)
        return int(self._c.execute(query).scalar_one_or_none() or 0)

    def commitments(self, tenant_id: str, start: int, end: int) -> list[bytes]:
        if end <= start:
            return []
        query = (
            select(LOG_ENTRIES.c.commitment)
            .where(
                LOG_ENTRIES.c.tenant_id == tenant_id,
                LOG_ENTRIES.c.idx >= start,
                LOG_ENTRIES.c.idx < end,
            )
            .order_by(LOG_ENTRIES.c.idx)
        )
        return [bytes(row[0]) for row in self._c.execute(query)]

    def _tile_roots(self, tenant_id: str, level: int, start: int, end: int) -> dict[int, bytes]:
        if end <= start:
            return {}
        query = select(LOG_TILES.c.idx, LOG_TILES.c.root).where(
            LOG_TILES.c.tenant_id == tenant_id,
            LOG_TILES.c.level == level,
            LOG_TILES.c.idx >= start,
            LOG_TILES.c.idx < end,
        )
        return {int(index): bytes(root) for index, root in self._c.execute(query)}

    def stored_tiles(
        self, tenant_id: str, keys: Sequence[tuple[int, int]], *, cached: bool = True
    ) -> dict[tuple[int, int], bytes]:
        """Stored (full) tiles by (level, index); absent keys are not full (yet)."""
        found: dict[tuple[int, int], bytes] = {}
        missing = []
        for key in keys:
            blob = self._cache.get(("full", tenant_id, *key)) if cached else None
            if blob is None:
                missing.append(key)
            else:
                found[key] = blob
        if missing:
            query = select(LOG_TILES.c.level, LOG_TILES.c.idx, LOG_TILES.c.hashes).where(
                LOG_TILES.c.tenant_id == tenant_id,
                tuple_(LOG_TILES.c.level, LOG_TILES.c.idx).in_(missing),
            )
            for level, index, blob in self._c.execute(query):
                found[(level, index)] = bytes(blob)
                if cached:
                    self._cache.put(("full", tenant_id, level, index), bytes(blob))
        return found

    def partial_base(self, tenant_id: str, level: int, index: int, width: int) -> list[bytes]:
        """The first ``width`` hashes of a tile that is not full: leaf hashes at level 0, the
        roots of the full tiles below otherwise."""
        key = ("partial", tenant_id, level, index, width)
        cached: list[bytes] | None = self._cache.get(key)
        if cached is not None:
            return cached
        start = index * _WIDTH
        if level == 0:
            base = [_leaf(c) for c in self.commitments(tenant_id, start, start + width)]
        else:
            roots = self._tile_roots(tenant_id, level - 1, start, start + width)
            base = [roots[i] for i in sorted(roots)]
        if len(base) == width:  # a short read (a size beyond the log) is not worth keeping
            self._cache.put(key, base)
        return base

    def read_subtrees(self, tenant_id: str, size: int, coords: Sequence[Coordinate]) -> list[bytes]:
        """Hashes of complete subtrees (level, index) of the tree of ``size`` entries, in
        order: with ``functools.partial`` a ``SubtreeReader``.

        The proof hot path, so ``tiles.locate`` and ``tiles.node_in_stored_tile`` are inlined
        without their argument checks (the coordinates come from ``ledger.merkle``)."""
        hashes = []
        found: dict[tuple[int, int], bytes] = {}
        partial: dict[tuple[int, int], dict[tuple[int, int], bytes]] = {}
        for level, index in coords:
            tile_level, height = divmod(level, _HEIGHT)
            if height == 0 and level and index >= size >> level >> _HEIGHT << _HEIGHT:
                # A tile root whose tile above is not full: read it at the top of its own
                # tile. Otherwise it is a base hash of the (few, cached) tile above, which
                # saves a cold read of the tile below.
                tile_level, height = tile_level - 1, _HEIGHT
            shift = _HEIGHT - height
            tile_index, position = index >> shift, index & ((1 << shift) - 1)
            if tile_index < size >> (_HEIGHT * (tile_level + 1)):  # full at this size
                key = (tile_level, tile_index)
                blob = found.get(key)
                if blob is None:
                    blob = found[key] = self._full_tile(tenant_id, tile_level, tile_index)
                start = (_LEVEL_START[height] + position) * HASH_SIZE
                hashes.append(blob[start : start + HASH_SIZE])
            else:
                key = (tile_level, tile_index)
                nodes = partial.get(key)
                if nodes is None:
                    width = tiles.tile_width(tile_level, size)
                    nodes = self._partial_nodes(tenant_id, tile_level, tile_index, width)
                    partial[key] = nodes
                hashes.append(nodes[(height, position)])
        return hashes

    def _full_tile(self, tenant_id: str, level: int, index: int) -> bytes:
        """One stored tile, from the cache or one statement on the driver's own cursor (the
        proof hot path: SQLAlchemy's execution context alone would cost more than the proof)."""
        key = ("full", tenant_id, level, index)
        blob: bytes | None = self._cache.get(key)
        if blob is None:
            mark = "%s" if is_postgresql(self._c) else "?"
            cursor = self._c.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(
                    f"SELECT hashes FROM log_tiles WHERE tenant_id = {mark} AND level = {mark} "
                    f"AND idx = {mark}",
                    (tenant_id, level, index),
                )
                row = cursor.fetchone()
            finally:
                cursor.close()
            if row is None:
                raise InvariantViolated(f"log {tenant_id}: full tile {level}/{index} is missing")
            blob = bytes(row[0])
            self._cache.put(key, blob)
        return blob

    def _partial_nodes(
        self, tenant_id: str, level: int, index: int, width: int
    ) -> dict[tuple[int, int], bytes]:
        """Every complete subtree inside the first ``width`` hashes of a partial tile, by
        (height, index): computed once per width, then cached like a full tile."""
        key = ("nodes", tenant_id, level, index, width)
        nodes: dict[tuple[int, int], bytes] | None = self._cache.get(key)
        if nodes is None:
            row = self.partial_base(tenant_id, level, index, width)
            nodes = {(0, i): h for i, h in enumerate(row)}
            height = 0
            while len(row) > 1:
                row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
                height += 1
                nodes.update(((height, i), h) for i, h in enumerate(row))
            self._cache.put(key, nodes)
        return nodes

    # -- reading entries ------------------------------------------------------------------------
    def iter_entries(self, tenant_id: str, batch: int = 10_000) -> Iterator[LogEntryRecord]:
        """Every stored entry in index order, as stored (gaps and all), a batch at a time."""
        after = -1
        while True:
            query = (
                select(LOG_ENTRIES)
                .where(LOG_ENTRIES.c.tenant_id == tenant_id, LOG_ENTRIES.c.idx > after)
                .order_by(LOG_ENTRIES.c.idx)
                .limit(batch)
            )
            rows = [_entry(row) for row in self._c.execute(query)]
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].idx

    def entries_about(self, tenant_id: str, about_ids: Sequence[str]) -> Sequence[LogEntryRecord]:
        if not about_ids:
            return []
        query = (
            select(LOG_ENTRIES)
            .where(
                LOG_ENTRIES.c.tenant_id == tenant_id,
                in_ids(self._c, LOG_ENTRIES.c.about_id, about_ids),
            )
            .order_by(LOG_ENTRIES.c.idx)
        )
        return [_entry(row) for row in self._c.execute(query)]

    def tenants(self) -> Sequence[str]:
        return [str(t) for t in self._c.execute(select(LOG_HEADS.c.tenant_id)).scalars()]

    def changes_since(
        self, tenant_id: str, start: int, kinds: Sequence[str], limit: int = 50_000
    ) -> Sequence[tuple[int, str, str | None]]:
        """(index, kind, about id) of entries of ``kinds`` from index ``start`` on: what the
        authorization index follows. Indices commit in order, so this is a gapless prefix."""
        query = (
            select(LOG_ENTRIES.c.idx, LOG_ENTRIES.c.kind, LOG_ENTRIES.c.about_id)
            .where(
                LOG_ENTRIES.c.tenant_id == tenant_id,
                LOG_ENTRIES.c.idx >= start,
                LOG_ENTRIES.c.kind.in_(list(kinds)),
            )
            .order_by(LOG_ENTRIES.c.idx)
            .limit(limit)
        )
        return [(int(i), str(k), a) for i, k, a in self._c.execute(query)]

    # -- checkpoints, cosignatures, anchors ---------------------------------------------------
    def add_checkpoint(self, checkpoint: CheckpointRecord) -> bool:
        insert = insert_ignoring(self._c, LOG_CHECKPOINTS, ("tenant_id", "size"))
        return bool(self._c.execute(insert, to_values(checkpoint)).rowcount)

    def checkpoint(self, tenant_id: str, size: int) -> CheckpointRecord | None:
        query = select(LOG_CHECKPOINTS).where(
            LOG_CHECKPOINTS.c.tenant_id == tenant_id, LOG_CHECKPOINTS.c.size == size
        )
        row = self._c.execute(query).first()
        return None if row is None else _checkpoint(row)

    def latest_checkpoint(self, tenant_id: str) -> CheckpointRecord | None:
        query = (
            select(LOG_CHECKPOINTS)
            .where(LOG_CHECKPOINTS.c.tenant_id == tenant_id)
            .order_by(LOG_CHECKPOINTS.c.size.desc())
            .limit(1)
        )
        row = self._c.execute(query).first()
        return None if row is None else _checkpoint(row)

    def recent_checkpoints(self, tenant_id: str, limit: int) -> Sequence[CheckpointRecord]:
        """The newest ``limit`` checkpoints, newest first."""
        query = (
            select(LOG_CHECKPOINTS)
            .where(LOG_CHECKPOINTS.c.tenant_id == tenant_id)
            .order_by(LOG_CHECKPOINTS.c.size.desc())
            .limit(limit)
        )
        return [_checkpoint(row) for row in self._c.execute(query)]

    def checkpoints(self, tenant_id: str) -> Sequence[CheckpointRecord]:
        query = (
            select(LOG_CHECKPOINTS)
            .where(LOG_CHECKPOINTS.c.tenant_id == tenant_id)
            .order_by(LOG_CHECKPOINTS.c.size)
        )
        return [_checkpoint(row) for row in self._c.execute(query)]

    def add_cosignature(self, cosignature: CosignatureRecord) -> bool:
        keys = ("tenant_id", "size", "witness")
        insert = insert_ignoring(self._c, LOG_COSIGNATURES, keys)
        return bool(self._c.execute(insert, to_values(cosignature)).rowcount)

    def cosignatures(self, tenant_id: str, size: int) -> Sequence[CosignatureRecord]:
        query = (
            select(LOG_COSIGNATURES)
            .where(LOG_COSIGNATURES.c.tenant_id == tenant_id, LOG_COSIGNATURES.c.size == size)
            .order_by(LOG_COSIGNATURES.c.witness)
        )
        return [to_record(CosignatureRecord, row) for row in self._c.execute(query)]

    def witness_size(self, tenant_id: str, witness: str) -> int:
        """The largest size ``witness`` cosigned for this log (0 if none)."""
        query = select(LOG_COSIGNATURES.c.size).where(
            LOG_COSIGNATURES.c.tenant_id == tenant_id, LOG_COSIGNATURES.c.witness == witness
        )
        return max((int(s) for s in self._c.execute(query).scalars()), default=0)

    def add_anchor(self, anchor: AnchorRecord) -> bool:
        insert = insert_ignoring(self._c, LOG_ANCHORS, ("tenant_id", "size"))
        return bool(self._c.execute(insert, to_values(anchor)).rowcount)

    def latest_anchor(self, tenant_id: str) -> AnchorRecord | None:
        query = (
            select(LOG_ANCHORS)
            .where(LOG_ANCHORS.c.tenant_id == tenant_id)
            .order_by(LOG_ANCHORS.c.size.desc())
            .limit(1)
        )
        row = self._c.execute(query).first()
        return None if row is None else _anchor(row)

    def anchor_at(self, tenant_id: str, size: int) -> AnchorRecord | None:
        query = select(LOG_ANCHORS).where(
            LOG_ANCHORS.c.tenant_id == tenant_id, LOG_ANCHORS.c.size == size
        )
        row = self._c.execute(query).first()
        return None if row is None else _anchor(row)


def _entry(row: Row[Any]) -> LogEntryRecord:
    return to_record(LogEntryRecord, row)


def _checkpoint(row: Row[Any]) -> CheckpointRecord:
    return to_record(CheckpointRecord, row)


def _anchor(row: Row[Any]) -> AnchorRecord:
    return to_record(AnchorRecord, row)
