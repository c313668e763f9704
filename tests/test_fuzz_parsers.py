"""Fuzzing the parsers (issue 6 §5): property-based tests that no input makes a
parser fail with anything but its documented error, and that every round trip is
exact.

Covered, each by hypothesis:

* ``custody.canonical``: ``canonical_json`` of random float-free JSON values parses
  back to the value, is a fixed point of parse-then-serialise and equals the
  ``rfc8785`` package; anything that may not be signed raises
  ``NonCanonicalValueError``; ``parse_strict`` agrees with ``json.loads`` except for
  duplicate keys and NaN/Infinity, which it refuses with ``ValueError``.
  (``parse_canonical`` has its own properties in test_canonical_parse.py.)
* ``custody.note``: signed checkpoints round-trip for random origins, sizes, roots,
  extensions and key names; random or mutated notes, checkpoint bodies and vkeys
  raise only ``NoteError`` subclasses (``custody.checkpoint.open_checkpoint_text``
  only ``UsageError``/``IntegrityError``), and a mutated note is never accepted
  with a text other than the one signed.  Accepted bodies and vkeys re-encode to
  their exact input.
* ``custody.merkle``: the verifiers raise only their ``ProofError`` subclass on
  arbitrary arguments; every proof of random trees verifies, and one flipped bit in
  any proof hash is refused.  The hex proofs of a bundle
  (``bundle._proofs_shape`` then ``_check_checkpoint_and_proofs``) never raise, and
  flag exactly the events whose decoded proof is not the genuine one.
* ``custody.bundle``: ``_manifest`` gives safe paths or ``HostileBundleError``,
  ``path_is_dangerous`` only passes names that stay inside the bag,
  ``_payload_name`` always gives a safe short name (mapped exactly when it is not
  the original), ``_item_shape`` and ``_strip_top`` never raise, ``_json`` raises
  only ``HostileBundleError``, and manifest and events.jsonl lines written as the
  exporter writes them read back exactly.

Bugs found are tests of the correct behaviour marked
``xfail(strict=True, reason="BUG: ...")``.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import posixpath
from pathlib import Path
from typing import IO, Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from custody import bundle, merkle, note
from custody.bundle import (
    HostileBundleError,
    _item_shape,
    _manifest,
    _payload_name,
    _strip_top,
    path_is_dangerous,
)
from custody.canonical import (
    NonCanonicalValueError,
    canonical_json,
    canonical_json_any,
    content_hash,
    parse_strict,
)
from custody.checkpoint import open_checkpoint_text
from custody.collect import collect
from custody.errors import IntegrityError, UsageError
from custody.keys import Signer
from custody.ledger import Ledger

MAX_INT = 2**53 - 1
UINT64_MAX = 2**64 - 1
EM = "\u2014"
# What str.splitlines() splits on besides "\n", "\r": json.dumps escapes the ones
# below U+0020 but writes U+0085, U+2028 and U+2029 raw.
UNICODE_LINE_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
RAW_LINE_BREAKS = "\x85\u2028\u2029"

_HC = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


def props(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=_HC)


# --------------------------------------------------------------------------- strategies

chars = st.characters(exclude_categories=("Cs",))  # any code point but surrogates
texts = st.text(chars, max_size=20)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_INT, MAX_INT)
    | st.sampled_from([MAX_INT, -MAX_INT, 0])
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=4),
    max_leaves=20,
)


class MemSource(bundle._Source):
    """A bundle source held in memory (the reader's interface, no archive)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        super().__init__({n: len(d) for n, d in files.items()})

    def open(self, name: str) -> IO[bytes]:
        return io.BytesIO(self.files[name])


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# =========================================================================== 1. canonical JSON


@props(200)
@given(json_values)
def test_canonical_json_round_trips(value: Any) -> None:
    raw = canonical_json(value)
    assert json.loads(raw) == value
    assert canonical_json(json.loads(raw)) == raw  # a fixed point through a parse
    assert canonical_json(parse_strict(raw)) == raw
    assert raw == canonical_json_any(value)  # the fast path is RFC 8785


_BAD_LEAVES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=MAX_INT + 1) | st.integers(max_value=-MAX_INT - 1),
    st.text(st.characters(categories=("Cs",)), min_size=1, max_size=3),  # lone surrogates
    st.binary(max_size=3),
    st.just({1, 2}),
    st.just(object()),
)
_BAD_KEYS = st.one_of(st.integers(), st.none(), st.booleans(), st.tuples(st.integers()))


@st.composite
def unsignable(draw: st.DrawFn, depth: int = 0) -> Any:
    """A JSON-ish value with exactly one thing in it that may not be signed."""
    kind = draw(st.sampled_from(["leaf", "key", "list", "dict"] if depth < 3 else ["leaf", "key"]))
    if kind == "leaf":
        return draw(_BAD_LEAVES)
    if kind == "key":
        return {draw(_BAD_KEYS): draw(json_values)}
    inner = draw(unsignable(depth + 1))
    before = draw(st.lists(json_values, max_size=2))
    after = draw(st.lists(json_values, max_size=2))
    if kind == "list":
        return [*before, inner, *after]
    keys = draw(st.lists(texts, min_size=1, max_size=3, unique=True))
    return {**{k: v for k, v in zip(keys[1:], before, strict=False)}, keys[0]: inner}


