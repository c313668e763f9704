"""The report model as a PDF (fpdf2, no browser): the same content as every other
format, laid out as a custody document an auditor can print and sign.

* Page 1 on: the case header, the verification summary (every step, every
  finding, the latest checkpoint, time-stamp tokens) and the ledger state the
  report was made from.
* One section per item, each starting on a new page, with a prominent integrity
  status (``INTEGRITY FAILURE`` and its findings, or ``Intact``), the digests
  recorded at collection and re-computed at verification, the hand-overs and the
  full custody timeline.
* Then the keys and fingerprints involved and the tool version.

Every page's footer names the case, ``page N of M`` and the *report data
SHA-256*: the SHA-256 of the canonical JSON of the report model
(:func:`model_digest`), i.e. of the same data ``--format json`` writes.  The PDF
cannot carry its own hash; the CLI prints that one.

Every model string is drawn as the display rule shows it
(:func:`custody.display.shown_model`: control, bidi and separator characters and
the backslash escaped, a path from its exact bytes).  Model strings may hold any
Unicode.  A Unicode TrueType font (DejaVu) is used
when one is installed; a character the font cannot draw, or any character outside
Latin-1 when only the core PDF fonts are available, is written as a visible
``\\uXXXX`` escape, so rendering never fails and nothing is silently dropped.

Output is deterministic: the PDF creation date is the model's ``generated`` time,
so the same model (e.g. with ``SOURCE_DATE_EPOCH``) gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import Align, TableBordersLayout, TextMode, WrapMode, XPos, YPos
from fpdf.fonts import FontFace

from custody.display import shown_model
from custody.render import detailed_items
from custody.render.signers import attester_text, signer_text, standing_text
from custody.views import METADATA_FIELDS

#: Where to look for the DejaVu TrueType fonts.
FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
)

#: Set to True (tests do, with monkeypatch) to always use the core PDF fonts.
FORCE_CORE_FONTS = False

_RED = (178, 34, 34)
_GREEN = (24, 110, 52)
_GREY = (232, 232, 232)
_DARK = (60, 60, 60)
_MARGIN = 15.0
_LABEL_W = 0.27  # share of the width taken by the label column of key/value tables
_PAD_X, _PAD_Y = 1.2, 0.8  # table cell padding, mm
_LINE = 0.5  # table line height, mm per font point
_MAX_CELL_MM = 120.0  # a cell taller than this goes to a note after its table


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def model_digest(
    report: dict[str, Any], each: Callable[[dict[str, Any]], object] | None = None
) -> str:
    """SHA-256 (hex) of the canonical JSON of the report model: sorted keys, no
    whitespace, UTF-8.  Printed in every page footer as "report data SHA-256".
    Computed piece by piece (the items one at a time, a streamed model's as they
    are made): the same bytes as ``json.dumps(report, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)``.  ``each(item)`` is called with
    every item as it is read (the PDF takes its compact rows from this pass)."""
    h = hashlib.sha256(b"{")
    for n, key in enumerate(sorted(report)):
        value = report[key]
        h.update(b"," if n else b"")
        h.update(f"{_CANONICAL.encode(key)}:".encode())
        if key == "items" and not isinstance(value, dict):
            h.update(b"[")
            for m, item in enumerate(value):
                h.update(("," if m else "").encode() + _CANONICAL.encode(item).encode("utf-8"))
                if each is not None:
                    each(item)
            h.update(b"]")
        else:
            h.update(_CANONICAL.encode(value).encode("utf-8"))
    h.update(b"}")
    return h.hexdigest()


# -- fonts and text ----------------------------------------------------------------


@dataclass(frozen=True)
class UnicodeFonts:
    sans: Path
    sans_bold: Path
    mono: Path


@lru_cache(maxsize=1)
def find_unicode_fonts() -> UnicodeFonts | None:
    """DejaVu Sans (regular, bold) and DejaVu Sans Mono, if installed."""

    def find(name: str) -> Path | None:
        for d in FONT_DIRS:
            candidate = d / name
            if candidate.is_file():
                return candidate
        for d in FONT_DIRS:
            if d.is_dir():
                found = sorted(d.rglob(name))
                if found:
                    return found[0]
        return None

    sans, mono = find("DejaVuSans.ttf"), find("DejaVuSansMono.ttf")
    if sans is None or mono is None:
        return None
    return UnicodeFonts(sans, find("DejaVuSans-Bold.ttf") or sans, mono)


def _escape(ch: str) -> str:
    cp = ord(ch)
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def _sanitizer(drawable: Callable[[int], bool]) -> Callable[[str], str]:
    """Text as the fonts can draw it: newlines kept, everything else not drawable
    (including control characters) replaced by a visible escape."""

    def clean(text: str) -> str:
        if text.isascii() and text.isprintable():  # every font draws printable ASCII
            return text
        if all(c == "\n" or drawable(ord(c)) for c in text):
            return text
        return "".join(c if c == "\n" or drawable(ord(c)) else _escape(c) for c in text)

    return clean


def _latin1(cp: int) -> bool:
    return 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF


# -- the document ------------------------------------------------------------------


class _Doc(FPDF):
    def __init__(
        self, report: dict[str, Any], *, core_fonts: bool, digest: str | None = None
    ) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.case_id = str((report.get("case") or {}).get("id", ""))
        self.digest = model_digest(report) if digest is None else digest
        fonts = None if core_fonts else find_unicode_fonts()
        if fonts is not None:
            self.add_font("DejaVu", "", str(fonts.sans))
            self.add_font("DejaVu", "B", str(fonts.sans_bold))
            self.add_font("DejaVuMono", "", str(fonts.mono))
            self.add_font("DejaVuMono", "B", str(fonts.mono))
            covered = set.intersection(
                *(set(f.cmap) for f in self.fonts.values() if hasattr(f, "cmap"))
            )
            self.sans, self.mono = "DejaVu", "DejaVuMono"
            self.t = _sanitizer(lambda cp: cp >= 0x20 and cp != 0x7F and cp in covered)
        else:
            self.sans, self.mono = "Helvetica", "Courier"
            self.t = _sanitizer(_latin1)
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(True, margin=22)
        self.alias_nb_pages()

    def footer(self) -> None:
        self.set_y(-16)
        self.set_draw_color(*_DARK)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(1)
        self.set_text_color(*_DARK)
        self.set_font(self.sans, "", 7.5)
        page = f"page {self.page_no()} of {{nb}}"
        page_w = self.get_string_width(page.replace("{nb}", "999")) + 2
        case = self.fit(f"Case {self.case_id} - chain-of-custody report", self.epw - page_w)
        self.cell(self.epw - page_w, 4, case, align=Align.L)
        self.cell(page_w, 4, page, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(self.mono, "", 7)
        self.cell(self.epw, 4, f"report data SHA-256: {self.digest}", align=Align.L)
        self.set_text_color(0)

    # -- building blocks

    def fit(self, text: str, width: float) -> str:
        """``text`` (sanitized), shortened with "..." to fit on one line of ``width``."""
        text = self.t(text).replace("\n", " ")
        room = width - 2 * self.c_margin
        full = self.get_string_width(text)
        if full <= room:
            return text
        text = text[: max(0, int(len(text) * room / full) + 2)]  # near the cut, then by char
        while text and self.get_string_width(text + "...") > room:
            text = text[:-1]
        return text + "..."

    def heading(self, text: str, *, level: int = 0) -> None:
        """A heading (0: part, 1: section, 2: sub-section), also a PDF bookmark; one
        near the bottom of a page starts the next."""
        size = (16, 12.5, 10.5)[level]
        if level > 0 and self.get_y() > self.h - 45:
            self.add_page()
        self.start_section(
            self.t(text).replace("\n", " "), level=0 if level < 2 else 1, strict=False
        )
        self.ln(2 if level else 0)
        self.set_font(self.sans, "B", size)
        self.multi_cell(0, size * 0.5, self.t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.5)
        self.set_font(self.sans, "", 9)

    def para(
        self,
        text: str,
        *,
        size: float = 9,
        bold: bool = False,
        mono: bool = False,
        sanitized: bool = False,
    ) -> None:
        self.set_font(self.mono if mono else self.sans, "B" if bold else "", size)
        self.multi_cell(
            0,
            size * 0.48,
            text if sanitized else self.t(text),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            wrapmode=WrapMode.CHAR if mono else WrapMode.WORD,
        )
        self.set_font(self.sans, "", 9)

    def banner(self, text: str, ok: bool, *, size: float = 14) -> None:
        self.set_fill_color(*(_GREEN if ok else _RED))
        self.set_text_color(255)
        self.set_font(self.sans, "B", size)
        self.multi_cell(
            0, size * 0.6, self.t(text), fill=True, align=Align.C, padding=(2, 3),
            new_x=XPos.LMARGIN, new_y=YPos.NEXT,
        )  # fmt: skip
        self.set_text_color(0)
        self.set_fill_color(255)
        self.set_font(self.sans, "", 9)
        self.ln(2)

    def grid(
        self,
        header: Sequence[str] | None,
        rows: Iterable[Sequence[str | tuple[str, FontFace]]],
        widths: Sequence[float],
        *,
        size: float = 8.5,
    ) -> None:
        """A wrapped table; a cell is text, or (text, style) for mono or coloured
        text.  A cell too long for a row to fit on a page is printed in full as a
        note after the table, the cell pointing to it."""
        self.set_font(self.sans, "", size)
        self.set_fill_color(255)
        self.set_text_color(0)
        total = sum(widths)
        col_mm = [w / total * self.epw - 2 * _PAD_X for w in widths]
        notes: list[tuple[str, str, FontFace | None]] = []
        with self.table(
            col_widths=tuple(widths),
            width=self.epw,
            text_align=Align.L,
            v_align="TOP",
            line_height=size * _LINE,
            padding=(_PAD_Y, _PAD_X),
            first_row_as_headings=header is not None,
            headings_style=FontFace(emphasis="BOLD", fill_color=_GREY),
            borders_layout=TableBordersLayout.ALL,
            wrapmode=WrapMode.WORD,
        ) as t:
            if header is not None:
                head = t.row()
                for h in header:
                    head.cell(self.t(h))
            for cells in rows:
                row = t.row()
                for j, c in enumerate(cells):
                    text, face = (self.t(c[0]), c[1]) if isinstance(c, tuple) else (self.t(c), None)
                    if self._height(text, col_mm[j], face, size) > _MAX_CELL_MM:
                        label = header[j] if header and header[j] else _plain(cells[0])
                        notes.append((label, text, face))
                        text = f"[{len(text)} characters: in full in note {len(notes)} below]"
                    row.cell(text, style=face)
        self.ln(2)
        for n, (label, text, face) in enumerate(notes, 1):
            self.para(f"Note {n} ({label}):", bold=True, size=8)
            mono = face is not None and face.family == self.mono
            self.para(text, size=7.5, mono=mono, sanitized=True)
            self.ln(1)
        self.set_font(self.sans, "", 9)

    def _height(self, text: str, width: float, face: FontFace | None, size: float) -> float:
        """Height (mm) of ``text`` wrapped in a table cell of ``width`` mm."""
        family = face.family if face is not None and face.family else self.sans
        self.set_font(family, "", face.size_pt if face is not None and face.size_pt else size)
        lines = self.multi_cell(
            width, text=text, dry_run=True, output="LINES", wrapmode=WrapMode.WORD
        )
        self.set_font(self.sans, "", size)
        assert isinstance(lines, list)
        return len(lines) * size * _LINE * 1.1 + 2 * _PAD_Y

    def kv(self, rows: Iterable[tuple[str, str | tuple[str, FontFace]]]) -> None:
        self.grid(None, [((k, self.bold), v) for k, v in rows], (_LABEL_W, 1 - _LABEL_W))

    @property
    def bold(self) -> FontFace:
        return FontFace(family=self.sans, emphasis="BOLD")

    def mono_face(self, size: float = 8) -> FontFace:
        return FontFace(family=self.mono, size_pt=size)

    def status_face(self, ok: bool) -> FontFace:
        return FontFace(family=self.sans, emphasis="BOLD", color=_GREEN if ok else _RED)


# -- helpers on model values -------------------------------------------------------


def _plain(cell: str | tuple[str, FontFace]) -> str:
    return cell[0] if isinstance(cell, tuple) else cell


def _s(value: Any, none: str = "-") -> str:
    if value is None or value == "":
        return none
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _who(card: Any, fallback: Any = None) -> str:
    """A signing key as every place a signer is shown: ``Name (role)
    sha256:<16 hex> [standing]`` (custody.render.signers); ``fallback`` when the
    model has no key card."""
    return signer_text(card) if isinstance(card, dict) else _s(fallback)


def _signature(verified: Any) -> str:
    if verified is None:
        return "-"
    return "verified" if verified else "NOT VERIFIED"


def _date_time(stamp: Any) -> tuple[str, str]:
    """("YYYY-MM-DD", "HH:MM:SS") of an RFC 3339 UTC time."""
    s = str(stamp or "")
    return (s[:10] or "-", s[11:19] or "-")


def _when(stamp: Any) -> str:
    date, time = _date_time(stamp)
    return "-" if date == "-" else f"{date} {time} UTC"


def _creation_date(generated: Any) -> datetime:
    try:
        return datetime.strptime(str(generated)[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return datetime(1970, 1, 1, tzinfo=UTC)


# -- the sections ------------------------------------------------------------------


def _title_block(pdf: _Doc, report: dict[str, Any]) -> None:
    case = report.get("case") or {}
    pdf.heading("Case", level=0)
    source = report.get("source") or {}
    scope = report.get("scope") or {}
    named = ", ".join(str(i) for i in scope.get("items") or [])
    items = "all items" if scope.get("all_items") else f"the items named: {named}"
    items += (
        "; detail pages for every item"
        if scope.get("detail") == "all"
        else "; detail pages for the failing items" + (f" and {named}" if named else "")
    )
    pdf.kv(
        [
            ("Case ID", _s(case.get("id"))),
            ("Title", _s(case.get("title"))),
            ("Created", _when(case.get("created"))),
            ("Case header hash", (_s(case.get("header_hash")), pdf.mono_face())),
            ("Report generated", _when(report.get("generated"))),
            ("Made from", f"{_s(source.get('kind'))} {_s(source.get('path'), '')}".strip()),
            ("Items covered", items),
            ("Tool", f"{_s(report.get('tool'))}, report format {_s(report.get('report_version'))}"),
        ]
    )
    examiners = case.get("examiners") or []
    pdf.heading("Examiners", level=2)
    if examiners:
        pdf.grid(
            ("Name", "Role", "Key fingerprint", "Standing"),
            [
                (
                    _s(e.get("name")),
                    _s(e.get("role")),
                    (_s(e.get("fingerprint")), pdf.mono_face(7)),
                    _standing_cell(pdf, e),
                )
                for e in examiners
            ],
            (0.25, 0.12, 0.38, 0.25),
        )
    else:
        pdf.para("No examiner identities are recorded in the ledger.")


def _standing_cell(pdf: _Doc, card: dict[str, Any]) -> str | tuple[str, FontFace]:
    """A key's standing; a key nobody vouched for in the failure face."""
    text = standing_text({**card, "status": card.get("status", "active")})
    if card.get("standing") in ("self-asserted", "unknown"):
        return (text, pdf.status_face(False))
    return text


