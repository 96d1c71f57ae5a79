"""Property tests for ``iptv_billing.ledger.merkle``: generation vs a naive RFC 6962 reference,
round trips, refusal of every single-bit corruption, Frontier vs MemoryTree, one read per proof.

About tree-size mutations: RFC 9162 verification binds a proof to the tree size only through
the proof's shape (its length and the side of each sibling). A proof for size ``n`` therefore
also verifies, against the same root, for any size ``n'`` whose RFC 6962 PATH/PROOF has the
same shape (e.g. leaf 0 in trees of 5 and 6 leaves). That is inherent, not a verifier bug: the
size and root come together from a signed checkpoint. The tests assert the exact criterion:
a mutated size is accepted if and only if the reference shape is unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.merkle import (
    EMPTY_ROOT,
    Coordinate,
    Frontier,
    MemoryTree,
    consistency_proof,
    consistency_proof_coordinates,
    fold_range,
    inclusion_proof,
    inclusion_proof_coordinates,
    leaf_hash,
    node_hash,
    range_coordinates,
    root_coordinates,
    tree_root,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

MAX_SIZE = 300
FLIP_EXAMPLES = settings(max_examples=100, deadline=None)
INT_BITS = (*range(12), 40, 63)


# --- naive RFC 6962 §2.1 reference (recursive, straight from the text) ------------------------


def _split(n: int) -> int:
    """Largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Reference:
    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves
        self.mth = lru_cache(maxsize=None)(self._mth)

    def _mth(self, lo: int, hi: int) -> bytes:
        if hi == lo:
            return EMPTY_ROOT
        if hi - lo == 1:
            return self.leaves[lo]
        k = _split(hi - lo)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = _split(hi - lo)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self.mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, complete), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


def path_shape(m: int, n: int) -> tuple[str, ...]:
    """Side of each sibling in PATH(m, D[n])."""
    if n == 1:
        return ()
    k = _split(n)
    return (*path_shape(m, k), "R") if m < k else (*path_shape(m - k, n - k), "L")


def proof_shape(m: int, n: int, complete: bool = True) -> tuple[str, ...]:
    """Role of each element of SUBPROOF(m, D[n], complete)."""
    if m == n:
        return () if complete else ("seed",)
    k = _split(n)
    if m <= k:
        return (*proof_shape(m, k, complete), "R")
    return (*proof_shape(m - k, n - k, False), "L")


def make_leaves(salt: bytes, n: int) -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(2, "big")) for i in range(n)]


BASE_LEAVES = make_leaves(b"base", 64)
BASE_TREE = MemoryTree(BASE_LEAVES)
BASE_REF = Reference(BASE_LEAVES)


def refused(verify: Callable[..., None], *args: Any) -> bool:
    try:
        verify(*args)
    except LedgerError:
        return True
    return False