@props(150)
@given(unsignable())
def test_unsignable_values_raise_only_noncanonical(value: Any) -> None:
    with pytest.raises(NonCanonicalValueError):
        canonical_json(value)


def _plain(text: str | bytes) -> tuple[Any, bool]:
    """json.loads, and whether it met a duplicate key, NaN/Infinity or a number
    literal too large to be finite."""
    odd = [False]

    def pairs(p: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in p}) != len(p):
            odd[0] = True
        return dict(p)

    def constant(name: str) -> float:
        odd[0] = True
        return float(name)

    def number(literal: str) -> float:
        value = float(literal)
        if math.isinf(value):  # 1e400: a literal too large to be finite
            odd[0] = True
        return value

    return (
        json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_float=number),
        odd[0],
    )


def _json_edits(doc: str, draw: st.DrawFn) -> str:
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(doc)))
        piece = draw(
            st.sampled_from(
                [
                    '"',
                    ",",
                    ":",
                    "{",
                    "}",
                    "[",
                    "]",
                    "NaN",
                    "-Infinity",
                    "1e400",
                    "\\",
                    "\\ud800",
                    "00",
                    "-",
                    " ",
                    "\x00",
                    "tru",
                ]
            )
        )
        doc = doc[:i] + piece + doc[i + draw(st.integers(0, 2)) :]
    return doc


@st.composite
def jsonish(draw: st.DrawFn) -> str | bytes:
    kind = draw(st.sampled_from(["text", "bytes", "edited", "dupkey", "deep"]))
    if kind == "text":
        return draw(st.text(max_size=40))
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    if kind == "deep":
        n = draw(st.integers(1, 5000))
        return draw(st.sampled_from(["[", '{"a":'])) * n
    doc = json.dumps(draw(json_values), ensure_ascii=draw(st.booleans()))
    if kind == "dupkey":
        k = json.dumps(draw(texts))
        doc = "{" + k + ":1," + k + ":" + doc + "}"
    else:
        doc = _json_edits(doc, draw)
    return doc.encode("utf-8", "surrogatepass") if draw(st.booleans()) else doc


@props(250)
@given(jsonish())
def test_parse_strict_is_json_loads_minus_duplicates_and_nonfinite(text: str | bytes) -> None:
    try:
        expected, odd = _plain(text)
    except RecursionError:
        with pytest.raises(RecursionError):  # the callers catch it (bundle._json, _events)
            parse_strict(text)
        return
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, too many digits
        with pytest.raises(ValueError):
            parse_strict(text)
        return
    if odd:
        with pytest.raises(ValueError):
            parse_strict(text)
    else:
        got = parse_strict(text)
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


@props(50)
@given(
    st.builds(
        lambda m, e, s: f"{s}{m}e{e}",
        st.integers(1, 9),
        st.integers(309, 99999),
        st.sampled_from(["", "-"]),
    )
)
@example("1e400")
@example('{"size":-1E999}')
def test_parse_strict_never_returns_a_non_finite_number(text: str) -> None:
    try:
        value = parse_strict(text)
    except ValueError:
        return
    assert _finite(value)


# =========================================================================== 2. signed notes

line_chars = st.characters(exclude_categories=("Cs",)).filter(lambda c: c >= " ")
note_lines = st.text(line_chars, min_size=1, max_size=20)  # a non-empty checkpoint line
key_names = st.text(
    st.characters(exclude_categories=("Cs",)).filter(
        lambda c: c >= " " and not c.isspace() and c != "+"
    ),
    min_size=1,
    max_size=20,
)
sizes = st.integers(0, UINT64_MAX) | st.sampled_from([0, 1, 9, 10, UINT64_MAX, UINT64_MAX - 1])
checkpoints = st.builds(
    note.Checkpoint,
    origin=note_lines,
    size=sizes,
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(note_lines, max_size=3),
)


@props(100)
@given(checkpoints, key_names, st.booleans())
def test_signed_checkpoint_round_trips(cp: note.Checkpoint, name: str, as_bytes: bool) -> None:
    key = Ed25519PrivateKey.generate()
    pub = _raw_public(key)
    v = note.Verifier.from_public(name, pub)
    assert note.parse_verifier_key(v.vkey) == v
    assert note.parse_verifier_key(note.verifier_key(name, pub)).vkey == v.vkey
    text = note.format_checkpoint(cp)
    assert note.parse_checkpoint(text) == cp
    signed = note.sign_note(text, name, key.sign, pub)
    got, opened = note.open_checkpoint(signed.encode() if as_bytes else signed, cp.origin, [v])
    assert got == cp
    assert opened.text == text
    assert opened.verified_by == [v]
    assert [s.line() for s in opened.sigs] == [signed[len(text) + 1 :]]
    loaded = open_checkpoint_text(signed, cp.origin, [v])
    assert (loaded.checkpoint, loaded.signed_by, loaded.text) == (cp, [name], signed)
    # a second (co)signature keeps everything and is verified too
    other = Ed25519PrivateKey.generate()
    w = note.Verifier.from_public("witness", _raw_public(other))
    both = note.add_signature(signed, "witness", other.sign, _raw_public(other))
    assert both.startswith(signed)
    got2, opened2 = note.open_checkpoint(both, cp.origin, [w, v])
    assert got2 == cp and opened2.verified_by == [v, w]


