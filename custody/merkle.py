"""RFC 9162 (RFC 6962) Merkle tree over SHA-256: hashing, proofs, verification.

The tree is the one of RFC 9162 section 2.1 (identical to RFC 6962 section 2.1):

* ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``;
* ``MTH({}) = SHA-256("")`` (:data:`EMPTY_ROOT`), ``MTH({d0}) = leaf_hash(d0)``, and for
  ``n > 1`` with ``k`` the largest power of two smaller than ``n``:
  ``MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``.

Every function here works on *leaf hashes* (32-byte values), never on raw entries:
hash entries once with :func:`leaf_hash` and keep the hashes.

Proof generation: :func:`root`, :func:`inclusion_proof` (``PATH(m, D[n])``, section
2.1.3.1) and :func:`consistency_proof` (``PROOF(m, D[n])``, section 2.1.4.1) are the
straightforward reference implementations; they rehash the subtrees they need, so
a proof costs O(n).  :class:`TreeCache` keeps the hash of every complete
(power-of-two sized and aligned) subtree, is appended to leaf by leaf, and answers
the same questions for any earlier tree size with O(log n) node lookups and at most
O(log n) hashes.

Verification: :func:`verify_inclusion` (section 2.1.3.2) and
:func:`verify_consistency` (section 2.1.4.2) follow the semantics of
transparency-dev/merkle ``proof/verify.go``; they return ``None`` for a good proof
and raise :class:`ProofError` (a :class:`ValueError`) for anything else.  Like
transparency-dev they reject a leaf hash that is not exactly 32 bytes and any
consistency proof from the empty tree (``size1 == 0``, even ``size1 == size2 == 0``),
and accept ``size1 == size2`` exactly when the proof is empty and the two roots are
equal bytes.  Slightly stricter than transparency-dev, and with no effect on which
genuine proofs verify: sizes must fit in an unsigned 64-bit integer, every proof
element must be exactly 32 bytes, and so must the roots unless ``size1 == size2``.

Note what a proof does *not* bind: the verifier only recomputes a hash from the
proof, so the same proof and root can verify for other ``(index, size)`` pairs whose
proofs have the same shape (e.g. leaf 0 in trees of 5 and 6 leaves).  Take the tree
size, like the root, from a trusted (signed) checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator, Sequence

__all__ = [
    "EMPTY_ROOT",
    "ConsistencyProofError",
    "InclusionProofError",
    "ProofError",
    "TreeCache",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

_HASH_SIZE = 32
_MAX_SIZE = (1 << 64) - 1  # tree sizes and indices are uint64 in RFC 9162
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256

EMPTY_ROOT: bytes = _sha256(b"").digest()
"""Root hash of the empty tree, ``SHA-256("")`` (RFC 9162 section 2.1.1)."""


class ProofError(ValueError):
    """A proof was rejected, or cannot be produced for the requested sizes.

    Raised by the verifiers for every bad proof (wrong length, index out of range,
    malformed hash, root mismatch, impossible sizes ...) and by the generators for
    impossible requests (index >= size, size beyond the known leaves, a consistency
    proof from the empty tree).  The message says what was wrong.
    """


class InclusionProofError(ProofError):
    """An inclusion proof is invalid or cannot be produced."""


class ConsistencyProofError(ProofError):
    """A consistency proof is invalid or cannot be produced."""


# --------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of a log entry (RFC 9162 section 2.1.1)."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return _sha256(_NODE_PREFIX + left + right).digest()


# --------------------------------------------------------------------------- helpers


def _check_int(name: str, value: int, error: type[ProofError]) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name} must be an integer, not {type(value).__name__}")
    if value < 0 or value > _MAX_SIZE:
        raise error(f"{name} {value} is out of range (0 .. 2**64-1)")


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes | bytearray | memoryview) and len(value) == _HASH_SIZE


def _check_hash(what: str, value: bytes, error: type[ProofError]) -> None:
    if not _is_hash(value):
        got = (
            f"{len(value)} bytes"
            if isinstance(value, bytes | bytearray | memoryview)
            else type(value).__name__
        )
        raise error(f"{what} must be {_HASH_SIZE} bytes, got {got}")


def _check_proof(proof: Sequence[bytes], error: type[ProofError]) -> list[bytes]:
    items = list(proof)
    for i, h in enumerate(items):
        _check_hash(f"proof[{i}]", h, error)
    return items


def _check_leaves(leaf_hashes: Iterable[bytes]) -> None:
    for i, h in enumerate(leaf_hashes):
        if not _is_hash(h):
            raise ValueError(f"leaf hash {i} is not a {_HASH_SIZE}-byte value")


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _trailing_zeros(n: int) -> int:
    return (n & -n).bit_length() - 1


def _mth(hashes: Sequence[bytes]) -> bytes:
    """MTH of a run of leaf hashes, bottom-up.

    Pairing neighbours level by level and carrying an odd last node up unchanged
    builds exactly the left-balanced tree of RFC 9162 (every split is at the largest
    power of two), without recursion.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# MTH(D[lo:hi]) for a range that occurs as a subtree in the RFC decomposition.
