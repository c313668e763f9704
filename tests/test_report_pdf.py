"""custody report --format pdf (issue 5): the PDF renderer, read back with poppler's
pdftotext/pdfinfo.  Same content as every format: digests, people, hand-overs with
both signatures, a visible INTEGRITY FAILURE for the tampered item only, a footer
on every page with the case, "page N of M" and the report data SHA-256; and
reproducible bytes under SOURCE_DATE_EPOCH."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import (  # noqa: F401
    ITEM1_BYTES,
    ITEM1_NAME,
    ITEM2_BYTES,
    LOCATION,
    REASON,
    ReportCase,
    report_case,
    report_template,
)

from custody import __version__
from custody.render import pdf as pdf_render

EPOCH = "1796000000"
needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None,
    reason="poppler-utils (pdftotext, pdfinfo) not installed",
)


def _text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def _pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)$", info, re.M).group(1))


def _flat(text: str) -> str:
    """Text without whitespace: a digest wrapped over lines reads whole again."""
    return re.sub(r"\s+", "", text)


def _sections(text: str) -> tuple[str, str, str]:
    """(the summary and compact table before the detail pages, with the case,
    verification and keys after them; ITEM-1's section; ITEM-2's section).  The
    failing ITEM-2's detail page comes first (issue 16)."""
    assert text.count("Evidence item ITEM-1") == 1
    assert text.count("Evidence item ITEM-2") == 1
    i1 = text.index("Evidence item ITEM-1")
    i2 = text.index("Evidence item ITEM-2")
    case = text.index("Case ID")
    keys = text.index("Keys and fingerprints")
    assert i2 < i1 < case < keys
    return text[:i2] + text[case:], text[i1:case], text[i2:i1]


def _item1(model: dict[str, Any]) -> dict[str, Any]:
    """ITEM-1 (intact: after the failing ITEM-2 in the report's order)."""
    item: dict[str, Any] = next(i for i in model["items"] if i["id"] == "ITEM-1")
    return item


def _digests(data: bytes) -> dict[str, str]:
    return {alg: hashlib.new(alg, data).hexdigest() for alg in ("md5", "sha1", "sha256")}


@pytest.fixture(scope="module")
def made(
    report_template: tuple[Path, dict[str, str], dict[str, Any]],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ReportCase, Path, dict[str, Any]]:
    """One copy of the shared case for this module (as report_case makes), its PDF
    report and the model of its JSON report, both made with SOURCE_DATE_EPOCH."""
    root, env, info = report_template
    mine = tmp_path_factory.mktemp("pdf-report") / "rc"
    shutil.copytree(root, mine, symlinks=True)
    rc = ReportCase(mine / "case", mine, {**env, "CUSTODY_CONFIG_DIR": str(mine / "config")}, info)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
        proc, out = rc.report("pdf", "--detail", "all")
        assert proc.returncode == 1, proc.stderr  # the case has findings: exit 1, file written
        assert (
            f"SHA-256 of the report: sha256:{hashlib.sha256(out.read_bytes()).hexdigest()}"
            in proc.stdout
        )
        jproc, jout = rc.report("json", "--detail", "all")
        assert jproc.returncode == 1, jproc.stderr
    return rc, out, json.loads(jout.read_text(encoding="utf-8"))


def _model(made: tuple[ReportCase, Path, dict[str, Any]]) -> dict[str, Any]:
    return copy.deepcopy(made[2])


