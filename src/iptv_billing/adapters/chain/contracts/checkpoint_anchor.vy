#pragma version ~=0.4.3
#pragma evm-version cancun
"""
@title Checkpoint anchor
@notice Append-only record of transparency-log checkpoints (tree size, root hash), per log
        origin. Only the owner anchors. Sizes per origin never decrease; re-anchoring the
        latest (size, root) is a no-op, a different root at the same size is refused.
@dev    Origins are keyed by keccak256(origin). Each anchor is stored once: its root in
        `_root_at[key][size]` and its (size, timestamp) in the ordered list `_entries[key]`.
        Sizes within one origin are strictly increasing, so `_root_at` is unambiguous.
        cancun keeps the bytecode runnable on chains without Prague (it is identical anyway).
"""

struct Entry:
    size: uint64
    anchored_at: uint256


event Anchored:
    origin_hash: indexed(bytes32)
    origin: String[256]
    size: uint64
    root: bytes32
    anchored_at: uint256


event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


owner: public(address)

_count: HashMap[bytes32, uint256]
_entries: HashMap[bytes32, HashMap[uint256, Entry]]
_root_at: HashMap[bytes32, HashMap[uint64, bytes32]]


@deploy
def __init__():
    self.owner = msg.sender
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)


@external
def anchor(origin: String[256], size: uint64, root: bytes32):
    assert msg.sender == self.owner, "not owner"
    assert len(origin) > 0, "empty origin"
    # A zero root would be indistinguishable from "never anchored" in root_at_size.
    assert root != empty(bytes32), "zero root"

    key: bytes32 = keccak256(origin)
    n: uint256 = self._count[key]
    if n > 0:
        last_size: uint64 = self._entries[key][n - 1].size
        assert size >= last_size, "size not increasing"
        if size == last_size:
            assert root == self._root_at[key][size], "root differs"
            return  # same checkpoint again: nothing to record

    self._entries[key][n] = Entry(size=size, anchored_at=block.timestamp)
    self._count[key] = n + 1
    self._root_at[key][size] = root
    log Anchored(origin_hash=key, origin=origin, size=size, root=root, anchored_at=block.timestamp)


@view
@external
def latest(origin: String[256]) -> (uint64, bytes32, uint256):
    """
    @return (size, root, count) of the last anchor; all zero when the origin has none.
    """
    key: bytes32 = keccak256(origin)
    n: uint256 = self._count[key]
    if n == 0:
        return 0, empty(bytes32), 0
    size: uint64 = self._entries[key][n - 1].size
    return size, self._root_at[key][size], n


@view
@external
def anchor_at(origin: String[256], i: uint256) -> (uint64, bytes32, uint256):
    """
    @return (size, root, anchored_at) of the i-th anchor (0-based) of the origin.
    """
    key: bytes32 = keccak256(origin)
    assert i < self._count[key], "index out of range"
    entry: Entry = self._entries[key][i]
    return entry.size, self._root_at[key][entry.size], entry.anchored_at


@view
@external
def root_at_size(origin: String[256], size: uint64) -> bytes32:
    """
    @return the root anchored at exactly this size, or zero if none was.
    """
    return self._root_at[keccak256(origin)][size]


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "not owner"
    assert new_owner != empty(address), "zero owner"
    log OwnershipTransferred(previous_owner=self.owner, new_owner=new_owner)
    self.owner = new_owner