# one signed checkpoint to mutate (a fixed key: the mutations are what is random)
_KEY = Ed25519PrivateKey.generate()
_PUB = _raw_public(_KEY)
_V = note.Verifier.from_public("example.com/log", _PUB)
_CP = note.Checkpoint("example.com/log", 4242, bytes(range(32)), ["ext one", "\u00e9xt two"])
_TEXT = note.format_checkpoint(_CP)
_NOTE = note.sign_note(_TEXT, _V.name, _KEY.sign, _PUB)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ["flip", "truncate", "delete", "insert", "replace", "line", "dup-line", "swap"]
            )
        )
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        lines = data.split(b"\n")
        if kind == "flip" and data:
            data = data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1 :]
        elif kind == "truncate":
            data = data[:i]
        elif kind == "delete":
            data = data[:i] + data[i + 1 :]
        elif kind == "insert":
            data = data[:i] + draw(st.binary(min_size=1, max_size=6)) + data[i:]
        elif kind == "replace" and data:
            data = data[:i] + draw(st.binary(min_size=1, max_size=1)) + data[i + 1 :]
        elif kind == "line":
            j = draw(st.integers(0, len(lines)))
            new = draw(
                st.text(max_size=30)
                | st.sampled_from(
                    ["", f"{EM} example.com/log AAAAAA==", f"{EM} other QUJDREVGR0g=", "4242"]
                )
            )
            lines.insert(j, new.encode("utf-8", "surrogatepass"))
            data = b"\n".join(lines)
        elif kind == "dup-line" and lines:
            j = draw(st.integers(0, len(lines) - 1))
            lines.insert(draw(st.integers(0, len(lines))), lines[j])
            data = b"\n".join(lines)
        elif kind == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 2))
            lines[j], lines[j + 1] = lines[j + 1], lines[j]
            data = b"\n".join(lines)
    return data


@props(300)
@given(mutated(_NOTE.encode()))
@example(_NOTE.encode() + _NOTE.encode()[len(_TEXT) + 1 :])  # the signature line twice
@example(_NOTE.encode().replace(b"4242", b"4243"))
@example(_NOTE.encode().replace(b"\n\n", b"\n\n\n"))
@example(_NOTE.encode()[:-1] + b"\r\n")
@example(b"\xff" + _NOTE.encode())
def test_mutated_note_never_accepted_with_other_content(bad: bytes) -> None:
    try:
        cp, opened = note.open_checkpoint(bad, _CP.origin, [_V])
    except note.NoteError:
        pass
    else:
        assert cp == _CP
        assert opened.text == _TEXT
    try:
        text = bad.decode("utf-8")
    except UnicodeDecodeError:
        return
    try:
        loaded = open_checkpoint_text(text, _CP.origin, [_V])
    except (UsageError, IntegrityError):
        return
    assert loaded.checkpoint == _CP


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _rarely(draw: st.DrawFn) -> bool:
    return draw(st.integers(0, 5)) == 0


@st.composite
def sig_lines(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.sampled_from(["genuine", "genuine", "known-name", "random", "junk"]))
    if kind == "junk":
        return draw(st.text(max_size=30))
    if kind == "genuine":
        body = _V.key_id + _KEY.sign(text.encode("utf-8", "surrogatepass"))
        name = _V.name
    else:
        kid = _V.key_id if kind == "known-name" else draw(st.binary(min_size=4, max_size=4))
        body = kid + draw(st.binary(max_size=70))
        name = _V.name if kind == "known-name" else draw(key_names | st.text(max_size=5))
    b64 = _b64(body)
    if _rarely(draw):
        b64 = draw(
            st.sampled_from(
                [
                    b64.rstrip("="),
                    b64 + "=",
                    " " + b64,
                    b64[:-1] + "B",
                    b64.replace("+", "-"),
                    b64 + " ",
                ]
            )
        )
    prefix = draw(st.sampled_from([EM, "- ", EM + "  "])) if _rarely(draw) else EM + " "
    return f"{prefix}{name} {b64}"


@st.composite
def notes(draw: st.DrawFn) -> str | bytes:
    kind = draw(st.sampled_from(["text", "bytes", "structured", "structured", "structured"]))
    if kind == "text":
        return draw(st.text(max_size=60))
    if kind == "bytes":
        return draw(st.binary(max_size=60))
    line = st.text(max_size=12) if _rarely(draw) else st.text(line_chars, max_size=12)
    body = "".join(x + "\n" for x in draw(st.lists(line, max_size=4)))
    sigs = draw(st.lists(sig_lines(body), min_size=0 if _rarely(draw) else 1, max_size=3))
    out = body + "\n" + "".join(x + "\n" for x in sigs)
    if _rarely(draw):
        out = out.rstrip("\n") if draw(st.booleans()) else out + "\n"
    return out.encode("utf-8", "surrogatepass") if draw(st.booleans()) else out


@props(300)
@given(notes())
def test_random_notes_raise_only_note_errors(text: str | bytes) -> None:
    try:
        opened = note.open_note(text, [_V])
    except note.NoteError:
        return
    whole = text if isinstance(text, str) else text.decode("utf-8")
    assert whole.startswith(opened.text)
    message = opened.text.encode("utf-8")
    pub = Ed25519PublicKey.from_public_bytes(_PUB)
    good = 0
    for s in opened.sigs:  # at least one signature checks out independently
        if (s.name, s.key_id) == (_V.name, _V.key_id):
            try:
                pub.verify(s.signature, message)
            except InvalidSignature:
                pytest.fail("a known signature that does not verify was accepted")
            good += 1
    assert good >= 1


