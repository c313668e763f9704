"""Canonical JSON (RFC 8785), prefixed content hashes and RFC 3339 nanosecond times."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import rfc8785

HASH_PREFIX = "sha256:"
# RFC 8785 serialises numbers as IEEE 754 doubles: integers stay exact up to this
MAX_EXACT_INT = 2**53 - 1


class NonCanonicalValueError(ValueError):
    """A value that may not appear in a signed body (a float, a non-string key...)."""


class _Refused(Exception):
    """Something in the value may not be signed (:func:`_locate` says what, where)."""


def _check(value: Any) -> bool:
    """Reject what may not be signed; return True when every object key is ASCII.
    The walk carries no path: only when something is refused is the whole value
    walked again (:func:`_locate`) to name where."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused from None
        return True
    if isinstance(value, dict):
        ascii_keys = True
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Refused
            if not _check(v) or not k.isascii():
                ascii_keys = False
        return ascii_keys
    if isinstance(value, list | tuple):
        ascii_keys = True
        for v in value:
            if not _check(v):
                ascii_keys = False
        return ascii_keys
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        if -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
            return True
    raise _Refused


def _locate(value: Any, path: str = "$") -> None:
    """Raise :class:`NonCanonicalValueError` naming the first value that may not be
    signed (the slow walk behind :func:`_check`)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise NonCanonicalValueError(f"{path}: string is not valid Unicode") from None
        return
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INT:
            raise NonCanonicalValueError(f"{path}: integer {value} exceeds 2^53-1")
        return
    if isinstance(value, float):
        raise NonCanonicalValueError(f"{path}: floats are not allowed in signed bodies")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise NonCanonicalValueError(f"{path}: object key {k!r} is not a string")
            _locate(v, f"{path}.{k}")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _locate(v, f"{path}[{i}]")
        return
    raise NonCanonicalValueError(f"{path}: {type(value).__name__} is not JSON")


def canonical_json(value: Any) -> bytes:
    r"""Return the RFC 8785 canonical UTF-8 bytes of ``value`` (no floats allowed).

    Without floats and with ASCII object keys, RFC 8785 output is exactly what
    ``json.dumps`` gives with sorted keys, no whitespace and no ASCII escaping
    (integers print the same; strings escape the same: ``\"``, ``\\``, the short
    forms ``\b \f \n \r \t`` and ``\u00xx`` for other controls; key order by
    UTF-16 code units equals code point order for ASCII).  That fast path is taken
    then; anything else goes through the ``rfc8785`` package.  Tests compare both
    on the RFC 8785 vectors and on random values."""
    try:
        ascii_keys = _check(value)
    except _Refused:
        _locate(value)
        raise AssertionError("_locate found nothing _check refused") from None
    if ascii_keys:
        return _dumps(value).encode("utf-8")
    return rfc8785.dumps(value)


def canonical_json_any(value: Any) -> bytes:
    """RFC 8785 bytes of any JSON value, floats included (for known-answer tests)."""
    return rfc8785.dumps(value)


def content_hash(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return HASH_PREFIX + hashlib.sha256(data).hexdigest()


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_strict(text: str | bytes) -> Any:
    """Parse JSON rejecting duplicate keys and non-finite numbers."""

    def bad_constant(name: str) -> Any:
        raise ValueError(f"non-finite number {name}")

    return json.loads(
        text,
        object_pairs_hook=_reject_duplicates,
        parse_constant=bad_constant,
        parse_float=_finite_float,
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} is too large to be finite")
    return value


def _no_float(text: str) -> Any:
    raise NonCanonicalValueError(f"number {text} is not an integer; floats are not allowed")


def _exact_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_EXACT_INT:
        raise NonCanonicalValueError(f"integer {text} exceeds 2^53-1")
    return value


def _bad_constant(name: str) -> Any:
    raise NonCanonicalValueError(f"non-finite number {name}")


# The C scanner parses integers itself when no ``parse_int`` is given: the
# callbacks below fire only on floats and NaN/Infinity, which are refused.
_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_bad_constant)
# The exact decoder: every integer goes through :func:`_exact_int` (2^53-1 bound).
_EXACT_DECODER = json.JSONDecoder(
    parse_float=_no_float, parse_int=_exact_int, parse_constant=_bad_constant
)
_ENCODER = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
)


def _make_dumps() -> Callable[[Any], str]:
    """``_ENCODER.encode`` without building the C encoder on every call (it is
    built once here; the pure-Python encoder if there is no C one, or if the C
    one prints a sample differently)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    c_str = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or c_str is None:
        return _ENCODER.encode
    enc = make(None, _ENCODER.default, c_str, None, ":", ",", True, False, False)

    def dumps(value: Any) -> str:
        return "".join(enc(value, 0))

    sample = {"b": [1, -2, None, True, False, '\u00e9\n"\\\x01'], "a": {"\u20ac": "x"}}
    return dumps if dumps(sample) == _ENCODER.encode(sample) else _ENCODER.encode


#: The sorted, compact, non-ASCII-escaping JSON text of a float-free value.
_dumps = _make_dumps()
# A body holds an integer beyond 2^53-1 only if it holds a run of 16 digits (in a
# number, or in a string: a false alarm only costs the exact decoder).  Digits are
# mapped to "0" and the run looked for as a substring (faster than a regex).
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_SIXTEEN_DIGITS = b"0" * 16


def parse_canonical(raw: bytes) -> Any:
    """Parse a signed body, raising ValueError unless ``raw`` is exactly its RFC 8785
    form.  A duplicate key, a float, a huge integer, whitespace, a non-canonical
    escape or bytes that are not UTF-8 all make it fail.

    One ``json.dumps`` decides (see :func:`canonical_json`: with no floats and no
    astral characters in object keys it is RFC 8785, since UTF-16 and code point
    order then agree): the value must print back as exactly the decoded text (so
    a later duplicate key, which replaces the earlier one, is refused).  A body
    holding a character beyond U+FFFF goes through :func:`canonical_json` (the
    ``rfc8785`` package sorts keys by UTF-16 code units).  Integers are parsed by
    the C scanner unless a 16-digit run could hold one beyond 2^53-1."""
    try:
        text, utf8 = raw.decode("utf-8"), True
    except UnicodeDecodeError:  # as json.loads reads bytes: canonical_json says why
        text, utf8 = raw.decode("utf-8", "surrogatepass"), False
    long_run = _SIXTEEN_DIGITS in raw.translate(_DIGITS_TO_ZERO)
    value, _ = (_EXACT_DECODER if long_run else _DECODER).raw_decode(text)
    if utf8 and (raw.isascii() or max(raw) < 0xF0):
        same = _dumps(value) == text
    else:  # an astral character (a 4-byte UTF-8 sequence): key order may differ
        same = canonical_json(value) == raw
    if not same:
        raise NonCanonicalValueError("not canonical JSON (RFC 8785)")
    return value


@functools.lru_cache(maxsize=4096)
def _rfc3339_seconds(secs: int) -> str:
    return datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def rfc3339_ns(ns: int) -> str:
    """RFC 3339 UTC string with nanoseconds for a POSIX time in nanoseconds (the
    seconds part is cached: a tree's files share few distinct seconds)."""
    secs, frac = divmod(ns, 1_000_000_000)
    return f"{_rfc3339_seconds(secs)}.{frac:09d}Z"


def now_rfc3339() -> str:
    """The current time as an RFC 3339 UTC string with nanoseconds."""
    return rfc3339_ns(time.time_ns())
