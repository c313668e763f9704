"""The report model as one self-contained HTML5 file (UTF-8): inline CSS, inline
SVG, no scripts, no external resource of any kind, so it can be archived, mailed
and opened offline years later.  Readable on screen and printed (A4): every item
starts on a new page.

Every value of the model is shown by the display rule (:func:`custody.display.shown`:
control, bidi and separator characters and the backslash escaped), then escaped
(:func:`html.escape`): paths, names, reasons and locations are hostile input.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import IO, Any

from custody.display import needs_escape, path_text, shown
from custody.render import detailed_items
from custody.render.signers import STANDING_WORDS, holder_text, short_fp, standing_text
from custody.views import METADATA_FIELDS

# -- styles ----------------------------------------------------------------------

CSS = """
:root { --ok: #1b6e2a; --ok-bg: #e6f4e9; --bad: #b00020; --bad-bg: #fde8eb;
  --warn: #8a5a00; --line: #c9ced6; --muted: #5b6470; --head: #eef1f5; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif;
  font-size: 14px; line-height: 1.4; color: #1d232b; background: #fff;
  max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 2px solid #1d232b;
  padding-bottom: 3px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p { margin: 6px 0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 4px 6px; text-align: left;
  vertical-align: top; }
thead th { background: var(--head); }
tbody th { background: var(--head); width: 13em; font-weight: 600; }
tr, tbody.event { break-inside: avoid; page-break-inside: avoid; }
td.nowrap, .nowrap { white-space: nowrap; }
td.num { text-align: right; }
.counts-row { display: flex; gap: 16px; }
.counts-row table { width: auto; min-width: 14em; }
tr.event-hash td { border-top: none; padding-top: 0; }
tbody.event tr:first-child td { border-bottom: none; }
.mono, code, pre { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas,
  monospace; font-size: 12px; }
.mono { word-break: break-all; overflow-wrap: anywhere; }
.digest { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace;
  font-size: 12px; word-break: break-all; }
pre { white-space: pre-wrap; word-break: break-all; background: #f6f7f9;
  border: 1px solid var(--line); padding: 6px; margin: 4px 0; }
.muted { color: var(--muted); }
.small { font-size: 12px; }
.wrap { overflow-wrap: anywhere; }
.report-head { border: 2px solid #1d232b; padding: 12px 16px; margin-bottom: 16px; }
.report-head .kicker { text-transform: uppercase; letter-spacing: .08em; font-size: 12px;
  color: var(--muted); }
.banner { font-size: 20px; font-weight: 700; padding: 10px 14px; margin: 8px 0 12px;
  border: 3px solid; }
.banner.passed { color: var(--ok); background: var(--ok-bg); border-color: var(--ok); }
.banner.failed { color: var(--bad); background: var(--bad-bg); border-color: var(--bad); }
.ok { color: var(--ok); font-weight: 700; }
.bad { color: var(--bad); font-weight: 700; }
.pending { color: var(--warn); font-weight: 700; }
.standing { color: var(--muted); }
.standing-self-asserted, .standing-unknown { color: var(--bad); font-weight: 700; }
.integrity { padding: 10px 14px; margin: 8px 0 14px; border: 3px solid; }
.integrity-failure { color: var(--bad); background: var(--bad-bg); border-color: var(--bad); }
.integrity-failure .label { font-size: 22px; font-weight: 800; letter-spacing: .04em; }
.integrity-failure ul { color: #1d232b; margin: 6px 0 0; }
.integrity-intact { color: var(--ok); background: var(--ok-bg); border-color: var(--ok); }
.integrity-intact .label { font-size: 18px; font-weight: 700; }
.timeline-svg { max-width: 100%; height: auto; display: block; margin: 6px 0 10px;
  break-inside: avoid; page-break-inside: avoid; }
.item { break-before: page; page-break-before: always; }
.keys { break-before: page; page-break-before: always; }
footer { margin-top: 28px; border-top: 1px solid var(--line); padding-top: 8px;
  color: var(--muted); font-size: 12px; }
@page { size: A4; margin: 14mm 12mm 16mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  h1 { font-size: 18pt; }
  h2 { font-size: 14pt; }
  h3 { font-size: 11.5pt; break-after: avoid; page-break-after: avoid; }
  th, td { padding: 2px 4px; }
  .mono, code, pre, .digest { font-size: 8.5pt; }
  .small { font-size: 8.5pt; }
  .banner, .integrity { break-inside: avoid; page-break-inside: avoid; }
}
"""


# -- small helpers ---------------------------------------------------------------


def _e(value: Any) -> str:
    """A model value as escaped text (the display rule, then HTML escaping);
    None (absent) as an em dash."""
    if value is None:
        return "—"
    return html.escape(shown(value), quote=True)


def _text(value: Any) -> str:
    """Escaped text, or an em dash for None and the empty string."""
    return _e(value) if value not in (None, "") else "—"


def _mono(value: Any, cls: str = "mono") -> str:
    if value in (None, ""):
        return "—"
    return f'<span class="{cls}">{_e(value)}</span>'


def _sig(verified: bool | None, absent: str = "—") -> str:
    if verified is None:
        return f'<span class="muted">{_e(absent)}</span>'
    if verified:
        return '<span class="ok sig-verified">verified</span>'
    return '<span class="bad sig-not-verified">NOT VERIFIED</span>'


def _yes(ok: bool | None, yes: str = "passed", no: str = "FAILED") -> str:
    if ok is None:
        return '<span class="muted">—</span>'
    return f'<span class="ok">{_e(yes)}</span>' if ok else f'<span class="bad">{_e(no)}</span>'


def _key(card: Any, fallback: Any = None, *, role: bool = True) -> str:
    """A signing key as every place a signer is shown: the holder (``Name (role)``,
    or the name alone with ``role=False``), 16 hex digits of the fingerprint, and
    the key's standing and attester; a key nobody vouched for is marked in red
    capitals.  ``fallback`` (plain text) when the model has no key card."""
    if not isinstance(card, Mapping):
        return _text(fallback)
    standing = str(card.get("standing") or "unknown")
    holder = holder_text(card) if role else str(card.get("name") or "unregistered key")
    return (
        f'<span class="key" data-standing="{_e(standing)}">{_e(holder)} '
        f'<span class="mono">{_e(short_fp(card.get("fingerprint")))}</span><br>'
        f'<span class="standing standing-{_e(standing)} small">'
        f"{_e(standing_text(card))}</span></span>"
    )


def _lane(ev: Mapping[str, Any]) -> str:
    """The drawing's lane of an event: its signing key (two keys under one name
    are two lanes), ``Name (role)`` when the model has no key card."""
    card = ev.get("signer_key")
    if isinstance(card, Mapping):
        return f"{holder_text(card)} {short_fp(card.get('fingerprint'))}"
    return f"{ev.get('actor')} ({ev.get('role')})"


def _size(n: Any) -> str:
    if not isinstance(n, int) or isinstance(n, bool):
        return "—"
    text = f"{n:,} byte" + ("" if n == 1 else "s")
    units = ("KiB", "MiB", "GiB", "TiB", "PiB")
    value = float(n)
    unit = ""
    for u in units:
        if value < 1024:
            break
        value /= 1024
        unit = u
    return _e(f"{text} ({value:.1f} {unit})" if unit else text)


def _rows(pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column key/value table body; values are already HTML."""
    return "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in pairs)


def _table(
    head: Sequence[str],
    rows: Iterable[Sequence[str]],
    cls: str = "",
    nowrap: Iterable[int] = (),
) -> str:
    """A table; ``rows`` cells are already HTML; columns ``nowrap`` do not wrap."""
    attr = f' class="{cls}"' if cls else ""
    keep = set(nowrap)
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="nowrap">{c}</td>' if n in keep else f"<td>{c}</td>"
            for n, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table{attr}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _split_time(t: Any) -> tuple[str, str]:
    """(date, hh:mm:ss) of an RFC 3339 time, else (the text, "")."""
    s = str(t or "")
    if len(s) >= 19 and s[10] in "Tt ":
        return s[:10], s[11:19]
    return s, ""


_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9})\d*)?(Z|z|[+-]\d\d:\d\d)?"
)