@st.composite
def checkpoint_bodies(draw: st.DrawFn) -> str:
    if _rarely(draw):
        return draw(st.text(max_size=60))
    origin = draw(note_lines)
    if _rarely(draw):
        origin = draw(st.sampled_from(["", "a\tb", "o\r", origin + "\x00"]))
    size = str(draw(sizes))
    if _rarely(draw):
        size = draw(
            st.sampled_from(
                [
                    "007",
                    "-1",
                    "+1",
                    " 1",
                    "1 ",
                    "",
                    str(UINT64_MAX + 1),
                    "9" * 21,
                    "\u0661",
                    "1_0",
                    "0x10",
                    "00",
                    "1e3",
                ]
            )
        )
    root = _b64(draw(st.binary(min_size=32, max_size=32)))
    if _rarely(draw):
        raw = draw(st.binary(min_size=30, max_size=34))
        root = draw(
            st.sampled_from(
                [
                    _b64(raw),
                    _b64(raw).rstrip("="),
                    root[:-2] + "B=",
                    root.replace("A", "\u0410"),
                    root + " ",
                ]
            )
        )
    ext = draw(st.lists(note_lines, max_size=3))
    if _rarely(draw):
        ext.insert(draw(st.integers(0, len(ext))), "")
    end = draw(st.sampled_from(["", "\n\n", "\r\n"])) if _rarely(draw) else "\n"
    return "\n".join([origin, size, root, *ext]) + end


@props(300)
@given(checkpoint_bodies())
def test_checkpoint_bodies_raise_only_malformed_and_round_trip(text: str) -> None:
    try:
        cp = note.parse_checkpoint(text)
    except note.MalformedCheckpointError:
        return
    assert note.format_checkpoint(cp) == text  # an accepted body is its own encoding


@st.composite
def vkeys(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["text", "valid", "mutated"]))
    if kind == "text":
        return draw(st.text(max_size=60))
    good = note.verifier_key(draw(key_names), _raw_public(Ed25519PrivateKey.generate()))
    if kind == "valid":
        return good
    return draw(mutated(good.encode())).decode("utf-8", "replace")


@props(150)
@given(vkeys())
def test_vkeys_raise_only_invalid_key_and_round_trip(vkey: str) -> None:
    try:
        v = note.parse_verifier_key(vkey)
    except note.InvalidKeyError:
        return
    assert v.vkey == vkey


# =========================================================================== 3. proofs

maybe_hashes = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=40),
)
proof_elems = st.one_of(
    maybe_hashes, st.builds(bytearray, maybe_hashes), st.text(max_size=33), st.none(), st.integers()
)
tree_ints = st.one_of(
    st.integers(-3, 70),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, UINT64_MAX, UINT64_MAX + 1, -1]),
)
_ZEROS = merkle.TreeCache([bytes(32)] * 70)  # only for the right proof lengths


@st.composite
def near_proof(draw: st.DrawFn, length: int) -> list[Any]:
    """About ``length`` elements, mostly 32-byte hashes."""
    n = max(0, length + draw(st.sampled_from([0, 0, 0, -1, 1])))
    elem = maybe_hashes if _rarely(draw) else st.binary(min_size=32, max_size=32)
    out: list[Any] = draw(st.lists(elem, min_size=n, max_size=n))
    if out and _rarely(draw):
        out[draw(st.integers(0, len(out) - 1))] = draw(proof_elems)
    return out


@st.composite
def inclusion_args(draw: st.DrawFn) -> tuple[Any, ...]:
    if _rarely(draw):
        return (
            draw(maybe_hashes),
            draw(tree_ints),
            draw(tree_ints),
            draw(st.lists(proof_elems, max_size=10)),
            draw(maybe_hashes),
        )
    size = draw(st.integers(1, 70))
    index = draw(st.integers(0, size - 1)) if not _rarely(draw) else draw(tree_ints)
    length = len(_ZEROS.inclusion_proof(index, size)) if 0 <= index < size else 3
    hashes = maybe_hashes if _rarely(draw) else st.binary(min_size=32, max_size=32)
    return draw(hashes), index, size, draw(near_proof(length)), draw(hashes)


@st.composite
def consistency_args(draw: st.DrawFn) -> tuple[Any, ...]:
    if _rarely(draw):
        return (
            draw(tree_ints),
            draw(tree_ints),
            draw(st.lists(proof_elems, max_size=10)),
            draw(maybe_hashes),
            draw(maybe_hashes),
        )
    size2 = draw(st.integers(1, 70))
    size1 = draw(st.integers(1, size2)) if not _rarely(draw) else draw(tree_ints)
    length = len(_ZEROS.consistency_proof(size1, size2)) if 0 < size1 <= size2 else 3
    hashes = maybe_hashes if _rarely(draw) else st.binary(min_size=32, max_size=32)
    root1 = draw(hashes)
    root2 = root1 if size1 == size2 and draw(st.booleans()) else draw(hashes)
    return size1, size2, draw(near_proof(length)), root1, root2


@props(300)
@given(inclusion_args())
def test_verify_inclusion_raises_only_inclusion_proof_error(args: tuple[Any, ...]) -> None:
    leaf, index, size, proof, root = args
    try:
        merkle.verify_inclusion(leaf, index, size, proof, root)
    except merkle.InclusionProofError:
        return
    # accepted: then it really is a leaf of a tree with that root
    assert 0 <= index < size and len(leaf) == 32 and len(root) == 32


