"""RFC 6962 / RFC 9162 Merkle tree: root, inclusion and consistency proofs (pure, no I/O).

Leaves are the 32-byte seal digests (sha256 of each sealed run's canonical record) in
seal-sequence order; a leaf is hashed as sha256(0x00 || digest), an inner node as
sha256(0x01 || left || right). The tree is built level by level (an odd last node is
promoted unchanged), which yields exactly the RFC's "largest power of two smaller than n"
split without recursion, so a million leaves take well under three seconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _next_level(level: list[bytes]) -> list[bytes]:
    sha = hashlib.sha256
    prefix = NODE_PREFIX
    pairs = iter(level)  # zip(it, it) walks pairs without index arithmetic: measurably faster
    # strict=False: with an odd count the last node is left over on purpose.
    upper = [sha(prefix + a + b).digest() for a, b in zip(pairs, pairs, strict=False)]
    if len(level) % 2:
        upper.append(level[-1])  # an odd last node is promoted unchanged
    return upper


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True)
class MerkleTree:
    """All levels of the tree over `leaves`; proofs are read off the levels."""

    levels: tuple[list[bytes], ...]

    @classmethod
    def build(cls, leaves: Sequence[bytes]) -> MerkleTree:
        sha = hashlib.sha256
        level = [sha(LEAF_PREFIX + data).digest() for data in leaves]
        levels = [level]
        while len(level) > 1:
            level = _next_level(level)
            levels.append(level)
        return cls(tuple(levels))

    @property
    def size(self) -> int:
        return len(self.levels[0])

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else EMPTY_ROOT

    def subtree_root(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]); `start` is aligned the way the RFC's recursion aligns it."""
        width = end - start
        height = width.bit_length() - 1
        if width == 1 << height and start % width == 0:
            return self.levels[height][start >> height]
        split = _largest_power_of_two_below(width)
        return node_hash(
            self.subtree_root(start, start + split), self.subtree_root(start + split, end)
        )

    def root_at(self, size: int) -> bytes:
        """Root of the first `size` leaves (an older checkpoint of the same log)."""
        if not 0 <= size <= self.size:
            raise ValueError(f"tree has {self.size} leaves, not {size}")
        return self.subtree_root(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 PATH(index, D[0:size]), leaf side first."""
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no leaf {index} in a tree of {size}")
        if size == self.size:
            return self._inclusion_from_levels(index)
        return self._path(index, 0, size)

    def _inclusion_from_levels(self, index: int) -> list[bytes]:
        proof: list[bytes] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index >>= 1
        return proof

    def _path(self, index: int, start: int, end: int) -> list[bytes]:
        if end - start == 1:
            return []
        split = _largest_power_of_two_below(end - start)
        if index < split:
            return [*self._path(index, start, start + split), self.subtree_root(start + split, end)]
        return [
            *self._path(index - split, start + split, end),
            self.subtree_root(start, start + split),
        ]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 PROOF(old_size, D[0:new_size]); empty when old_size is 0 or equal."""
        new_size = self.size if new_size is None else new_size
        if not 0 <= old_size <= new_size <= self.size:
            raise ValueError(f"cannot prove {old_size} -> {new_size} in a tree of {self.size}")
        if old_size in (0, new_size):
            return []
        return self._subproof(old_size, 0, new_size, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self.subtree_root(start, end)]
        split = _largest_power_of_two_below(n)
        if m <= split:
            return [
                *self._subproof(m, start, start + split, complete),
                self.subtree_root(start + split, end),
            ]
        return [
            *self._subproof(m - split, start + split, end, False),
            self.subtree_root(start, start + split),
        ]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaves without keeping the levels (the fast path for a root only)."""
    if not leaves:
        return EMPTY_ROOT
    sha = hashlib.sha256
    level = [sha(LEAF_PREFIX + data).digest() for data in leaves]
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def verify_inclusion(
    leaf_data: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: does `leaf_data` sit at `index` of the tree with `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    computed = leaf_hash(leaf_data)
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            computed = node_hash(sibling, computed)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            computed = node_hash(computed, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and computed == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: does the tree (new_size, new_root) extend (old_size, old_root)?"""
    if old_size < 0 or new_size < old_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof  # every log extends the empty log
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node itself
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first_root = second_root = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first_root = node_hash(node, first_root)
            second_root = node_hash(node, second_root)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second_root = node_hash(second_root, node)
        fn >>= 1
        sn >>= 1
    return first_root == old_root and second_root == new_root and sn == 0