def _time_key(t: Any) -> tuple[int, str]:
    """Sort key of an RFC 3339 time: nanoseconds since the epoch (UTC); unparsable
    times sort last, by their text."""
    s = str(t or "")
    m = _TIME.match(s)
    if not m:
        return (2**63, s)
    y, mo, d, h, mi, sec, frac, off = m.groups()
    tz = UTC
    if off and off not in ("Z", "z"):
        sign = 1 if off[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), tzinfo=tz)
    except ValueError:
        return (2**63, s)
    ns = int(dt.timestamp()) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))
    return (ns, s)


def _display_path(item: Mapping[str, Any]) -> str:
    """The source path (from its exact bytes, by the display rule), plus those
    bytes in hex when the path needed escaping or the display form is lossy."""
    raw = str(item.get("path_hex") or "")
    path = path_text(item.get("path"), raw)
    out = _mono(path, "mono path")
    if raw:
        try:
            exact = bytes.fromhex(raw).decode("utf-8") == path and not needs_escape(path)
        except ValueError:
            exact = False
        if not exact:
            out += f'<br><span class="muted small">bytes (hex):</span> {_mono(raw)}'
    return out


# -- the case header -------------------------------------------------------------


def _header(report: Mapping[str, Any]) -> str:
    case = report.get("case") or {}
    source = report.get("source") or {}
    examiners = case.get("examiners") or []
    ex_rows = [
        [
            _e(x.get("name")),
            _e(x.get("role")),
            _mono(x.get("fingerprint")),
            f'<span class="standing standing-{_e(x.get("standing"))}">'
            f"{_e(standing_text(x))}</span>",
        ]
        for x in examiners
    ]
    scope_text = _scope_text(report)
    return (
        '<section class="case-info" id="case-header"><h2>Case</h2>'
        "<table><tbody>"
        + _rows(
            [
                ("Case id", _e(case.get("id"))),
                ("Title", _e(case.get("title"))),
                ("Created", _e(case.get("created"))),
                ("Case header hash", _mono(case.get("header_hash"))),
                ("Report made from", f"{_e(source.get('kind'))} {_mono(source.get('path'))}"),
                ("Scope", _e(scope_text)),
                ("Report generated", _e(report.get("generated"))),
                ("Tool", _e(report.get("tool"))),
            ]
        )
        + "</tbody></table>"
        "<h3>Examiners</h3>"
        + (
            _table(["Name", "Role", "Key fingerprint", "Standing"], ex_rows)
            if ex_rows
            else "<p class='muted'>No examiner identities recorded.</p>"
        )
        + "</section>"
    )