def _findings_grid(pdf: _Doc, findings: list[dict[str, Any]]) -> None:
    """Kind / subject / detail of each finding (the report's and an item's)."""
    pdf.grid(
        ("Kind", "Subject", "Detail"),
        [
            (
                (_s(f.get("kind")), pdf.status_face(False)),
                (_s(f.get("subject")), pdf.mono_face(7)),
                (_s(f.get("detail")), pdf.mono_face(7)),
            )
            for f in findings
        ],
        (0.14, 0.28, 0.58),
        size=8,
    )


def _verification(pdf: _Doc, report: dict[str, Any]) -> None:
    v = report.get("verification") or {}
    findings = v.get("findings") or []
    pdf.heading("Verification summary", level=1)
    if v.get("banner"):  # a bundle's verdict, worded once (custody.trust.verdict_banner)
        pdf.banner(str(v["banner"]), v.get("verdict") == "verified")
    elif v.get("ok"):
        pdf.banner("VERIFICATION PASSED", True)
    else:
        pdf.banner(f"VERIFICATION FAILED - {len(findings)} finding(s)", False)
    pdf.kv(
        [
            ("Verified at", _when(v.get("verified_at"))),
            ("Events verified", _s(v.get("events"))),
            ("Items", _s(v.get("items"))),
            ("Stored objects checked", _s(v.get("objects_checked"))),
            ("Bytes checked", _s(v.get("bytes_checked"))),
        ]
    )
    pdf.heading("Verification steps", level=2)
    pdf.grid(
        ("Step", "Result", "Findings"),
        [
            (
                _s(st.get("step")),
                ("passed" if st.get("ok") else "FAILED", pdf.status_face(bool(st.get("ok")))),
                _s(st.get("findings"), "0"),
            )
            for st in v.get("steps") or []
        ],
        (0.5, 0.25, 0.25),
    )
    pdf.heading(f"Findings ({len(findings)})", level=2)
    if findings:
        _findings_grid(pdf, findings)
    else:
        pdf.para("None: every check passed.")
    for label, key in (("Notes", "notes"), ("Warnings", "warnings")):
        lines = v.get(key) or []
        if lines:
            pdf.heading(label, level=2)
            for line in lines:
                pdf.para(f"- {_s(line)}")
            pdf.ln(1)

    pdf.heading("Latest checkpoint", level=2)
    _checkpoint(pdf, v.get("latest_checkpoint"))

    stamps = v.get("timestamps") or []
    pdf.heading(f"Time-stamp tokens ({len(stamps)})", level=2)
    if stamps:
        known = {"event", "checkpoint", "tsa", "checked"}
        pdf.grid(
            ("Event", "Checkpoint", "Authority", "Checked", "Details"),
            [
                (
                    _s(s.get("event")),
                    _s(s.get("checkpoint")),
                    _s(s.get("tsa")),
                    "checked" if s.get("checked") else "not checked",
                    "; ".join(f"{k}: {_s(x)}" for k, x in s.items() if k not in known) or "-",
                )
                for s in stamps
            ],
            (0.1, 0.14, 0.3, 0.14, 0.32),
        )
    else:
        pdf.para("No time-stamp tokens are recorded.")

    state = report.get("ledger_state") or {}
    pdf.heading("Ledger state this report was made from", level=2)
    cp = state.get("checkpoint")
    pdf.kv(
        [
            ("Ledger size (events)", _s(state.get("size"))),
            ("Merkle root", (_s(state.get("root")), pdf.mono_face())),
            ("Head event hash", (_s(state.get("head")), pdf.mono_face())),
            (
                "Checkpoint",
                f"event {_s(cp.get('event'))}, size {_s(cp.get('size'))}"
                if isinstance(cp, dict)
                else "none",
            ),
        ]
    )