@needs_poppler
def test_pdf_report_content(made: tuple[ReportCase, Path, dict[str, Any]]) -> None:
    rc, out, model = made
    assert out.read_bytes().startswith(b"%PDF-")
    text = _text(out)
    summary, item1, item2 = _sections(text)

    # title block
    assert "Chain-of-Custody Report" in summary
    assert "Case 2026-017: Payroll server breach" in summary
    assert re.search(r"Dana Reyes\s+collector\s+sha256:\S+\s+owner\n", summary)
    assert re.search(r"Lee Okafor\s+counsel\s+sha256:\S+\s+attested by Dana Reyes\n", summary)
    # verification summary: verdict, the failing step, every finding, the ledger state
    assert "VERIFICATION FAILED - 3 finding(s)" in summary
    assert re.search(r"stored bytes\s+FAILED\s+3", summary)
    assert re.search(r"hash chain\s+passed\s+0", summary)
    assert summary.count("object-digest") == 3
    for finding in model["verification"]["findings"]:
        for word in finding["detail"].split():  # a table cell wraps between words
            assert word in summary
    state = model["ledger_state"]
    assert re.search(rf"Ledger size \(events\)\s+{state['size']}\b", summary)
    assert state["root"] in _flat(summary)
    assert state["head"] in _flat(summary)
    assert "No checkpoint has been recorded" in summary

    # every digest of both items, as recorded at collection
    for data_, section in ((ITEM1_BYTES, item1), (ITEM2_BYTES, item2)):
        for alg, hexdigest in _digests(data_).items():
            assert re.search(rf"{alg}\s+recorded at collection", section)
            assert hexdigest in _flat(section), (alg, hexdigest)
    assert rc.sha256["ITEM-1"] in _flat(item1)
    assert rc.sha256["ITEM-2"] in _flat(item2)

    # ITEM-1 intact, ITEM-2 failing with its findings and the digests found now
    assert "INTEGRITY FAILURE" not in item1
    assert "Intact" in item1 and "DIFFERS" not in item1
    assert "INTEGRITY FAILURE - 3 finding(s)" in item2
    assert "Intact" not in item2
    assert item2.count("object-digest") == 3
    for finding in model["verification"]["findings"]:
        for word in finding["detail"].split():
            assert word in item2
    tampered = bytearray(ITEM2_BYTES)
    tampered[0] ^= 0x01
    for hexdigest in _digests(bytes(tampered)).values():
        assert hexdigest in _flat(item2)
    assert item2.count("verification: DIFFERS") == 3 and "verification: matches" not in item2
    assert item1.count("verification: matches") == 3 and "DIFFERS" not in item1

    # source path, host, size, MIME, collector
    # (a long temporary path wraps in its cell: compare without whitespace)
    assert re.search(rf"Sourcepath\S*/evidence/{re.escape(_flat(ITEM1_NAME))}", _flat(item1))
    assert re.search(r"Size\s+46 bytes", item1)
    assert re.search(r"MIME type\s+text/plain", item1)
    assert re.search(r"Collected by\s+Dana Reyes \(collector\)", item2)
    # every signer with 16 hex digits of its key, its standing and who attested it
    fp = {k["name"]: k["fingerprint"][:23] for k in model["keys"]}
    dana, lee = fp["Dana Reyes"], fp["Lee Okafor"]
    assert re.search(rf"Collected by\s+Dana Reyes \(collector\) {dana} \[owner\]\n", item2)
    assert re.search(
        rf"Current custodian\s+Lee Okafor \(counsel\) {lee} \[attested by Dana Reyes\s+{dana}\]",
        item1,
    )

    # the hand-over: released by / received by, date, time, both signatures verified
    tid = rc.template["transfer"]
    assert f"{tid} (received)" in item1
    stamp = r"\d{4}-\d\d-\d\d\s+\d\d:\d\d:\d\d"
    assert re.search(rf"Released by\s+Dana Reyes \(collector\)\s+{stamp}\s+verified", item1)
    assert re.search(rf"Received by\s+Lee Okafor \(counsel\)\s+{stamp}\s+verified", item1)
    assert re.search(rf"Reason\s+{re.escape(REASON)}", item1)
    assert re.search(rf"Location\s+{re.escape(LOCATION)}", item1)
    assert "NOT VERIFIED" not in text
    assert "Hand-overs (0)" in item2

    # the custody timeline: one row per event, in order
    assert "Custody timeline (4 event(s))" in item1
    assert "Custody timeline (1 event(s))" in item2
    seals = re.findall(
        rf"^\s*(\d+)\s+{stamp}\s+Lee Okafor\s+sealed\s+sealed in bag 44", item1, re.M
    )
    assert len(seals) == 1
    for event in _item1(model)["timeline"]:
        assert event["hash"] in _flat(item1)

    # keys and the tool version
    tail = text[text.index("Keys and fingerprints") :]
    for key in model["keys"]:
        assert key["fingerprint"] in _flat(tail)
        assert key["public_key"] in _flat(tail)
    assert re.search(rf"Standing\s+attested by Dana Reyes {dana}\n", tail)
    assert re.search(r"Standing\s+owner\n", tail)
    assert re.search(rf"Tool version\s+custody {re.escape(__version__)}", tail)

    # each item starts a page
    pages = text.split("\f")
    assert any(p.lstrip().startswith("Evidence item ITEM-1") for p in pages)
    assert any(p.lstrip().startswith("Evidence item ITEM-2") for p in pages)