def _scope_text(report: Mapping[str, Any]) -> str:
    """What the report covers, without listing every item: all items, or those
    named; and which items have detail pages."""
    scope = report.get("scope") or {}
    named = ", ".join(str(i) for i in scope.get("items") or [])
    what = "all items" if scope.get("all_items") else f"the items named: {named}"
    if scope.get("detail") == "all":
        return f"{what}; detail pages for every item"
    extra = f" and those named ({named})" if named and scope.get("all_items") is False else ""
    return f"{what}; detail pages for the failing items{extra}"


def _title(report: Mapping[str, Any]) -> str:
    case = report.get("case") or {}
    return (
        '<header class="report-head">'
        '<div class="kicker">Chain-of-custody report</div>'
        f'<h1>Case <span class="case-id">{_e(case.get("id"))}</span>: {_e(case.get("title"))}</h1>'
        f'<p class="muted small">Generated {_e(report.get("generated"))} by'
        f" {_e(report.get('tool'))}; covers {_e(_scope_text(report))}.</p>"
        "</header>"
    )


def _num(n: Any) -> str:
    """A count in a cell that never breaks."""
    return f'<span class="nowrap">{_e(f"{n:,}" if isinstance(n, int) else n)}</span>'


def _summary(report: Mapping[str, Any]) -> str:
    """The answer first: the verification result, counts by state and outcome, the
    failing items."""
    v = report.get("verification") or {}
    sm = report.get("summary") or {}
    ok = bool(v.get("ok"))
    findings = v.get("findings") or []
    banner = (
        '<div class="banner passed" id="verdict">VERIFICATION PASSED</div>'
        if ok
        else f'<div class="banner failed" id="verdict">VERIFICATION FAILED: '
        f"{len(findings)} finding{'' if len(findings) == 1 else 's'}</div>"
    )
    if v.get("banner"):  # a bundle's verdict, worded once (custody.trust.verdict_banner)
        css = "passed" if v.get("verdict") == "verified" else "failed"
        banner = f'<div class="banner {css}" id="verdict">{_e(v["banner"])}</div>'
    counts = _rows(
        [
            ("Items", _num(sm.get("items"))),
            ("Intact", f'<span class="ok">{_num(sm.get("intact"))}</span>'),
            (
                "Failing",
                f'<span class="{"bad" if sm.get("failing") else "ok"}">'
                f"{_num(sm.get('failing'))}</span>",
            ),
            ("Events verified", _num(v.get("events"))),
        ]
    )
    by_state = _table(
        ["State", "Items"],
        [[_e(k), _num(n)] for k, n in (sm.get("by_state") or {}).items()],
        "counts",
        nowrap=(1,),
    )
    by_outcome = _table(
        ["Outcome", "Items"],
        [[_e(k), _num(n)] for k, n in (sm.get("by_outcome") or {}).items()],
        "counts",
        nowrap=(1,),
    )
    failing = sm.get("failing_items") or []
    fail_html = (
        "<p><strong class='bad'>Failing items:</strong> "
        + ", ".join(f'<a class="nowrap" href="#item-{_e(i)}">{_e(i)}</a>' for i in failing)
        + "</p>"
        if failing
        else ""
    )
    return (
        '<section class="summary" id="summary">'
        + banner
        + f"<table><tbody>{counts}</tbody></table>"
        + '<div class="counts-row">'
        + by_state
        + by_outcome
        + "</div>"
        + fail_html
        + "</section>"
    )


def _overview(report: Mapping[str, Any]) -> Iterator[str]:
    """One compact row per item, failing items first (the model's order), as pieces
    of HTML made as the items are read."""
    items = report.get("items") or []
    if not items:
        yield '<section id="items"><h2>Items</h2><p class="muted">No items.</p></section>'
        return
    th = "".join(
        f"<th>{h}</th>"
        for h in (
            "Item", "Integrity", "State", "Outcome", "Size (bytes)", "Collected", "Source path"
        )
    )  # fmt: skip
    yield (
        '<section id="items"><h2>Items</h2>'
        f'<table class="overview small"><thead><tr>{th}</tr></thead><tbody>'
    )
    for i in items:
        iid = _e(i.get("id"))
        ident = f'<a href="#item-{iid}">{iid}</a>' if i.get("detail") else iid
        size = i.get("size")
        yield (
            f'<tr><td class="nowrap">{ident}</td><td class="nowrap">{_integrity_word(i)}</td>'
            f"<td>{_text(i.get('state'))}</td><td>{_text(i.get('outcome'))}</td>"
            f'<td class="nowrap num">{_e(f"{size:,}") if isinstance(size, int) else "—"}</td>'
            f'<td class="nowrap">{_e(str(i.get("collected") or "")[:19].replace("T", " "))}</td>'
            f'<td><span class="mono path">{_e(i.get("path"))}</span></td></tr>'
        )
    yield "</tbody></table></section>"