def _summary(pdf: _Doc, report: dict[str, Any]) -> None:
    """The answer first: the verification result, the counts by state and outcome,
    the failing items."""
    v = report.get("verification") or {}
    sm = report.get("summary") or {}
    findings = v.get("findings") or []
    if v.get("banner"):  # a bundle's verdict, worded once (custody.trust.verdict_banner)
        pdf.banner(str(v["banner"]), v.get("verdict") == "verified")
    elif v.get("ok"):
        pdf.banner("VERIFICATION PASSED", True)
    else:
        pdf.banner(f"VERIFICATION FAILED - {len(findings)} finding(s)", False)
    failing = int(sm.get("failing") or 0)
    pdf.kv(
        [
            ("Items", f"{int(sm.get('items') or 0):,}"),
            ("Intact", f"{int(sm.get('intact') or 0):,}"),
            ("Failing", (f"{failing:,}", pdf.status_face(not failing))),
            ("Events verified", _s(v.get("events"))),
            ("Verified at", _when(v.get("verified_at"))),
        ]
    )
    for title, key in (("By state", "by_state"), ("By outcome", "by_outcome")):
        counts = sm.get(key) or {}
        pdf.para(
            f"{title}: " + ", ".join(f"{k} {n:,}" for k, n in counts.items()) if counts else "-",
            size=8.5,
        )
    ids = sm.get("failing_items") or []
    if ids:
        pdf.para("Failing items (detail pages follow the table): " + ", ".join(ids), size=8.5)
    pdf.ln(2)


