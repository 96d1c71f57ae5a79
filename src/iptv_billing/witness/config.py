"""The witness's configuration file and private key file.

Configuration (UTF-8, tlog-policy lexical rules: ``#`` comments, blank lines, spaces or tabs
between tokens)::

    name witness.example/w1                      # optional; must match the key file's name
    log example.com/log+8d66cf3f+AeKCd... https://example.com/log
    log example.com/log+0a1b2c3d+AU9x...         # a second (rotated) key for the same origin

Each ``log`` line trusts one log key; the checkpoint origin is the vkey's key name, so several
lines with the same name are several keys of one log. The ``log`` lines are validated by
``iptv_billing.ledger.policy.parse_policy`` so that the witness and the log's own policy agree
on what a log key is.

The private key file holds one Go-style ``PRIVATE+KEY+<name>+<id>+<base64(0x04 || seed)>``
line (a cosignature/v1 key). It must be a regular file, not a symlink, with no group or other
permission bits: a readable witness key lets anyone forge cosignatures.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import (
    SIG_COSIGNATURE_V1,
    CosignatureV1Signer,
    NoteVerifier,
    is_valid_key_name,
    parse_private_key_text,
)
from iptv_billing.ledger.policy import parse_policy

_SEPARATORS = re.compile(r"[ \t]+")
_PRIVATE_MASK = 0o077
_MAX_KEY_FILE = 4096
_MAX_CONFIG_FILE = 1 << 20


class WitnessConfigError(Exception):
    """A refused configuration or key file; ``code`` is stable, ``message`` names the cause."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WitnessConfig:
    """``logs`` maps each trusted origin to its log keys; ``urls`` to the URLs listed, if any."""

    name: str | None
    logs: Mapping[str, tuple[NoteVerifier, ...]]
    urls: Mapping[str, tuple[str, ...]]


def parse_config(text: str | bytes) -> WitnessConfig:
    """Parse the configuration; every refusal is a ``WitnessConfigError`` naming the line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WitnessConfigError("config.malformed", "the file is not valid UTF-8") from exc
    name: str | None = None
    policy_lines: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip(" \t")
        keyword = _SEPARATORS.split(stripped)[0] if stripped else ""
        if keyword == "name":
            args = _SEPARATORS.split(stripped)[1:]
            if len(args) != 1 or not is_valid_key_name(args[0]):
                raise WitnessConfigError(
                    "config.malformed", f"line {number}: expected: name <witness key name>"
                )
            if name is not None:
                raise WitnessConfigError("config.malformed", f"line {number}: name given twice")
            name = args[0]
            policy_lines.append("")  # keep line numbers in policy errors right
        elif keyword in ("", "log") or keyword.startswith("#"):
            policy_lines.append(line)
        else:
            # witness/group/quorum would be silently meaningless here: refuse them.
            raise WitnessConfigError(
                "config.malformed", f"line {number}: unknown keyword {keyword!r} (name, log)"
            )
    try:
        policy = parse_policy("\n".join(policy_lines) + "\nquorum none\n")
    except LedgerError as exc:
        raise WitnessConfigError(exc.code, exc.message) from exc
    if not policy.logs:
        raise WitnessConfigError("config.no_logs", "the configuration trusts no log")
    logs: dict[str, list[NoteVerifier]] = {}
    urls: dict[str, list[str]] = {}
    for verifier, url in zip(policy.logs, policy.log_urls, strict=True):
        logs.setdefault(verifier.name, []).append(verifier)
        if url:
            urls.setdefault(verifier.name, []).append(url)
    return WitnessConfig(
        name,
        {origin: tuple(keys) for origin, keys in logs.items()},
        {origin: tuple(u) for origin, u in urls.items()},
    )


def load_config(path: Path) -> WitnessConfig:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_CONFIG_FILE + 1)
    except OSError as exc:
        raise WitnessConfigError("config.unreadable", f"{path}: {exc.strerror}") from exc
    if len(data) > _MAX_CONFIG_FILE:
        raise WitnessConfigError("config.malformed", f"{path} is larger than 1 MiB")
    return parse_config(data)


def _read_private_file(path: Path) -> bytes:
    try:
        # O_NOFOLLOW + fstat: the checks apply to the file actually read, not to a swapped path.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise WitnessConfigError(
            "key.unreadable", f"{path}: {exc.strerror} (symlinks are refused)"
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise WitnessConfigError("key.not_private", f"{path} is not a regular file")
        if info.st_mode & _PRIVATE_MASK:
            raise WitnessConfigError(
                "key.not_private",
                f"{path} has mode {stat.S_IMODE(info.st_mode):04o}; "
                "the witness key must be private to its owner (chmod 600)",
            )
        return os.read(fd, _MAX_KEY_FILE + 1)
    finally:
        os.close(fd)


def load_witness_key(path: Path, clock: Callable[[], int]) -> CosignatureV1Signer:
    """The witness's cosignature/v1 signer from a 0600 key file."""
    data = _read_private_file(path)
    if len(data) > _MAX_KEY_FILE:
        raise WitnessConfigError("key.malformed", f"{path} is too large for a key file")
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise WitnessConfigError("key.malformed", f"{path} is not an ASCII key file") from exc
    try:
        signer = parse_private_key_text(text, clock=clock)
    except LedgerError as exc:
        raise WitnessConfigError(exc.code, f"{path}: {exc.message}") from exc
    if not isinstance(signer, CosignatureV1Signer) or signer.SIG_TYPE != SIG_COSIGNATURE_V1:
        raise WitnessConfigError(
            "key.wrong_type", f"{path} is a note (0x01) key; a witness needs a 0x04 key"
        )
    return signer


def write_private_key(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 and write ``text``; an existing file is never replaced."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise WitnessConfigError("key.exists", f"{path} already exists; not overwriting") from exc
    except OSError as exc:
        raise WitnessConfigError("key.unwritable", f"{path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, 0o600)  # the umask may have removed bits but never adds: make it exact
        handle.write(text.encode("ascii"))
        handle.flush()
        os.fsync(fd)
