"""The Merkle tree, its inclusion and consistency proofs follow RFC 6962 (and verify by
RFC 9162's algorithms), for random tree sizes and the Certificate Transparency vectors."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_domain.audit.merkle import MerkleTree
from crm_domain.audit.verifier import (
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


# RFC 6962 as written: MTH, PATH and PROOF by recursion over the leaf list.
def mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


LEAVES = [leaf(i.to_bytes(4, "big")) for i in range(70)]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 70), st.data())
def test_root_and_inclusion_proofs_match_the_rfc(size: int, data: st.DataObject) -> None:
    d = LEAVES[:size]
    tree = MerkleTree(LEAVES[: data.draw(st.integers(size, 70))])
    assert tree.root(size) == mth(d) == merkle_root(d)
    index = data.draw(st.integers(0, size - 1))
    proof = tree.inclusion_proof(index, size)
    assert proof == path(index, d)
    assert verify_inclusion(d[index], index, size, proof, mth(d))
    # Any other leaf, index or root fails.
    assert not verify_inclusion(leaf(b"other"), index, size, proof, mth(d))
    if size > 1:
        assert not verify_inclusion(d[index], (index + 1) % size, size, proof, mth(d))
    if proof:
        assert not verify_inclusion(d[index], index, size, proof[:-1], mth(d))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 70), st.data())
def test_consistency_proofs_match_the_rfc(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(1, new))
    tree = MerkleTree(LEAVES[:new])
    proof = tree.consistency_proof(old, new)
    assert proof == ([] if old == new else subproof(old, LEAVES[:new], True))
    old_root, new_root = mth(LEAVES[:old]), mth(LEAVES[:new])
    assert verify_consistency(old, new, old_root, new_root, proof)
    if old < new:
        assert not verify_consistency(old, new, leaf(b"forged"), new_root, proof)
        assert not verify_consistency(old, new, old_root, leaf(b"forged"), proof)


# Certificate Transparency's reference vectors (certificate-transparency-go merkle tests).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("size", range(1, 9))
def test_certificate_transparency_roots(size: int) -> None:
    tree = MerkleTree([leaf(d) for d in CT_LEAVES])
    assert tree.root(size).hex() == CT_ROOTS[size - 1]