@props(300)
@given(consistency_args())
@example((5, 5, [], b"x", b"x"))
@example((3, 5, [b"\x00" * 32] * 3, b"\x00" * 31, b"\x00" * 32))
def test_verify_consistency_raises_only_consistency_proof_error(args: tuple[Any, ...]) -> None:
    size1, size2, proof, root1, root2 = args
    try:
        merkle.verify_consistency(size1, size2, proof, root1, root2)
    except merkle.ConsistencyProofError:
        return
    assert 0 < size1 <= size2


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


trees = st.lists(st.binary(max_size=8), min_size=1, max_size=64)


@props(150)
@given(trees, st.data())
def test_every_proof_verifies_and_any_flipped_bit_is_refused(
    entries: list[bytes], data: st.DataObject
) -> None:
    leaves = [merkle.leaf_hash(e) for e in entries]
    tree = merkle.TreeCache(leaves)
    n = len(leaves)
    roots = [tree.root(m) for m in range(n + 1)]
    assert roots[n] == merkle.root(leaves)
    for i in range(n):
        merkle.verify_inclusion(leaves[i], i, n, tree.inclusion_proof(i, n), roots[n])
    for m in range(1, n + 1):
        merkle.verify_consistency(m, n, tree.consistency_proof(m, n), roots[m], roots[n])

    i = data.draw(st.integers(0, n - 1), label="index")
    proof = tree.inclusion_proof(i, n)
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        bad = [*proof[:j], _flip(proof[j], bit), *proof[j + 1 :]]
        with pytest.raises(merkle.InclusionProofError):
            merkle.verify_inclusion(leaves[i], i, n, bad, roots[n])
    with pytest.raises(merkle.InclusionProofError):
        merkle.verify_inclusion(
            _flip(leaves[i], data.draw(st.integers(0, 255))), i, n, proof, roots[n]
        )

    m = data.draw(st.integers(1, n), label="size1")
    cproof = tree.consistency_proof(m, n)
    if cproof:
        j = data.draw(st.integers(0, len(cproof) - 1), label="c-element")
        bit = data.draw(st.integers(0, 255), label="c-bit")
        bad = [*cproof[:j], _flip(cproof[j], bit), *cproof[j + 1 :]]
        with pytest.raises(merkle.ConsistencyProofError):
            merkle.verify_consistency(m, n, bad, roots[m], roots[n])
        with pytest.raises(merkle.ConsistencyProofError):
            merkle.verify_consistency(m, n, cproof[:-1], roots[m], roots[n])
        with pytest.raises(merkle.ConsistencyProofError):
            merkle.verify_consistency(m, n, [*cproof, cproof[0]], roots[m], roots[n])


# -- the hex proofs of a bundle: _proofs_shape, then _check_checkpoint_and_proofs --------

_CASE = "2026-017"
_SIGNER_FP = "sha256:" + "ab" * 32
_BUNDLE_KEYS = {_SIGNER_FP: (_PUB, "Dana Reyes", "collector")}


def _bundle_checkpoint(leaves: list[bytes]) -> bytes:
    tree = merkle.TreeCache(leaves)
    cp = note.Checkpoint(f"custody/{_CASE}", len(leaves), tree.root(), [])
    return note.sign_note(note.format_checkpoint(cp), "dana-reyes", _KEY.sign, _PUB).encode()


def _hex_variant(h: str, draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["same", "upper", "other", "non-hex", "spaces", "unicode"]))
    if kind == "upper":
        return h.upper()
    if kind == "other":
        return draw(st.binary(min_size=32, max_size=32)).hex()
    if kind == "non-hex":
        return h[:-1] + "g"
    if kind == "spaces":
        return h[:60] + "    "  # bytes.fromhex skips them: a 30-byte "hash"
    if kind == "unicode":
        return h[:-1] + "\u0661"
    return h


@st.composite
def proof_docs(draw: st.DrawFn) -> tuple[list[bytes], Any]:
    raws = draw(st.lists(st.binary(max_size=6), min_size=1, max_size=20))
    tree = merkle.TreeCache([merkle.leaf_hash(r) for r in raws])
    n = len(raws)
    entries = []
    for seq in range(n):
        if draw(st.integers(0, 9)) == 0:
            continue  # no proof for this event
        hexes = [h.hex() for h in tree.inclusion_proof(seq, n)]
        if draw(st.booleans()):
            hexes = [_hex_variant(h, draw) for h in hexes]
        if hexes and draw(st.integers(0, 5)) == 0:
            hexes = draw(st.sampled_from([hexes[:-1], [*hexes, hexes[0]], hexes[::-1]]))
        entries.append({"seq": seq, "proof": hexes})
    if draw(st.integers(0, 5)) == 0:
        entries.append(
            {
                "seq": draw(st.integers(-2, n + 2)),
                "proof": draw(st.lists(st.text(min_size=64, max_size=64), max_size=2)),
            }
        )
    size = draw(st.sampled_from([n, n, n, n - 1, n + 1, 0]))
    doc: Any = {"tree_size": size, "proofs": draw(st.permutations(entries))}
    if draw(st.integers(0, 9)) == 0:
        doc = draw(json_values)
    return raws, doc


