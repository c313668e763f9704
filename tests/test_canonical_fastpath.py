"""``parse_canonical``'s fast path (the C decoder without a per-integer callback,
one reused C encoder, a 16-digit pre-check for huge integers) against a slow
reference written from RFC 8785 alone: accept exactly the bytes the ``rfc8785``
package prints for the value they parse to, integers within 2^53-1, no floats.

Random bodies are printed canonically and then spoiled in the ways a hostile
writer might (a duplicate key, a huge integer, a float, an escape spelled
another way, astral keys out of UTF-16 order, whitespace, CESU-8 surrogates);
both must agree on accept/reject and, when accepted, on the value.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from custody.canonical import MAX_EXACT_INT, NonCanonicalValueError, parse_canonical


def _exact(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_EXACT_INT:
        raise ValueError("too big")
    return value


def _refuse(text: str) -> Any:
    raise ValueError(f"refused number {text}")


def reference(raw: bytes) -> tuple[bool, Any]:
    """(accepted, value) by the slow, obvious rule."""
    try:
        value = json.loads(raw, parse_int=_exact, parse_float=_refuse, parse_constant=_refuse)
        return rfc8785.dumps(value) == raw, value
    except (ValueError, RecursionError):
        return False, None


def fast(raw: bytes) -> tuple[bool, Any]:
    try:
        return True, parse_canonical(raw)
    except ValueError:
        return False, None


def agree(raw: bytes) -> bool:
    """Assert both agree on ``raw``; return whether it was accepted."""
    ref_ok, ref_value = reference(raw)
    ok, value = fast(raw)
    assert ok == ref_ok, (raw, ref_ok)
    if ok:
        assert value == ref_value
        assert json.dumps(value) == json.dumps(ref_value)  # same types (True is not 1)
    return ok


KEY_CHARS = st.sampled_from(
    ["a", "b", "z", "A", "0", "\n", "\x01", '"', "\\", "é", "€", "\ufb33", "\U0001f602", "😀"]
)
KEYS = st.text(KEY_CHARS, max_size=3) | st.text(max_size=4)
BIG = st.sampled_from(
    [MAX_EXACT_INT, -MAX_EXACT_INT, MAX_EXACT_INT + 1, -MAX_EXACT_INT - 1, 10**15, 10**16, 2**64]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | BIG
    | st.text(KEY_CHARS, max_size=4)
    | st.text(max_size=6)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


def _printed(value: Any) -> bytes | None:
    """RFC 8785 bytes of ``value`` when the package can print it (else None)."""
    try:
        return rfc8785.dumps(value)
    except ValueError:
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_canonical_print_agrees(value: Any) -> None:
    """A value's RFC 8785 bytes: accepted by both exactly when every integer is
    within 2^53-1 (the package refuses to print the rest: then compact sorted
    json.dumps bytes must be refused by both)."""
    raw = _printed(value)
    if raw is None:
        raw = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )
        assert not agree(raw)
    else:
        assert agree(raw)


def _spellings(value: Any) -> list[bytes]:
    """Other spellings of ``value``: each is refused unless it equals the canonical one."""
    out = []
    for kw in (
        {"sort_keys": True, "ensure_ascii": True, "separators": (",", ":")},
        {"sort_keys": False, "ensure_ascii": False, "separators": (",", ":")},
        {"sort_keys": True, "ensure_ascii": False, "separators": (", ", ": ")},
        {"sort_keys": True, "ensure_ascii": False, "separators": (",", ":")},
    ):
        out.append(json.dumps(value, allow_nan=True, **kw).encode("utf-8", "surrogatepass"))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_other_spellings_agree(value: Any) -> None:
    for raw in _spellings(value):
        agree(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(KEYS, SCALARS, min_size=1, max_size=5),
    st.sampled_from(["dup-first", "dup-last", "float", "big", "exp", "neg0", "space", "bom"]),
    st.data(),
)
@example({"a": 1}, "dup-last", None)
def test_spoiled_bodies_agree(body: dict[str, Any], how: str, data: Any) -> None:
    raw = _printed(body)
    if raw is None:
        return
    inner = raw[1:-1]
    key = json.dumps(sorted(body)[0], ensure_ascii=False).encode("utf-8", "surrogatepass")
    spoiled = {
        "dup-first": b"{" + key + b":0," + inner + b"}",
        "dup-last": b"{" + inner + b"," + key + b":0}",
        "float": raw.replace(b"}", b',"~":1.0}', 1) if b'"~"' not in raw else raw + b" ",
        "big": b"{" + inner + b',"~~~~":' + str(MAX_EXACT_INT + 1).encode() + b"}",
        "exp": b"{" + inner + b',"~~~~":1e3}',
        "neg0": b"{" + inner + b',"~~~~":-0}',
        "space": b"{ " + inner + b"}",
        "bom": b"\xef\xbb\xbf" + raw,
    }[how]
    assert not agree(spoiled)


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        (b'{"n":9007199254740991}', True),
        (b'{"n":-9007199254740991}', True),
        (b'{"n":9007199254740992}', False),
        (b'{"n":-9007199254740992}', False),
        (b'{"n":123456789012345678901234567890}', False),
        (b'{"s":"1234567890123456789012345678"}', True),  # digits in a string: slow path, fine
        (b'{"a":1,"a":1}', False),  # a duplicate key, same value
        (b'{"a":1,"a":2}', False),
        (b'{"a":"\\u00e9"}', False),  # an escape RFC 8785 prints as the character
        ('{"a":"é"}'.encode(), True),
        ('{"\U0001f602":1,"\ufb33":2}'.encode(), True),  # UTF-16 order
        ('{"\ufb33":2,"\U0001f602":1}'.encode(), False),  # code point order
        (b'{"a":"\\ud83d\\ude02"}', False),  # an astral character spelled as escapes
        ('{"a":"\U0001f602"}'.encode(), True),
        (b'{"a":"\xed\xa0\x80"}', False),  # CESU-8 surrogate bytes
        (b'{"a":"\\ud800"}', False),  # a lone surrogate escape
        (b'{"a":NaN}', False),
        (b'{"a":1}\n', False),
        (b"[1,2]", True),
        (b'"x"', True),
    ],
)
def test_known_answers(raw: bytes, accepted: bool) -> None:
    assert agree(raw) is accepted


def test_huge_integer_says_why() -> None:
    with pytest.raises(NonCanonicalValueError, match=r"exceeds 2\^53-1"):
        parse_canonical(b'{"n":9007199254740992}')
    with pytest.raises(NonCanonicalValueError, match="floats are not allowed"):
        parse_canonical(b'{"n":1.5}')
