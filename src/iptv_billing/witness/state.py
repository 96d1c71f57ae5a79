"""Durable witness state in its own SQLite file.

``checkpoints`` holds, per origin, the latest cosigned checkpoint (size, root and the full note
with the verified log signatures and the witness's cosignature). ``refusals`` is append-only
evidence of checkpoints that a trusted log signed but that failed a consistency check.

Every write is one ``BEGIN IMMEDIATE`` transaction, so the old-size check and the update are
atomic across threads and processes, and the WAL is fsynced (``synchronous=FULL``) before
``compare_and_swap`` returns, i.e. before the HTTP response leaves. Sizes are stored as decimal
TEXT because tree sizes are uint64 and SQLite integers are signed 64-bit.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from iptv_billing.ledger.note import decode_base64, encode_base64
from iptv_billing.witness.service import StoredCheckpoint

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    origin       TEXT PRIMARY KEY,
    origin_hash  TEXT NOT NULL UNIQUE,          -- lowercase hex SHA-256(origin), for monitors
    size         TEXT NOT NULL CHECK (size GLOB '[0-9]*'),
    root         BLOB NOT NULL CHECK (length(root) = 32),
    note         TEXT NOT NULL,
    cosigned_at  INTEGER NOT NULL
) STRICT;

-- Defence in depth: the service never shrinks a tree, and neither may anything else.
CREATE TRIGGER IF NOT EXISTS checkpoints_no_rollback
BEFORE UPDATE OF size ON checkpoints
WHEN length(NEW.size) < length(OLD.size)
  OR (length(NEW.size) = length(OLD.size) AND NEW.size < OLD.size)
BEGIN
    SELECT RAISE(ABORT, 'witness state must never roll back');
END;

CREATE TABLE IF NOT EXISTS refusals (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    origin       TEXT NOT NULL,
    old_size     TEXT NOT NULL,
    proof        TEXT NOT NULL,                 -- base64 hashes, one per line
    checkpoint   TEXT NOT NULL,                 -- the signed note as submitted
    reason       TEXT NOT NULL,
    refused_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS refusals_origin ON refusals (origin, id);

CREATE TRIGGER IF NOT EXISTS refusals_no_update BEFORE UPDATE ON refusals
BEGIN
    SELECT RAISE(ABORT, 'refusals are append-only');
END;

CREATE TRIGGER IF NOT EXISTS refusals_no_delete BEFORE DELETE ON refusals
BEGIN
    SELECT RAISE(ABORT, 'refusals are append-only');
END;
"""


class WitnessStateError(Exception):
    """The state file cannot be used (newer schema, not a witness database, ...)."""


@dataclass(frozen=True)
class Refusal:
    """One refused submission kept as evidence of log misbehaviour."""

    id: int
    origin: str
    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str
    reason: str
    refused_at: int