@props(150)
@given(proof_docs())
def test_bundle_proofs_never_raise_and_flag_exactly_the_bad_ones(
    case: tuple[list[bytes], Any],
) -> None:
    raws, doc = case
    n = len(raws)
    try:
        bundle._proofs_shape(doc)
    except HostileBundleError:
        return
    leaves = [merkle.leaf_hash(r) for r in raws]
    tree = merkle.TreeCache(leaves)
    src = MemSource({"custody/checkpoint.txt": _bundle_checkpoint(leaves)})
    report = bundle.BundleReport(case_id=_CASE)
    events = [{"seq": i, "raw": r} for i, r in enumerate(raws)]
    bundle._check_checkpoint_and_proofs(src, doc, events, _BUNDLE_KEYS, report)

    by_seq = {p["seq"]: p["proof"] for p in doc["proofs"]}  # the last one wins
    expected = set()
    for i in range(n):
        hexes = by_seq.get(i)
        try:
            good = hexes is not None and [bytes.fromhex(h) for h in hexes] == (
                tree.inclusion_proof(i, n)
            )
        except ValueError:
            good = False
        if not good:
            expected.add(f"event {i}")
    if doc["tree_size"] != n:
        expected.add("custody/proofs.json")
    assert {f.kind for f in report.findings} <= {"proof"}
    assert {f.subject for f in report.findings} == expected


# =========================================================================== 4. manifests, paths


@props(500)
@given(
    st.text(max_size=40)
    | st.sampled_from(
        [
            ".",
            "..",
            "a/./b",
            "a//b",
            "data/.",
            "data/..",
            "/x",
            "C:x",
            "c:/x",
            "a\\b",
            "a\x00",
            "data/",
            "./data",
            "~/x",
            "a/b/../../..",
            "\u2025",
            "a/\u2024\u2024/b",
        ]
    )
)
def test_path_is_dangerous_passes_only_paths_inside_the_bag(p: str) -> None:
    why = path_is_dangerous(p)
    if why is not None:
        assert isinstance(why, str) and why
        return
    parts = p.split("/")
    assert p and not p.startswith("/") and p[1:2] != ":"
    assert "\x00" not in p and "\\" not in p and ".." not in parts
    assert all(part not in ("", ".") for part in parts[:-1])
    inside = posixpath.normpath(posixpath.join("/bag", p))
    assert posixpath.commonpath(["/bag", inside]) == "/bag"


_HEX = st.binary(min_size=4, max_size=32).map(bytes.hex)


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "text", "lines"]))
    if kind == "bytes":
        return draw(st.binary(max_size=120))
    if kind == "text":
        return draw(st.text(max_size=120)).encode("utf-8", "surrogatepass")
    out = []
    for _ in range(draw(st.integers(0, 5))):
        path = draw(
            st.text(max_size=15)
            | st.sampled_from(
                ["data/ITEM-1/x", "../x", "/etc/passwd", "data\\x", "data//x", "*data/x", " ", ""]
            )
        )
        sep = draw(st.sampled_from(["  ", " ", " *", "\t", "", "   "]))
        out.append(draw(_HEX | st.text(max_size=4)) + sep + path)
    end = draw(st.sampled_from(["\n", "\r\n", "\r", "\u2028", "\x85"]))
    return end.join(out).encode("utf-8", "surrogatepass")


@props(300)
@given(manifests())
def test_manifest_gives_safe_paths_or_hostile(raw: bytes) -> None:
    src = MemSource({"manifest-sha256.txt": raw})
    try:
        listed = _manifest(src, "manifest-sha256.txt")
    except HostileBundleError:
        return
    for path, digest in listed.items():
        assert path_is_dangerous(path) is None
        assert digest == digest.lower()


_PATH_CHARS = st.characters(exclude_categories=("Cs",)).filter(
    lambda c: c not in "/\\\x00\n\r" + UNICODE_LINE_BREAKS
)
_SAFE_PATHS = (
    st.lists(
        st.text(_PATH_CHARS, min_size=1, max_size=10).filter(lambda s: s not in (".", "..")),
        min_size=1,
        max_size=4,
    )
    .map("/".join)
    .filter(lambda p: not p.startswith((" ", "*")) and path_is_dangerous(p) is None)
)


@props(150)
@given(st.dictionaries(_SAFE_PATHS, st.binary(min_size=32, max_size=32).map(bytes.hex), max_size=6))
def test_manifest_round_trips(listed: dict[str, str]) -> None:
    """As export writes it ("<digest>  <path>\\n"), for paths with no line break."""
    raw = "".join(f"{d}  {p}\n" for p, d in sorted(listed.items())).encode()
    assert _manifest(MemSource({"m": raw}), "m") == listed


# =========================================================================== 5. path mapping

items = st.integers(1, 10**6).map(lambda i: f"ITEM-{i}")
_SEGMENTS = st.one_of(
    st.binary(max_size=12),
    st.text(max_size=12).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b"..",
            b".",
            b"",
            b"%41",
            b"a\\b",
            b"a\nb",
            b"\xff\xfe",
            b"\xc3(",
            b"x" * 200,
            b"x" * 201,
            "\u00e9".encode() * 100,
            "\u00e9".encode() * 101,
            b"a\x7fb",
            b"\x1f",
            "a\u2028b".encode(),
            b"ITEM-1.bin",
            b" ",
        ]
    ),
)
raw_paths = st.one_of(
    st.binary(max_size=80),
    st.lists(_SEGMENTS, max_size=5)
    .map(b"/".join)
    .flatmap(lambda p: st.sampled_from([p, b"/" + p, p + b"/", p + b"//"])),
)


