"""The on-disk per-log signing key store: permissions, rotation with overlap, reloads."""

from __future__ import annotations

import json
import os
import random
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iptv_billing.adapters.keys import KeyStore
from iptv_billing.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import parse_vkey

LOG = "billing.example/tenant-1"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def seeded(n: int = 1) -> Callable[[int], bytes]:
    return random.Random(n).randbytes


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    # The store must not rely on the caller's umask for privacy.
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def key_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.key"))


def test_directories_0700_and_key_files_0600(tmp_path: Path, permissive_umask: None) -> None:
    root = tmp_path / "nested" / "keys"
    store = KeyStore(root, seeded())
    assert mode(root) == 0o700
    store.ensure(LOG, T0)
    [key_file] = key_files(root)
    assert mode(key_file) == 0o600
    assert mode(key_file.parent) == 0o700
    assert key_file.name == f"{store.keys(LOG)[0].signer.key_id.hex()}.key"
    assert [p.name for p in key_file.parent.iterdir()] == [key_file.name]  # no temp files left
    document = json.loads(key_file.read_text())
    assert document["private_key"].startswith(f"PRIVATE+KEY+{LOG}+")
    assert document["vkey"] == store.primary_vkey(LOG)
    assert document["created_at"] == T0.isoformat()
    assert document["not_after"] is None


