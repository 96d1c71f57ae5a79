"""Per-log Ed25519 note signing keys on disk, with rotation.

Layout: ``<directory>/<sanitised log name>-<name hash>/<key id hex>.key``, directories 0700,
key files 0600. A key file is JSON holding the Go-style ``PRIVATE+KEY+...`` text and its
metadata::

    {"format": "iptv-billing/note-key@v1", "name": ..., "serial": 2,
     "private_key": "PRIVATE+KEY+...", "vkey": "...",
     "created_at": "2025-01-01T00:00:00+00:00", "not_after": null}

The key with the highest serial is the primary. Rotation adds a new primary and gives the old
one a ``not_after``: it keeps signing (next to the new key) until then, so verifiers have time
to learn the new vkey, and afterwards stays listed in ``public_vkeys`` so that old checkpoints
still verify. Files are never deleted.

Anything group- or other-accessible, or a symlink, is refused with ``PermissionError``. Writes go
to a 0600 temporary file that is fsynced and renamed over the target. ``ensure`` and ``rotate``
hold an exclusive ``flock`` on ``<directory>/.lock`` so that two processes cannot both create a
first key. Time is always passed in (aware datetimes); randomness is injected.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import (
    SIG_ED25519,
    Ed25519Signer,
    generate_ed25519_seed,
    is_valid_key_name,
    parse_private_key_text,
)

FORMAT = "iptv-billing/note-key@v1"
_KEY_FILE = re.compile(r"([0-9a-f]{8})\.key")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_PRIVATE_MASK = 0o077  # any group or other permission bit


@dataclass(frozen=True)
class StoredKey:
    """One key of a log and its validity window (``not_after`` None: no end, the primary)."""

    signer: Ed25519Signer
    serial: int
    created_at: datetime
    not_after: datetime | None

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def signs_at(self, now: datetime) -> bool:
        return self.not_after is None or now < self.not_after


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return moment.astimezone(UTC)


def _directory_name(name: str) -> str:
    # Readable prefix for operators, hash suffix so "a/b" and "a_b" never share a directory.
    readable = _UNSAFE.sub("_", name)[:64].lstrip(".") or "log"
    return f"{readable}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:16]}"


def _check_private(path: Path, *, directory: bool) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise PermissionError(f"{path} is a symlink; refusing to use it for signing keys")
    if directory != stat.S_ISDIR(info.st_mode) or not (directory or stat.S_ISREG(info.st_mode)):
        raise PermissionError(f"{path} is not a {'directory' if directory else 'regular file'}")
    if info.st_mode & _PRIVATE_MASK:
        raise PermissionError(
            f"{path} has mode {stat.S_IMODE(info.st_mode):04o}; signing keys must be private "
            f"to their owner ({'0700' if directory else '0600'})"
        )


def _make_private_directory(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    else:
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask; make it exact
    _check_private(path, directory=True)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


class KeyStore:
    """Signing keys for many logs (one per tenant, typically) under one private directory."""

    def __init__(self, directory: Path, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self._directory = Path(directory)
        self._random_bytes = random_bytes
        _make_private_directory(self._directory)

    @property
    def directory(self) -> Path:
        return self._directory

    # --- queries ------------------------------------------------------------------------

    def keys(self, name: str) -> list[StoredKey]:
        """Every key ever created for ``name``, primary (highest serial) first."""
        log_directory = self._log_directory(name)
        if not os.path.lexists(log_directory):
            return []
        _check_private(log_directory, directory=True)
        stored = []
        for entry in sorted(os.listdir(log_directory)):
            match = _KEY_FILE.fullmatch(entry)
            if match is None:
                continue  # temporary files and strangers
            key = self._load(log_directory / entry, name)
            if key.signer.key_id.hex() != match.group(1):
                raise LedgerError("keystore.corrupt", f"{entry}: file name and key id differ")
            stored.append(key)
        stored.sort(key=lambda k: k.serial, reverse=True)
        if len({k.serial for k in stored}) != len(stored):
            raise LedgerError("keystore.corrupt", f"two keys of {name!r} share a serial")
        return stored

    def signers(self, name: str, now: datetime) -> list[Ed25519Signer]:
        """The keys that sign at ``now``: the primary, then retiring keys still in overlap."""
        moment = _utc(now)
        stored = self.keys(name)
        return [k.signer for i, k in enumerate(stored) if i == 0 or k.signs_at(moment)]

    def public_vkeys(self, name: str) -> list[str]:
        """Vkeys of every key ever used for ``name`` (primary first), retired ones included."""
        return [k.vkey for k in self.keys(name)]

    def primary_vkey(self, name: str) -> str:
        stored = self.keys(name)
        if not stored:
            raise KeyError(f"no signing key for log {name!r}")
        return stored[0].vkey

    # --- changes ------------------------------------------------------------------------

    def ensure(self, name: str, now: datetime) -> Ed25519Signer:
        """The primary signer of ``name``, created (as of ``now``) if the log has none."""
        moment = _utc(now)
        with self._locked():
            stored = self.keys(name)
            if stored:
                return stored[0].signer
            return self._create(name, moment, serial=1, taken=set())

    def rotate(self, name: str, now: datetime, overlap: timedelta) -> Ed25519Signer:
        """Make a new primary; the old primary keeps signing until ``now + overlap``.

        Keys already retiring keep their own ``not_after``. The new key is written first: a
        crash in between leaves both keys signing rather than none.
        """
        moment = _utc(now)
        if overlap < timedelta(0):
            raise ValueError("the overlap cannot be negative")
        with self._locked():
            stored = self.keys(name)
            taken = {k.signer.key_id for k in stored}
            serial = stored[0].serial + 1 if stored else 1
            signer = self._create(name, moment, serial=serial, taken=taken)
            for key in stored:
                if key.not_after is None:
                    self._save(StoredKey(key.signer, key.serial, key.created_at, moment + overlap))
            return signer

    # --- internals ----------------------------------------------------------------------

    def ensure_secret(self, name: str, size: int = 32) -> bytes:
        """A symmetric secret kept beside the signing keys (``<name>.secret``, 0600), made
        with the injected randomness the first time any process asks."""
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,40}", name):
            raise LedgerError("keystore.bad_name", f"{name!r} is not a valid secret name")
        path = self._directory / f"{name}.secret"
        with self._locked():
            if not path.exists():
                _write_atomic(path, self._random_bytes(size).hex().encode("ascii"))
            _check_private(path, directory=False)
            secret = bytes.fromhex(path.read_text("ascii").strip())
        if len(secret) != size:
            raise PermissionError(f"{path} does not hold a {size}-byte secret")
        return secret

    def _log_directory(self, name: str) -> Path:
        if not is_valid_key_name(name):
            raise LedgerError("keystore.bad_name", f"{name!r} is not a valid note key name")
        return self._directory / _directory_name(name)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        _check_private(self._directory, directory=True)
        fd = os.open(self._directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _create(self, name: str, now: datetime, *, serial: int, taken: set[bytes]) -> Ed25519Signer:
        while True:  # a 32-bit key id can collide with an older key of the same log
            signer = Ed25519Signer.from_seed(name, generate_ed25519_seed(self._random_bytes))
            if signer.key_id not in taken:
                break
        _make_private_directory(self._log_directory(name))
        self._save(StoredKey(signer, serial, now, None))
        return signer

    def _path(self, signer: Ed25519Signer) -> Path:
        return self._log_directory(signer.name) / f"{signer.key_id.hex()}.key"

    def _save(self, key: StoredKey) -> None:
        document = {
            "format": FORMAT,
            "name": key.signer.name,
            "serial": key.serial,
            "private_key": key.signer.private_key_text(),
            "vkey": key.vkey,
            "created_at": key.created_at.isoformat(),
            "not_after": key.not_after.isoformat() if key.not_after else None,
        }
        data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
        _write_atomic(self._path(key.signer), data)

    def _load(self, path: Path, name: str) -> StoredKey:
        _check_private(path, directory=False)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read()
        try:
            document: Any = json.loads(raw)
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise ValueError("unknown format")
            signer = parse_private_key_text(str(document["private_key"]))
            serial = document["serial"]
            created_at = _utc(datetime.fromisoformat(document["created_at"]))
            not_after_text = document["not_after"]
            not_after = (
                None if not_after_text is None else _utc(datetime.fromisoformat(not_after_text))
            )
        except (ValueError, KeyError, TypeError) as exc:  # LedgerError is a ValueError
            # The message never quotes the file: it holds a private key.
            raise LedgerError("keystore.corrupt", f"{path}: unreadable key file") from exc
        if not isinstance(signer, Ed25519Signer) or signer.SIG_TYPE != SIG_ED25519:
            raise LedgerError("keystore.corrupt", f"{path}: not an Ed25519 note key")
        if signer.name != name or document.get("name") != name:
            raise LedgerError("keystore.corrupt", f"{path}: key belongs to another log")
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 1:
            raise LedgerError("keystore.corrupt", f"{path}: bad serial")
        return StoredKey(signer, serial, created_at, not_after)
