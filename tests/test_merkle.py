"""custody.merkle against public RFC 6962 / RFC 9162 vectors and transparency-dev probes.

Known answers come from tests/vectors/ (copies of the public vectors, sources named there):

* ``merkle_rfc6962.json``: leaf, node and root hashes for the standard 8 leaves, the
  upstream inclusion / consistency proofs of transparency-dev/merkle (its proofgen uses
  1-based leaf indices; this file's ``leaf_index`` is already 0-based, checked below),
  the single-hasher vectors and a Rekor inclusion example;
* ``transparency-dev-merkle-testdata/``: 196 accept/reject probes (98 inclusion, 98
  consistency), base64 JSON as written by Go's encoding/json (``null`` = empty).

Property tests compare everything with a recursive transcription of the RFC
definitions (``rfc_*`` below), independent of the module's iterative code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import VECTORS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custody.merkle import (
    EMPTY_ROOT,
    ConsistencyProofError,
    InclusionProofError,
    ProofError,
    TreeCache,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

MERKLE_JSON = VECTORS / "merkle_rfc6962.json"
PROBES_DIR = VECTORS / "transparency-dev-merkle-testdata"
PROBE_COUNT = 196

VEC: dict[str, Any] = json.loads(MERKLE_JSON.read_text(encoding="utf-8"))
PROBES: list[Path] = sorted(PROBES_DIR.rglob("*.json"))

PROPS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def vec() -> dict[str, Any]:
    return VEC


def hx(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def std_leaves() -> list[bytes]:
    return [leaf_hash(bytes.fromhex(d)) for d in vec()["leaf_inputs_hex"]]


def make_leaves(n: int, seed: int = 0) -> list[bytes]:
    """n distinct pseudo-random leaf hashes."""
    tag = seed.to_bytes(8, "big")
    return [leaf_hash(tag + i.to_bytes(8, "big")) for i in range(n)]


# ---------------------------------------------------------------- RFC transcription


def rfc_split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, RFC 9162 section 2.1.1, literally (recursive)."""
    if len(d) == 0:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = rfc_split(len(d))
    return hashlib.sha256(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:])).digest()


