"""``custody.canonical.parse_canonical``: a signed event body is accepted only when
its bytes are exactly the RFC 8785 canonical form of the value they parse to.

Checked against the RFC 8785 known-answer vectors (tests/vectors/jcs_rfc8785),
against hand-written non-canonical variants of accepted bodies, and by property:
``parse_canonical(canonical_json(v)) == v`` for random float-free JSON values, the
fast ``json.dumps`` path of ``canonical_json`` agreeing with the ``rfc8785``
package, and any other spelling of the value being refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from conftest import VECTORS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custody.canonical import (
    NonCanonicalValueError,
    canonical_json,
    canonical_json_any,
    parse_canonical,
)

MAX_INT = 2**53 - 1

# -- RFC 8785 known answers -----------------------------------------------------------

JCS_NAMES = ["arrays", "french", "structures", "unicode", "values", "weird"]
JCS_WITH_FLOATS = ["structures", "values"]  # 56.0, 333333333.33333329, 1E30, 4.50 ...
JCS_WITHOUT_FLOATS = [n for n in JCS_NAMES if n not in JCS_WITH_FLOATS]


def _jcs_dir() -> Path:
    return VECTORS / "jcs_rfc8785"


def _jcs(name: str) -> tuple[bytes, bytes]:
    """(input bytes, expected canonical output bytes) of one vector."""
    d = _jcs_dir()
    raw_in = (d / "input" / f"{name}.json").read_bytes()
    expected = (d / "output" / f"{name}.json").read_bytes()
    assert bytes.fromhex((d / "outhex" / f"{name}.txt").read_text()) == expected
    return raw_in, expected


def _float_tokens(raw: bytes) -> list[str]:
    """The number tokens of a JSON text that Python parses as floats."""
    found: list[str] = []

    def keep(text: str) -> float:
        found.append(text)
        return float(text)

    json.loads(raw, parse_float=keep)
    return found


def test_jcs_vectors_split_by_floats() -> None:
    """The split below is what the vector inputs contain, not a guess."""
    d = _jcs_dir()
    assert sorted(p.stem for p in (d / "input").glob("*.json")) == JCS_NAMES
    with_floats = [n for n in JCS_NAMES if _float_tokens(_jcs(n)[0])]
    assert with_floats == JCS_WITH_FLOATS
    assert _float_tokens(_jcs("structures")[0]) == ["56.0"]
    assert _float_tokens(_jcs("values")[0]) == [
        "333333333.33333329",
        "1E30",
        "4.50",
        "2e-3",
        "0.000000000000000000000000001",
    ]


@pytest.mark.parametrize("name", JCS_WITHOUT_FLOATS)
def test_jcs_vector_without_floats_parses(name: str) -> None:
    raw_in, expected = _jcs(name)
    value = parse_canonical(expected)
    assert value == json.loads(expected)
    assert value == json.loads(raw_in)
    # a fixed point, and both serialisers agree on it
    assert canonical_json(value) == expected
    assert canonical_json_any(value) == expected
    # the pretty-printed input itself is not canonical
    with pytest.raises(ValueError):
        parse_canonical(raw_in)


@pytest.mark.parametrize("name", JCS_WITH_FLOATS)
def test_jcs_vector_with_floats_rejected(name: str) -> None:
    raw_in, expected = _jcs(name)
    value = json.loads(raw_in)
    assert canonical_json_any(value) == expected
    with pytest.raises(NonCanonicalValueError, match="floats are not allowed"):
        parse_canonical(raw_in)
    # the input without its whitespace still carries its floats: refused for them
    compact = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    with pytest.raises(NonCanonicalValueError, match="floats are not allowed"):
        parse_canonical(compact.encode("utf-8"))
    with pytest.raises(NonCanonicalValueError):
        canonical_json(value)


def test_jcs_values_output_rejected_for_its_floats() -> None:
    """values.json's canonical output still has non-integers (4.5, 1e+30 ...)."""
    _, expected = _jcs("values")
    assert b"333333333.3333333" in expected
    with pytest.raises(
        NonCanonicalValueError, match=re.escape("333333333.3333333 is not an integer")
    ):
        parse_canonical(expected)