def flips(value: bytes) -> list[bytes]:
    out = []
    for i in range(len(value) * 8):
        b = bytearray(value)
        b[i // 8] ^= 1 << (i % 8)
        out.append(bytes(b))
    return out


def int_mutations(value: int) -> set[int]:
    out = {value - 1, value + 1} | {value ^ (1 << b) for b in INT_BITS}
    out.discard(value)
    return out


# --- exhaustive comparison with the reference -------------------------------------------------


def test_roots_match_reference() -> None:
    for n in range(65):
        assert BASE_TREE.root(n) == BASE_REF.mth(0, n)


def test_inclusion_proofs_match_reference() -> None:
    for n in range(1, 65):
        for m in range(n):
            assert BASE_TREE.inclusion_proof(m, n) == BASE_REF.path(m, 0, n), (m, n)


def test_consistency_proofs_match_reference() -> None:
    for n in range(1, 65):
        assert BASE_TREE.consistency_proof(n, n) == []
        assert BASE_TREE.consistency_proof(0, n) == []
        for m in range(1, n):
            assert BASE_TREE.consistency_proof(m, n) == BASE_REF.subproof(m, 0, n, True), (m, n)


# --- strategies ----------------------------------------------------------------------------------


@st.composite
def trees(draw: st.DrawFn, min_size: int = 1) -> MemoryTree:
    size = draw(st.integers(min_value=min_size, max_value=MAX_SIZE))
    return MemoryTree(make_leaves(draw(st.binary(max_size=4)), size))


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[MemoryTree, int, int]:
    tree = draw(trees())
    size = draw(st.integers(min_value=1, max_value=tree.size))
    index = draw(st.integers(min_value=0, max_value=size - 1))
    return tree, index, size


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[MemoryTree, int, int]:
    tree = draw(trees(min_size=2))
    size2 = draw(st.integers(min_value=2, max_value=tree.size))
    size1 = draw(st.integers(min_value=1, max_value=size2 - 1))
    return tree, size1, size2


# --- inclusion ---------------------------------------------------------------------------------


@FLIP_EXAMPLES
@given(inclusion_cases())
def test_inclusion_round_trip_and_corruption(case: tuple[MemoryTree, int, int]) -> None:
    tree, index, size = case
    leaf = tree.read([(0, index)])[0]
    root = tree.root(size)
    proof = tree.inclusion_proof(index, size)
    verify_inclusion(leaf, index, size, proof, root)

    for i, element in enumerate(proof):
        for bad in flips(element):
            corrupt = [*proof[:i], bad, *proof[i + 1 :]]
            assert refused(verify_inclusion, leaf, index, size, corrupt, root)
    for bad in flips(root):
        assert refused(verify_inclusion, leaf, index, size, proof, bad)
    for bad in flips(leaf):
        assert refused(verify_inclusion, bad, index, size, proof, root)
    for bad_index in int_mutations(index):
        assert refused(verify_inclusion, leaf, bad_index, size, proof, root), bad_index
    for bad_size in int_mutations(size):
        same_shape = index < bad_size and path_shape(index, bad_size) == path_shape(index, size)
        assert refused(verify_inclusion, leaf, index, bad_size, proof, root) is not same_shape
    # Structural corruption: a dropped, added or truncated element.
    assert refused(verify_inclusion, leaf, index, size, [*proof, root], root)
    assert refused(verify_inclusion, leaf, index, size, [root, *proof], root)
    if proof:
        assert refused(verify_inclusion, leaf, index, size, proof[:-1], root)
        assert refused(verify_inclusion, leaf, index, size, [proof[0][:31], *proof[1:]], root)


# --- consistency -------------------------------------------------------------------------------


@FLIP_EXAMPLES
@given(consistency_cases())
def test_consistency_round_trip_and_corruption(case: tuple[MemoryTree, int, int]) -> None:
    tree, size1, size2 = case
    root1, root2 = tree.root(size1), tree.root(size2)
    proof = tree.consistency_proof(size1, size2)
    verify_consistency(size1, size2, root1, root2, proof)
    # The same proof is the draft-MTC subtree consistency proof of [0, size1).
    verify_subtree_consistency(0, size1, size2, root1, root2, proof)

    for i, element in enumerate(proof):
        for bad in flips(element):
            corrupt = [*proof[:i], bad, *proof[i + 1 :]]
            assert refused(verify_consistency, size1, size2, root1, root2, corrupt)
    for bad in flips(root1):
        assert refused(verify_consistency, size1, size2, bad, root2, proof)
    for bad in flips(root2):
        assert refused(verify_consistency, size1, size2, root1, bad, proof)
    assert refused(verify_consistency, size1, size2, root2, root1, proof)
    for bad_size1 in int_mutations(size1):
        assert refused(verify_consistency, bad_size1, size2, root1, root2, proof), bad_size1
    for bad_size2 in int_mutations(size2):
        same_shape = size1 < bad_size2 and proof_shape(size1, bad_size2) == proof_shape(
            size1, size2
        )
        assert refused(verify_consistency, size1, bad_size2, root1, root2, proof) is not same_shape
    assert refused(verify_consistency, size1, size2, root1, root2, [*proof, root2])
    assert refused(verify_consistency, size1, size2, root1, root2, [proof[0], *proof])
    assert refused(verify_consistency, size1, size2, root1, root2, proof[:-1])


def test_consistency_trivial_cases() -> None:
    root3 = BASE_TREE.root(3)
    verify_consistency(3, 3, root3, root3, [])
    assert refused(verify_consistency, 3, 3, root3, root3, [root3])
    assert refused(verify_consistency, 3, 3, root3, BASE_TREE.root(4), [])
    # Size 0 is left to the witness protocol layer.
    assert refused(verify_consistency, 0, 3, EMPTY_ROOT, root3, [])
    assert refused(verify_consistency, 0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert refused(verify_consistency, 4, 3, BASE_TREE.root(4), root3, [])


# --- subtree inclusion ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(trees(), st.data())
def test_subtree_inclusion_round_trip(tree: MemoryTree, data: st.DataObject) -> None:
    # A valid subtree [start, end): start is a multiple of bit_ceil(end - start).
    width_log = data.draw(st.integers(min_value=0, max_value=(tree.size).bit_length() - 1))
    block = 1 << width_log
    start = data.draw(st.integers(min_value=0, max_value=tree.size // block - 1)) * block
    end = data.draw(st.integers(min_value=start + 1, max_value=min(start + block, tree.size)))
    index = data.draw(st.integers(min_value=start, max_value=end - 1))
    groups = inclusion_proof_coordinates(index - start, end - start)
    # Shift the subtree-relative coordinates to log positions (start is aligned).
    shifted = [[(lvl, i + (start >> lvl)) for lvl, i in g] for g in groups]
    proof = [fold_range(tree.read(g)) for g in shifted]
    sub_root = fold_range(tree.read(range_coordinates(start, end)))
    leaf = tree.read([(0, index)])[0]
    verify_subtree_inclusion(leaf, index, start, end, proof, sub_root)
    for bad in flips(sub_root)[::7]:
        assert refused(verify_subtree_inclusion, leaf, index, start, end, proof, bad)
    assert refused(verify_subtree_inclusion, leaf, end, start, end, proof, sub_root)
    if start:
        assert refused(verify_subtree_inclusion, leaf, index, start - 1, end, proof, sub_root)


# --- malformed input never crashes --------------------------------------------------------------

_any_bytes = st.one_of(st.binary(max_size=40), st.binary(min_size=32, max_size=32))
_any_int = st.one_of(
    st.integers(min_value=-3, max_value=600),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63, 2**64 - 1, 2**64]),
)
_any_proof = st.lists(_any_bytes, max_size=12)


@settings(max_examples=300, deadline=None)
@given(_any_bytes, _any_int, _any_int, _any_int, _any_proof, _any_bytes, _any_bytes)
def test_verifiers_only_raise_ledger_error(
    h1: bytes, a: int, b: int, c: int, proof: list[bytes], h2: bytes, h3: bytes
) -> None:
    calls: tuple[Callable[[], None], ...] = (
        lambda: verify_inclusion(h1, a, b, proof, h2),
        lambda: verify_consistency(a, b, h2, h3, proof),
        lambda: verify_subtree_inclusion(h1, a, b, c, proof, h2),
        lambda: verify_subtree_consistency(a, b, c, h2, h3, proof),
    )
    for call in calls:
        with contextlib.suppress(LedgerError):
            call()


def test_wrong_types_are_refused() -> None:
    leaf = BASE_LEAVES[0]
    root = BASE_TREE.root(1)
    verify_inclusion(leaf, 0, 1, [], root)
    with pytest.raises(LedgerError, match="32 bytes"):
        verify_inclusion("x" * 32, 0, 1, [], root)  # type: ignore[arg-type]
    with pytest.raises(LedgerError):
        verify_inclusion(leaf, True, 2, [BASE_LEAVES[1]], BASE_TREE.root(2))
    with pytest.raises(LedgerError):
        verify_inclusion(leaf, 0, 2, 5, root)  # type: ignore[arg-type]
    with pytest.raises(LedgerError) as info:
        verify_inclusion(leaf, 1, 1, [], root)
    assert info.value.code == "proof.index_out_of_range"


# --- coordinates ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**40), st.integers(min_value=0, max_value=2**20))
def test_range_coordinates_cover_with_maximal_subtrees(start: int, length: int) -> None:
    end = start + length
    coords = range_coordinates(start, end)
    pos = start
    for level, index in coords:
        assert index << level == pos  # contiguous, left to right, aligned
        pos += 1 << level
        parent_lo = (index >> 1) << (level + 1)
        assert not start <= parent_lo < parent_lo + (2 << level) <= end  # maximal
    assert pos == end
    assert range_coordinates(0, end) == root_coordinates(end)
    assert len(root_coordinates(end)) == end.bit_count()


def test_generation_refuses_bad_arguments() -> None:
    codes = []
    for call in (
        lambda: inclusion_proof_coordinates(5, 5),
        lambda: inclusion_proof_coordinates(-1, 5),
        lambda: consistency_proof_coordinates(6, 5),
        lambda: BASE_TREE.inclusion_proof(0, 65),
        lambda: BASE_TREE.root(65),
        lambda: BASE_TREE.read([(7, 0)]),
        lambda: BASE_TREE.read([(0, -1)]),
        lambda: range_coordinates(5, 4),
    ):
        with pytest.raises(LedgerError) as info:
            call()
        codes.append(info.value.code)
    assert codes == [
        "proof.index_out_of_range",
        "proof.bad_size",
        "proof.bad_size",
        "proof.bad_size",
        "proof.bad_size",
        "tree.missing_node",
        "tree.missing_node",
        "proof.bad_size",
    ]


# --- one read per proof -----------------------------------------------------------------------


class CountingReader:
    def __init__(self, tree: MemoryTree) -> None:
        self.tree = tree
        self.calls: list[list[Coordinate]] = []

    def __call__(self, coords: Sequence[Coordinate]) -> list[bytes]:
        self.calls.append(list(coords))
        return self.tree.read(coords)


@settings(max_examples=100, deadline=None)
@given(consistency_cases())
def test_each_generation_uses_exactly_one_read(case: tuple[MemoryTree, int, int]) -> None:
    tree, size1, size2 = case
    for fn, want in (
        (lambda r: inclusion_proof(size1, size2, r), tree.inclusion_proof(size1, size2)),
        (lambda r: consistency_proof(size1, size2, r), tree.consistency_proof(size1, size2)),
        (lambda r: tree_root(size2, r), tree.root(size2)),
    ):
        reader = CountingReader(tree)
        assert fn(reader) == want
        assert len(reader.calls) == 1


def test_empty_results_need_no_read() -> None:
    reader = CountingReader(BASE_TREE)
    assert tree_root(0, reader) == EMPTY_ROOT
    assert inclusion_proof(0, 1, reader) == []
    assert consistency_proof(4, 4, reader) == []
    assert reader.calls == []


def test_short_reader_is_refused() -> None:
    with pytest.raises(LedgerError) as info:
        inclusion_proof(0, 8, lambda coords: [])
    assert info.value.code == "tree.read_mismatch"


# --- Frontier ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=4), st.integers(min_value=0, max_value=MAX_SIZE), st.data())
def test_frontier_matches_memory_tree(salt: bytes, size: int, data: st.DataObject) -> None:
    leaves = make_leaves(salt, size)
    tree = MemoryTree(leaves)
    frontier = Frontier()
    assert frontier.root() == EMPTY_ROOT
    cut = data.draw(st.integers(min_value=0, max_value=size))
    frontier.extend(leaves[:cut])
    assert frontier.size == cut
    assert frontier.root() == tree.root(cut)
    subtrees = frontier.subtrees()
    coords = [c for c, _ in subtrees]
    assert coords == root_coordinates(cut)
    assert [h for _, h in subtrees] == tree.read(coords)

    resumed = Frontier.from_subtrees(cut, [h for _, h in subtrees])
    for i in range(cut, size):
        resumed.append(leaves[i])
        if i % 37 == 0:
            assert resumed.root() == tree.root(i + 1)
    assert resumed.size == size
    assert resumed.root() == tree.root()


def test_frontier_refuses_bad_state() -> None:
    with pytest.raises(LedgerError):
        Frontier.from_subtrees(3, [BASE_LEAVES[0]])
    with pytest.raises(LedgerError):
        Frontier.from_subtrees(1, [b"short"])
    with pytest.raises(LedgerError):
        Frontier().append(b"short")