_SubRoot = Callable[[int, int], bytes]


def _path(index: int, size: int, subroot: _SubRoot) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 section 2.1.3.1), iteratively, leaf first."""
    top_down: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            top_down.append(subroot(lo + k, hi))
            hi = lo + k
        else:
            top_down.append(subroot(lo, lo + k))
            lo += k
    top_down.reverse()
    return top_down


def _subproof(size1: int, size2: int, subroot: _SubRoot) -> list[bytes]:
    """PROOF(size1, D[size2]) = SUBPROOF(size1, D[size2], true) (section 2.1.4.1)."""
    top_down: list[bytes] = []
    lo, hi, m, whole = 0, size2, size1, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                top_down.append(subroot(lo, hi))
            break
        k = _split(n)
        if m <= k:
            top_down.append(subroot(lo + k, hi))
            hi = lo + k
        else:
            top_down.append(subroot(lo, lo + k))
            lo += k
            m -= k
            whole = False
    top_down.reverse()
    return top_down


def _check_inclusion_request(index: int, size: int, available: int) -> None:
    _check_int("index", index, InclusionProofError)
    _check_int("size", size, InclusionProofError)
    if index >= size:
        raise InclusionProofError(f"index {index} is beyond tree size {size}")
    if size > available:
        raise InclusionProofError(f"tree size {size} exceeds the {available} known leaves")


def _check_consistency_request(size1: int, size2: int, available: int) -> None:
    _check_int("size1", size1, ConsistencyProofError)
    _check_int("size2", size2, ConsistencyProofError)
    if size1 == 0:
        raise ConsistencyProofError("a consistency proof from the empty tree is meaningless")
    if size1 > size2:
        raise ConsistencyProofError(f"size1 {size1} is greater than size2 {size2}")
    if size2 > available:
        raise ConsistencyProofError(f"tree size {size2} exceeds the {available} known leaves")


# --------------------------------------------------------------------------- reference


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of all of ``leaf_hashes`` (RFC 9162 section 2.1.1); ``EMPTY_ROOT`` if empty.

    Raises :class:`ValueError` if a leaf hash is not 32 bytes.
    """
    _check_leaves(leaf_hashes)
    return _mth(leaf_hashes)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) for the tree of the first ``size`` leaves, leaf level first.

    Requires ``0 <= index < size <= len(leaf_hashes)``, else :class:`InclusionProofError`.
    """
    _check_inclusion_request(index, size, len(leaf_hashes))
    leaves = leaf_hashes[:size]
    _check_leaves(leaves)
    return _path(index, size, lambda lo, hi: _mth(leaves[lo:hi]))


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int, size2: int) -> list[bytes]:
    """PROOF(size1, D[size2]) between the trees of the first ``size1`` and ``size2`` leaves.

    ``size1 == size2`` gives ``[]``.  Requires ``0 < size1 <= size2 <= len(leaf_hashes)``,
    else :class:`ConsistencyProofError` (a proof from the empty tree is an error).
    """
    _check_consistency_request(size1, size2, len(leaf_hashes))
    if size1 == size2:
        return []
    leaves = leaf_hashes[:size2]
    _check_leaves(leaves)
    return _subproof(size1, size2, lambda lo, hi: _mth(leaves[lo:hi]))


# --------------------------------------------------------------------------- verification


def _inclusion_split(index: int, size: int) -> tuple[int, int]:
    """Lengths of the inner and border parts of the inclusion proof for ``index``.

    The inner part runs up to where the paths to ``index`` and ``size - 1`` diverge
    (siblings on either side); above it, the border part holds only left siblings.
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    RFC 9162 section 2.1.3.2.  Returns ``None`` or raises :class:`InclusionProofError`
    (``index >= size``, a leaf hash, proof element or root that is not 32 bytes, the
    wrong number of proof elements, or a root mismatch).
    """
    _check_int("index", index, InclusionProofError)
    _check_int("size", size, InclusionProofError)
    if index >= size:
        raise InclusionProofError(f"index {index} is beyond tree size {size}")
    _check_hash("leaf hash", leaf_hash, InclusionProofError)
    items = _check_proof(proof, InclusionProofError)
    inner, border = _inclusion_split(index, size)
    if len(items) != inner + border:
        raise InclusionProofError(
            f"wrong proof length {len(items)} for index {index} in a tree of size {size},"
            f" want {inner + border}"
        )
    _check_hash("root", root, InclusionProofError)
    h = bytes(leaf_hash)
    for i, sibling in enumerate(items[:inner]):
        h = node_hash(sibling, h) if (index >> i) & 1 else node_hash(h, sibling)
    for sibling in items[inner:]:
        h = node_hash(sibling, h)
    if not hmac.compare_digest(h, root):
        raise InclusionProofError("calculated root does not match the expected root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size2`` leaves with ``root2`` extends the one with ``root1``.

    RFC 9162 section 2.1.4.2.  Returns ``None`` or raises :class:`ConsistencyProofError`:
    ``size1 > size2``; ``size1 == 0`` (even with ``size2 == 0``); ``size1 == size2`` with a
    non-empty proof or different roots; ``size1 < size2`` with an empty proof, proof
    elements or roots not 32 bytes, the wrong number of elements, or a mismatch of either
    root.
    """
    _check_int("size1", size1, ConsistencyProofError)
    _check_int("size2", size2, ConsistencyProofError)
    if size1 > size2:
        raise ConsistencyProofError(f"size1 {size1} is greater than size2 {size2}")
    if size1 == 0:
        raise ConsistencyProofError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if len(proof) != 0:
            raise ConsistencyProofError("size1 == size2 but the proof is not empty")
        if not hmac.compare_digest(root1, root2):
            raise ConsistencyProofError("size1 == size2 but the roots differ")
        return
    if len(proof) == 0:
        raise ConsistencyProofError("empty proof for size1 < size2")
    items = _check_proof(proof, ConsistencyProofError)
    _check_hash("root1", root1, ConsistencyProofError)
    _check_hash("root2", root2, ConsistencyProofError)

    # The proof is a suffix of the inclusion proof of leaf size1-1 in the tree of size2,
    # starting at the level of the largest complete subtree ending at size1 (``shift``).
    # Its first element is that subtree's hash, unless size1 is a power of two: then the
    # subtree is the old tree itself and root1 is the seed.
    inner, border = _inclusion_split(size1 - 1, size2)
    shift = _trailing_zeros(size1)
    inner -= shift  # >= 1 because size1 < size2
    if size1 == 1 << shift:
        seed, rest = bytes(root1), items
    else:
        seed, rest = items[0], items[1:]
    if len(rest) != inner + border:
        want = len(items) - len(rest) + inner + border
        raise ConsistencyProofError(
            f"wrong proof length {len(items)} for sizes {size1} -> {size2}, want {want}"
        )
    mask = (size1 - 1) >> shift
    # Old root: only the left siblings on the path were already there at size1.
    h1 = seed
    for i, sibling in enumerate(rest[:inner]):
        if (mask >> i) & 1:
            h1 = node_hash(sibling, h1)
    # New root: every sibling.
    h2 = seed
    for i, sibling in enumerate(rest[:inner]):
        h2 = node_hash(sibling, h2) if (mask >> i) & 1 else node_hash(h2, sibling)
    for sibling in rest[inner:]:
        h1 = node_hash(sibling, h1)
        h2 = node_hash(sibling, h2)
    if not hmac.compare_digest(h1, root1):
        raise ConsistencyProofError("calculated root1 does not match the expected root1")
    if not hmac.compare_digest(h2, root2):
        raise ConsistencyProofError("calculated root2 does not match the expected root2")


