"""The one display rule for text that came from a user or from the evidence.

Every terminal line and every report format (HTML, PDF, CSV display columns,
certification) shows names, reasons, paths, titles, case ids and any other such
text through :func:`shown`, so that a file name cannot move the cursor, colour the
terminal, forge a table row with a newline, or reverse the text after it with a
bidi control (``report.gnp\\u202eexe`` must not read ``report.exe.png``).

The notation (docs/reports.md, "How text is shown"):

* a backslash is shown as ``\\\\`` (two backslashes), so every backslash in the
  shown text starts an escape and the escaped text is unambiguous;
* line feed, carriage return and tab are shown as ``\\n``, ``\\r`` and ``\\t``;
* every other C0 control character and DEL as ``\\xNN`` (``\\x1b`` for ESC);
* C1 control characters (U+0080 to U+009F, NEL U+0085 among them), the bidi
  controls (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069), the line
  and paragraph separators (U+2028, U+2029) and lone surrogates as ``\\uNNNN``;
* a byte of a path that is not part of valid UTF-8 as ``\\xNN`` (always ``\\x80``
  or above: a C0 character is below ``\\x80`` and a C1 character is written
  ``\\u0080`` to ``\\u009f``, so ``\\xNN`` never means two things).  Such a byte
  is carried in text as Python's ``surrogateescape`` does (U+DC80 to U+DCFF), which
  is why those lone surrogates are shown as ``\\xNN`` too.

Every other character, letters of any script (``é``, ``漢字``) included, is shown
as it is.  The exact text stays available where exactness is the point: JSON
output (escaped by JSON's own rules only), the ``hex`` of every collected path,
and the exact columns of the CSV form.
"""

from __future__ import annotations

import re
from typing import Any

BIDI_CONTROLS = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
SEPARATORS = frozenset([0x2028, 0x2029, 0x0085])
_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

_UNSAFE = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)

#: first characters that make a spreadsheet program read a cell as a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _escape(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    cp = ord(ch)
    if cp < 0x80:
        return f"\\x{cp:02x}"
    if 0xDC80 <= cp <= 0xDCFF:  # an undecodable byte, as surrogateescape carries it
        return f"\\x{cp - 0xDC00:02x}"
    return f"\\u{cp:04x}"


def needs_escape(text: str) -> bool:
    """True when :func:`shown` would change ``text``."""
    return _UNSAFE.search(text) is not None


def shown(text: Any) -> str:
    """``text`` as it may be shown on a terminal or in a report: one line, no
    control, bidi or separator character, a backslash doubled (module docstring).
    ``None`` is shown as the empty string."""
    if text is None:
        return ""
    s = str(text)
    return _UNSAFE.sub(lambda m: _escape(m.group()), s)


def bytes_text(raw: bytes) -> str:
    """Exact bytes as text for :func:`shown`: UTF-8, each byte that is not valid
    UTF-8 carried as a lone surrogate (``surrogateescape``), shown as ``\\xNN``."""
    return raw.decode("utf-8", errors="surrogateescape")


def shown_bytes(raw: bytes) -> str:
    """A path (or any byte string) shown from its exact bytes: valid UTF-8 through
    :func:`shown`, each byte that is not valid UTF-8 as ``\\xNN``."""
    return shown(bytes_text(raw))


def path_text(display: Any, hex_bytes: Any = None) -> str:
    """A recorded path as text for :func:`shown`: from its exact bytes
    (``hex_bytes``, the ``hex`` that collect records) when they are given and
    readable, else its display text."""
    if isinstance(hex_bytes, str) and hex_bytes:
        try:
            return bytes_text(bytes.fromhex(hex_bytes))
        except ValueError:
            pass
    return "" if display is None else str(display)


def shown_path(display: Any, hex_bytes: Any = None) -> str:
    """A recorded path shown (:func:`path_text`, then :func:`shown`)."""
    return shown(path_text(display, hex_bytes))


def formula_guarded(text: str) -> str:
    """A CSV display cell that a spreadsheet program will not read as a formula:
    a value starting with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading
    apostrophe."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


#: model keys whose text is several lines by design (a signed checkpoint note):
#: each line is shown by the rule, the line breaks between them are kept
MULTILINE_KEYS = frozenset(["note"])


def shown_model(value: Any) -> Any:
    """A copy of a report model (or any JSON value) with every string shown by the
    rule, for a renderer that lays the text out itself (the PDF).  An object with
    ``path`` and ``path_hex`` gets its path shown from the exact bytes; a
    :data:`MULTILINE_KEYS` value keeps its line breaks.  Hex digests, fingerprints
    and ids hold no character the rule changes, so they come out unchanged."""
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, list):
        return [shown_model(v) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in MULTILINE_KEYS and isinstance(v, str):
                out[k] = "\n".join(shown(line) for line in v.split("\n"))
            else:
                out[k] = shown_model(v)
        if isinstance(value.get("path"), str) and isinstance(value.get("path_hex"), str):
            out["path"] = shown_path(value["path"], value["path_hex"])
        return out
    return value
