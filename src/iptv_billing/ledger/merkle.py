"""RFC 6962 / RFC 9162 Merkle tree hashing, proof generation and proof verification.

Pure functions over SHA-256 hashes, no I/O. Storage is reached through a ``SubtreeReader``: a
callable that returns the hashes of complete subtrees named by ``Coordinate`` ``(level, index)``
(covering leaves ``[index * 2**level, (index + 1) * 2**level)``). Proof generation first computes
every coordinate it needs, then reads them in one call (the reader is a database query), then
folds.

Verification follows RFC 9162 §2.1.3.2 / §2.1.4.2 and the subtree procedures of
draft-ietf-plants-merkle-tree-certs, with the edge rules of the transparency-dev/merkle vectors
(reference ``ledger-formats.md`` §1.5): a leaf hash must be 32 bytes, and a
consistency proof from size 0 is always refused (the witness protocol handles old size 0 itself).
Every refusal is a ``LedgerError``; verifiers raise nothing else for bad input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from iptv_billing.ledger.errors import LedgerError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Coordinate",
    "Frontier",
    "MemoryTree",
    "SubtreeReader",
    "consistency_proof",
    "consistency_proof_coordinates",
    "fold_range",
    "inclusion_proof",
    "inclusion_proof_coordinates",
    "leaf_hash",
    "node_hash",
    "range_coordinates",
    "root_coordinates",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]

HASH_SIZE = 32
MAX_U64 = (1 << 64) - 1

_sha256 = hashlib.sha256
EMPTY_ROOT: bytes = _sha256(b"").digest()

Coordinate = tuple[int, int]
SubtreeReader = Callable[[Sequence[Coordinate]], Sequence[bytes]]


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


# --- input checks (shared by verifiers and generators) -------------------------------------


def _check_u64(name: str, value: int) -> None:
    # Sizes are uint64 on the wire; bool is refused because True/False are never sizes.
    if type(value) is not int or not 0 <= value <= MAX_U64:
        raise LedgerError(
            "proof.bad_size", f"{name} must be an integer in [0, 2^64), got {value!r}"
        )


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise LedgerError("proof.bad_hash_size", f"{name} must be {HASH_SIZE} bytes, got {size}")


def _check_proof(proof: Sequence[bytes]) -> Sequence[bytes]:
    if not isinstance(proof, list | tuple):
        try:
            proof = tuple(proof)
        except TypeError:
            raise LedgerError("proof.bad_proof", "proof must be a sequence of hashes") from None
    for i, element in enumerate(proof):
        _check_hash(f"proof[{i}]", element)
    return proof


def _mismatch(what: str) -> LedgerError:
    return LedgerError("proof.root_mismatch", f"{what} computed from the proof does not match")


def _bit_ceil(n: int) -> int:
    """Smallest power of two >= n (1 for n <= 1)."""
    return 1 << (n - 1).bit_length() if n > 1 else 1


def _check_subtree(start: int, end: int) -> None:
    """[start, end) is a valid subtree if empty, if start is 0, or if start is a multiple of
    bit_ceil(end - start)."""
    _check_u64("start", start)
    _check_u64("end", end)
    if start > end:
        raise LedgerError("proof.invalid_subtree", f"subtree start {start} > end {end}")
    if start not in (0, end) and start % _bit_ceil(end - start):
        raise LedgerError("proof.invalid_subtree", f"[{start}, {end}) is not a valid subtree")


# --- verification -----------------------------------------------------------------------------


def _root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    # Below level `inner` the paths of `index` and `size-1` differ (siblings on either side);
    # above it the path runs along the right border, where only left siblings exist.
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    if len(proof) != inner + border:
        raise LedgerError(
            "proof.wrong_length",
            f"inclusion proof for {index} in {size} needs {inner + border} hashes, "
            f"got {len(proof)}",
        )
    r = leaf
    for i in range(inner):
        p = proof[i]
        r = _sha256(b"\x01" + p + r if (index >> i) & 1 else b"\x01" + r + p).digest()
    for i in range(inner, len(proof)):
        r = _sha256(b"\x01" + proof[i] + r).digest()
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf HASH) is at ``index`` in the tree of ``size`` with ``root``."""
    _check_u64("index", index)
    _check_u64("size", size)
    if index >= size:
        raise LedgerError("proof.index_out_of_range", f"index {index} >= tree size {size}")
    _check_hash("leaf hash", leaf)
    _check_hash("root", root)
    proof = _check_proof(proof)
    if _root_from_inclusion(leaf, index, size, proof) != root:
        raise _mismatch("root")