# --------------------------------------------------------------------------- cache


class TreeCache:
    """An append-only Merkle tree that keeps the hash of every complete subtree.

    Level ``h`` holds, in one contiguous ``bytearray``, the 32-byte hashes of the
    subtrees covering leaves ``[i * 2**h, (i + 1) * 2**h)`` for every such range that
    is already complete, so ``n`` leaves take about ``2 n`` hashes (64 bytes a leaf).
    Appending a leaf adds its parents as they complete.  Any subtree that the RFC
    decomposition of a tree of ``size <= len(self)`` leaves needs is a run of at most
    ``log2(size)`` stored complete subtrees (one per set bit of its width), so a root
    or a proof for any earlier size costs O(log n) lookups plus at most O(log n)
    hashes for the incomplete right edge.  Results are identical to :func:`root`,
    :func:`inclusion_proof` and :func:`consistency_proof` on the same leaf hashes.

    In memory only; rebuild it from the stored leaf hashes (``TreeCache(hashes)``).
    Not thread-safe for concurrent appends.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self.extend(leaf_hashes)

    def __len__(self) -> int:
        return len(self._levels[0]) // _HASH_SIZE

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return len(self)

    def append(self, leaf_hash: bytes) -> int:
        """Add one leaf hash (32 bytes); return its index."""
        if not _is_hash(leaf_hash):
            raise ValueError(f"a leaf hash must be {_HASH_SIZE} bytes")
        levels = self._levels
        below = levels[0]
        index = i = len(below) >> 5  # // _HASH_SIZE
        below += leaf_hash
        level = 0
        while i & 1:  # (level, i) is a right child: its parent is now complete
            off = (i - 1) << 5
            parent = _sha256(_NODE_PREFIX + below[off : off + 64]).digest()
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            below = levels[level]
            below += parent
            i >>= 1
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add many leaf hashes at once (all or none if one is malformed)."""
        batch = bytearray()
        for n, h in enumerate(leaf_hashes):
            if not _is_hash(h):
                raise ValueError(f"leaf hash {n} of the batch is not {_HASH_SIZE} bytes")
            batch += h
        if batch:
            self._levels[0] += batch
            self._complete_levels()

    def _complete_levels(self) -> None:
        """Hash every pair of complete siblings whose parent is not stored yet."""
        levels = self._levels
        level = 0
        pair = 2 * _HASH_SIZE
        while True:
            below = levels[level]
            want = len(below) // pair  # complete parents there should be
            if want == 0:
                return
            if level + 1 == len(levels):
                levels.append(bytearray())
            above = levels[level + 1]
            have = len(above) // _HASH_SIZE
            if have == want:  # nothing new here, so nothing new higher up
                return
            with memoryview(below) as mv:
                for off in range(have * pair, want * pair, pair):
                    above += _sha256(_NODE_PREFIX + mv[off : off + pair]).digest()
            level += 1

    def complete_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored complete subtree as (level, index, hash), level by level."""
        for level, hashes in enumerate(self._levels):
            for i in range(len(hashes) // _HASH_SIZE):
                yield level, i, bytes(hashes[i * _HASH_SIZE : (i + 1) * _HASH_SIZE])

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"leaf index {index} out of range for {len(self)} leaves")
        return self._node(0, index)

    def _node(self, level: int, index: int) -> bytes:
        off = index * _HASH_SIZE
        return bytes(self._levels[level][off : off + _HASH_SIZE])

    def _subroot(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for ``lo`` aligned to the power of two at or above ``hi - lo``.

        Such a range is the run of complete subtrees given by the set bits of its width,
        largest first; the RFC tree over it folds them from the right.
        """
        width = hi - lo
        pos = lo
        parts: list[bytes] = []
        for level in range(width.bit_length() - 1, -1, -1):
            if (width >> level) & 1:
                parts.append(self._node(level, pos >> level))
                pos += 1 << level
        h = parts.pop()
        while parts:
            h = node_hash(parts.pop(), h)
        return h

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all); ``EMPTY_ROOT`` for 0."""
        n = len(self) if size is None else size
        _check_int("size", n, ProofError)
        if n > len(self):
            raise ProofError(f"tree size {n} exceeds the {len(self)} known leaves")
        return EMPTY_ROOT if n == 0 else self._subroot(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]) (default size: all leaves); see :func:`inclusion_proof`."""
        n = len(self) if size is None else size
        _check_inclusion_request(index, n, len(self))
        return _path(index, n, self._subroot)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """PROOF(size1, D[size2]) (default size2: all leaves); see :func:`consistency_proof`."""
        n = len(self) if size2 is None else size2
        _check_consistency_request(size1, n, len(self))
        if size1 == n:
            return []
        return _subproof(size1, n, self._subroot)