def rfc_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]), section 2.1.3.1."""
    if len(d) == 1:
        return []
    k = rfc_split(len(d))
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), section 2.1.4.1."""
    n = len(d)
    if m == n:
        return [] if b else [rfc_mth(d)]
    k = rfc_split(n)
    if m <= k:
        return [*rfc_subproof(m, d[:k], b), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


def incl_shape(m: int, n: int) -> tuple[str, ...]:
    """Side of each PATH sibling, leaf first: what the verifier's computation depends on."""
    sides: list[str] = []
    while n > 1:
        k = rfc_split(n)
        if m < k:
            sides.append("R")
            n = k
        else:
            sides.append("L")
            m, n = m - k, n - k
    return tuple(reversed(sides))


def cons_shape(m: int, n: int) -> tuple[tuple[str, ...], bool]:
    """The SUBPROOF recursion trace (sides, and whether the old root is the seed)."""
    sides: list[str] = []
    whole = True
    while m != n:
        k = rfc_split(n)
        if m <= k:
            sides.append("R")
            n = k
        else:
            sides.append("L")
            m, n = m - k, n - k
            whole = False
    return tuple(reversed(sides)), whole


def accepts_inclusion(*args: Any) -> bool:
    try:
        verify_inclusion(*args)
    except InclusionProofError:
        return False
    return True


def accepts_consistency(*args: Any) -> bool:
    try:
        verify_consistency(*args)
    except ConsistencyProofError:
        return False
    return True


# ---------------------------------------------------------------- hashing vectors


def test_error_hierarchy() -> None:
    assert issubclass(ProofError, ValueError)
    assert issubclass(InclusionProofError, ProofError)
    assert issubclass(ConsistencyProofError, ProofError)
    assert ProofError.__doc__


def test_primitives() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert root([]) == EMPTY_ROOT
    assert TreeCache().root() == EMPTY_ROOT


def test_hasher_single_vectors() -> None:
    items = vec()["hasher_single_vectors"]
    computed = [
        ("empty tree root", root([])),
        ("leaf hash of empty leaf", leaf_hash(b"")),
        ("L123456", leaf_hash(b"L123456")),
        ("HashChildren", node_hash(b"N123", b"N456")),
    ]
    assert len(items) == len(computed)
    for item, (marker, got) in zip(items, computed, strict=True):
        assert marker in item["what"]
        assert got.hex() == item["want"], item["what"]


def test_leaf_hashes() -> None:
    assert [h.hex() for h in std_leaves()] == vec()["leaf_hashes_hex"]


def test_node_hashes_by_level() -> None:
    leaves = std_leaves()
    levels = [hx(level) for level in vec()["node_hashes_by_level_hex"]]
    assert levels[0] == leaves
    assert [len(level) for level in levels] == [8, 4, 2, 1]
    for lvl, nodes in enumerate(levels):
        width = 1 << lvl
        for i, node in enumerate(nodes):
            assert root(leaves[i * width : (i + 1) * width]) == node
            if lvl:
                assert node_hash(levels[lvl - 1][2 * i], levels[lvl - 1][2 * i + 1]) == node


def test_roots_for_sizes_0_to_8() -> None:
    leaves = std_leaves()
    want = vec()["root_by_tree_size_hex"]
    assert sorted(map(int, want)) == list(range(9))
    cache = TreeCache()
    for size in range(9):
        if size:
            cache.append(leaves[size - 1])
        expected = bytes.fromhex(want[str(size)])
        assert root(leaves[:size]) == expected
        assert rfc_mth(leaves[:size]) == expected
        assert cache.root() == expected
    full = TreeCache(leaves)
    for size in range(9):
        assert full.root(size) == bytes.fromhex(want[str(size)])


# ---------------------------------------------------------------- proof vectors


def _check_inclusion_vector(leaves: list[bytes], v: dict[str, Any]) -> None:
    index, size, proof = v["leaf_index"], v["tree_size"], hx(v["proof"])
    assert 0 <= index < size <= len(leaves)
    assert inclusion_proof(leaves, index, size) == proof
    assert TreeCache(leaves).inclusion_proof(index, size) == proof
    assert rfc_path(index, leaves[:size]) == proof
    verify_inclusion(leaves[index], index, size, proof, root(leaves[:size]))


def _check_consistency_vector(leaves: list[bytes], v: dict[str, Any]) -> None:
    size1, size2, proof = v["size1"], v["size2"], hx(v["proof"])
    assert 0 < size1 <= size2 <= len(leaves)
    assert consistency_proof(leaves, size1, size2) == proof
    assert TreeCache(leaves).consistency_proof(size1, size2) == proof
    assert (rfc_subproof(size1, leaves[:size2], True) if size1 < size2 else []) == proof
    verify_consistency(size1, size2, proof, root(leaves[:size1]), root(leaves[:size2]))


def test_inclusion_vectors_use_zero_based_indices() -> None:
    # upstream proofgen numbers leaves from 1; this file converted to 0-based: the
    # proof of leaf 5 in the tree of 8 starts with its left neighbour, leaf 4.
    by_key = {(v["leaf_index"], v["tree_size"]): v for v in vec()["inclusion_proofs_upstream"]}
    assert (0, 1) in by_key
    assert bytes.fromhex(by_key[(5, 8)]["proof"][0]) == std_leaves()[4]


@pytest.mark.parametrize("n", range(5))
def test_upstream_inclusion_proof(n: int) -> None:
    _check_inclusion_vector(std_leaves(), vec()["inclusion_proofs_upstream"][n])


@pytest.mark.parametrize("n", range(5))
def test_upstream_consistency_proof(n: int) -> None:
    _check_consistency_vector(std_leaves(), vec()["consistency_proofs_upstream"][n])


def test_all_pairs_secondary_oracle() -> None:
    pairs = vec()["_all_pairs_computed_NOT_upstream"]
    assert len(pairs["inclusion"]) == 36 and len(pairs["consistency"]) == 36
    leaves = std_leaves()
    for v in pairs["inclusion"]:
        _check_inclusion_vector(leaves, v)
    for v in pairs["consistency"]:
        _check_consistency_vector(leaves, v)


def test_rekor_inclusion_example() -> None:
    ex = vec()["rekor_inclusion_example"]
    body = ex["leaf_input_base64"]
    lh = leaf_hash(base64.b64decode(body))
    assert lh.hex() == ex["computed_leaf_hash"]
    proof, want_root = hx(ex["proof"]), bytes.fromhex(ex["root"])
    verify_inclusion(lh, ex["leaf_index"], ex["tree_size"], proof, want_root)
    assert body[0] == "e"
    bad = leaf_hash(base64.b64decode("a" + body[1:]))
    with pytest.raises(InclusionProofError):
        verify_inclusion(bad, ex["leaf_index"], ex["tree_size"], proof, want_root)


# ---------------------------------------------------------------- transparency-dev probes


def _b64(value: str | None) -> bytes:
    return b"" if value is None else base64.b64decode(value, validate=True)


def test_probe_count() -> None:
    assert len(PROBES) == PROBE_COUNT
    kinds = [p.relative_to(PROBES_DIR).parts[0] for p in PROBES]
    assert kinds.count("inclusion") == 98
    assert kinds.count("consistency") == 98


@pytest.mark.parametrize("path", PROBES, ids=[p.relative_to(PROBES_DIR).as_posix() for p in PROBES])
def test_probe(path: Path) -> None:
    p = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(p["wantErr"], bool)
    proof = [_b64(h) for h in (p["proof"] or [])]
    kind = path.relative_to(PROBES_DIR).parts[0]
    if kind == "inclusion":
        accepted = accepts_inclusion(
            _b64(p["leafHash"]), p["leafIdx"], p["treeSize"], proof, _b64(p["root"])
        )
    else:
        assert kind == "consistency"
        accepted = accepts_consistency(
            p["size1"], p["size2"], proof, _b64(p["root1"]), _b64(p["root2"])
        )
    assert accepted is not p["wantErr"], p["desc"]


# ---------------------------------------------------------------- edge cases


def test_generation_rejects_impossible_requests() -> None:
    leaves = make_leaves(5)
    cache = TreeCache(leaves)
    for bad in [(0, 0), (5, 5), (6, 5), (0, 6), (-1, 3)]:
        with pytest.raises(InclusionProofError):
            inclusion_proof(leaves, *bad)
        with pytest.raises(InclusionProofError):
            cache.inclusion_proof(*bad)
    for bad in [(0, 0), (0, 3), (3, 2), (1, 6), (-1, 2)]:
        with pytest.raises(ConsistencyProofError):
            consistency_proof(leaves, *bad)
        with pytest.raises(ConsistencyProofError):
            cache.consistency_proof(*bad)
    assert consistency_proof(leaves, 3, 3) == [] == cache.consistency_proof(3, 3)
    assert consistency_proof(leaves, 5, 5) == [] == cache.consistency_proof(5)
    with pytest.raises(ProofError):
        cache.root(6)
    with pytest.raises(ValueError):
        root([b"short"])
    with pytest.raises(ValueError):
        inclusion_proof([b"x" * 31, b"y" * 32], 1, 2)


def test_verify_inclusion_strictness() -> None:
    leaves = make_leaves(6)
    r = root(leaves)
    proof = inclusion_proof(leaves, 2, 6)
    verify_inclusion(leaves[2], 2, 6, proof, r)
    bad_calls: list[tuple[Any, ...]] = [
        (leaves[2], 6, 6, proof, r),  # index == size
        (leaves[2], 2, 0, proof, r),
        (leaves[2], -1, 6, proof, r),
        (leaves[2], 2, 1 << 64, proof, r),  # beyond uint64
        (leaves[2], True, 6, proof, r),  # not an int
        (leaves[2][:31], 2, 6, proof, r),  # leaf hash length
        (leaves[2] + b"\x00", 2, 6, proof, r),
        (leaves[2], 2, 6, [*proof[:-1], proof[-1] + b"\x00"], r),  # element length
        (leaves[2], 2, 6, proof[:-1], r),  # too short
        (leaves[2], 2, 6, [*proof, r], r),  # too long
        (leaves[2], 2, 6, proof, r[:31]),  # root length
        (leaves[2], 2, 6, proof, EMPTY_ROOT),  # root mismatch
        (leaves[3], 2, 6, proof, r),  # wrong leaf
    ]
    for args in bad_calls:
        with pytest.raises(InclusionProofError):
            verify_inclusion(*args)
    # a one-leaf tree: the root is the leaf hash and the proof is empty
    verify_inclusion(leaves[0], 0, 1, [], leaves[0])
    with pytest.raises(InclusionProofError):
        verify_inclusion(b"", 0, 1, [], b"")
    # the length checks come before any hashing, and say what was wrong
    with pytest.raises(InclusionProofError, match="leaf hash must be 32 bytes, got 31"):
        verify_inclusion(leaves[2][:31], 2, 6, proof, r)
    with pytest.raises(InclusionProofError, match=r"proof\[1\] must be 32 bytes"):
        verify_inclusion(leaves[2], 2, 6, [proof[0], proof[1][:-1], proof[2]], r)
    with pytest.raises(InclusionProofError, match="wrong proof length 2"):
        verify_inclusion(leaves[2], 2, 6, proof[:2], r)


def test_verify_consistency_strictness() -> None:
    leaves = make_leaves(7)
    r3, r7 = root(leaves[:3]), root(leaves[:7])
    proof = consistency_proof(leaves, 3, 7)
    verify_consistency(3, 7, proof, r3, r7)
    bad_calls: list[tuple[Any, ...]] = [
        (7, 3, proof, r3, r7),  # size1 > size2
        (0, 7, proof, EMPTY_ROOT, r7),  # from the empty tree
        (0, 7, [], EMPTY_ROOT, r7),
        (0, 0, [], EMPTY_ROOT, EMPTY_ROOT),  # even 0 -> 0
        (3, 3, proof, r3, r3),  # equal sizes need an empty proof
        (3, 3, [], r3, r7),  # ... and equal roots
        (3, 7, [], r3, r7),  # empty proof
        (3, 7, proof[:-1], r3, r7),
        (3, 7, [*proof, r7], r3, r7),
        (3, 7, [proof[0][:31], *proof[1:]], r3, r7),
        (3, 7, proof, r3[:31], r7),
        (3, 7, proof, r3, r7 + b"\x00"),
        (3, 7, proof, r7, r3),  # swapped roots
        (3, 7, proof, EMPTY_ROOT, r7),  # wrong root1 (3 is no power of 2: root1 is not hashed)
        (3, 7, proof, r3, EMPTY_ROOT),  # wrong root2
        (-1, 7, proof, r3, r7),
        (3, 1 << 64, proof, r3, r7),
    ]
    for args in bad_calls:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(*args)
    # equal sizes: only the roots are compared, byte for byte (transparency-dev semantics)
    verify_consistency(3, 3, [], r3, r3)
    verify_consistency(1, 1, [], b"don't care 2", b"don't care 2")


def test_tree_cache_basics() -> None:
    leaves = make_leaves(10)
    cache = TreeCache()
    assert len(cache) == 0 and cache.size == 0
    assert cache.append(leaves[0]) == 0
    cache.extend(leaves[1:4])
    assert cache.append(leaves[4]) == 4
    with pytest.raises(ValueError):
        cache.append(b"x" * 31)
    with pytest.raises(ValueError):
        cache.extend([leaves[5], b"x" * 33])  # all or nothing
    assert len(cache) == 5
    cache.extend(leaves[5:])
    assert len(cache) == 10 and cache.size == 10
    assert [cache.leaf_hash(i) for i in range(10)] == leaves
    with pytest.raises(IndexError):
        cache.leaf_hash(10)
    assert cache.root() == root(leaves)
    assert cache.inclusion_proof(3) == inclusion_proof(leaves, 3, 10)
    assert cache.consistency_proof(4) == consistency_proof(leaves, 4, 10)


def test_exhaustive_small_trees() -> None:
    """All sizes up to 40: reference, cache and RFC transcription agree, all proofs verify."""
    leaves = make_leaves(40, seed=1)
    cache = TreeCache()
    for n in range(1, 41):
        cache.append(leaves[n - 1])
        d = leaves[:n]
        r = rfc_mth(d)
        assert root(d) == r == cache.root() == cache.root(n)
        for m in range(n):
            proof = rfc_path(m, d)
            assert inclusion_proof(leaves, m, n) == proof == cache.inclusion_proof(m, n)
            verify_inclusion(d[m], m, n, proof, r)
        for m in range(1, n + 1):
            cproof = rfc_subproof(m, d, True)
            assert consistency_proof(leaves, m, n) == cproof == cache.consistency_proof(m, n)
            verify_consistency(m, n, cproof, rfc_mth(leaves[:m]), r)


def test_wrong_index_or_size_exhaustive() -> None:
    """A proof verifies for another (index, size) only if its shape is the same.

    RFC 6962 proofs do not commit to the size by themselves (leaf 0's proof in a tree of
    5 leaves also verifies "as" leaf 0 of 6 leaves against the same root): the verifier
    only replays the hashing the shape prescribes.  Every other pair must fail.
    """
    leaves = make_leaves(17, seed=2)
    pairs = [(m, n) for n in range(1, 18) for m in range(n)]
    for m, n in pairs:
        proof, r = inclusion_proof(leaves, m, n), root(leaves[:n])
        for m2, n2 in pairs:
            same = incl_shape(m, n) == incl_shape(m2, n2)
            assert accepts_inclusion(leaves[m], m2, n2, proof, r) is same, (m, n, m2, n2)
    assert accepts_inclusion(leaves[0], 0, 6, inclusion_proof(leaves, 0, 5), root(leaves[:5]))

    cpairs = [(m, n) for n in range(1, 18) for m in range(1, n + 1)]
    for m, n in cpairs:
        proof = consistency_proof(leaves, m, n)
        r1, r2 = root(leaves[:m]), root(leaves[:n])
        for m2, n2 in [*cpairs, (0, n), (0, 0), (n, m)]:
            same = m2 > 0 and m2 <= n2 and cons_shape(m, n) == cons_shape(m2, n2)
            if m == n or m2 == n2:  # equal sizes: accepted iff both equal and roots equal
                same = m == n and m2 == n2 and m2 > 0 and r1 == r2
            assert accepts_consistency(m2, n2, proof, r1, r2) is same, (m, n, m2, n2)


# ---------------------------------------------------------------- properties


@st.composite
def tree_and_index(draw: st.DrawFn, max_size: int = 300) -> tuple[list[bytes], int, int]:
    n = draw(st.integers(1, max_size))
    leaves = make_leaves(n, seed=draw(st.integers(0, 2**32)))
    size = draw(st.integers(1, n))
    return leaves, draw(st.integers(0, size - 1)), size


@st.composite
def tree_and_sizes(draw: st.DrawFn, max_size: int = 300) -> tuple[list[bytes], int, int]:
    n = draw(st.integers(1, max_size))
    leaves = make_leaves(n, seed=draw(st.integers(0, 2**32)))
    size2 = draw(st.integers(1, n))
    return leaves, draw(st.integers(1, size2)), size2


@PROPS
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=70))
def test_reference_matches_rfc_transcription(leaves: list[bytes]) -> None:
    """Arbitrary (possibly repeated) leaf hashes: every proof equals the RFC text's."""
    n = len(leaves)
    assert root(leaves) == rfc_mth(leaves)
    for m in range(n):
        assert inclusion_proof(leaves, m, n) == rfc_path(m, leaves)
    for m in range(1, n):
        assert consistency_proof(leaves, m, n) == rfc_subproof(m, leaves, True)


