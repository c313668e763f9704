"""The HTML report (issue 5): one self-contained file, every value escaped, each
item's integrity visible, and it renders and prints in a real browser."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import ITEM1_NAME, ReportCase, report_case, report_template  # noqa: F401

from custody import __version__
from custody.render.html import render

VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class Doc(HTMLParser):
    """Parses the report: checks that every element is closed in order, and
    collects each item section's attributes and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attrs_seen: list[tuple[str, str, str | None]] = []
        self.tags: list[str] = []
        self.sections: dict[str, dict[str, Any]] = {}
        self._item: str | None = None
        self._depth = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs_seen.extend((tag, k, v) for k, v in attrs)
        a = dict(attrs)
        if tag == "section" and "item" in (a.get("class") or "").split():
            self._item = str(a.get("data-item"))
            self._depth = len(self.stack)
            self.sections[self._item] = {"attrs": a, "text": [], "classes": []}
        if self._item is not None and a.get("class"):
            self.sections[self._item]["classes"].extend(str(a["class"]).split())
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs_seen.extend((tag, k, v) for k, v in attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag == "section" and self._item is not None and len(self.stack) == self._depth:
            self._item = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._item is not None:
            self.sections[self._item]["text"].append(data)

    def section_text(self, item: str) -> str:
        return " ".join("".join(self.sections[item]["text"]).split())


def parse(data: bytes) -> Doc:
    doc = Doc()
    doc.feed(data.decode("utf-8"))
    doc.close()
    assert doc.errors == []
    assert doc.stack == [], f"unclosed elements: {doc.stack}"
    return doc


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def html_report(case: ReportCase) -> bytes:
    proc, out = case.report("html", "--detail", "all")
    # the case has a tampered item: the report is written and the exit code is 1
    assert proc.returncode == 1, proc.stderr
    assert "verification FAILED" in proc.stdout
    return out.read_bytes()


def json_model(case: ReportCase) -> dict[str, Any]:
    proc, out = case.report("json", "--detail", "all")
    assert proc.returncode == 1, proc.stderr
    model: dict[str, Any] = json.loads(out.read_text("utf-8"))
    return model


def test_self_contained_and_items_marked(report_case: ReportCase) -> None:  # noqa: F811
    data = html_report(report_case)
    text = data.decode("utf-8")
    assert text.startswith("<!DOCTYPE html>\n")
    assert '<meta charset="utf-8">' in text
    low = text.lower()
    for ref in (
        "http://",
        "https://",
        "src=",
        "<link",
        "@import",
        "url(",
        "<script",
        "<img",
        "<iframe",
        "<object",
    ):
        assert ref not in low, ref
    assert "<style>" in text and "@media print" in text
    assert "break-before: page" in text and "page-break-before: always" in text

    doc = parse(data)
    assert "svg" in doc.tags and "circle" in doc.tags
    assert all(not k.startswith("on") for _, k, _ in doc.attrs_seen)
    full = " ".join("".join(doc.text).split())
    # header, verification banner, ledger state, keys, tool
    assert "Case 2026-017: Payroll server breach" in full
    assert "VERIFICATION FAILED: 3 findings" in full
    assert "Dana Reyes" in full and "Lee Okafor" in full
    assert f"by custody {__version__}" in full
    assert "Keys and fingerprints" in full

    assert set(doc.sections) == {"ITEM-1", "ITEM-2"}
    sha = report_case.sha256
    one, two = doc.sections["ITEM-1"], doc.sections["ITEM-2"]
    assert one["attrs"]["data-integrity"] == "intact"
    assert "item-intact" in one["attrs"]["class"].split()
    assert "integrity-intact" in one["classes"] and "integrity-failure" not in one["classes"]
    t1 = doc.section_text("ITEM-1")
    assert "Integrity: intact" in t1 and "INTEGRITY FAILURE" not in t1
    assert sha["ITEM-1"] in t1
    assert f"/evidence/{ITEM1_NAME}" in t1
    # the hand-over, both signatures verified, and the timeline rows
    assert "TRANSFER-" in t1 and "for counsel, review" in t1 and "Room 4, HQ" in t1
    assert "NOT VERIFIED" not in t1
    assert t1.count("verified") >= 2 + 4  # two hand-over signatures, four events
    assert "sealed in bag 44" in t1
    # every signer with 16 hex digits of its key, its standing and who attested it
    model = json_model(report_case)
    fp = {k["name"]: k["fingerprint"][:23] for k in model["keys"]}
    dana, lee = fp["Dana Reyes"], fp["Lee Okafor"]
    # (the standing is on its own line: the text of a <br> is nothing)
    d, lee_key = re.escape(dana), re.escape(lee)
    assert re.search(rf"Collected by\s*Dana Reyes \(collector\) {d}\s*owner", t1)
    assert re.search(rf"Lee Okafor \(counsel\) {lee_key}\s*attested by Dana Reyes {d}", t1)
    timeline = re.findall(rf"Lee Okafor {lee_key}\s*attested by Dana Reyes {d}", t1)
    assert len(timeline) == 2  # Lee's receipt and seal
    assert "SELF-ASSERTED" not in full

    assert two["attrs"]["data-integrity"] == "failed"
    assert "item-failed" in two["attrs"]["class"].split()
    assert "integrity-failure" in two["classes"]
    t2 = doc.section_text("ITEM-2")
    assert "INTEGRITY FAILURE" in t2 and "Integrity: intact" not in t2
    assert sha["ITEM-2"] in t2
    assert "object-digest" in t2 and "DOES NOT MATCH" in t2
    assert "No hand-overs." in t2


def test_hostile_values_are_escaped(report_case: ReportCase) -> None:  # noqa: F811
    model = json_model(report_case)
    evil = "<script>alert(1)</script>"
    bad = copy.deepcopy(model)
    bad["case"]["title"] = evil
    item = next(i for i in bad["items"] if i["id"] == "ITEM-1")
    item["path"] = "/evidence/" + evil
    item["id"] = 'X" onmouseover="alert(2)'
    item["integrity"] = {"ok": False, "findings": [{"kind": evil, "subject": evil, "detail": evil}]}
    for ev in item["timeline"]:
        ev["actor"] = evil
        ev["action"] = evil + " & co"
        ev["signer_key"]["name"] = evil
        ev["signer_key"]["standing"] = 'x" onclick="alert(3)'
    item["handovers"][0]["released_by"] = evil
    item["handovers"][0]["released_by_key"]["role"] = evil
    bad["keys"][0]["name"] = evil
    data = render(bad)
    text = data.decode("utf-8")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "/evidence/&lt;script&gt;" in text
    doc = parse(data)
    assert all(not k.startswith("on") for _, k, _ in doc.attrs_seen)
    assert 'X" onmouseover="alert(2)' in doc.sections  # the id survived, as text
    # the hostile strings are still shown, verbatim, as text
    assert evil in "".join(doc.text)
    # the untouched model renders differently (sanity: the edit reached the output)
    assert render(model) != data


def _chromium(html: Path, tmp: Path, *args: str) -> None:
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    proc = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp}",
            *args,
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_browser_renders_and_prints(report_case: ReportCase, tmp_path: Path) -> None:  # noqa: F811
    from PIL import Image

    html_report(report_case)
    html = sorted(report_case.root.glob("report-html-*.html"))[-1]
    png = tmp_path / "shot.png"
    _chromium(html, tmp_path / "profile-png", f"--screenshot={png}", "--window-size=1200,2000")
    with Image.open(png) as im:
        rgb = im.convert("RGB")
        assert rgb.size == (1200, 2000)
        colours = rgb.getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50
        pixels = rgb.width * rgb.height
        white = sum(n for n, c in colours if c == (255, 255, 255))
        assert white < 0.97 * pixels
        # the red FAILED banner is drawn (border #b00020)
        red = sum(n for n, (r, g, b) in colours if r > 150 and g < 40 and b < 60)
        assert red > 500

    if shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None:
        pytest.skip("poppler-utils not installed")
    pdf = tmp_path / "print.pdf"
    _chromium(html, tmp_path / "profile-pdf", f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert pdf.read_bytes().startswith(b"%PDF")
    info = subprocess.run(["pdfinfo", pdf], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
    # front matter, one page (at least) per item, keys on their own page
    assert pages >= 4
    text = subprocess.run(
        ["pdftotext", "-layout", pdf, "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = squash(text)
    for digest in report_case.sha256.values():
        assert digest in flat
    assert "INTEGRITY FAILURE" in text and "Integrity: intact" in text
    # each item starts a new page: its heading and its integrity box on that page
    page_of = {}
    for n, page in enumerate(text.split("\f")):
        for item in ("ITEM-1", "ITEM-2"):
            if f"Item {item}" in page:
                page_of[item] = (n, page)
    assert set(page_of) == {"ITEM-1", "ITEM-2"}
    assert page_of["ITEM-1"][0] != page_of["ITEM-2"][0] and page_of["ITEM-1"][0] > 0
    assert "Integrity: intact" in page_of["ITEM-1"][1]
    assert "INTEGRITY FAILURE" in page_of["ITEM-2"][1]