def test_ensure_creates_once_and_reloads_identically(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", seeded())
    first = store.ensure(LOG, T0)
    assert store.ensure(LOG, T0 + HOUR) == first
    assert len(key_files(tmp_path / "keys")) == 1

    reloaded = KeyStore(tmp_path / "keys", seeded(2))
    assert reloaded.public_vkeys(LOG) == [first.vkey]
    [again] = reloaded.signers(LOG, T0)
    assert again == first
    assert again.sign("checkpoint\n") == first.sign("checkpoint\n")  # same private key


def test_injected_randomness_makes_keys_reproducible(tmp_path: Path) -> None:
    one = KeyStore(tmp_path / "one", seeded(5)).ensure(LOG, T0)
    two = KeyStore(tmp_path / "two", seeded(5)).ensure(LOG, T0)
    three = KeyStore(tmp_path / "three", seeded(6)).ensure(LOG, T0)
    assert one.vkey == two.vkey != three.vkey


def test_unknown_logs(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", seeded())
    assert store.signers(LOG, T0) == []
    assert store.public_vkeys(LOG) == []
    with pytest.raises(KeyError):
        store.primary_vkey(LOG)
    with pytest.raises(LedgerError) as caught:
        store.ensure("not a valid name", T0)
    assert caught.value.code == "keystore.bad_name"


def test_logs_are_isolated(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", seeded())
    a = store.ensure("example.com/a/b", T0)
    b = store.ensure("example.com/a_b", T0)
    assert a.vkey != b.vkey
    assert store.public_vkeys("example.com/a/b") == [a.vkey]
    assert store.public_vkeys("example.com/a_b") == [b.vkey]
    assert len({p.parent for p in key_files(tmp_path / "keys")}) == 2


# --- permissions --------------------------------------------------------------------------


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o620, 0o601, 0o644])
def test_refuses_a_key_file_others_can_access(tmp_path: Path, loose: int) -> None:
    store = KeyStore(tmp_path / "keys", seeded())
    store.ensure(LOG, T0)
    [key_file] = key_files(tmp_path / "keys")
    key_file.chmod(loose)
    for call in (
        lambda: store.signers(LOG, T0),
        lambda: store.public_vkeys(LOG),
        lambda: store.ensure(LOG, T0),
        lambda: KeyStore(tmp_path / "keys").primary_vkey(LOG),
    ):
        with pytest.raises(PermissionError, match="0600"):
            call()


def test_refuses_loose_directories_and_symlinks(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", seeded())
    store.ensure(LOG, T0)
    [key_file] = key_files(tmp_path / "keys")

    key_file.parent.chmod(0o750)
    with pytest.raises(PermissionError, match="0700"):
        store.signers(LOG, T0)
    key_file.parent.chmod(0o700)

    (tmp_path / "keys").chmod(0o755)
    with pytest.raises(PermissionError, match="0700"):
        KeyStore(tmp_path / "keys")
    with pytest.raises(PermissionError):
        store.ensure(LOG, T0)
    (tmp_path / "keys").chmod(0o700)

    elsewhere = tmp_path / "elsewhere.key"
    elsewhere.write_bytes(key_file.read_bytes())
    elsewhere.chmod(0o600)
    key_file.unlink()
    key_file.symlink_to(elsewhere)
    with pytest.raises(PermissionError, match="symlink"):
        store.signers(LOG, T0)


def test_corrupt_key_files_are_refused_without_leaking_the_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", seeded())
    store.ensure(LOG, T0)
    [key_file] = key_files(tmp_path / "keys")
    document = json.loads(key_file.read_text())
    secret = document["private_key"].rsplit("+", 1)[1]

    def rewrite(doc: object) -> None:
        key_file.write_text(json.dumps(doc))

    for broken in (
        {**document, "private_key": document["private_key"][:-3]},
        {**document, "created_at": "yesterday"},
        {**document, "created_at": "2025-01-01T00:00:00"},  # naive
        {**document, "format": "something/else"},
        {k: v for k, v in document.items() if k != "serial"},
        {**document, "serial": 0},
        {**document, "name": "other.example"},
        [document],
    ):
        rewrite(broken)
        with pytest.raises(LedgerError) as caught:
            store.public_vkeys(LOG)
        assert caught.value.code == "keystore.corrupt"
        assert secret[:12] not in caught.value.message
    key_file.write_bytes(b"\xff not json")
    with pytest.raises(LedgerError):
        store.public_vkeys(LOG)


# --- rotation -----------------------------------------------------------------------------


def test_rotation_with_overlap(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", seeded())
    old = store.ensure(LOG, T0)
    rotated_at = T0 + 24 * HOUR
    new = store.rotate(LOG, rotated_at, overlap=HOUR)
    assert new != old
    assert store.primary_vkey(LOG) == new.vkey
    assert store.ensure(LOG, rotated_at) == new

    # During the overlap both keys sign, the new primary first; afterwards only the new one.
    assert store.signers(LOG, rotated_at) == [new, old]
    assert store.signers(LOG, rotated_at + HOUR - timedelta(seconds=1)) == [new, old]
    assert store.signers(LOG, rotated_at + HOUR) == [new]
    assert store.signers(LOG, rotated_at + 1000 * HOUR) == [new]
    # Every key ever used stays listed so that old checkpoints keep verifying.
    assert store.public_vkeys(LOG) == [new.vkey, old.vkey]

    # Checkpoints signed during the overlap verify with either vkey.
    during = sign_checkpoint(Checkpoint(LOG, 5, bytes(32)), store.signers(LOG, rotated_at))
    for vk in (old.vkey, new.vkey):
        assert open_checkpoint(during, [parse_vkey(vk)]).checkpoint.size == 5
    after = sign_checkpoint(Checkpoint(LOG, 6, bytes(32)), store.signers(LOG, rotated_at + HOUR))
    verifiers = [parse_vkey(vk) for vk in store.public_vkeys(LOG)]
    assert [s.key_id for s in open_checkpoint(after, verifiers).log_signatures] == [new.key_id]
    with pytest.raises(LedgerError):
        open_checkpoint(after, [parse_vkey(old.vkey)])

    # The state survives a reload.
    reloaded = KeyStore(tmp_path / "keys")
    assert reloaded.signers(LOG, rotated_at) == [new, old]
    assert reloaded.signers(LOG, rotated_at + HOUR) == [new]
    [meta_new, meta_old] = reloaded.keys(LOG)
    assert (meta_new.serial, meta_old.serial) == (2, 1)
    assert meta_old.not_after == rotated_at + HOUR
    assert meta_new.not_after is None
    assert meta_new.created_at == rotated_at


def test_rotating_again_during_an_overlap_keeps_earlier_deadlines(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", seeded())
    first = store.ensure(LOG, T0)
    second = store.rotate(LOG, T0 + HOUR, overlap=10 * HOUR)
    third = store.rotate(LOG, T0 + 2 * HOUR, overlap=HOUR)
    assert store.signers(LOG, T0 + 2 * HOUR) == [third, second, first]
    assert store.signers(LOG, T0 + 3 * HOUR) == [third, first]  # second's overlap ended
    assert store.signers(LOG, T0 + 11 * HOUR) == [third]
    assert store.public_vkeys(LOG) == [third.vkey, second.vkey, first.vkey]


def test_rotation_edge_cases(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", seeded())
    created = store.rotate(LOG, T0, overlap=HOUR)  # no key yet: rotation creates the first
    assert store.signers(LOG, T0) == [created]
    immediate = store.rotate(LOG, T0 + HOUR, overlap=timedelta(0))
    assert store.signers(LOG, T0 + HOUR) == [immediate]
    with pytest.raises(ValueError, match="negative"):
        store.rotate(LOG, T0, overlap=-HOUR)
    with pytest.raises(ValueError, match="timezone"):
        store.ensure(LOG, datetime(2025, 1, 1))  # naive on purpose
    with pytest.raises(ValueError, match="timezone"):
        store.signers(LOG, datetime(2025, 1, 1))


def test_a_colliding_key_id_is_never_reused(tmp_path: Path) -> None:
    # The randomness repeats the first seed once: the store must draw again, not overwrite.
    seeds = [bytes([1]) * 32, bytes([1]) * 32, bytes([2]) * 32]

    def replay(n: int) -> bytes:
        assert n == 32
        return seeds.pop(0)

    store = KeyStore(tmp_path / "keys", replay)
    first = store.ensure(LOG, T0)
    second = store.rotate(LOG, T0 + HOUR, overlap=HOUR)
    assert first.key_id != second.key_id
    assert seeds == []
    assert len(key_files(tmp_path / "keys")) == 2
