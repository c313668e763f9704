"""Canonical JSON (RFC 8785), prefixed content hashes and RFC 3339 nanosecond times."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

import rfc8785

HASH_PREFIX = "sha256:"


class NonCanonicalValueError(ValueError):
    """A value that may not appear in a signed body (a float, a non-string key...)."""


def _check(value: Any, path: str = "$") -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        # RFC 8785 serialises numbers as IEEE 754 doubles: keep integers exact.
        if abs(value) > 2**53 - 1:
            raise NonCanonicalValueError(f"{path}: integer {value} exceeds 2^53-1")
        return
    if isinstance(value, float):
        raise NonCanonicalValueError(f"{path}: floats are not allowed in signed bodies")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise NonCanonicalValueError(f"{path}: object key {k!r} is not a string")
            _check(v, f"{path}.{k}")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check(v, f"{path}[{i}]")
        return
    raise NonCanonicalValueError(f"{path}: {type(value).__name__} is not JSON")


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value`` (no floats allowed)."""
    _check(value)
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

    return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=bad_constant)


def rfc3339_ns(ns: int) -> str:
    """RFC 3339 UTC string with nanoseconds for a POSIX time in nanoseconds."""
    secs, frac = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(secs, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def now_rfc3339() -> str:
    """The current time as an RFC 3339 UTC string with nanoseconds."""
    return rfc3339_ns(time.time_ns())