# -- the verification summary ----------------------------------------------------


def _checkpoint_rows(cp: Mapping[str, Any] | None) -> str:
    if not cp:
        return "<p class='muted'>No checkpoint has been signed in this ledger.</p>"
    return (
        "<table><tbody>"
        + _rows(
            [
                ("Event", _e(cp.get("event"))),
                ("Tree size", _e(cp.get("size"))),
                ("Root", _mono(cp.get("root"))),
                (
                    "Signer",
                    _key(cp.get("signer_key"), None) + "<br>" + _mono(cp.get("signer"))
                    if isinstance(cp.get("signer_key"), Mapping)
                    else _mono(cp.get("signer")),
                ),
                ("Time", _e(cp.get("time"))),
                ("Signature", _sig(cp.get("signature_verified"))),
            ]
        )
        + "</tbody></table>"
        + (f"<pre>{_e(cp.get('note'))}</pre>" if cp.get("note") else "")
    )


def _ledger_state(report: Mapping[str, Any]) -> str:
    st = report.get("ledger_state") or {}
    cp = st.get("checkpoint") or None
    cp_text = (
        f"event {_e(cp.get('event'))}, size {_e(cp.get('size'))}, root {_mono(cp.get('root'))}"
        if cp
        else "none"
    )
    return (
        '<section class="ledger-state" id="ledger-state"><h2>Ledger state</h2>'
        "<p>This report was made from the ledger in this state:</p>"
        "<table><tbody>"
        + _rows(
            [
                ("Size (events)", _e(st.get("size"))),
                ("Merkle root", _mono(st.get("root"))),
                ("Head event hash", _mono(st.get("head"))),
                ("Latest checkpoint", cp_text),
            ]
        )
        + "</tbody></table></section>"
    )


def _timestamps(stamps: Sequence[Mapping[str, Any]]) -> str:
    if not stamps:
        return "<p class='muted'>No RFC 3161 time-stamp tokens.</p>"
    known = ("event", "checkpoint", "tsa", "checked")
    rows = []
    for s in stamps:
        extra = "; ".join(f"{k}: {v}" for k, v in s.items() if k not in known)
        rows.append(
            [
                _e(s.get("event")),
                _e(s.get("checkpoint")),
                _mono(s.get("tsa")),
                _yes(bool(s.get("checked")), "checked", "not checked (no TSA root given)"),
                f'<span class="wrap">{_text(extra)}</span>',
            ]
        )
    return _table(["Event", "Checkpoint", "Authority", "Token", "Details"], rows)


def _verification(report: Mapping[str, Any]) -> str:
    v = report.get("verification") or {}
    ok = bool(v.get("ok"))
    findings = v.get("findings") or []
    banner = (
        '<p class="ok">Every step passed.</p>'
        if ok
        else f'<p class="bad">{len(findings)} finding{"" if len(findings) == 1 else "s"}.</p>'
    )
    if v.get("banner"):  # a bundle's verdict, worded once (custody.trust.verdict_banner)
        css = "ok" if v.get("verdict") == "verified" else "bad"
        banner = f'<p class="{css}">{_e(v["banner"])}.</p>'
    steps = [
        [_e(s.get("step")), _yes(s.get("ok")), _e(s.get("findings"))] for s in v.get("steps") or []
    ]
    if findings:
        f_html = _table(
            ["Kind", "Subject", "Detail"],
            [
                [
                    _e(f.get("kind")),
                    _mono(f.get("subject")),
                    f'<span class="wrap">{_e(f.get("detail"))}</span>',
                ]
                for f in findings
            ],
            "findings",
            nowrap=(0,),
        )
    else:
        f_html = "<p class='ok'>No findings.</p>"
    notes = "".join(f"<li>{_e(n)}</li>" for n in v.get("notes") or [])
    warns = "".join(f"<li>{_e(w)}</li>" for w in v.get("warnings") or [])
    return (
        '<section class="verification" id="verification"><h2>Verification</h2>'
        + banner
        + "<table><tbody>"
        + _rows(
            [
                ("Verified at", _e(v.get("verified_at"))),
                ("Events checked", _e(v.get("events"))),
                ("Items", _e(v.get("items"))),
                ("Stored objects checked", _e(v.get("objects_checked"))),
                ("Bytes re-hashed", _e(v.get("bytes_checked"))),
            ]
        )
        + "</tbody></table>"
        "<h3>Steps</h3>"
        + _table(["Step", "Result", "Findings"], steps, "steps", nowrap=(1,))
        + "<h3>Findings</h3>"
        + f_html
        + (f"<h3>Notes</h3><ul>{notes}</ul>" if notes else "")
        + (f"<h3>Warnings</h3><ul class='bad'>{warns}</ul>" if warns else "")
        + "<h3>Latest checkpoint</h3>"
        + _checkpoint_rows(v.get("latest_checkpoint"))
        + "<h3>Time-stamps</h3>"
        + _timestamps(v.get("timestamps") or [])
        + "</section>"
    )