def test_jcs_structures_output_has_only_integers() -> None:
    """RFC 8785 writes structures.json's 56.0 as 56: its output is float-free and a
    valid signed body, equal to the input's value (56 == 56.0)."""
    raw_in, expected = _jcs("structures")
    assert _float_tokens(expected) == []
    value = parse_canonical(expected)
    assert value == json.loads(expected) == json.loads(raw_in)
    assert value["1"]["\n"] == 56 and type(value["1"]["\n"]) is int


# -- non-canonical variants -----------------------------------------------------------

BASE = b'{"a":1,"b":[true,null,"x"],"c":{"d":-5}}'


def test_base_body_is_accepted() -> None:
    assert parse_canonical(BASE) == {"a": 1, "b": [True, None, "x"], "c": {"d": -5}}
    assert canonical_json(parse_canonical(BASE)) == BASE


REJECTED: list[tuple[str, bytes, str | None]] = [
    # (label, body, why): a value that may not be signed at all is a
    # NonCanonicalValueError saying why; a wrong spelling of a signable value is a
    # ValueError (today NonCanonicalValueError "not canonical JSON (RFC 8785)")
    ("space after colon", b'{"a": 1,"b":[true,null,"x"],"c":{"d":-5}}', None),
    ("space after comma", b'{"a":1, "b":[true,null,"x"],"c":{"d":-5}}', None),
    ("leading space", b' {"a":1,"b":[true,null,"x"],"c":{"d":-5}}', None),
    ("tab in array", b'{"a":1,"b":[true,\tnull,"x"],"c":{"d":-5}}', None),
    ("pretty printed", b'{\n  "a": 1\n}', None),
    ("trailing newline", BASE + b"\n", None),
    ("trailing CRLF", BASE + b"\r\n", None),
    ("keys out of order", b'{"b":[true,null,"x"],"a":1,"c":{"d":-5}}', None),
    ("nested keys out of order", b'{"a":{"y":1,"x":2}}', None),
    ("lowercase key before uppercase", b'{"a":1,"B":2}', None),
    ("duplicate key", b'{"a":1,"a":1}', None),
    ("duplicate key, different values", b'{"a":1,"a":2}', None),
    ("duplicate nested key", b'{"c":{"d":1,"d":1}}', None),
    ("float 1.0", b'{"a":1.0}', "floats are not allowed"),
    ("float 0.5", b'{"a":0.5}', "floats are not allowed"),
    ("exponent 1e2", b'{"a":1e2}', "floats are not allowed"),
    ("exponent 1E2", b'{"a":1E2}', "floats are not allowed"),
    ("exponent 1e+0", b'{"a":1e+0}', "floats are not allowed"),
    ("integer 2**53", b'{"a":9007199254740992}', "exceeds 2^53-1"),
    ("integer -(2**53)", b'{"a":-9007199254740992}', "exceeds 2^53-1"),
    ("integer 2**64", b'{"a":18446744073709551616}', "exceeds 2^53-1"),
    ("negative zero", b'{"a":-0}', None),
    ("negative zero alone", b"-0", None),
    ("escaped non-ASCII", b'{"a":"\\u00e9"}', None),
    ("escaped non-ASCII key", b'{"\\u00e9":1}', None),
    ("escaped astral pair", b'{"a":"\\ud83d\\ude02"}', None),
    ("escaped ASCII letter", b'{"a":"\\u0041"}', None),
    ("escaped ASCII in key", b'{"\\u0061":1}', None),
    ("escaped solidus", b'{"a":"\\/"}', None),
    ("escaped DEL", b'{"a":"\\u007f"}', None),
    ("uppercase hex control escape", b'{"a":"\\u001F"}', None),
    ("long form of \\n", b'{"a":"\\u000a"}', None),
    ("long form of \\t", b'{"a":"\\u0009"}', None),
    ("long form of quote", b'{"a":"\\u0022"}', None),
    ("NaN", b'{"a":NaN}', "non-finite number NaN"),
    ("Infinity", b'{"a":Infinity}', "non-finite number Infinity"),
    ("-Infinity", b'{"a":-Infinity}', "non-finite number -Infinity"),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + BASE, None),
    ("UTF-16", '{"a":1}'.encode("utf-16-le"), None),
    ("non-ASCII body, extra space", '{"a": "é"}'.encode(), None),
    ("non-ASCII body, keys out of order", '{"é":1,"a":2}'.encode(), None),
    ("non-ASCII body, duplicate key", '{"é":1,"é":1}'.encode(), None),
    ("non-ASCII body, trailing newline", '{"a":"é"}\n'.encode(), None),
    ("non-ASCII body, float", '{"a":"é","b":2.0}'.encode(), "floats are not allowed"),
    # UTF-16 code-unit order puts U+1F602 (D83D DE02) before U+FB33: code-point
    # order, what sort_keys gives, is not RFC 8785
    ("code-point key order", '{"a":1,"é":2,"\ufb33":3,"\U0001f602":4}'.encode(), None),
    ("surrogate bytes (CESU-8)", b'{"\xc3\xa9":"\xed\xa0\x80"}', "not valid Unicode"),
]


