"""Attacks on the fast canonical-JSON check (custody/canonical.py, r17): bodies
that are not RFC 8785 but that a fast path might take for it.  Each is refused
by ``parse_canonical`` exactly as by the slow reference rule, and, signed by the
case's own key into a ledger (hash, signature and chain right), is the finding
kind a user sees from ``verify``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.canonical import MAX_EXACT_INT, NonCanonicalValueError, parse_canonical
from tests.test_verify_fastpaths import _case, _findings, _resign_last

# (name, body) pairs that are NOT canonical; every one must be refused
HOSTILE = {
    "huge int split by a digit escape": b'{"a":"\\u0039007199254740993"}',
    "2^53+1": b'{"a":9007199254740993}',
    "-(2^53)": b'{"a":-9007199254740992}',
    "-0": b'{"a":-0}',
    "1E400": b'{"a":1E400}',
    "1e400": b'{"a":1e400}',
    "-1E400": b'{"a":-1E400}',
    "1E2": b'{"a":1E2}',
    "1.0": b'{"a":1.0}',
    "leading zero": b'{"a":01}',
    "duplicate key, same value": b'{"a":1,"a":1}',
    "duplicate key, same array": b'{"a":[1,2],"a":[1,2]}',
    "duplicate key, same object": b'{"a":{"b":null},"a":{"b":null}}',
    "U+2028 escaped": b'{"a":"\\u2028"}',
    "lone surrogate escaped": b'{"a":"\\ud800"}',
    "lone low surrogate escaped": b'{"a":"\\udc00"}',
    "swapped surrogates escaped": b'{"a":"\\udc00\\ud800"}',
    "surrogate pair escaped": b'{"a":"\\ud83d\\ude00"}',
    "lone surrogate as CESU-8": b'{"a":"\xed\xa0\x80"}',
    "BOM": b'\xef\xbb\xbf{"a":1}',
    "trailing space": b'{"a":1} ',
    "trailing newline": b'{"a":1}\n',
    "leading space": b' {"a":1}',
    "NaN": b'{"a":NaN}',
    "Infinity": b'{"a":Infinity}',
    "-Infinity": b'{"a":-Infinity}',
    "two values": b'{"a":1}{"b":2}',
    "trailing NUL": b'{"a":1}\x00',
    "raw control character": b'{"a":"\x01"}',
    "escaped slash": b'{"a":"\\/"}',
    "upper-case hex escape": b'{"a":"\\u001F"}',
    "DEL escaped": b'{"a":"\\u007f"}',
    "keys out of order": b'{"b":1,"a":1}',
    "astral keys in code point order": '{"\ufb33":1,"\U0001f600":2}'.encode(),
    "overlong UTF-8": b'{"a":"\xc1\xa1"}',
}
# and their canonical neighbours, which must be taken (the test can fail both ways)
CANONICAL = {
    "2^53-1": b'{"a":9007199254740991}',
    "-(2^53-1)": b'{"a":-9007199254740991}',
    "0": b'{"a":0}',
    "U+2028 as itself": '{"a":"\u2028"}'.encode(),
    "DEL as itself": b'{"a":"\x7f"}',
    "control escaped": b'{"a":"\\u001f"}',
    "astral keys in UTF-16 order": '{"\U0001f600":2,"\ufb33":1}'.encode(),
    "digits in a string": b'{"a":"12345678901234567890"}',
}


def _reference(raw: bytes) -> bool:
    """The slow rule, from RFC 8785 alone."""

    def exact(text: str) -> int:
        if abs(int(text)) > MAX_EXACT_INT:
            raise ValueError(text)
        return int(text)

    def refuse(text: str) -> Any:
        raise ValueError(text)

    try:
        value = json.loads(raw, parse_int=exact, parse_float=refuse, parse_constant=refuse)
        return bool(rfc8785.dumps(value) == raw)
    except (ValueError, rfc8785.CanonicalizationError):  # a lone surrogate
        return False


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_body_is_refused(raw: bytes) -> None:
    assert not _reference(raw)
    with pytest.raises(ValueError):
        parse_canonical(raw)


@pytest.mark.parametrize("raw", CANONICAL.values(), ids=CANONICAL.keys())
def test_its_canonical_neighbour_is_taken(raw: bytes) -> None:
    assert _reference(raw)
    assert parse_canonical(raw) == json.loads(raw)


def test_nan_and_huge_values_are_refused_as_non_canonical() -> None:
    """Not a crash, nor an OverflowError: errors custody turns into a finding."""
    for raw in (b'{"a":NaN}', b'{"a":1E400}', b'{"a":-1e400}'):
        with pytest.raises(NonCanonicalValueError):
            parse_canonical(raw)
    with pytest.raises(ValueError):  # beyond int()'s digit limit
        parse_canonical(b'{"a":' + b"9" * 5000 + b"}")


# -- the same bodies signed into a ledger by the case's own key ------------------------
LEDGER_SPOILS = {
    "-0": (lambda b: b.replace('"items":[]', '"items":[-0]'), "event-noncanonical"),
    "1E400": (lambda b: b.replace('"items":[]', '"items":[1E400]'), "event-body"),
    "NaN": (lambda b: b.replace('"items":[]', '"items":[NaN]'), "event-body"),
    "duplicate identical keys": (
        lambda b: b.replace('"items":[]', '"items":[],"items":[]'),
        "event-body",
    ),
    "U+2028 escaped": (lambda b: b.replace("serial", "serial\\u2028"), "event-noncanonical"),
    "lone surrogate escaped": (
        lambda b: b.replace("serial", "serial\\ud800"),
        "event-noncanonical",
    ),
    "huge int in escapes": (
        lambda b: b.replace("serial", "\\u0039007199254740993"),
        "event-noncanonical",
    ),
    "BOM": (lambda b: "\ufeff" + b, "event-noncanonical"),
    "trailing newline": (lambda b: b + "\n", "event-noncanonical"),
    "trailing space": (lambda b: b + " ", "event-noncanonical"),
}


@pytest.mark.parametrize(("spoil", "kind"), LEDGER_SPOILS.values(), ids=LEDGER_SPOILS.keys())
def test_a_resigned_hostile_body_is_the_finding_a_user_sees(
    spoil: Any, kind: str, tmp_path: Path
) -> None:
    case, owner = _case(tmp_path)
    seq = _resign_last(case, owner, spoil)
    kinds = [(k, s) for k, s, _ in _findings(case)]
    assert kinds[0] == (kind, f"event {seq}"), kinds
    assert [k for k, _ in kinds[1:]] == ["index", "checkpoint"]  # the rewrite, as ever


# -- a property: any letter or digit written as an escape is refused -----------------
TEXTS = st.text(st.sampled_from('ab09Z\n"\\\u2028é€😀'), max_size=5)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_EXACT_INT, MAX_EXACT_INT) | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(VALUES, st.integers(min_value=0))
def test_an_escaped_letter_or_digit_is_refused(value: Any, where: int) -> None:
    """RFC 8785 never escapes a letter or a digit: spell any one of them (in a key,
    a string, a number or a literal) as ``\\u00XX`` and the body is refused, by the
    fast path as by the reference."""
    raw = rfc8785.dumps(value)
    assert parse_canonical(raw) == value
    spots = [  # not within an escape sequence (\n, \u001f) the encoder wrote
        i
        for i, b in enumerate(raw)
        if chr(b).isascii() and chr(b).isalnum() and b"\\" not in raw[max(0, i - 5) : i]
    ]
    if not spots:
        return
    i = spots[where % len(spots)]
    spoiled = raw[:i] + b"\\u%04x" % raw[i] + raw[i + 1 :]
    assert not _reference(spoiled)
    with pytest.raises(ValueError):
        parse_canonical(spoiled)