def _integrity_word(item: Mapping[str, Any]) -> str:
    if (item.get("integrity") or {}).get("ok"):
        return '<span class="ok">intact</span>'
    return '<span class="bad">INTEGRITY FAILURE</span>'


# -- one item --------------------------------------------------------------------


def _integrity_box(item: Mapping[str, Any]) -> str:
    integ = item.get("integrity") or {}
    if integ.get("ok"):
        return (
            '<div class="integrity integrity-intact" data-integrity="intact">'
            '<span class="label">Integrity: intact</span>'
            "<p>The verification found nothing concerning this item.</p></div>"
        )
    lis = "".join(
        f"<li><strong>{_e(f.get('kind'))}</strong> {_mono(f.get('subject'))}: "
        f'<span class="wrap">{_e(f.get("detail"))}</span></li>'
        for f in integ.get("findings") or []
    )
    return (
        '<div class="integrity integrity-failure" data-integrity="failed" role="alert">'
        '<span class="label">INTEGRITY FAILURE</span>'
        "<p>The verification recorded these findings about this item:</p>"
        f"<ul>{lis}</ul></div>"
    )


def _digests(item: Mapping[str, Any]) -> str:
    recorded: Mapping[str, Any] = item.get("digests") or {}
    found: Mapping[str, Any] | None = item.get("verified_digests")
    rows = []
    for alg in sorted(set(recorded) | set(found or {})):
        rec = recorded.get(alg)
        cell = (
            '<div><span class="muted small">recorded at collection:</span><br>'
            f"{_mono(rec, 'digest')}</div>"
        )
        if found is None:
            cell += '<div class="muted small">not re-computed at this verification</div>'
        else:
            now = found.get(alg)
            if now is None:
                verdict = '<span class="muted">not re-computed</span>'
            elif rec == now:
                verdict = '<span class="ok">matches</span>'
            else:
                verdict = '<span class="bad">DOES NOT MATCH</span>'
            cell += (
                f'<div><span class="muted small">re-computed at verification:</span> {verdict}'
                f"<br>{_mono(now, 'digest')}</div>"
            )
        rows.append(f"<tr><th>{_e(alg)}</th><td>{cell}</td></tr>")
    if not rows:
        return "<p class='muted'>No digests recorded.</p>"
    return f'<table class="digests"><tbody>{"".join(rows)}</tbody></table>'


def _handovers(item: Mapping[str, Any]) -> str:
    hs = item.get("handovers") or []
    if not hs:
        return "<p class='muted'>No hand-overs.</p>"
    rows = []
    for h in hs:
        rd, rt = _split_time(h.get("released"))
        cd, ct = _split_time(h.get("received"))
        status = _e(h.get("status"))
        if h.get("mismatch_on_receipt"):
            status += '<br><span class="bad">MISMATCH ON RECEIPT</span>'
        rows.append(
            [
                _e(h.get("transfer")),
                _key(h.get("released_by_key"), h.get("released_by")),
                _text(rd),
                _text(rt),
                _sig(h.get("release_signature_verified")),
                _key(h.get("received_by_key"), h.get("received_by"))
                if h.get("received_by")
                else '—<br><span class="muted small">in transit to</span> '
                + _key(h.get("to_key"), h.get("to")),
                _text(cd),
                _text(ct),
                _sig(h.get("receipt_signature_verified"), "not received"),
                _text(h.get("reason")),
                _text(h.get("location")),
                _text(h.get("receipt_location")),
                status,
            ]
        )
    return _table(
        [
            "Transfer",
            "Released by",
            "Date",
            "Time (UTC)",
            "Release signature",
            "Received by",
            "Date",
            "Time (UTC)",
            "Receipt signature",
            "Reason",
            "Location",
            "Received at",
            "Status",
        ],
        rows,
        "handovers small",
        nowrap=(0, 2, 3, 4, 6, 7, 8),
    )


def _timeline_table(item: Mapping[str, Any]) -> str:
    """Every event of the item, in ledger order; each event's hash on a line below."""
    events = item.get("timeline") or []
    if not events:
        return "<p class='muted'>No events.</p>"
    head = ["#", "Date", "Time (UTC)", "Actor", "Role", "Action", "Reason", "Location"]
    head.append("Signature")
    bodies = []
    for ev in events:
        parties = []
        if ev.get("released_by"):
            parties.append(f"released by {_e(ev.get('released_by'))}")
        if ev.get("received_by"):
            parties.append(f"received by {_e(ev.get('received_by'))}")
        action = f'<span class="wrap">{_e(ev.get("action"))}</span>'
        if parties:
            action += f"<br><span class='small'>{'<br>'.join(parties)}</span>"
        cells = [
            f'<td class="nowrap">{_e(ev.get("seq"))}</td>',
            f'<td class="nowrap">{_text(ev.get("date"))}</td>',
            f'<td class="nowrap">{_text(ev.get("time_utc"))}</td>',
            f"<td>{_key(ev.get('signer_key'), ev.get('actor'), role=False)}</td>",
            f"<td>{_e(ev.get('role'))}</td>",
            f"<td>{action}</td>",
            f'<td><span class="wrap">{_text(ev.get("reason"))}</span></td>',
            f"<td>{_text(ev.get('location'))}</td>",
            f'<td class="nowrap">{_sig(ev.get("signature_verified"))}</td>',
        ]
        bodies.append(
            f'<tbody class="event" data-seq="{_e(ev.get("seq"))}"><tr>{"".join(cells)}</tr>'
            f'<tr class="event-hash"><td></td><td colspan="{len(head) - 1}">'
            f'<span class="muted">event hash</span> {_mono(ev.get("hash"))}</td></tr></tbody>'
        )
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f'<table class="timeline small"><thead><tr>{th}</tr></thead>{"".join(bodies)}</table>'