@pytest.mark.parametrize(("label", "raw", "why"), REJECTED, ids=[r[0] for r in REJECTED])
def test_non_canonical_rejected(label: str, raw: bytes, why: str | None) -> None:
    if why is None:
        with pytest.raises(ValueError):  # the documented contract
            parse_canonical(raw)
    else:
        with pytest.raises(NonCanonicalValueError, match=re.escape(why)):
            parse_canonical(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1',  # not JSON at all
        b"",
        b'{"a":01}',
        b'{"a":"\xff"}',  # not UTF-8
        b'{"a":"\\ud800"}',  # a lone surrogate: no UTF-8 form
        b"{'a':1}",
    ],
)
def test_not_json_or_not_unicode_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):  # the documented contract
        parse_canonical(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"9007199254740991", MAX_INT),
        (b"-9007199254740991", -MAX_INT),
        (b"0", 0),
        (b"[]", []),
        (b"{}", {}),
        (b'""', ""),
        (b"null", None),
        (
            b'{"":1,"A":2,"a":3,"b":{"B":[],"a":{}}}',
            {"": 1, "A": 2, "a": 3, "b": {"B": [], "a": {}}},
        ),
    ],
)
def test_canonical_edge_values_accepted(raw: bytes, value: Any) -> None:
    got = parse_canonical(raw)
    assert got == value
    assert type(got) is type(value)
    assert canonical_json(value) == raw


def test_non_ascii_keys_and_values_accepted() -> None:
    value = {
        "\ufb33": "Hebrew",
        "\U0001f602": ["Smiley", "\U0001f602"],
        "é": "café",
        "a": {"ü": "€", "z": "Ω"},
        "€": None,
    }
    # RFC 8785 orders keys by UTF-16 code units: U+1F602 (D83D DE02) before U+FB33
    expected = (
        '{"a":{"z":"Ω","ü":"€"},"é":"café","€":null,'
        '"\U0001f602":["Smiley","\U0001f602"],"\ufb33":"Hebrew"}'
    ).encode()
    assert canonical_json(value) == expected
    assert canonical_json_any(value) == expected
    got = parse_canonical(expected)
    assert got == value
    assert list(got) == ["a", "é", "€", "\U0001f602", "\ufb33"]