@props(400)
@given(raw_paths, items)
def test_payload_name_is_safe_short_and_mapped_exactly_when_changed(raw: bytes, item: str) -> None:
    name, mapped = _payload_name(raw, item)
    rel = f"data/{item}/{name}"
    assert path_is_dangerous(rel) is None
    assert "/" not in name and name not in (".", "..")
    assert 1 <= len(name.encode("utf-8")) <= 200
    base = raw.rstrip(b"/").rsplit(b"/", 1)[-1]
    assert mapped == (name.encode("utf-8") != base)
    if mapped:
        assert name == f"{item}.bin"
    else:
        assert name == base.decode("utf-8")
    # the bundle.json entry export writes passes the reader's item check, and the
    # original bytes come back from path_hex after a JSON round trip
    entry = {
        "id": item,
        "path": raw.decode("utf-8", "replace"),
        "path_hex": raw.hex(),
        "outcome": "collected",
        "sha256": "0" * 64,
        "size": 0,
        "payload": rel,
        "name_mapped": mapped,
    }
    back = parse_strict(json.dumps(entry, ensure_ascii=False).encode())
    assert _item_shape(back)
    assert bytes.fromhex(back["path_hex"]) == raw
    assert back["payload"] == rel


@props(200)
@given(raw_paths, items)
@example(b"/evidence/memo\xe2\x80\xa8final.txt", "ITEM-1")  # U+2028 LINE SEPARATOR
@example(b"/evidence/a\xc2\x85b", "ITEM-2")  # U+0085 NEXT LINE
def test_manifest_line_of_any_payload_name_reads_back(raw: bytes, item: str) -> None:
    name, _ = _payload_name(raw, item)
    rel = f"data/{item}/{name}"
    digest = "ab" * 32
    line = f"{digest}  {rel}\n".encode()  # exactly as export_bundle writes it
    assert _manifest(MemSource({"manifest-sha256.txt": line}), "manifest-sha256.txt") == {
        rel: digest
    }


# -- events.jsonl, as export writes it and _events reads it -------------------------------


def _event_rows(payloads: list[str]) -> tuple[bytes, list[bytes]]:
    signer = "sha256:" + "cd" * 32
    rows, raws = [], []
    for seq, text in enumerate(payloads):
        raw = canonical_json({"seq": seq, "signer": signer, "type": "note", "data": {"t": text}})
        raws.append(raw)
        rows.append(
            {
                "seq": seq,
                "hash": content_hash(raw),
                "prev": "",
                "signer": signer,
                "signature": "",
                "body": raw.decode("utf-8"),
            }
        )
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rows]  # as _bag_files
    return "".join(x + "\n" for x in lines).encode(), raws


def _read_events(blob: bytes) -> tuple[list[dict[str, Any]], bundle.BundleReport]:
    report = bundle.BundleReport()
    out = bundle._events(MemSource({"custody/events.jsonl": blob}), report, {})
    return out, report


def _assert_events_round_trip(payloads: list[str]) -> None:
    blob, raws = _event_rows(payloads)
    out, report = _read_events(blob)
    assert [e["raw"] for e in out] == raws
    assert {f.kind for f in report.findings} <= {"unknown-signer"}


@props(150)
@given(
    st.lists(
        st.text(
            st.characters(exclude_categories=("Cs",)).filter(lambda c: c not in RAW_LINE_BREAKS),
            max_size=15,
        ),
        max_size=5,
    )
)
def test_events_jsonl_round_trips(payloads: list[str]) -> None:
    """For text without U+0085/U+2028/U+2029 (see the xfail below)."""
    _assert_events_round_trip(payloads)


@props(100)
@given(st.lists(st.text(max_size=15), max_size=5))
@example(["line one\u2028line two"])
@example(["a\x85b", "c\u2029d"])
def test_events_jsonl_round_trips_any_text(payloads: list[str]) -> None:
    _assert_events_round_trip(payloads)


@props(150)
@given(
    st.binary(max_size=200)
    | st.lists(jsonish(), max_size=4).map(
        lambda xs: b"\n".join(
            x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass") for x in xs
        )
    )
)
def test_events_jsonl_garbage_raises_only_hostile(blob: bytes) -> None:
    try:
        out, _ = _read_events(blob)
    except HostileBundleError:
        return
    assert all(isinstance(e["raw"], bytes) for e in out)


# =========================================================================== 6. shapes

_ITEM_VALUES = st.one_of(
    json_values,
    st.sampled_from(
        ["ITEM-1", "collected", "vanished", "0" * 64, "data/ITEM-1/x", "data/ITEM-1/..", "", "78"]
    ),
)
_STORED = {
    "id": "ITEM-1",
    "path": "/e/x",
    "path_hex": b"/e/x".hex(),
    "outcome": "collected",
    "sha256": "0" * 64,
    "size": 3,
    "payload": "data/ITEM-1/x",
    "name_mapped": False,
}
_UNSTORED = {
    "id": "ITEM-2",
    "path": "/e/y",
    "path_hex": b"/e/y".hex(),
    "outcome": "vanished",
    "sha256": None,
    "size": None,
}