# -- the custody timeline drawing ------------------------------------------------

_PER_ROW = 5  # events per drawing; longer timelines continue in further drawings
_LEFT = 150
_COL = 120
_LANE = 74
_TOP = 20
_AXIS = 46


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _wrap(text: str, width: int, lines: int) -> list[str]:
    """``text`` in at most ``lines`` lines of about ``width`` characters."""
    words = text.split()
    out: list[str] = []
    cur = ""
    for w in words:
        if not cur:
            cur = w
        elif len(cur) + 1 + len(w) <= width:
            cur += " " + w
        else:
            out.append(cur)
            cur = w
    if cur:
        out.append(cur)
    out = [_clip(x, width) for x in out]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = _clip(out[-1] + " …", width) if len(out[-1]) < width else out[-1][:-1] + "…"
    return out or [""]


def _svg_timeline(item: Mapping[str, Any]) -> str:
    events = sorted(
        item.get("timeline") or [], key=lambda e: (_time_key(e.get("time")), e.get("seq") or 0)
    )
    if not events:
        return ""
    lanes: list[str] = []
    for ev in events:
        if _lane(ev) not in lanes:
            lanes.append(_lane(ev))
    # hand-over links: transfer event -> its receipt event
    receipt_of: dict[str, int] = {}
    for idx, ev in enumerate(events):
        if ev.get("type") == "receive" and ev.get("transfer"):
            receipt_of[str(ev.get("transfer"))] = idx
    chunks = [events[i : i + _PER_ROW] for i in range(0, len(events), _PER_ROW)]
    parts = []
    for c, chunk in enumerate(chunks):
        parts.append(
            _svg_chunk(item, chunk, c * _PER_ROW, lanes, events, receipt_of, c, len(chunks))
        )
    return "".join(parts)