#: The compact table: (heading, share of the width, never shortened).
_COMPACT = (
    ("Item", 0.13, True),
    ("Integrity", 0.11, True),
    ("State", 0.11, False),
    ("Outcome", 0.1, False),
    ("Size (bytes)", 0.11, True),
    ("Collected (UTC)", 0.17, True),
    ("Source path", 0.27, False),
)


def _compact_cells(item: dict[str, Any]) -> tuple[bool, tuple[str, ...]]:
    """An item's row of the compact table: its integrity and the cells' texts,
    each shown by the display rule (as :func:`custody.display.shown_model` would)."""
    ok = bool((item.get("integrity") or {}).get("ok"))
    size_v = item.get("size")
    path, path_hex = item.get("path"), item.get("path_hex")
    return ok, (
        _s(shown_model(item.get("id"))),
        "intact" if ok else "FAILING",
        _s(shown_model(item.get("state"))),
        _s(shown_model(item.get("outcome"))),
        f"{size_v:,}" if isinstance(size_v, int) else "-",
        _when(shown_model(item.get("collected"))).removesuffix(" UTC"),
        _s(shown_model({"path": path, "path_hex": path_hex}).get("path")),
    )


def _compact_table(pdf: _Doc, items: Sequence[tuple[bool, tuple[str, ...]]]) -> None:
    """One row per item, one line each, failing items first: drawn cell by cell
    (not fpdf's wrapping table) so that 100,000 rows take seconds.  Ids, numbers
    and times never break or shorten (their columns fit the widest); a long path is
    shortened with "..." (the item's detail page, or the JSON, has it whole).
    ``items``: each item's :func:`_compact_cells`."""
    size = 7.5
    pdf.heading(f"Items ({len(items):,})", level=1)
    if not items:
        pdf.para("No items.")
        return
    pdf.set_font(pdf.sans, "", size)
    widths = [share * pdf.epw for _h, share, _k in _COMPACT]
    # the id column fits the widest id (ids never break); the path column gives way
    font = pdf.current_font
    assert font is not None
    cw: Any = font.cw
    k, pt = pdf.k, pdf.font_size_pt

    def width(text: str) -> float:
        try:
            return float(sum(map(cw.__getitem__, map(ord, text)))) * pt * 0.001 / k
        except (KeyError, IndexError, TypeError):
            return pdf.get_string_width(text)

    widest = max(width(pdf.t(cells[0])) for _ok, cells in items) + 2 * pdf.c_margin
    if widest > widths[0]:
        widths[-1] -= widest - widths[0]
        widths[0] = widest
    line = size * 0.5

    fresh_page = True  # the first row of a page through fpdf (it sets the page's font)

    def head() -> None:
        nonlocal fresh_page
        fresh_page = True
        pdf.set_font(pdf.sans, "B", size)
        pdf.set_fill_color(*_GREY)
        for (h, _share, _k), w in zip(_COMPACT, widths, strict=True):
            pdf.cell(w, line + 1, h, border=1, fill=True)
        pdf.ln(line + 1)
        pdf.set_font(pdf.sans, "", size)

    head()
    bottom = pdf.h - pdf.b_margin

    def fit(text: str, w: float) -> str:
        text = pdf.t(text).replace("\n", " ")
        room = w - 2 * pdf.c_margin
        full = width(text)
        if full <= room:
            return text
        text = text[: max(0, int(len(text) * room / full) + 2)]
        while text and width(text + "...") > room:
            text = text[:-1]
        return text + "..."

    xs = [pdf.l_margin + sum(widths[:n]) for n in range(len(widths))]
    encoded: dict[str, str] = {}  # the few distinct states, outcomes and words, encoded once

    def encode(text: str) -> str:
        out = encoded.get(text)
        if out is None:
            out = str(font.encode_text(pdf.normalize_text(text)))
            if len(encoded) < 10_000:
                encoded[text] = out
        return out

    def plain_text() -> bool:  # nothing FPDF.text() would add beyond the text operator
        return (
            pdf.text_mode == TextMode.FILL
            and not (pdf.underline or pdf.strikethrough or pdf._record_text_quad_points)
            and pdf.current_font_is_set_on_page
        )

    def colour() -> str:
        assert pdf.text_color is not None
        return str(pdf.text_color.serialize().lower())

    for ok, cells in items:
        if pdf.get_y() + line > bottom:
            pdf.add_page()
            head()
        y = pdf.get_y()
        # the borders of the row's cells in one drawing operation
        pdf._out(  # one operator string per row: fpdf cell() is too slow for 10^5 rows
            " ".join(
                f"{x * k:.2f} {(pdf.h - y) * k:.2f} {w * k:.2f} {-line * k:.2f} re"
                for x, w in zip(xs, widths, strict=True)
            )
            + " S"
        )
        base = y + line * 0.72
        # the first cell of a page's first row through fpdf (it keeps the page's font
        # state), every other cell as the text operators fpdf would write, in one string
        if fresh_page or not plain_text():
            pdf.text(xs[0] + pdf.c_margin, base, pdf.t(cells[0]))
            fresh_page = False
        else:
            op = f"BT {(xs[0] + pdf.c_margin) * k:.2f} {(pdf.h - base) * k:.2f} Td"
            op += f" {encode(pdf.t(cells[0]))} ET"
            pdf._out(op if pdf.fill_color == pdf.text_color else f"q {colour()} {op} Q")
        ops = []
        for n in range(1, len(cells)):
            text, x, w = cells[n], xs[n], widths[n]
            shown = pdf.t(text) if _COMPACT[n][2] else fit(text, w)
            op = f"BT {(x + pdf.c_margin) * k:.2f} {(pdf.h - base) * k:.2f} Td {encode(shown)} ET"
            if n == 1:
                r, g, b = _GREEN if ok else _RED
                op = f"q {r / 255:.3f} {g / 255:.3f} {b / 255:.3f} rg {op} Q"
            ops.append(op)
        pdf._out(" ".join(ops))
        pdf.set_y(y + line)
    pdf.ln(2)