def origin_hash(origin: str) -> str:
    """The monitoring path component: lowercase hex SHA-256 of the origin line."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


class SqliteWitnessState:
    """The ``WitnessState`` port over one SQLite file; safe to share between threads."""

    def __init__(self, path: Path | str, *, busy_timeout: float = 30.0) -> None:
        self._path = str(path)
        self._busy_timeout = busy_timeout
        try:
            self._create_schema()
        except sqlite3.Error as exc:  # unwritable directory, not a database, ...
            raise WitnessStateError(f"cannot use {self._path}: {exc}") from exc

    def _create_schema(self) -> None:
        with self._connect() as conn:
            # WAL lets monitors read while a submission commits; the mode persists in the file.
            conn.execute("PRAGMA journal_mode=WAL")
            with _immediate(conn):
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise WitnessStateError(
                        f"{self._path} has schema version {version}; this witness knows "
                        f"{SCHEMA_VERSION}"
                    )
                for statement in _statements(_SCHEMA):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per operation: sqlite3 connections must not be shared
        # between threads, and opening one is cheap next to the fsync of a commit.
        try:
            conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise WitnessStateError(f"cannot open {self._path}: {exc}") from exc
        try:
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    # --- reads --------------------------------------------------------------------------

    def latest(self, origin: str) -> StoredCheckpoint | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT origin, size, root, note, cosigned_at FROM checkpoints WHERE origin = ?",
                (origin,),
            ).fetchone()
        return None if row is None else _stored(row)

    def latest_by_hash(self, hash_hex: str) -> StoredCheckpoint | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT origin, size, root, note, cosigned_at FROM checkpoints "
                "WHERE origin_hash = ?",
                (hash_hex,),
            ).fetchone()
        return None if row is None else _stored(row)

    def refusals(self, origin: str | None = None) -> list[Refusal]:
        query = "SELECT id, origin, old_size, proof, checkpoint, reason, refused_at FROM refusals"
        params: tuple[str, ...] = ()
        if origin is not None:
            query += " WHERE origin = ?"
            params = (origin,)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY id", params).fetchall()
        return [
            Refusal(
                id=int(r[0]),
                origin=str(r[1]),
                old_size=int(r[2]),
                proof=tuple(_decode_hash(line) for line in str(r[3]).split("\n") if line),
                checkpoint=str(r[4]),
                reason=str(r[5]),
                refused_at=int(r[6]),
            )
            for r in rows
        ]

    # --- writes -------------------------------------------------------------------------

    def compare_and_swap(
        self, expected_size: int, expected_root: bytes | None, new: StoredCheckpoint
    ) -> int | None:
        """Store ``new`` if the origin's state is still (``expected_size``, ``expected_root``)
        (``expected_root`` None: no state yet, which requires ``expected_size == 0``).

        Returns None once ``new`` is durable, or the size actually stored (0 if none) when
        another submission got there first.
        """
        with self._connect() as conn, _immediate(conn) as tx:
            if expected_root is not None:
                updated = conn.execute(
                    "UPDATE checkpoints SET size = ?, root = ?, note = ?, cosigned_at = ? "
                    "WHERE origin = ? AND size = ? AND root = ?",
                    (
                        str(new.size),
                        new.root,
                        new.note,
                        new.cosigned_at,
                        new.origin,
                        str(expected_size),
                        expected_root,
                    ),
                )
                if updated.rowcount == 1:
                    return None
            row = conn.execute(
                "SELECT size FROM checkpoints WHERE origin = ?", (new.origin,)
            ).fetchone()
            if row is None and expected_root is None and expected_size == 0:
                conn.execute(
                    "INSERT INTO checkpoints (origin, origin_hash, size, root, note, cosigned_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        new.origin,
                        origin_hash(new.origin),
                        str(new.size),
                        new.root,
                        new.note,
                        new.cosigned_at,
                    ),
                )
                return None
            tx.rollback()
            return 0 if row is None else int(row[0])

    def record_refusal(
        self,
        origin: str,
        old_size: int,
        proof: Sequence[bytes],
        checkpoint: str,
        reason: str,
        refused_at: int,
    ) -> None:
        with self._connect() as conn, _immediate(conn):
            conn.execute(
                "INSERT INTO refusals (origin, old_size, proof, checkpoint, reason, refused_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    origin,
                    str(old_size),
                    "".join(encode_base64(h) + "\n" for h in proof),
                    checkpoint,
                    reason,
                    refused_at,
                ),
            )


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.done = False

    def rollback(self) -> None:
        self._conn.execute("ROLLBACK")
        self.done = True


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[_Transaction]:
    """``BEGIN IMMEDIATE`` (the write lock up front, so check-then-write cannot interleave),
    COMMIT on success, ROLLBACK on error."""
    conn.execute("BEGIN IMMEDIATE")
    tx = _Transaction(conn)
    try:
        yield tx
    except BaseException:
        if not tx.done:
            conn.execute("ROLLBACK")
        raise
    if not tx.done:
        conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Split the schema on ';' at the end of a statement, keeping trigger bodies whole."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


def _stored(row: tuple[object, ...]) -> StoredCheckpoint:
    origin, size, root, note, cosigned_at = row
    if not isinstance(root, bytes):
        raise WitnessStateError(f"the stored root of {origin!r} is not a BLOB")
    return StoredCheckpoint(str(origin), int(str(size)), root, str(note), int(str(cosigned_at)))


def _decode_hash(line: str) -> bytes:
    raw = decode_base64(line)
    if raw is None:
        raise WitnessStateError("a stored refusal proof line is not base64")
    return raw
