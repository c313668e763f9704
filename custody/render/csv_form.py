"""The report as a chain-of-custody form in CSV: one row per custody event per item.

An event that concerns two items (a hand-over of both, a note on both) gives one
row for each.  Rows are grouped by item, in the report's item order, and follow
each item's timeline (ledger order).  The columns, in order, are :data:`COLUMNS`:
the form's columns, then the collected path exactly (``path_hex``: its bytes in hex,
since a displayed name cannot tell byte 0xff from the text ``\xff``), then the
ledger state the report was made from (event count and Merkle root), on every row
so that any extract of the sheet still names it, then the signing key: its full
fingerprint, its standing (``owner``, ``recovery``, ``delegate``, ``attested``, or
``SELF-ASSERTED`` / ``UNKNOWN`` in capitals: nobody vouched for the key) and the
name and fingerprint of the key that attested it.

Display columns (:data:`DISPLAY_COLUMNS`, and ``path``) hold text a user or the
evidence supplied: it is shown by the display rule (custody.display: control, bidi
and separator characters escaped as ``\\n``, ``\\x1b``, ``\\u202e``, a backslash
doubled) and formula-guarded by default (a value starting with ``=``, ``+``, ``-``,
``@``, tab or CR gets a leading apostrophe, so a spreadsheet program does not run
it as a formula).  Each display column is followed by its exact value
(``<name>_exact``; ``path`` by ``path_hex``, its exact bytes).

Conventions (docs/reports.md): RFC 4180 (``\\r\\n`` line ends, fields quoted only
when needed, ``"`` doubled inside quotes, line breaks kept inside quoted fields),
UTF-8 with a byte-order mark so spreadsheet programs open it as UTF-8.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from typing import IO, Any

from custody.display import formula_guarded, path_text, shown

#: display columns: text a user or the evidence supplied, shown by the display rule
#: and formula-guarded; each is followed by its ``_exact`` column (``path`` by
#: ``path_hex``, its exact bytes)
DISPLAY_COLUMNS = (
    "description",
    "action",
    "released_by",
    "received_by",
    "reason",
    "location",
    "actor",
    "role",
    "signer_attested_by_name",
)

_FORM = (
    "item",
    "description",
    "sha256",
    "date",
    "time_utc",
    "action",
    "released_by",
    "received_by",
    "reason",
    "location",
    "actor",
    "role",
    "signature_verified",
    "event_seq",
    "item_integrity",
    "path",
    "path_hex",
    "ledger_events",
    "ledger_root",
    "signer",
    "signer_standing",
    "signer_attested_by_name",
    "signer_attested_by",
)

COLUMNS = tuple(
    c for name in _FORM for c in ((name, f"{name}_exact") if name in DISPLAY_COLUMNS else (name,))
)

#: the display columns taken from the event row, in the form's order (item_rows
#: builds each row in :data:`COLUMNS` order directly; tests check the two agree)
_EVENT_TEXT = ("action", "released_by", "received_by", "reason", "location", "actor", "role")


def describe(item: dict[str, Any]) -> str:
    """The form's description of an item: its source path, then what it is, its
    size and the host it was collected on, e.g.
    ``/evidence/memo.txt (ASCII text, 46 bytes, host payroll-srv)``."""
    facts = []
    if item.get("description"):
        facts.append(str(item["description"]))
    if isinstance(item.get("size"), int):
        facts.append(f"{item['size']} bytes")
    if item.get("host"):
        facts.append(f"host {item['host']}")
    path = str(item.get("path") or "")
    if not facts:
        return path
    return f"{path} ({', '.join(facts)})" if path else ", ".join(facts)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def standing_cell(card: Any) -> str:
    """A key's standing as the form shows it: a key nobody vouched for in capitals."""
    standing = str(card.get("standing") or "unknown") if isinstance(card, dict) else "unknown"
    return standing.upper() if standing in ("self-asserted", "unknown") else standing


def _cell(value: Any, guard: bool) -> str:
    """A display cell: shown by the display rule, formula-guarded if ``guard``."""
    text = shown(value)
    return formula_guarded(text) if guard else text


class _Cells:
    """:func:`_cell` and :func:`shown` of each distinct text made once: a form's
    cells repeat (the same actor, action and location on most rows)."""

    def __init__(self, guard: bool) -> None:
        self.guard = guard
        self.cells: dict[str, str] = {}
        self.plain: dict[str, str] = {}

    def cell(self, text: str) -> str:
        out = self.cells.get(text)
        if out is None:
            if len(self.cells) > 100_000:
                self.cells.clear()
            out = self.cells[text] = _cell(text, self.guard)
        return out

    def shown(self, text: str) -> str:
        out = self.plain.get(text)
        if out is None:
            if len(self.plain) > 100_000:
                self.plain.clear()
            out = self.plain[text] = shown(text)
        return out


def rows(report: dict[str, Any], *, formula_guard: bool = True) -> list[list[str]]:
    """The form's rows (without the header), as the CSV holds them: every cell
    shown by the display rule (custody.display), each display column formula-guarded
    (unless ``formula_guard`` is false) and followed by its exact value."""
    return [row for _item, form in item_rows(report, formula_guard) for row in form]