def _integrity_short(pdf: _Doc, item: dict[str, Any]) -> tuple[str, FontFace]:
    integrity = item.get("integrity") or {}
    if integrity.get("ok"):
        return ("intact", pdf.status_face(True))
    n = len(integrity.get("findings") or [])
    return (f"FAILING ({n} finding(s))", pdf.status_face(False))


def _checkpoint(pdf: _Doc, cp: Any) -> None:
    if not isinstance(cp, dict):
        pdf.para("No checkpoint has been recorded in the ledger.")
        return
    pdf.kv(
        [
            ("Event", _s(cp.get("event"))),
            ("Size (events covered)", _s(cp.get("size"))),
            ("Merkle root", (_s(cp.get("root")), pdf.mono_face())),
            ("Signer", _who(cp.get("signer_key"), "(key not in this report)")),
            ("Signer key", (_s(cp.get("signer")), pdf.mono_face())),
            ("Time", _when(cp.get("time"))),
            (
                "Signature",
                (
                    _signature(cp.get("signature_verified")),
                    pdf.status_face(bool(cp.get("signature_verified"))),
                ),
            ),
            ("Signed note", (_s(cp.get("note")).rstrip("\n"), pdf.mono_face(7))),
        ]
    )


def _item(pdf: _Doc, item: dict[str, Any]) -> None:
    pdf.add_page()
    item_id = _s(item.get("id"))
    pdf.heading(f"Evidence item {item_id}", level=0)
    integrity = item.get("integrity") or {}
    findings = integrity.get("findings") or []
    if integrity.get("ok"):
        pdf.banner("Intact", True)
        pdf.para(
            "The verification run for this report found nothing concerning this item:"
            " its stored copy matches the digests recorded at collection and every"
            " event of its custody is signed and chained."
        )
        pdf.ln(2)
    else:
        pdf.banner(f"INTEGRITY FAILURE - {len(findings)} finding(s)", False, size=16)
        _findings_grid(pdf, findings)

    pdf.heading("Description", level=2)
    size = item.get("size")
    pdf.kv(
        [
            ("Description", _s(item.get("description"))),
            ("Outcome", _s(item.get("outcome"))),
            ("Source path", _s(item.get("path"))),
            ("Source path (bytes, hex)", (_s(item.get("path_hex")), pdf.mono_face(7))),
            ("Source host", _s(item.get("host"))),
            ("Size", "-" if size is None else f"{size} bytes"),
            ("MIME type", _s(item.get("mime"))),
            ("Collected", _when(item.get("collected"))),
            ("Collected by", _who(item.get("collected_by_key"), item.get("collected_by"))),
            (
                "Collection event",
                f"#{_s(item.get('collect_event'))}, signature "
                f"{_signature(item.get('collect_signature_verified'))}",
            ),
            ("Current state", _s(item.get("state"))),
            ("Current custodian", _who(item.get("custodian_key"), item.get("custodian"))),
            *_source_rows(item),
        ]
    )
    meta = item.get("metadata") or {}
    rows_meta: list[tuple[str, str | tuple[str, FontFace]]] = [
        (label, (_s(value), pdf.mono_face(7)) if key.endswith("_hex") else _s(value))
        for key, label in METADATA_FIELDS
        if (value := meta.get(key)) is not None
    ]
    if rows_meta:
        pdf.heading("Recorded metadata", level=2)
        pdf.kv(rows_meta)
    _source_chain(pdf, item)

    pdf.heading("Digests", level=2)
    digests: dict[str, Any] = item.get("digests") or {}
    verified: dict[str, Any] | None = item.get("verified_digests")
    if digests:
        rows: list[Sequence[str | tuple[str, FontFace]]] = []
        for alg, value in digests.items():
            rows.append((alg, "recorded at collection", (_s(value), pdf.mono_face())))
            if verified is not None:
                found = verified.get(alg)
                if found is None:
                    rows.append((alg, "re-computed: not computed", "-"))
                else:
                    same = found == value
                    label = "re-computed at verification: " + ("matches" if same else "DIFFERS")
                    rows.append((alg, (label, pdf.status_face(same)), (_s(found), pdf.mono_face())))
        pdf.grid(("Algorithm", "Value", "Digest"), rows, (0.12, 0.25, 0.63))
        if verified is None:
            pdf.para("The stored bytes were not re-hashed for this report.", size=8)
    else:
        pdf.para("No digests are recorded (nothing was stored for this item).")

    _handovers(pdf, item.get("handovers") or [])
    _timeline(pdf, item.get("timeline") or [])