def verify_subtree_inclusion(
    leaf: bytes, index: int, start: int, end: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is at ``index`` (a log index) inside the subtree ``[start, end)``
    whose hash is ``root`` (draft-ietf-plants-merkle-tree-certs subtree inclusion)."""
    _check_subtree(start, end)
    _check_u64("index", index)
    if not start <= index < end:
        raise LedgerError(
            "proof.index_out_of_range", f"index {index} outside subtree [{start}, {end})"
        )
    verify_inclusion(leaf, index - start, end - start, proof, root)


def _root_from_subtree_consistency(
    start: int, end: int, size: int, proof: Sequence[bytes], sub_root: bytes
) -> bytes:
    """Draft MTC "verifying a subtree consistency proof" for a non-empty valid subtree with
    end <= size and a non-empty proof. With start == 0 this is RFC 9162 §2.1.4.2: fn tracks the
    subtree's first leaf, sn its last leaf, tn the tree's last leaf."""
    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:
        # Flush with the right edge: no outside sibling below the subtree root.
        while fn != sn:
            fn >>= 1
            sn >>= 1
            tn >>= 1
    else:
        while fn != sn and sn & 1:
            fn >>= 1
            sn >>= 1
            tn >>= 1
    if fn == sn:
        # The seed is the subtree root itself (a perfect subtree); it is not in the proof.
        fr = sr = sub_root
        rest = proof
    else:
        fr = sr = proof[0]
        rest = proof[1:]
    for c in rest:
        if tn == 0:
            raise LedgerError("proof.wrong_length", "consistency proof has too many hashes")
        if sn & 1 or sn == tn:
            if fn < sn:
                fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not sn & 1:
                fn >>= 1
                sn >>= 1
                tn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
        tn >>= 1
    if tn != 0:
        raise LedgerError("proof.wrong_length", "consistency proof has too few hashes")
    if fr != sub_root:
        raise _mismatch("old root")
    return sr


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``size2``/``root2`` extends the tree of ``size1``/``root1``.

    ``size1 == 0`` is always refused (``proof.empty_tree``): callers that accept the empty tree
    (the witness) must handle it before calling. Equal sizes need an empty proof and byte-equal
    roots (root lengths are not checked there, as in the reference vectors).
    """
    _check_u64("size1", size1)
    _check_u64("size2", size2)
    if size2 < size1:
        raise LedgerError("proof.bad_size", f"size2 {size2} < size1 {size1}")
    if size1 == 0:
        raise LedgerError(
            "proof.empty_tree", "consistency proof from the empty tree is meaningless"
        )
    _verify_subtree_consistency(0, size1, size2, root1, root2, proof)


def verify_subtree_consistency(
    start: int, end: int, size: int, subtree_root: bytes, root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the subtree ``[start, end)`` with hash ``subtree_root`` is part of the tree of
    ``size`` with ``root`` (draft-ietf-plants-merkle-tree-certs subtree consistency).

    An empty subtree (``start == end <= size``) needs an empty proof and ``subtree_root ==
    EMPTY_ROOT``; ``root`` is then not examined, as in the reference vectors.
    """
    _check_subtree(start, end)
    _check_u64("size", size)
    if end > size:
        raise LedgerError("proof.bad_size", f"subtree end {end} > tree size {size}")
    if start == end:
        if len(_check_proof(proof)):
            raise LedgerError("proof.wrong_length", "proof for an empty subtree must be empty")
        if subtree_root != EMPTY_ROOT:
            raise _mismatch("empty subtree root")
        return
    _verify_subtree_consistency(start, end, size, subtree_root, root, proof)


def _verify_subtree_consistency(
    start: int, end: int, size: int, sub_root: bytes, root: bytes, proof: Sequence[bytes]
) -> None:
    proof = _check_proof(proof)
    if start == 0 and end == size:
        if len(proof):
            raise LedgerError("proof.wrong_length", "proof between equal trees must be empty")
        if sub_root != root:
            raise _mismatch("root")
        return
    if not len(proof):
        raise LedgerError("proof.wrong_length", "consistency proof is empty")
    _check_hash("old root", sub_root)
    _check_hash("new root", root)
    if _root_from_subtree_consistency(start, end, size, proof, sub_root) != root:
        raise _mismatch("new root")


# --- coordinates --------------------------------------------------------------------------------


def range_coordinates(start: int, end: int) -> list[Coordinate]:
    """Split ``[start, end)`` into maximal complete subtrees, left to right."""
    if start < 0 or end < start:
        raise LedgerError("proof.bad_size", f"bad leaf range [{start}, {end})")
    coords: list[Coordinate] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            # The subtree must also be aligned: its size may not exceed start's lowest set bit.
            level = min(level, (start & -start).bit_length() - 1)
        coords.append((level, start >> level))
        start += 1 << level
    return coords


def root_coordinates(size: int) -> list[Coordinate]:
    """The complete subtrees whose hashes fold into the root of a tree of ``size``."""
    return range_coordinates(0, size)


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """MTH of a valid subtree range from its ``range_coordinates`` hashes.

    Only meaningful for ranges ``[a, b)`` where ``a`` is a multiple of bit_ceil(b - a) (all
    ranges in proofs and roots are): then the leftmost piece is the RFC 6962 left child, and
    folding right to left reproduces the MTH.
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        acc = _sha256(b"\x01" + hashes[i] + acc).digest()
    return acc


def _path_coordinates(
    index: int, size: int, from_level: int, out: list[list[Coordinate]]
) -> list[list[Coordinate]]:
    """Append the PATH siblings of leaf ``index`` in a tree of ``size``, from ``from_level`` up.

    A sibling missing from the tree (right of the last leaf) is skipped; a right sibling cut
    off by ``size`` is the range up to ``size``, folded from its complete subtrees.
    """
    last = size - 1
    level = from_level
    while last >> level:
        lo = ((index >> level) ^ 1) << level
        if lo < size:
            hi = lo + (1 << level)
            out.append([(level, lo >> level)] if hi <= size else range_coordinates(lo, size))
        level += 1
    return out


def inclusion_proof_coordinates(index: int, size: int) -> list[list[Coordinate]]:
    """Per element of PATH(index, D[size]) (RFC 6962 §2.1.1), the subtrees to fold."""
    _check_u64("index", index)
    _check_u64("size", size)
    if index >= size:
        raise LedgerError("proof.index_out_of_range", f"index {index} >= tree size {size}")
    return _path_coordinates(index, size, 0, [])


def consistency_proof_coordinates(size1: int, size2: int) -> list[list[Coordinate]]:
    """Per element of PROOF(size1, D[size2]) (RFC 6962 §2.1.2), the subtrees to fold.

    Empty for ``size1 == size2`` and for ``size1 == 0`` (C2SP: the empty tree is consistent
    with every tree, with an empty proof).
    """
    _check_u64("size1", size1)
    _check_u64("size2", size2)
    if size1 > size2:
        raise LedgerError("proof.bad_size", f"size1 {size1} > size2 {size2}")
    if size1 == 0 or size1 == size2:
        return []
    # The proof is the inclusion path of the old tree's last leaf, starting at the level of the
    # old tree's rightmost complete subtree, led by that subtree unless it is the whole old tree.
    shift = (size1 & -size1).bit_length() - 1
    out: list[list[Coordinate]] = []
    if size1 != 1 << shift:
        out.append([(shift, (size1 - 1) >> shift)])
    return _path_coordinates(size1 - 1, size2, shift, out)


# --- generation through a reader -----------------------------------------------------------------


def _read_and_fold(groups: list[list[Coordinate]], read: SubtreeReader) -> list[bytes]:
    flat = [c for group in groups for c in group]
    if not flat:
        return []
    hashes = read(flat)
    if len(hashes) != len(flat) or any(len(h) != HASH_SIZE for h in hashes):
        raise LedgerError(
            "tree.read_mismatch", f"reader returned {len(hashes)} hashes for {len(flat)} subtrees"
        )
    out: list[bytes] = []
    pos = 0
    for group in groups:
        n = len(group)
        out.append(hashes[pos] if n == 1 else fold_range(hashes[pos : pos + n]))
        pos += n
    return out


def tree_root(size: int, read: SubtreeReader) -> bytes:
    """Root of the tree of ``size`` (EMPTY_ROOT for 0), from one read of its subtrees."""
    _check_u64("size", size)
    if size == 0:
        return EMPTY_ROOT
    (root,) = _read_and_fold([root_coordinates(size)], read)
    return root


def inclusion_proof(index: int, size: int, read: SubtreeReader) -> list[bytes]:
    """PATH(index, D[size]), RFC 6962 §2.1.1: the leaf's sibling first."""
    return _read_and_fold(inclusion_proof_coordinates(index, size), read)


def consistency_proof(size1: int, size2: int, read: SubtreeReader) -> list[bytes]:
    """PROOF(size1, D[size2]), RFC 6962 §2.1.2 (empty for equal sizes or size1 == 0)."""
    return _read_and_fold(consistency_proof_coordinates(size1, size2), read)


# --- in-memory structures -------------------------------------------------------------------------


class Frontier:
    """Compact range over leaf hashes: the hashes of the maximal complete subtrees, O(log n).

    Appending merges equal-sized subtrees like a binary counter, so the state after n leaves is
    exactly the ``root_coordinates(n)`` hashes; a log can persist it and resume.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        _check_hash("leaf hash", leaf)
        h = bytes(leaf)
        stack = self._hashes
        n = self._size
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        return fold_range(self._hashes)

    def subtrees(self) -> list[tuple[Coordinate, bytes]]:
        return list(zip(root_coordinates(self._size), self._hashes, strict=True))

    @classmethod
    def from_subtrees(cls, size: int, hashes: Sequence[bytes]) -> Frontier:
        """Resume from the ``root_coordinates(size)`` hashes, left to right."""
        _check_u64("size", size)
        want = size.bit_count()
        if len(hashes) != want:
            raise LedgerError(
                "tree.bad_frontier", f"size {size} needs {want} subtree hashes, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            _check_hash(f"subtree[{i}]", h)
        frontier = cls()
        frontier._size = size
        frontier._hashes = [bytes(h) for h in hashes]
        return frontier


class MemoryTree:
    """Every level of a tree kept in memory: for tests and small logs. Takes leaf HASHES."""

    __slots__ = ("_levels",)

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        # _levels[l][i] is the hash of complete subtree (l, i).
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf: bytes) -> None:
        _check_hash("leaf hash", leaf)
        levels = self._levels
        h = bytes(leaf)
        levels[0].append(h)
        index = len(levels[0]) - 1
        level = 0
        while index & 1:  # a right child completes its parent
            h = node_hash(levels[level][index - 1], h)
            level += 1
            index >>= 1
            if len(levels) == level:
                levels.append([])
            levels[level].append(h)

    def read(self, coords: Sequence[Coordinate]) -> list[bytes]:
        """A ``SubtreeReader`` over this tree's complete subtrees."""
        levels = self._levels
        out: list[bytes] = []
        for level, index in coords:
            if not (0 <= level < len(levels) and 0 <= index < len(levels[level])):
                raise LedgerError("tree.missing_node", f"no complete subtree ({level}, {index})")
            out.append(levels[level][index])
        return out

    def _check_size(self, size: int) -> None:
        _check_u64("size", size)
        if size > self.size:
            raise LedgerError("proof.bad_size", f"size {size} > tree size {self.size}")

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check_size(size)
        return tree_root(size, self.read)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return inclusion_proof(index, size, self.read)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self._check_size(size2)
        return consistency_proof(size1, size2, self.read)