def item_rows(
    report: dict[str, Any], formula_guard: bool = True
) -> Iterator[tuple[dict[str, Any], list[list[str]]]]:
    """Each item of the report with its rows of the form (:func:`rows`), one item
    at a time."""
    memo = _Cells(formula_guard)
    cell, plain, known = memo.cell, memo.shown, memo.cells
    state = report.get("ledger_state") or {}
    unconfirmed = (report.get("verification") or {}).get("verdict") == "unconfirmed"
    size, root = plain(_text(state.get("size"))), plain(_text(state.get("root")))
    # an event's cells by the row object: a hand-over's row is one object shared by
    # the timelines of all its items (custody.report); the object is kept with them
    seen: dict[int, tuple[dict[str, Any], list[str], list[str]]] = {}
    items = report.get("items", [])
    lean = getattr(items, "lean", None)  # a streamed model: only the fields read here
    for item in lean() if callable(lean) else items:
        integrity = "intact" if item.get("integrity", {}).get("ok") else "FAILED"
        if integrity == "intact" and unconfirmed:  # a bundle's verdict (custody.trust)
            integrity = "intact, signers unconfirmed"
        path = path_text(item.get("path"), item.get("path_hex"))
        description = describe({**item, "path": path})
        exact_description = describe(item)
        sha256 = _text(item.get("digests", {}).get("sha256"))
        head = [plain(_text(item.get("id"))), cell(description), exact_description, plain(sha256)]
        mid = [plain(integrity), cell(path), plain(_text(item.get("path_hex"))), size, root]
        out = []
        for ev in [*_source_timeline(item), *item.get("timeline", [])]:
            hit = seen.get(id(ev))
            if hit is None or hit[0] is not ev:
                hit = (ev, *_event_cells(ev, cell, plain, known))
                if len(seen) > 10_000:
                    seen.clear()
                seen[id(ev)] = hit
            out.append([*head, *hit[1], *mid, *hit[2]])
        yield item, out


def _event_cells(
    ev: dict[str, Any],
    cell: Callable[[str], str],
    plain: Callable[[str], str],
    known: dict[str, str],
) -> tuple[list[str], list[str]]:
    """The cells of timeline row ``ev``: those between the item's and the ledger
    state's columns, and those after them (the signing key's)."""
    get = ev.get
    key = get("signer_key")
    if not isinstance(key, dict):
        key = {}
    pre = [plain(_text(get("date"))), plain(_text(get("time_utc")))]
    for name in _EVENT_TEXT:  # display columns: shown, then exact
        value = get(name)
        exact = "" if value is None else value if type(value) is str else str(value)
        shown_cell = known.get(exact)
        pre.append(cell(exact) if shown_cell is None else shown_cell)
        pre.append(exact)
    seq = get("seq")
    pre += [
        "yes" if get("signature_verified") is True else "NO",
        str(seq) if type(seq) is int else shown(_text(seq)),
    ]
    exact = _text(key.get("attested_by_name"))
    post = [
        plain(_text(get("signer"))),
        plain(standing_cell(key)),
        cell(exact),
        exact,
        plain(_text(key.get("attested_by"))),
    ]
    return pre, post


def _source_timeline(item: dict[str, Any]) -> list[dict[str, Any]]:
    """An imported item's source chain as rows before its timeline: each of the
    source case's signed events about it, its action naming the source and the
    event's seq there (``event_seq`` is empty: it is not an event of this ledger)."""
    src = item.get("source")
    if not isinstance(src, dict):
        return []
    out = []
    for e in src.get("events") or []:
        key = e.get("signer_key") if isinstance(e.get("signer_key"), dict) else {}
        time = str(e.get("time") or "")
        out.append(
            {
                "date": time[:10],
                "time_utc": time[11:19],
                "action": f"{e.get('action')} (in source {src.get('label')}, its event"
                f" {e.get('seq')})",
                "reason": e.get("reason"),
                "actor": key.get("name"),
                "role": key.get("role"),
                "signature_verified": e.get("signature_verified"),
                "seq": None,
                "signer": e.get("signer"),
                "signer_key": key,
            }
        )
    return out


def write(report: dict[str, Any], out: IO[bytes], *, formula_guard: bool = True) -> None:
    """Write the form to ``out`` as it goes: a few hundred items' rows at a time."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    out.write(codecs.BOM_UTF8)
    writer.writerow(COLUMNS)
    for n, (_item, form) in enumerate(item_rows(report, formula_guard), 1):
        writer.writerows(form)
        if n % 256 == 0:
            out.write(buf.getvalue().encode("utf-8"))
            buf.seek(0)
            buf.truncate()
    out.write(buf.getvalue().encode("utf-8"))


def render(report: dict[str, Any], *, formula_guard: bool = True) -> bytes:
    buf = io.BytesIO()
    write(report, buf, formula_guard=formula_guard)
    return buf.getvalue()