@needs_poppler
def test_pdf_footer_on_every_page_with_model_digest(
    made: tuple[ReportCase, Path, dict[str, Any]],
) -> None:
    _, out, model = made
    text = _text(out)
    n = _pages(out)
    assert n >= 4  # summary, one page per item at least, keys
    footers = re.findall(r"page (\d+) of (\d+)", text)
    assert footers == [(str(i), str(n)) for i in range(1, n + 1)]

    canonical = json.dumps(model, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert pdf_render.model_digest(model) == digest
    pages = [p for p in text.split("\f") if p.strip()]
    assert len(pages) == n
    for i, page in enumerate(pages, 1):
        assert f"page {i} of {n}" in page
        assert re.search(r"Case 2026-017 - chain-of-custody report\s+page", page)
        assert re.findall(r"report data SHA-256: ([0-9a-f]{64})", page) == [digest]


@needs_poppler
def test_pdf_is_reproducible(report_case: ReportCase, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    first, out = report_case.report("pdf")
    again, out2 = report_case.report("pdf")
    assert first.returncode == again.returncode == 1
    assert out2.read_bytes() == out.read_bytes()
    jproc, jout = report_case.report("json")
    assert jproc.returncode == 1
    model = json.loads(jout.read_text(encoding="utf-8"))
    # the renderer alone, on the JSON report's model, gives the very same file
    assert pdf_render.render(model) == out.read_bytes()
    # and the PDF's creation date is SOURCE_DATE_EPOCH, not the time of rendering
    info = subprocess.run(
        ["pdfinfo", "-isodates", str(out)], capture_output=True, text=True, check=True
    ).stdout
    when = datetime.fromtimestamp(int(EPOCH), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert re.search(rf"^CreationDate:\s+{when}(Z|\+00)", info, re.M), info


def _unicode_model(model: dict[str, Any]) -> dict[str, Any]:
    item = _item1(model)
    item["path"] = "/evidence/Ωμέγα/测试/memo.txt"
    item["path_hex"] = item["path"].encode().hex()  # the path is shown from its bytes
    item["digests"]["sha512"] = hashlib.sha512(ITEM1_BYTES).hexdigest()
    item["verified_digests"]["sha512"] = hashlib.sha512(ITEM1_BYTES).hexdigest()
    model["case"]["examiners"][0]["name"] = "Zoë Ångström 😀"
    model["case"]["title"] = "Payroll server breach — Ωμέγα"
    return model


def _words_on_page(path: Path) -> None:
    """Every word pdftotext finds lies inside its page's box."""
    xml = subprocess.run(
        ["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = re.split(r"<page ", xml)[1:]
    assert pages
    for page in pages:
        w = float(re.search(r'width="([\d.]+)"', page).group(1))
        h = float(re.search(r'height="([\d.]+)"', page).group(1))
        for x0, y0, x1, y1 in re.findall(
            r'xMin="([\d.-]+)" yMin="([\d.-]+)" xMax="([\d.-]+)" yMax="([\d.-]+)"', page
        ):
            assert 0 <= float(x0) and float(x1) <= w and 0 <= float(y0) and float(y1) <= h


@needs_poppler
def test_pdf_unicode_with_truetype_font(
    made: tuple[ReportCase, Path, dict[str, Any]], tmp_path: Path
) -> None:
    if pdf_render.find_unicode_fonts() is None:
        pytest.skip("no DejaVu TrueType font installed")
    model = _unicode_model(_model(made))
    out = tmp_path / "u.pdf"
    out.write_bytes(pdf_render.render(model))
    text = _text(out)
    _, item1, _ = _sections(text)
    assert "Ωμέγα" in item1
    # no CJK glyphs in DejaVu: a visible escape, never a silently dropped character
    assert "/evidence/Ωμέγα/\\u6d4b\\u8bd5/memo.txt" in item1
    assert "Zoë Ångström \\U0001f600" in text
    assert "Payroll server breach — Ωμέγα" in text
    assert hashlib.sha512(ITEM1_BYTES).hexdigest() in _flat(item1)
    _words_on_page(out)


@needs_poppler
def test_pdf_unicode_with_core_font_fallback(
    made: tuple[ReportCase, Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = _unicode_model(_model(made))
    monkeypatch.setattr(pdf_render, "FORCE_CORE_FONTS", True)
    out = tmp_path / "c.pdf"
    data = pdf_render.render(model)
    out.write_bytes(data)
    assert b"/DejaVu" not in data and b"/Helvetica" in data
    text = _text(out)
    _, item1, _ = _sections(text)
    assert "Ω" not in text
    assert "/evidence/\\u03a9\\u03bc\\u03ad\\u03b3\\u03b1/\\u6d4b\\u8bd5/memo.txt" in item1
    assert "Zoë Ångström \\U0001f600" in text  # Latin-1 letters stay as they are
    assert "Payroll server breach \\u2014 \\u03a9" in text
    assert hashlib.sha512(ITEM1_BYTES).hexdigest() in _flat(item1)
    _words_on_page(out)


@needs_poppler
def test_pdf_long_text_goes_to_a_note(
    made: tuple[ReportCase, Path, dict[str, Any]], tmp_path: Path
) -> None:
    model = _model(made)
    words = [f"w{i}" for i in range(600)]
    _item1(model)["timeline"][0]["reason"] = " ".join(words)
    assert len(_item1(model)["timeline"]) == 4
    out = tmp_path / "long.pdf"
    out.write_bytes(pdf_render.render(model))
    text = _text(out)
    _, item1, _ = _sections(text)
    reason = " ".join(words)
    assert re.search(rf"\[{len(reason)} characters:", item1)
    assert "Note 1 (Reason):" in item1
    assert re.findall(r"\bw\d+\b", item1) == words
    _words_on_page(out)


@needs_poppler
def test_pdf_passing_report_has_no_failure(
    made: tuple[ReportCase, Path, dict[str, Any]], tmp_path: Path
) -> None:
    model = _model(made)
    v = model["verification"]
    v["ok"], v["findings"] = True, []
    for step in v["steps"]:
        step["ok"], step["findings"] = True, 0
    for item in model["items"]:
        item["integrity"] = {"ok": True, "findings": []}
        item["verified_digests"] = dict(item["digests"])
    out = tmp_path / "ok.pdf"
    out.write_bytes(pdf_render.render(model))
    text = _text(out)
    summary, item1, item2 = _sections(text)
    assert "VERIFICATION PASSED" in summary
    assert "FAIL" not in text and "DIFFERS" not in text
    assert "Intact" in item1 and "Intact" in item2
    assert "Findings (0)" in summary