def _source_rows(item: dict[str, Any]) -> list[tuple[str, str]]:
    """An imported item: the case it came from and the import that brought it in."""
    src = item.get("source")
    if not isinstance(src, dict):
        return []
    return [
        (
            "Imported from",
            f"{_s(src.get('label'))} (case {_s(src.get('case_id'))}, header"
            f" {_s(src.get('header_hash'))}), its {_s(src.get('source_item'))}",
        ),
        ("Import event", f"#{_s(src.get('import_event'))} (bundle {_s(src.get('bundle'))})"),
    ]


def _source_chain(pdf: _Doc, item: dict[str, Any]) -> None:
    """An imported item: the source case's signed events about it."""
    src = item.get("source")
    if not isinstance(src, dict):
        return
    pdf.heading(f"Source chain (case {_s(src.get('case_id'))})", level=2)
    rows: list[Sequence[str | tuple[str, FontFace]]] = []
    for e in src.get("events") or []:
        date, time = _date_time(e.get("time"))
        rows.append(
            (
                f"#{_s(e.get('seq'))}",
                _s(e.get("action")),
                _who(e.get("signer_key"), e.get("signer")),
                f"{date} {time}",
                _sig_cell(pdf, e.get("signature_verified")),
            )
        )
    pdf.grid(
        ("Source event", "Action", "Signed by", "Time (UTC)", "Signature"),
        rows,
        (0.12, 0.18, 0.36, 0.16, 0.18),
    )


