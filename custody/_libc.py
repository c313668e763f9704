"""The C library's functions that Python's ``os`` lacks, looked up once."""

from __future__ import annotations

import ctypes
from typing import Any

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - no C library to load
    _LIBC = None


def function(name: str, *argtypes: Any) -> Any | None:
    """``name`` from the C library with ``argtypes`` (if given), or None where the
    platform has no such function (callers fall back)."""
    fn = getattr(_LIBC, name, None)
    if fn is not None and argtypes:
        fn.argtypes = list(argtypes)
    return fn