@st.composite
def item_like(draw: st.DrawFn, values: st.SearchStrategy[Any] = _ITEM_VALUES) -> Any:
    kind = draw(st.sampled_from(["any", "dict", "mutated"]))
    if kind == "any":
        return draw(json_values)
    if kind == "dict":
        return draw(st.dictionaries(st.sampled_from([*_STORED, "extra"]), values, max_size=9))
    item = dict(draw(st.sampled_from([_STORED, _UNSTORED])))
    for key in draw(st.lists(st.sampled_from([*_STORED, "extra"]), max_size=3)):
        if draw(st.integers(0, 4)) == 0:
            item.pop(key, None)
        else:
            item[key] = draw(values)
    return item


_HASHABLE_VALUES = st.one_of(json_scalars, st.sampled_from(["ITEM-1", "collected", "0" * 64]))


@props(200)
@given(item_like())
@example({**_STORED, "outcome": ["collected"]})  # unhashable: once a TypeError
@example({**_UNSTORED, "outcome": {}})
@example({**_STORED, "size": 3.0})
@example({**_STORED, "payload": ["data/ITEM-1/x"]})
def test_item_shape_never_raises(item: Any) -> None:
    assert _item_shape(item) in (True, False)


@props(150)
@given(
    st.dictionaries(
        st.text(max_size=12) | st.sampled_from(["bagit.txt", "b/bagit.txt", "b/", "b", "/", ""]),
        st.integers(),
        max_size=6,
    )
)
def test_strip_top_never_raises(names: dict[str, int]) -> None:
    top, inner = _strip_top(names)
    if top == "":
        assert inner == names
    else:
        assert top.endswith("/") and "bagit.txt" not in names
        assert inner == {n[len(top) :]: v for n, v in names.items() if n.startswith(top)}
        assert all(n.split("/", 1)[0] + "/" == top for n in names)


_VALID_TAG_DOCS: dict[str, Any] = {
    "custody/bundle.json": {
        "schema_version": 1,
        "tool": "custody 0.1.0",
        "case": {"id": _CASE, "title": "t", "header": "{}", "header_hash": "sha256:" + "0" * 64},
        "exported": "2026-01-01T00:00:00Z",
        "exported_by": "sha256:" + "1" * 64,
        "items": [_STORED, _UNSTORED],
        "checkpoint_event": 3,
        "export_event": 2,
    },
    "custody/keys.json": [
        {
            "fingerprint": "sha256:" + "a" * 64,
            "name": "Dana",
            "role": "collector",
            "public_key": _b64(bytes(32)),
        }
    ],
    "custody/proofs.json": {"tree_size": 3, "proofs": [{"seq": 0, "proof": ["ab" * 32]}]},
}


def _containers(doc: Any) -> list[Any]:
    out = [doc]
    for v in doc.values() if isinstance(doc, dict) else doc if isinstance(doc, list) else []:
        out += _containers(v)
    return [c for c in out if isinstance(c, dict | list) and c]


@st.composite
def tag_docs(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(_VALID_TAG_DOCS)))
    kind = draw(st.sampled_from(["bytes", "json", "valid", "mutated", "mutated"]))
    if kind == "bytes":
        return name, draw(
            st.binary(max_size=80)
            | jsonish().map(
                lambda x: x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass")
            )
        )
    if kind == "json":
        return name, json.dumps(draw(json_values)).encode()
    doc = json.loads(json.dumps(_VALID_TAG_DOCS[name]))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 2))):
            if not _containers(doc):
                break
            where = draw(st.sampled_from(_containers(doc)))
            keys = list(where) if isinstance(where, dict) else list(range(len(where)))
            at = draw(st.sampled_from(keys))
            if _rarely(draw):
                del where[at]
            else:
                where[at] = draw(_HASHABLE_VALUES | json_values)
    return name, json.dumps(doc, ensure_ascii=False).encode()


@props(100)
@given(tag_docs())
def test_tag_json_raises_only_hostile(doc: tuple[str, bytes]) -> None:
    name, raw = doc
    try:
        value = bundle._json(MemSource({name: raw}), name)
    except HostileBundleError:
        return
    assert value == parse_strict(raw)


# =========================================================================== end to end


def _export_and_verify(tmp_path: Path, names: list[str], reason: str) -> bundle.BundleReport:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for n in names:
        (evidence / n).write_bytes(b"exhibit\n")
    signer = Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")
    with Ledger.create(tmp_path / "case", _CASE, "Payroll server breach") as ledger:
        collect(
            ledger,
            signer,
            [os.fsencode(evidence / n) for n in names],
            reason=reason,
            algorithms=["sha256", "sha512"],
        )
        bundle.export_bundle(ledger, signer, [], tmp_path / "bundle")
    return bundle.verify_bundle(tmp_path / "bundle")


def test_export_then_verify_plain_names(tmp_path: Path) -> None:
    report = _export_and_verify(
        tmp_path, ["auth.log", "50%.csv", "caf\u00e9 \u2014 notes"], "suspected theft"
    )
    assert report.ok, report.findings


def test_export_then_verify_line_separator_in_file_name(tmp_path: Path) -> None:
    report = _export_and_verify(tmp_path, ["memo\u2028final.txt"], "suspected theft")
    assert report.ok, report.findings


def test_export_then_verify_line_separator_in_reason(tmp_path: Path) -> None:
    report = _export_and_verify(tmp_path, ["auth.log"], "line one\u2028line two")
    assert report.ok, [(f.kind, f.subject) for f in report.findings]