def _handovers(pdf: _Doc, handovers: list[dict[str, Any]]) -> None:
    pdf.heading(f"Hand-overs ({len(handovers)})", level=2)
    if not handovers:
        pdf.para("None: the item has not changed hands.")
        return
    for h in handovers:
        status = _s(h.get("status"))
        pdf.para(f"{_s(h.get('transfer'))} ({status})", bold=True)
        pdf.ln(1)
        rdate, rtime = _date_time(h.get("released"))
        rows: list[Sequence[str | tuple[str, FontFace]]] = [
            (
                ("Released by", pdf.bold),
                _who(h.get("released_by_key"), h.get("released_by")),
                rdate,
                rtime,
                _sig_cell(pdf, h.get("release_signature_verified")),
            )
        ]
        if h.get("received_by"):
            date, time = _date_time(h.get("received"))
            rows.append(
                (
                    ("Received by", pdf.bold),
                    _who(h.get("received_by_key"), h.get("received_by")),
                    date,
                    time,
                    _sig_cell(pdf, h.get("receipt_signature_verified")),
                )
            )
        else:
            rows.append(
                (
                    ("Received by", pdf.bold),
                    f"not yet received (to {_who(h.get('to_key'), h.get('to'))})",
                    "-",
                    "-",
                    "-",
                )
            )
        pdf.grid(
            ("", "Person", "Date", "Time (UTC)", "Signature"), rows, (0.16, 0.36, 0.16, 0.14, 0.18)
        )
        kv: list[tuple[str, str | tuple[str, FontFace]]] = [
            ("Reason", _s(h.get("reason"))),
            ("Location", _s(h.get("location"))),
            ("Received at", _s(h.get("receipt_location"))),
        ]
        if h.get("mismatch_on_receipt"):
            kv.append(
                (
                    "On receipt",
                    ("MISMATCH: the item did not match on receipt", pdf.status_face(False)),
                )
            )
        pdf.kv(kv)


def _sig_cell(pdf: _Doc, verified: Any) -> tuple[str, FontFace]:
    return (_signature(verified), pdf.status_face(bool(verified)))