def _svg_chunk(
    item: Mapping[str, Any],
    chunk: Sequence[Mapping[str, Any]],
    first: int,
    lanes: Sequence[str],
    events: Sequence[Mapping[str, Any]],
    receipt_of: Mapping[str, int],
    c: int,
    nchunks: int,
) -> str:
    cards = {_lane(e): e.get("signer_key") for e in events}
    width = _LEFT + _COL * min(len(events), _PER_ROW) + 20
    axis_y = _TOP + _LANE * len(lanes) + 8
    height = axis_y + _AXIS
    last = first + len(chunk) - 1

    def x_of(idx: int) -> float:
        return _LEFT + _COL * (idx - first) + _COL / 2

    def y_of(who: str) -> float:
        return _TOP + _LANE * lanes.index(who) + 18

    out = [
        f'<svg class="timeline-svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="Custody timeline of {_e(item.get("id"))}'
        f'{f", part {c + 1} of {nchunks}" if nchunks > 1 else ""}" '
        'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    # lanes
    for i, who in enumerate(lanes):
        ly = _TOP + _LANE * i
        fill = "#f4f6f9" if i % 2 == 0 else "#ffffff"
        out.append(f'<rect x="0" y="{ly}" width="{width}" height="{_LANE}" fill="{fill}"/>')
        out.append(
            f'<line x1="{_LEFT}" y1="{ly + 18}" x2="{width - 10}" y2="{ly + 18}" '
            'stroke="#c9ced6" stroke-dasharray="3 3"/>'
        )
        card = cards.get(who)
        if isinstance(card, Mapping):
            name = holder_text(card)
            full = f"{name} {card.get('fingerprint')}: {standing_text(card)}"
            standing = str(card.get("standing") or "unknown")
            bad = standing in ("self-asserted", "unknown")
            out.append(
                f'<text x="8" y="{ly + 22}" font-size="12" font-weight="700" fill="#1d232b">'
                f"<title>{_e(full)}</title>{_e(_clip(name, 22))}</text>"
                f'<text x="8" y="{ly + 36}" font-size="10" fill="#1d232b" '
                'font-family="DejaVu Sans Mono, Liberation Mono, monospace">'
                f"{_e(short_fp(card.get('fingerprint')))}</text>"
                f'<text x="8" y="{ly + 50}" font-size="10" '
                f'font-weight="{700 if bad else 400}" fill="{"#b00020" if bad else "#5b6470"}">'
                f"{_e(STANDING_WORDS.get(standing, standing))}</text>"
            )
        else:
            out.append(
                f'<text x="8" y="{ly + 22}" font-size="12" font-weight="700" fill="#1d232b">'
                f"<title>{_e(who)}</title>{_e(_clip(who, 22))}</text>"
            )
    # axis
    out.append(
        f'<line x1="{_LEFT - 6}" y1="{axis_y}" x2="{width - 10}" y2="{axis_y}" '
        'stroke="#1d232b" stroke-width="1.5"/>'
    )
    out.append(f'<text x="8" y="{axis_y + 16}" font-size="11" fill="#5b6470">time (UTC) →</text>')
    if c > 0:
        out.append(
            f'<text x="8" y="{axis_y + 32}" font-size="10" fill="#5b6470">'
            f"continued (events {first + 1}–{last + 1})</text>"
        )
    # hand-over links (drawn under the markers)
    for idx, ev in enumerate(events):
        if ev.get("type") != "transfer" or not ev.get("transfer"):
            continue
        r = receipt_of.get(str(ev.get("transfer")))
        src = _lane(ev)
        if r is None:
            continue
        dst = _lane(events[r])
        if src not in lanes or dst not in lanes:
            continue
        if r < first or idx > last:
            continue  # wholly outside this drawing
        x1: float = x_of(idx) if idx >= first else _LEFT - 4
        x2: float = x_of(r) if r <= last else width - 12
        y1, y2 = y_of(src), y_of(dst)
        mx = (x1 + x2) / 2
        out.append(
            f'<path d="M {x1:.1f} {y1:.1f} C {mx:.1f} {y1:.1f}, {mx:.1f} {y2:.1f}, '
            f'{x2:.1f} {y2:.1f}" fill="none" stroke="#2a5db0" stroke-width="2.5" '
            f'class="handover-link"><title>hand-over {_e(ev.get("transfer"))}: '
            f"{_e(src)} → {_e(dst)}</title></path>"
        )
    # markers
    for idx in range(first, last + 1):
        ev = events[idx]
        who = _lane(ev)
        x, y = x_of(idx), y_of(who)
        ok = ev.get("signature_verified")
        colour = {"collect": "#1b6e2a", "transfer": "#2a5db0", "receive": "#2a5db0"}.get(
            str(ev.get("type")), "#5a3e9b"
        )
        if not ok:
            colour = "#b00020"
        action = str(ev.get("action") or ev.get("type") or "")
        out.append(
            f'<g class="event-marker"><title>#{_e(ev.get("seq"))} {_e(ev.get("time"))}: '
            f"{_e(action)} by {_e(who)}"
            f"{'' if ok else ' (signature NOT VERIFIED)'}</title>"
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{colour}" stroke="#ffffff" '
            'stroke-width="2"/>'
        )
        if not ok:
            out.append(
                f'<text x="{x:.1f}" y="{y + 4:.1f}" font-size="10" font-weight="700" '
                'fill="#ffffff" text-anchor="middle">!</text>'
            )
        lines = _wrap(action, 18, 2)
        for n, line in enumerate(lines):
            out.append(
                f'<text x="{x:.1f}" y="{y + 22 + 12 * n:.1f}" font-size="10.5" '
                f'font-weight="700" fill="#1d232b" text-anchor="middle">{_e(line)}</text>'
            )
        out.append(
            f'<text x="{x:.1f}" y="{y + 22 + 12 * len(lines):.1f}" font-size="10" '
            f'fill="#5b6470" text-anchor="middle">{_e(_clip(str(ev.get("actor")), 21))}</text>'
        )
        out.append("</g>")
        # axis tick and time
        date, tm = _split_time(ev.get("time"))
        out.append(
            f'<line x1="{x:.1f}" y1="{axis_y - 4}" x2="{x:.1f}" y2="{axis_y + 4}" '
            'stroke="#1d232b"/>'
            f'<text x="{x:.1f}" y="{axis_y + 16}" font-size="10" fill="#1d232b" '
            f'text-anchor="middle">{_e(date)}</text>'
            f'<text x="{x:.1f}" y="{axis_y + 28}" font-size="10" fill="#1d232b" '
            f'text-anchor="middle">{_e(tm)} · #{_e(ev.get("seq"))}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _source_rows(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An imported item: the case it came from and the import that brought it in."""
    src = item.get("source")
    if not isinstance(src, Mapping):
        return []
    return [
        (
            "Imported from",
            f"{_mono(src.get('label'))} (case {_text(src.get('case_id'))}, header"
            f" {_mono(src.get('header_hash'))}), its {_text(src.get('source_item'))}",
        ),
        ("Import event", f"{_e(src.get('import_event'))} (bundle {_mono(src.get('bundle'))})"),
    ]


def _source_chain(item: Mapping[str, Any]) -> str:
    """An imported item: the source case's signed events about it, before the import."""
    src = item.get("source")
    if not isinstance(src, Mapping):
        return ""
    rows = [
        [
            _e(e.get("seq")),
            _text(e.get("time")),
            _text(e.get("action")),
            _key(e.get("signer_key"), e.get("signer")),
            _text(e.get("reason")),
            _sig(e.get("signature_verified")),
        ]
        for e in src.get("events") or []
        if isinstance(e, Mapping)
    ]
    return (
        f"<h3>Source chain (case {_text(src.get('case_id'))})</h3>"
        "<p class='muted'>The source case's own signed events about this item, checked"
        " against its signers' keys; the custody timeline below starts at the import.</p>"
        + _table(["Source event", "Time (UTC)", "Action", "Signed by", "Reason", "Signature"], rows)
    )


def _item(item: Mapping[str, Any]) -> str:
    integ = item.get("integrity") or {}
    status = "intact" if integ.get("ok") else "failed"
    collected_by = (
        _key(item.get("collected_by_key"), item.get("collected_by"))
        + "<br>signature "
        + _sig(item.get("collect_signature_verified"))
    )
    details = _rows(
        [
            ("Description", _text(item.get("description"))),
            ("Source path", _display_path(item)),
            ("Host", _text(item.get("host"))),
            ("Outcome", _text(item.get("outcome"))),
            ("Size", _size(item.get("size"))),
            ("MIME type", _text(item.get("mime"))),
            ("Collected", _text(item.get("collected"))),
            ("Collected by", collected_by),
            ("Collection event", _e(item.get("collect_event"))),
            ("Current state", _text(item.get("state"))),
            ("Current custodian", _key(item.get("custodian_key"), item.get("custodian"))),
            *_source_rows(item),
        ]
    )
    meta = item.get("metadata") or {}
    meta_rows = _rows(
        (label, _mono(value) if key.endswith("_hex") or key == "inode" else _e(value))
        for key, label in METADATA_FIELDS
        if (value := meta.get(key)) is not None
    )
    return (
        f'<section class="item item-{status}" id="item-{_e(item.get("id"))}" '
        f'data-item="{_e(item.get("id"))}" data-integrity="{status}">'
        f'<h2>Item <span class="item-id">{_e(item.get("id"))}</span>'
        f'<span class="muted"> — {_e(item.get("description"))}</span></h2>'
        + _integrity_box(item)
        + f"<table><tbody>{details}</tbody></table>"
        + (
            f'<h3>Recorded metadata</h3><table class="metadata"><tbody>{meta_rows}</tbody></table>'
            if meta_rows
            else ""
        )
        + "<h3>Digests</h3>"
        + _digests(item)
        + _source_chain(item)
        + "<h3>Hand-overs</h3>"
        + _handovers(item)
        + "<h3>Custody timeline</h3>"
        + _svg_timeline(item)
        + _timeline_table(item)
        + "</section>"
    )


# -- keys and footer -------------------------------------------------------------


def _keys(report: Mapping[str, Any]) -> str:
    keys = report.get("keys") or []
    rows = []
    for k in keys:
        status = str(k.get("status") or "")
        cls = "ok" if status == "active" else "bad"
        if status == "revoked":
            status = f"revoked at event {k.get('revoked_at')}"
        elif status == "rotated":
            status = f"rotated to {short_fp(k.get('rotated_to'))}"
        standing = str(k.get("standing") or "unknown")
        rows.append(
            [
                _e(k.get("name")),
                _e(k.get("role")),
                _mono(k.get("fingerprint")),
                f'<span class="standing standing-{_e(standing)}">'
                f"{_e(standing_text({**k, 'status': 'active'}))}</span>",
                f'<span class="{cls}">{_e(status)}</span>',
                _e(k.get("signed_events")),
                _mono(k.get("public_key")),
            ]
        )
    return (
        '<section class="keys" id="keys"><h2>Keys and fingerprints</h2>'
        + (
            _table(
                [
                    "Name",
                    "Role",
                    "Fingerprint",
                    "Standing",
                    "Status",
                    "Events signed",
                    "Public key (Ed25519)",
                ],
                rows,
            )
            if rows
            else "<p class='muted'>No keys.</p>"
        )
        + "</section>"
    )


def _footer(report: Mapping[str, Any]) -> str:
    st = report.get("ledger_state") or {}
    return (
        "<footer>"
        f"<p>Generated {_e(report.get('generated'))} by {_e(report.get('tool'))}"
        f" (report format {_e(report.get('report_version'))}), from the ledger at"
        f" {_e(st.get('size'))} events, root {_mono(st.get('root'))}.</p>"
        "</footer>"
    )


# -- the document ----------------------------------------------------------------


def _pieces(report: dict[str, Any]) -> Iterator[str]:
    """The document in order, piece by piece (the items as they are read)."""
    case = report.get("case") or {}
    title = f"Custody report — case {case.get('id')}: {case.get('title')}"
    yield (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="{_e(report.get("tool"))}">\n'
        f"<title>{_e(title)}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n"
    )
    yield _title(report)
    yield _summary(report)
    yield from _overview(report)
    yield from (_item(i) for i in detailed_items(report.get("items") or []))
    yield _verification(report)
    yield _ledger_state(report)
    yield _header(report)
    yield _keys(report)
    yield _footer(report)
    yield "\n</body>\n</html>\n"


def write(report: dict[str, Any], out: IO[bytes]) -> None:
    """Write the report as one self-contained HTML5 document, UTF-8, as it goes."""
    chunk: list[str] = []
    for piece in _pieces(report):
        chunk.append(piece)
        if len(chunk) >= 512:
            out.write("".join(chunk).encode("utf-8"))
            chunk.clear()
    out.write("".join(chunk).encode("utf-8"))


def render(report: dict[str, Any]) -> bytes:
    """The report as one self-contained HTML5 document, UTF-8."""
    buf = io.BytesIO()
    write(report, buf)
    return buf.getvalue()
