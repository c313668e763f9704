"""Streamed reports (r17) over items with hostile paths, in every format: each
format written in one run, exit 0, the file parses as its format, and a name can
neither inject markup, a script, a CSV formula, a Markdown heading nor a terminal
escape into it."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from conftest import Case

NAMES = [
    b"a\nb.txt",  # a newline
    b"<script>alert(1)<\\script>.txt",
    b"<img src=x onerror=alert(1)>.txt",
    b'q"uote,comma.txt',
    b"=HYPERLINK(1).csv",
    b"\xe2\x80\xaeevil\xe2\x80\xacgpj.exe",  # U+202E right-to-left override
    b"\x1b[31mred.txt",  # a terminal escape
    b"bad-\xff\xfe.bin",  # not UTF-8
    b"# heading\n## two.md",
    b"x" * 240,
]
FORMATS = ["html", "pdf", "csv", "json", "case", "certification"]


@pytest.fixture
def hostile(case: Case, tmp_path: Path) -> Case:
    d = tmp_path / "hostile"
    d.mkdir()
    for i, name in enumerate(NAMES):
        with open(os.path.join(os.fsencode(d), name), "wb") as f:
            f.write(b"content %d\n" % i)
    case("collect", d, "--reason", "r", check=True)
    return case


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_report_over_hostile_paths(hostile: Case, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"r.{fmt}"
    proc = hostile("report", "--format", fmt, "--out", out, "--detail", "all", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    data = out.read_bytes()
    if fmt == "pdf":
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        return
    text = data.decode("utf-8-sig")
    if fmt in ("json", "case"):
        json.loads(text)  # JSON escapes what it must: no raw control character
        assert "\x1b" not in text and "\n# heading" not in text
        return
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        shown = [i for i, h in enumerate(rows[0]) if not h.endswith("_exact") and h != "path_hex"]
        cells = [row[i] for row in rows[1:] for i in shown]
        assert any("HYPERLINK" in c for c in cells)  # the test can fail: the name is there
        for c in cells:
            assert not any(ch in c for ch in "\x1b\u202e\n"), c
            assert not c.startswith(("=", "+", "-", "@")) or c.lstrip("-").isdigit(), c
        return
    assert "\x1b" not in text and "\u202e" not in text
    if fmt == "html":
        assert "<script>alert" not in text and "<img src=x" not in text
        assert "alert(1)" in text  # the test can fail: the names are there, escaped
    else:  # certification: Markdown, no line a name begins
        assert "\n# heading" not in text and "\n## two" not in text
        assert "heading" in text


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pdf"])
def test_the_same_report_streamed_to_standard_output(
    hostile: Case, tmp_path: Path, fmt: str
) -> None:
    """``--out -`` streams the very bytes the file gets (same time, same case)."""
    env = {"SOURCE_DATE_EPOCH": "1800000000"}
    out = tmp_path / f"r.{fmt}"
    args = ("report", "--format", fmt, "--detail", "all", "--quiet", "--out")
    assert hostile(*args, out, env=env).returncode == 0
    proc = hostile(*args, "-", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == out.read_text(encoding="utf-8")
