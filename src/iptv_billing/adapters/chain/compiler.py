"""Compile the project's Vyper contracts with the installed ``vyper`` package, cached on disk.

Compiling takes about a second and needs nothing but the ``vyper`` package (no network, no
solc download), so it runs at start-up; the result is cached in a user cache directory keyed by
the source's SHA-256 and the compiler version, so later starts (and tests) reuse it. A cache
entry that cannot be read is ignored and rewritten; an unwritable cache directory only costs
the compile time.

Cache directory: ``$IPTV_BILLING_CACHE_DIR/vyper`` if set, else ``$XDG_CACHE_HOME/iptv-billing/
vyper``, else ``~/.cache/iptv-billing/vyper``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
CHECKPOINT_ANCHOR_SOURCE = CONTRACTS_DIR / "checkpoint_anchor.vy"

# Bumped when the cached JSON layout changes, so old entries are simply not found.
_CACHE_FORMAT = 1

_memo: dict[tuple[str, str], CompiledContract] = {}
_memo_lock = threading.Lock()


@dataclass(frozen=True)
class CompiledContract:
    """ABI and bytecodes of one contract, with what produced them."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes  # init code, sent to deploy
    bytecode_runtime: bytes  # what eth_getCode returns once deployed (no immutables here)
    source_sha256: str
    compiler_version: str


def default_cache_dir() -> Path:
    explicit = os.environ.get("IPTV_BILLING_CACHE_DIR")
    if explicit:
        return Path(explicit) / "vyper"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "iptv-billing" / "vyper"


def vyper_version() -> str:
    # Package metadata, not `import vyper`: the import is slow and only needed on a cache miss.
    return package_version("vyper")


def compile_contract(
    source_path: Path = CHECKPOINT_ANCHOR_SOURCE, cache_dir: Path | None = None
) -> CompiledContract:
    """Return the compiled contract, from the in-process memo, the disk cache, or vyper."""
    source = source_path.read_text(encoding="utf-8")
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    compiler = vyper_version()
    key = (digest, compiler)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
        directory = cache_dir if cache_dir is not None else default_cache_dir()
        cache_file = directory / f"{source_path.stem}-{digest}-vyper-{compiler}.json"
        compiled = _read_cache(cache_file, source_path.stem, digest, compiler)
        if compiled is None:
            compiled = _compile(source, source_path, digest, compiler)
            _write_cache(cache_file, compiled)
        _memo[key] = compiled
        return compiled


def _compile(source: str, source_path: Path, digest: str, compiler: str) -> CompiledContract:
    import vyper  # deferred: heavy import, only needed on a cache miss

    # The EVM version comes from the source's `#pragma evm-version`.
    out: dict[str, Any] = vyper.compile_code(
        source,
        contract_path=source_path.name,
        output_formats=["abi", "bytecode", "bytecode_runtime"],
    )
    log.info("compiled %s with vyper %s", source_path.name, compiler)
    return CompiledContract(
        name=source_path.stem,
        abi=out["abi"],
        bytecode=bytes.fromhex(out["bytecode"].removeprefix("0x")),
        bytecode_runtime=bytes.fromhex(out["bytecode_runtime"].removeprefix("0x")),
        source_sha256=digest,
        compiler_version=compiler,
    )


def _read_cache(path: Path, name: str, digest: str, compiler: str) -> CompiledContract | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if (
            data["format"] != _CACHE_FORMAT
            or data["source_sha256"] != digest
            or data["compiler_version"] != compiler
        ):
            return None
        return CompiledContract(
            name=name,
            abi=list(data["abi"]),
            bytecode=bytes.fromhex(data["bytecode"]),
            bytecode_runtime=bytes.fromhex(data["bytecode_runtime"]),
            source_sha256=digest,
            compiler_version=compiler,
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable vyper cache entry %s: %s", path, exc)
        return None


def _write_cache(path: Path, compiled: CompiledContract) -> None:
    payload = {
        "format": _CACHE_FORMAT,
        "source_sha256": compiled.source_sha256,
        "compiler_version": compiled.compiler_version,
        "abi": compiled.abi,
        "bytecode": compiled.bytecode.hex(),
        "bytecode_runtime": compiled.bytecode_runtime.hex(),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: concurrent starts never see a half-written entry.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("cannot write vyper cache entry %s: %s", path, exc)