def test_non_ascii_values_with_ascii_keys_accepted() -> None:
    value = {"name": "Dana Réyes", "note": "über 😂", "path": "/tmp/\u2028x"}
    expected = '{"name":"Dana Réyes","note":"über 😂","path":"/tmp/\u2028x"}'.encode()
    assert canonical_json(value) == expected
    assert parse_canonical(expected) == value


CONTROLS = '\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f"\\/'
# RFC 8785 3.2.2.2: \b \t \n \f \r short forms, other controls as lowercase \u00xx,
# quote and backslash escaped, DEL and solidus as they are
CONTROLS_JSON = '"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\x7f\\"\\\\/"'


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("k", f'{{"k":{CONTROLS_JSON},"z":[{CONTROLS_JSON}]}}'),  # the json.dumps path
        ("é", f'{{"z":[{CONTROLS_JSON}],"é":{CONTROLS_JSON}}}'),  # the rfc8785 path
    ],
    ids=["ascii-key", "non-ascii-key"],
)
def test_control_chars_escaped_as_rfc8785(key: str, expected: str) -> None:
    value = {key: CONTROLS, "z": [CONTROLS]}
    assert canonical_json(value) == expected.encode()
    assert canonical_json_any(value) == expected.encode()
    assert parse_canonical(expected.encode()) == value


def test_control_char_raw_in_string_is_not_json() -> None:
    with pytest.raises(ValueError):
        parse_canonical(b'{"a":"\x01"}')


# -- properties -----------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=12)  # no lone surrogates
_scalars = st.none() | st.booleans() | st.integers(-MAX_INT, MAX_INT) | _text
JSON_VALUES = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=4), inner, max_size=4)
    ),
    max_leaves=16,
)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(JSON_VALUES)
def test_parse_canonical_inverts_canonical_json(value: Any) -> None:
    raw = canonical_json(value)
    assert raw == canonical_json_any(value)
    assert parse_canonical(raw) == value


@PROPERTY
@given(JSON_VALUES)
def test_indented_json_rejected_unless_canonical(value: Any) -> None:
    raw = canonical_json(value)
    pretty = json.dumps(value, indent=1).encode()
    if pretty == raw:  # scalars and empty containers print the same
        assert parse_canonical(pretty) == value
    else:
        with pytest.raises(ValueError):
            parse_canonical(pretty)


@PROPERTY
@given(JSON_VALUES)
def test_reordered_or_spaced_spellings_rejected(value: Any) -> None:
    """Python's own spellings of the value: accepted only when byte-identical."""
    raw = canonical_json(value)
    for other in (
        json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),  # insertion order
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),  # \u escapes
        json.dumps(value, sort_keys=True, ensure_ascii=False).encode(),  # ", " and ": "
    ):
        if other == raw:
            assert parse_canonical(other) == value
        else:
            with pytest.raises(ValueError):
                parse_canonical(other)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {"b": [1, 2.5]}}, "$.a.b[1]: floats are not allowed in signed bodies"),
        ({"a": [0, {"n": 2**53}]}, "$.a[1].n: integer 9007199254740992 exceeds 2^53-1"),
        ({"a": {"b": -(2**53)}}, "$.a.b: integer -9007199254740992 exceeds 2^53-1"),
        ({"a": {1: "x"}}, "$.a: object key 1 is not a string"),
        ({"é": {"s": "\ud800"}}, "$.é.s: string is not valid Unicode"),
        ({"a": {"s": {1, 2}}}, "$.a.s: set is not JSON"),
    ],
)
def test_canonical_json_refusals_name_the_value(value: Any, message: str) -> None:
    with pytest.raises(NonCanonicalValueError) as e:
        canonical_json(value)
    assert str(e.value) == message


def test_non_ascii_keys_anywhere_take_the_rfc8785_path() -> None:
    """Key order is by UTF-16 code units: a non-ASCII key nested deep in a list
    must still send the whole value through the rfc8785 package."""
    value = {"b": [{"\U0001f600": 1, "\uff61": 2}], "a": 2**53 - 1}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert (
        canonical_json(value)
        != json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    )
