"""transparency-dev/merkle proof vectors, RFC 6962 known answers and the RFC 6962 example proofs.

The vectors are copied unmodified into ``tests/vectors/merkle`` (Apache-2.0; source, commit and
licence in its README); if that directory is missing, ``test_vector_directory_is_complete``
fails rather than everything silently skipping.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "merkle"
KINDS = ("inclusion", "consistency", "subtreeinclusion", "subtreeconsistency")
# Upstream counts at commit 417fb0c3 (README): 98 + 98 + 204 + 118 = 518.
MIN_FILES = {"inclusion": 98, "consistency": 98, "subtreeinclusion": 204, "subtreeconsistency": 118}


def _vector_files() -> list[Path]:
    if not VECTORS.is_dir():
        return []
    return sorted(p for kind in KINDS for p in (VECTORS / kind).rglob("*.json"))


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b64(x) for x in case["proof"] or []]


def _verify(kind: str, c: dict[str, Any]) -> None:
    if kind == "inclusion":
        verify_inclusion(
            _b64(c["leafHash"]), c["leafIdx"], c["treeSize"], _proof(c), _b64(c["root"])
        )
    elif kind == "consistency":
        verify_consistency(c["size1"], c["size2"], _b64(c["root1"]), _b64(c["root2"]), _proof(c))
    elif kind == "subtreeinclusion":
        verify_subtree_inclusion(
            _b64(c["leafHash"]), c["leafIdx"], c["start"], c["end"], _proof(c), _b64(c["root"])
        )
    else:
        verify_subtree_consistency(
            c["start"], c["end"], c["size"], _b64(c["root1"]), _b64(c["root2"]), _proof(c)
        )


def test_vector_directory_is_complete() -> None:
    assert VECTORS.is_dir(), f"Merkle vectors missing: {VECTORS}"
    for kind, want in MIN_FILES.items():
        got = len(list((VECTORS / kind).rglob("*.json")))
        assert got >= want, f"{kind}: {got} vector files, expected at least {want}"


@pytest.mark.parametrize(
    "path", _vector_files(), ids=lambda p: str(p.relative_to(VECTORS)).removesuffix(".json")
)
def test_vector(path: Path) -> None:
    kind = path.relative_to(VECTORS).parts[0]
    case = json.loads(path.read_text())
    # Anything but LedgerError propagates and fails the test: verifiers must not crash.
    if case["wantErr"]:
        with pytest.raises(LedgerError):
            _verify(kind, case)
    else:
        _verify(kind, case)


# --- known answers (derived/rfc6962-tree-heads.json and ledger-formats.md §1.2) ----------------


@pytest.fixture(scope="module")
def derived() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "derived" / "rfc6962-tree-heads.json").read_text())
    return data


@pytest.fixture(scope="module")
def tree(derived: dict[str, Any]) -> MemoryTree:
    return MemoryTree(leaf_hash(bytes.fromhex(x)) for x in derived["leaf_inputs"])


def test_hasher_constants(derived: dict[str, Any]) -> None:
    hasher = derived["hasher"]
    assert EMPTY_ROOT.hex() == hasher["empty_tree_root"]
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == hasher["leaf_hash_of_empty_leaf"]
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )
    for case in hasher["leaf_hash_cases"]:
        assert leaf_hash(bytes.fromhex(case["leaf_hex"])).hex() == case["hash"]
    for case in hasher["node_hash_cases"]:
        left, right = bytes.fromhex(case["left_hex"]), bytes.fromhex(case["right_hex"])
        assert node_hash(left, right).hex() == case["hash"]


def test_leaf_hashes(derived: dict[str, Any]) -> None:
    got = [leaf_hash(bytes.fromhex(x)).hex() for x in derived["leaf_inputs"]]
    assert got == derived["leaf_hashes"]


def test_tree_heads_0_to_8(derived: dict[str, Any], tree: MemoryTree) -> None:
    heads = derived["tree_heads"]
    assert [h["tree_size"] for h in heads] == list(range(9))
    for head in heads:
        assert tree.root(head["tree_size"]).hex() == head["root"]
    assert tree.root(5).hex() == "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"


def test_node_hashes_by_level(derived: dict[str, Any], tree: MemoryTree) -> None:
    for level, hashes in enumerate(derived["node_hashes_by_level"]):
        coords = [(level, i) for i in range(len(hashes))]
        assert [h.hex() for h in tree.read(coords)] == hashes


def _happy_paths(kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted((VECTORS / kind).glob("*/happy-path.json")):
        case: dict[str, Any] = json.loads(path.read_text())
        out.append(case)
    return out


def test_generated_proofs_equal_vector_proofs(tree: MemoryTree) -> None:
    inclusion = _happy_paths("inclusion")
    consistency = _happy_paths("consistency")
    assert len(inclusion) == 5
    assert len(consistency) == 5
    for c in inclusion:
        assert tree.inclusion_proof(c["leafIdx"], c["treeSize"]) == _proof(c), c
        assert tree.root(c["treeSize"]) == _b64(c["root"])
    for c in consistency:
        assert tree.consistency_proof(c["size1"], c["size2"]) == _proof(c), c


# --- RFC 6962 §2.1.3 examples: the 7-leaf tree a..f, j -----------------------------------------


@pytest.fixture(scope="module")
def rfc_tree() -> tuple[MemoryTree, dict[str, bytes]]:
    t = MemoryTree(leaf_hash(bytes([i])) for i in range(7))
    a, b, c, d, e, f, j = t.read([(0, i) for i in range(7)])
    g, h, i = node_hash(a, b), node_hash(c, d), node_hash(e, f)
    k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 - RFC 6962 names
    names = {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "j": j, "g": g, "h": h, "i": i}
    names |= {"k": k, "l": l}
    return t, names


@pytest.mark.parametrize(
    ("index", "want"), [(0, "bhl"), (3, "cgl"), (4, "fjk"), (6, "ik")], ids=lambda x: str(x)
)
def test_rfc6962_path_examples(
    rfc_tree: tuple[MemoryTree, dict[str, bytes]], index: int, want: str
) -> None:
    t, names = rfc_tree
    proof = t.inclusion_proof(index, 7)
    assert proof == [names[x] for x in want]
    verify_inclusion(t.read([(0, index)])[0], index, 7, proof, t.root())


@pytest.mark.parametrize(
    ("size1", "want"), [(3, "cdgl"), (4, "l"), (6, "ijk")], ids=lambda x: str(x)
)
def test_rfc6962_proof_examples(
    rfc_tree: tuple[MemoryTree, dict[str, bytes]], size1: int, want: str
) -> None:
    t, names = rfc_tree
    proof = t.consistency_proof(size1, 7)
    assert proof == [names[x] for x in want]
    verify_consistency(size1, 7, t.root(size1), t.root(), proof)
    assert t.root() == node_hash(names["k"], names["l"])
