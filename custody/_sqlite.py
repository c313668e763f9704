"""sqlite-utils, imported lean."""

from __future__ import annotations

import sys
from typing import Any


def _import_sqlite_utils() -> Any:
    """Import sqlite-utils without the pandas and numpy it imports when they are
    installed, only to map their column types: custody never hands it either, and
    pandas alone adds 0.4 s to every command.  Imports made later are unaffected."""
    hidden = [m for m in ("pandas", "numpy") if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # type: ignore[assignment]  # makes 'import m' raise ImportError
    try:
        import sqlite_utils
    finally:
        for m in hidden:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()
