"""Issue 16 §1: reports lead with the answer and scale.

Every format opens with the verification result and the counts by state and
outcome, the failing items first; one compact row per item; detail pages only for
the failing items, the items named, or all with ``--detail all``; a progress bar on
stderr only when asked (or on a terminal); no library warning reaches the terminal;
ids and numbers never break in a cell; the recorded metadata and each receipt's
location are shown."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import ITEM1_NAME, ReportCase, report_case, report_template  # noqa: F401

from custody.render import pdf as pdf_render
from custody.render import render

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) not installed"
)


def _json(rc: ReportCase, *extra: str) -> dict[str, Any]:
    proc, out = rc.report("json", *extra)
    assert proc.returncode == 1, proc.stderr
    model: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return model


def _sections(html: str) -> list[str]:
    return re.findall(r'<section class="item item-\w+" id="item-([^"]+)"', html)


def _pdftotext(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_html_opens_with_the_answer_then_one_row_per_item_then_failing_details(
    report_case: ReportCase,  # noqa: F811
) -> None:
    proc, out = report_case.report("html")
    assert proc.returncode == 1, proc.stderr
    html = out.read_text(encoding="utf-8")
    verdict = html.index('id="verdict"')
    summary = html.index('id="summary"')
    table = html.index('<section id="items">')
    first_item = html.index('<section class="item ')
    assert summary < verdict < table < first_item < html.index('id="verification"')
    assert "VERIFICATION FAILED: 3 findings" in html[:table]
    # counts by state and by outcome, and the failing item named, before any row
    head = html[:table]
    assert re.search(r"<th>Failing</th><td><span class=\"bad\"><span class=\"nowrap\">1<", head)
    assert "<td>sealed</td>" in head and "<td>collected</td>" in head
    assert 'href="#item-ITEM-2">ITEM-2</a>' in head
    # the compact table: the failing item first, one row each, ids never broken
    rows = re.findall(r'<tr><td class="nowrap">(?:<a href="#item-[^"]+">)?(ITEM-\d)', html)
    assert rows == ["ITEM-2", "ITEM-1"]
    # detail pages: only the failing ITEM-2 (auto); no list of every id in a header
    assert _sections(html) == ["ITEM-2"]
    assert "ITEM-1, ITEM-2" not in html and "ITEM-2, ITEM-1" not in html


def test_detail_all_and_named_items(report_case: ReportCase) -> None:  # noqa: F811
    _, out = report_case.report("html", "--detail", "all")
    assert _sections(out.read_text(encoding="utf-8")) == ["ITEM-2", "ITEM-1"]
    _, out = report_case.report("html", "item-1")
    assert _sections(out.read_text(encoding="utf-8")) == ["ITEM-1"]
    bad = report_case.run("report", "--detail", "some", "--format", "html", "--out", "x.html")
    assert bad.returncode == 2 and "--detail" in bad.stderr and "Traceback" not in bad.stderr
    # the JSON follows the same rule: only the detail items carry hand-overs and timeline
    model = _json(report_case)
    assert [(i["id"], i["detail"], "timeline" in i) for i in model["items"]] == [
        ("ITEM-2", True, True),
        ("ITEM-1", False, False),
    ]
    assert [i["events"] for i in model["items"]] == [1, 4]
    # CSV is the per-event form: every item's events by default
    _, out = report_case.report("csv")
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in lines[1:] if line.startswith("ITEM-")] == [
        "ITEM-2",
        "ITEM-1",
        "ITEM-1",
        "ITEM-1",
        "ITEM-1",
    ]


def test_recorded_metadata_and_receipt_location_in_every_view(
    report_case: ReportCase,  # noqa: F811
    report_template: tuple[Path, dict[str, str], dict[str, Any]],  # noqa: F811
) -> None:
    st = os.lstat(report_template[0] / "evidence" / ITEM1_NAME)
    model = _json(report_case, "--detail", "all")
    item1 = next(i for i in model["items"] if i["id"] == "ITEM-1")
    meta = item1["metadata"]
    assert meta["mode"] == stat.filemode(st.st_mode)
    assert (meta["uid"], meta["gid"], meta["inode"], meta["size"]) == (
        st.st_uid,
        st.st_gid,
        str(st.st_ino),
        st.st_size,
    )
    assert meta["host"] == item1["host"] and meta["symlink_target"] is None
    assert item1["handovers"][0]["receipt_location"] == "Counsel's office"
    html = render(model, "html").decode("utf-8")
    section = html[html.index('id="item-ITEM-1"') :]
    assert "<h3>Recorded metadata</h3>" in section
    assert f"<th>Mode</th><td>{stat.filemode(st.st_mode)}</td>" in section
    assert f"<th>Owner id (uid)</th><td>{st.st_uid}</td>" in section
    assert "Counsel&#x27;s office" in section


@needs_poppler
def test_pdf_summary_first_ids_unbroken_and_no_warnings(
    report_case: ReportCase,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _json(report_case, "--detail", "all")
    # a long id and a long path: the id stays whole, the path is shortened
    long_path = "/srv/" + "deep/" * 60 + "file.txt"
    model["items"][1]["id"] = "ITEM-10000"
    model["items"][1]["path"] = long_path
    model["items"][1]["path_hex"] = long_path.encode().hex()
    model["items"][1]["detail"] = False
    # fpdf2 warns (e.g. about fonts); the renderer must not let it through
    real_output = pdf_render.FPDF.output

    def noisy(self: Any, *a: Any, **k: Any) -> Any:
        warnings.warn("fpdf2 says something", UserWarning, stacklevel=1)
        return real_output(self, *a, **k)

    monkeypatch.setattr(pdf_render.FPDF, "output", noisy)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        data = pdf_render.render(model)
    assert [str(w.message) for w in seen] == []
    out = tmp_path / "r.pdf"
    out.write_bytes(data)
    text = _pdftotext(out)
    order = [
        text.index("VERIFICATION FAILED"),
        text.index("By state: collected 1, sealed 1"),
        text.index("Items (2)"),
        text.index("Evidence item ITEM-2"),
        text.index("Case ID"),
        text.index("Keys and fingerprints"),
    ]
    assert order == sorted(order)
    table = text[text.index("Items (2)") : text.index("Evidence item ITEM-2")]
    row = next(line for line in table.splitlines() if "ITEM-10000" in line)
    assert re.search(r"ITEM-10000\s+intact\s+\S+\s+collected\s+46\s", row), row
    assert "/srv/deep/" in row and "..." in row
    assert "Evidence item ITEM-10000" not in text  # no detail page: it is not failing


def test_no_warning_reaches_the_terminal(report_case: ReportCase) -> None:  # noqa: F811
    """A real process (warnings go to its stderr): nothing but the report lines."""
    env = {
        **os.environ,
        **report_case.env,
        "CUSTODY_CASE": str(report_case.dir),
        "PYTHONWARNINGS": "always",
    }
    out = report_case.root / "w.pdf"
    proc = subprocess.run(
        [sys.executable, "-m", "custody_cli.main", "report", "--format", "pdf", "--out", str(out)],
        env=env,
        cwd=report_case.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith(f"Report {out} (pdf): 2 item(s), verification FAILED")


def test_progress_bar_only_when_asked(report_case: ReportCase) -> None:  # noqa: F811
    quiet = report_case.run("report", "--format", "csv", "--out", "a.csv")
    assert quiet.returncode == 1 and quiet.stderr == ""  # not a terminal: no bar
    shown = report_case.run("report", "--progress", "--format", "csv", "--out", "b.csv")
    assert shown.returncode == 1
    assert "report" in shown.stderr and "2/2" in shown.stderr
    assert "2/2" not in shown.stdout
    off = report_case.run("report", "--progress", "--quiet", "--format", "csv", "--out", "c.csv")
    assert off.stderr == ""


def test_hostile_names_in_the_compact_rows(report_case: ReportCase) -> None:  # noqa: F811
    model = copy.deepcopy(_json(report_case))
    evil = '<script>alert(1)</script>\n"ITEM-99'
    model["items"][1]["path"] = evil
    model["items"][1]["state"] = "<b>x</b>"
    html = render(model, "html").decode("utf-8")
    assert "<script>" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\n&quot;ITEM-99" in html