@PROPS
@given(st.integers(1, 128), st.integers(0, 2**32))
def test_every_inclusion_proof_verifies(n: int, seed: int) -> None:
    leaves = make_leaves(n, seed)
    r = root(leaves)
    cache = TreeCache(leaves)
    for m in range(n):
        proof = cache.inclusion_proof(m)
        verify_inclusion(leaves[m], m, n, proof, r)


@PROPS
@given(tree_and_sizes())
def test_consistency_proofs_verify(case: tuple[list[bytes], int, int]) -> None:
    leaves, size1, size2 = case
    proof = consistency_proof(leaves, size1, size2)
    verify_consistency(size1, size2, proof, root(leaves[:size1]), root(leaves[:size2]))


@PROPS
@given(tree_and_index(), st.data())
def test_tampered_inclusion_is_rejected(
    case: tuple[list[bytes], int, int], data: st.DataObject
) -> None:
    leaves, index, size = case
    proof, r, lh = inclusion_proof(leaves, index, size), root(leaves[:size]), leaves[index]
    verify_inclusion(lh, index, size, proof, r)
    flip = data.draw(st.integers(1, 255), label="xor")
    pos = data.draw(st.integers(0, 31), label="byte")

    def flipped(h: bytes) -> bytes:
        return h[:pos] + bytes([h[pos] ^ flip]) + h[pos + 1 :]

    for i in range(len(proof)):  # every element, one byte flipped
        bad = [flipped(h) if j == i else h for j, h in enumerate(proof)]
        assert not accepts_inclusion(lh, index, size, bad, r)
    assert not accepts_inclusion(flipped(lh), index, size, proof, r)
    assert not accepts_inclusion(lh, index, size, proof, flipped(r))
    assert not accepts_inclusion(lh, index, size, [*proof, r], r)
    if proof:
        assert not accepts_inclusion(lh, index, size, proof[:-1], r)
        assert not accepts_inclusion(lh, index, size, proof[::-1], r) or proof == proof[::-1]
    # wrong index / size: rejected unless the proof has exactly the same shape
    alternatives = {
        (index - 1, size),
        (index + 1, size),
        (index ^ 2, size),
        (index, size * 2),
        (index, size // 2),
        (index, size + 1),
        (index, size - 1),
        (data.draw(st.integers(0, 2 * size)), data.draw(st.integers(0, 2 * size))),
    }
    alternatives.discard((index, size))
    for i2, s2 in alternatives:
        ok = 0 <= i2 < s2 and incl_shape(i2, s2) == incl_shape(index, size)
        assert accepts_inclusion(lh, i2, s2, proof, r) is ok, (i2, s2)


@PROPS
@given(tree_and_sizes(), st.data())
def test_tampered_consistency_is_rejected(
    case: tuple[list[bytes], int, int], data: st.DataObject
) -> None:
    leaves, size1, size2 = case
    proof = consistency_proof(leaves, size1, size2)
    r1, r2 = root(leaves[:size1]), root(leaves[:size2])
    verify_consistency(size1, size2, proof, r1, r2)
    flip = data.draw(st.integers(1, 255), label="xor")
    pos = data.draw(st.integers(0, 31), label="byte")

    def flipped(h: bytes) -> bytes:
        return h[:pos] + bytes([h[pos] ^ flip]) + h[pos + 1 :]

    for i in range(len(proof)):
        bad = [flipped(h) if j == i else h for j, h in enumerate(proof)]
        assert not accepts_consistency(size1, size2, bad, r1, r2)
    assert not accepts_consistency(size1, size2, proof, flipped(r1), r2)
    assert not accepts_consistency(size1, size2, proof, r1, flipped(r2))
    assert not accepts_consistency(size1, size2, [*proof, r2], r1, r2)
    if proof:
        assert not accepts_consistency(size1, size2, proof[:-1], r1, r2)
        assert not accepts_consistency(size1, size2, [r1, *proof], r1, r2)
        assert not accepts_consistency(size1, size2, proof, r2, r1)
    alternatives = {
        (size1 - 1, size2),
        (size1 + 1, size2),
        (size1 ^ 2, size2),
        (size1, size2 * 2),
        (size1, size2 // 2),
        (size1, size2 + 1),
        (0, size2),
        (data.draw(st.integers(0, 2 * size2)), data.draw(st.integers(0, 2 * size2))),
    }
    alternatives.discard((size1, size2))
    for a, b in alternatives:
        if size1 == size2 or a == b:
            ok = size1 == size2 and a == b and a > 0 and r1 == r2
        else:
            ok = 0 < a <= b and cons_shape(a, b) == cons_shape(size1, size2)
        assert accepts_consistency(a, b, proof, r1, r2) is ok, (a, b)


@PROPS
@given(st.integers(1, 3000), st.integers(0, 2**32), st.data())
def test_tree_cache_matches_reference(n: int, seed: int, data: st.DataObject) -> None:
    leaves = make_leaves(n, seed)
    # build it the way a ledger would: some leaf by leaf, some in batches
    cache = TreeCache()
    rnd = random.Random(seed)
    pos = 0
    while pos < n:
        step = rnd.choice([1, 1, 2, 7, 64, 500])
        if step == 1:
            assert cache.append(leaves[pos]) == pos
        else:
            cache.extend(leaves[pos : pos + step])
        pos = min(n, pos + step)
        assert len(cache) == pos
    assert cache.root() == root(leaves)
    sizes = st.integers(1, n)
    for _ in range(8):
        size = data.draw(sizes)
        index = data.draw(st.integers(0, size - 1))
        assert cache.root(size) == root(leaves[:size])
        assert cache.inclusion_proof(index, size) == inclusion_proof(leaves, index, size)
        size1 = data.draw(st.integers(1, size))
        assert cache.consistency_proof(size1, size) == consistency_proof(leaves, size1, size)