def _timeline(pdf: _Doc, timeline: list[dict[str, Any]]) -> None:
    pdf.heading(f"Custody timeline ({len(timeline)} event(s))", level=2)
    if not timeline:
        pdf.para("No events.")
        return
    rows: list[Sequence[str | tuple[str, FontFace]]] = []
    for e in timeline:
        action = _s(e.get("action"))
        if e.get("released_by"):
            action += f"\nreleased by {e['released_by']}"
        if e.get("received_by"):
            action += f"\nreceived by {e['received_by']}"
        rows.append(
            (
                _s(e.get("seq")),
                _s(e.get("date")),
                _s(e.get("time_utc")),
                _who(e.get("signer_key"), f"{_s(e.get('actor'))} ({_s(e.get('role'))})"),
                action,
                _s(e.get("reason")),
                _s(e.get("location")),
                _sig_cell(pdf, e.get("signature_verified")),
            )
        )
    pdf.grid(
        ("#", "Date", "Time (UTC)", "Signed by (key)", "Action", "Reason", "Location", "Signature"),
        rows,
        (0.04, 0.10, 0.095, 0.15, 0.2, 0.155, 0.13, 0.13),
        size=7.5,
    )
    pdf.para("Event hashes", bold=True, size=8)
    pdf.para(
        "\n".join(f"#{_s(e.get('seq'))}  {_s(e.get('hash'))}" for e in timeline), size=7, mono=True
    )


def _keys(pdf: _Doc, report: dict[str, Any]) -> None:
    pdf.add_page()
    keys = report.get("keys") or []
    pdf.heading("Keys and fingerprints", level=0)
    if not keys:
        pdf.para("No keys are recorded.")
    for k in keys:
        pdf.heading(f"{_s(k.get('name'))} ({_s(k.get('role'))})", level=2)
        status = _s(k.get("status"))
        if k.get("status") == "revoked":
            status = f"revoked at event {_s(k.get('revoked_at'))}"
        elif k.get("status") == "rotated":
            status = f"rotated to {_s(k.get('rotated_to'))}"
        pdf.kv(
            [
                ("Fingerprint", (_s(k.get("fingerprint")), pdf.mono_face())),
                ("Public key (base64)", (_s(k.get("public_key")), pdf.mono_face())),
                ("Standing", _standing_cell(pdf, {**k, "status": "active"})),
                ("Attested by", _s(attester_text(k), "-")),
                ("Status", status),
                ("Events signed", _s(k.get("signed_events"))),
            ]
        )
    pdf.heading("About this report", level=1)
    pdf.kv(
        [
            ("Tool version", _s(report.get("tool"))),
            ("Report format version", _s(report.get("report_version"))),
            ("Report data SHA-256", (pdf.digest, pdf.mono_face())),
        ]
    )
    pdf.para(
        "The report data SHA-256 (in every page footer) is the SHA-256 of the report's"
        " data as canonical JSON (keys sorted, no whitespace, UTF-8); it equals that of"
        " the JSON report of the same ledger state. The SHA-256 of this PDF file itself"
        " is printed by the tool when the report is written.",
        size=8,
    )


def render(
    report: dict[str, Any],
    *,
    core_fonts: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> bytes:
    """The PDF report.  ``core_fonts`` (or :data:`FORCE_CORE_FONTS`) uses the core
    PDF fonts even when a Unicode TrueType font is installed."""
    items = report.get("items") or []
    # one pass over the items for the digest of the exact model and the compact rows
    rows: list[tuple[bool, tuple[str, ...]]] = []
    digest = model_digest(report, lambda item: rows.append(_compact_cells(item)))
    pdf = _Doc(report, core_fonts=core_fonts or FORCE_CORE_FONTS, digest=digest)
    # what is drawn: every text by the display rule (the items as they are drawn)
    report = shown_model({k: v for k, v in report.items() if k != "items"})
    case = report.get("case") or {}
    pdf.case_id = str(case.get("id", ""))
    pdf.set_creation_date(_creation_date(report.get("generated")))
    pdf.set_title(pdf.t(f"Chain-of-custody report, case {_s(case.get('id'))}"))
    pdf.set_subject(pdf.t(_s(case.get("title"))))
    pdf.set_creator(pdf.t(_s(report.get("tool"))))
    pdf.set_lang("en")
    with warnings.catch_warnings():  # fpdf2's warnings are not the user's business
        warnings.simplefilter("ignore")
        pdf.add_page()
        pdf.set_font(pdf.sans, "B", 20)
        pdf.multi_cell(0, 10, "Chain-of-Custody Report", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(pdf.sans, "", 12)
        pdf.multi_cell(
            0, 6, pdf.t(f"Case {_s(case.get('id'))}: {_s(case.get('title'))}"),
            new_x=XPos.LMARGIN, new_y=YPos.NEXT,
        )  # fmt: skip
        pdf.ln(2)
        pdf.start_section("Summary", level=0)
        _summary(pdf, report)
        _compact_table(pdf, rows)
        # a streamed model's items report their own progress (custody.report.ReportItems)
        own = progress if isinstance(items, list) else None
        pages = [i for i in items if i.get("detail", True)] if own is not None else None
        for n, item in enumerate(detailed_items(items) if pages is None else pages, 1):
            _item(pdf, shown_model(item))
            if own is not None and pages is not None and (n % 500 == 1 or n == len(pages)):
                own(n, len(pages))
        pdf.add_page()
        _title_block(pdf, report)
        _verification(pdf, report)
        _keys(pdf, report)
        return bytes(pdf.output())
