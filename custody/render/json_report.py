"""The report model as JSON (schemas/report.schema.json), UTF-8.

The document is the model, 2-space indented, except that each item of ``items`` is
written on one line of its own (``", "`` and ``": "`` separators): the items are
written one at a time as they are made (a case of 100,000 items is never held as
one string), with the C encoder, which does not indent.  Any JSON reader sees the
same values as with full indentation."""

from __future__ import annotations

import io
import json
from typing import IO, Any

_ITEM = json.JSONEncoder(ensure_ascii=False)  # no indent: the C encoder


def write(report: dict[str, Any], out: IO[bytes]) -> None:
    """Write the JSON document to ``out`` as it goes (module docstring)."""
    keys = list(report)
    out.write(b"{\n" if keys else b"{}")
    for n, key in enumerate(keys):
        value = report[key]
        head = f"  {json.dumps(key, ensure_ascii=False)}: "
        tail = ",\n" if n < len(keys) - 1 else "\n}"
        if key == "items" and not isinstance(value, dict):
            out.write(head.encode("utf-8"))
            _items(value, out)
            out.write(tail.encode("utf-8"))
            continue
        text = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        out.write((head + text + tail).encode("utf-8"))
    out.write(b"\n")


def _items(items: Any, out: IO[bytes]) -> None:
    first = True
    chunk: list[str] = []
    for item in items:
        chunk.append(("[\n    " if first else ",\n    ") + _ITEM.encode(item))
        first = False
        if len(chunk) >= 256:
            out.write("".join(chunk).encode("utf-8"))
            chunk.clear()
    out.write("".join(chunk).encode("utf-8"))
    out.write(b"[]" if first else b"\n  ]")


def render(report: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    write(report, buf)
    return buf.getvalue()
