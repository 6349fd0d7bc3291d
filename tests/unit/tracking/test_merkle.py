"""Merkle tree against a literal transcription of RFC 6962/9162 and the RFC's own rules."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.tracking.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    merkle_root,
    verify_consistency,
    verify_inclusion,
)


def _rfc_mth(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 section 2.1 writes it (recursive, slow, obviously right)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + _rfc_mth(leaves[:k]) + _rfc_mth(leaves[k:])).digest()


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(str(i).encode()).digest() for i in range(n)]


sizes = st.integers(min_value=1, max_value=70)


@given(sizes)
def test_root_matches_rfc_definition(n):
    leaves = _leaves(n)
    assert MerkleTree.build(leaves).root == _rfc_mth(leaves)
    assert merkle_root(leaves) == _rfc_mth(leaves)


def test_empty_tree_root_is_hash_of_nothing():
    assert merkle_root([]) == EMPTY_ROOT == MerkleTree.build([]).root


def test_known_vector_rfc6962_two_leaves():
    # Hand-computed: the root of two leaves is H(0x01 || H(0x00||a) || H(0x00||b)).
    a, b = b"a", b"b"
    expected = hashlib.sha256(
        b"\x01" + hashlib.sha256(b"\x00a").digest() + hashlib.sha256(b"\x00b").digest()
    ).digest()
    assert merkle_root([a, b]) == expected


@given(st.data())
def test_root_at_equals_root_of_prefix(data):
    n = data.draw(sizes)
    m = data.draw(st.integers(min_value=0, max_value=n))
    leaves = _leaves(n)
    assert MerkleTree.build(leaves).root_at(m) == _rfc_mth(leaves[:m])


@given(st.data())
def test_inclusion_proofs_verify_and_reject_tampering(data):
    n = data.draw(sizes)
    size = data.draw(st.integers(min_value=1, max_value=n))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    leaves = _leaves(n)
    tree = MerkleTree.build(leaves)
    root = tree.root_at(size)
    proof = tree.inclusion_proof(index, size)
    assert verify_inclusion(leaves[index], index, size, proof, root)
    assert not verify_inclusion(b"forged" + leaves[index], index, size, proof, root)
    if size > 1:
        other = (index + 1) % size
        assert not verify_inclusion(leaves[index], other, size, proof, root)
    if proof:
        bad = [*proof]
        bad[0] = hashlib.sha256(bad[0]).digest()
        assert not verify_inclusion(leaves[index], index, size, bad, root)
        assert not verify_inclusion(leaves[index], index, size, proof[:-1], root)


@given(st.data())
def test_consistency_proofs_verify_and_reject_rewrites(data):
    n = data.draw(sizes)
    new = data.draw(st.integers(min_value=1, max_value=n))
    old = data.draw(st.integers(min_value=0, max_value=new))
    leaves = _leaves(n)
    tree = MerkleTree.build(leaves)
    proof = tree.consistency_proof(old, new)
    old_root, new_root = tree.root_at(old), tree.root_at(new)
    assert verify_consistency(old, new, old_root, new_root, proof)
    if 0 < old < new:
        # A log whose history was rewritten inside the old prefix no longer extends it.
        rewritten = [*leaves]
        victim = data.draw(st.integers(min_value=0, max_value=old - 1))
        rewritten[victim] = b"rewritten"
        other = MerkleTree.build(rewritten)
        assert not verify_consistency(
            old, new, old_root, other.root_at(new), other.consistency_proof(old, new)
        )
        assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
        assert not verify_consistency(new, old, new_root, old_root, proof)


@settings(max_examples=30)
@given(st.integers(min_value=2, max_value=40))
def test_truncated_log_is_not_consistent(n):
    leaves = _leaves(n)
    tree = MerkleTree.build(leaves)
    assert not verify_consistency(n, n - 1, tree.root, tree.root_at(n - 1), [])


def test_proof_arguments_are_checked():
    tree = MerkleTree.build(_leaves(5))
    with pytest.raises(ValueError):
        tree.inclusion_proof(5)
    with pytest.raises(ValueError):
        tree.consistency_proof(6)
    assert not verify_inclusion(b"x", 3, 3, [], tree.root)
