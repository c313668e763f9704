"""Issue 16 §1 at scale: a report's items are made as the renderer reads them and
the HTML, CSV and JSON writers write as they go, so no format holds every item (or
the whole document) at once; the streamed model renders exactly what the listed
one does.  The report takes the bodies the verification checked only while each
event's row still has the hash that verification saw."""

from __future__ import annotations

import copy
import errno
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke_here
from tampering import bypass, q
from test_report_csv_json import build_golden_case

import custody.report
from custody.canonical import canonical_json
from custody.ledger import DB_NAME
from custody.render import csv_form, json_report, render, write
from custody.render import pdf as pdf_render
from custody.report import ReportItems, case_report
from custody.verify import verify_ledger

FORMATS = ("html", "pdf", "csv", "json", "case", "certification")


@pytest.mark.parametrize("detail", ["auto", "all"])
def test_streamed_model_renders_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detail: str
) -> None:
    ledger = build_golden_case(tmp_path, monkeypatch)
    try:
        listed = case_report(ledger, detail=detail)
        streamed = case_report(ledger, detail=detail, stream=True)
    finally:
        ledger.close()
    assert isinstance(streamed["items"], ReportItems) and isinstance(listed["items"], list)
    assert len(streamed["items"]) == 2 and streamed["items"].ids == ["ITEM-2", "ITEM-1"]
    assert list(streamed["items"]) == listed["items"]
    for fmt in FORMATS:
        assert render(streamed, fmt) == render(listed, fmt), fmt
    # the PDF's report data digest, computed item by item, is the canonical JSON's
    canonical = json.dumps(listed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert pdf_render.model_digest(streamed) == pdf_render.model_digest(listed) == digest


def test_streamed_items_are_made_only_when_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Assembling a streamed model makes no item; the HTML makes each item for its
    row and, for the detail pages, only the failing ITEM-2 again."""
    made: list[str] = []
    real = custody.report._item

    def counting(view: Any, *a: Any, **kw: Any) -> dict[str, Any]:
        made.append(view.id)
        return real(view, *a, **kw)

    ledger = build_golden_case(tmp_path, monkeypatch)
    monkeypatch.setattr(custody.report, "_item", counting)
    try:
        model = case_report(ledger, detail="auto", stream=True)
    finally:
        ledger.close()
    assert made == []
    assert model["summary"]["failing_items"] == ["ITEM-2"]
    assert model["summary"]["detail_items"] == 1
    html = render(model, "html").decode("utf-8")
    assert made == ["ITEM-2", "ITEM-1", "ITEM-2"]
    assert html.count('<section class="item ') == 1


class _Items:
    """``n`` copies of one item (ids ITEM-1 ... ITEM-n), made as they are read;
    before the last one is made it records how many bytes ``sink`` holds."""

    def __init__(self, template: dict[str, Any], n: int, sink: io.BytesIO) -> None:
        self.template, self.n, self.sink = template, n, sink
        self.before_last: list[bytes] = []

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for k in range(1, self.n + 1):
            if k == self.n:
                self.before_last.append(self.sink.getvalue())
            item = copy.deepcopy(self.template)
            item["id"] = f"ITEM-{k}"
            yield item


@pytest.mark.parametrize("fmt", ["html", "csv", "json"])
def test_writers_write_before_the_items_are_exhausted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """A writer that held every item (or the whole document) before writing would
    have written nothing when the last item is made."""
    ledger = build_golden_case(tmp_path, monkeypatch)
    try:
        model = case_report(ledger, detail="all")
    finally:
        ledger.close()
    sink = io.BytesIO()
    items = _Items(model["items"][1], 1500, sink)
    write({**model, "items": items}, fmt, sink)
    assert items.before_last, "the writer never read the last item"
    early = items.before_last[0]
    assert b"ITEM-1" in early and b"ITEM-1000" in early  # rows already written
    assert b"ITEM-1500" not in early
    whole = sink.getvalue()
    assert whole.startswith(early)
    if fmt == "json":
        doc = json.loads(whole)
        assert [i["id"] for i in doc["items"]] == [f"ITEM-{k}" for k in range(1, 1501)]
        assert doc["items"][0] == {**model["items"][1], "id": "ITEM-1"}
    if fmt == "csv":
        rows = csv_form.rows({**model, "items": _Items(model["items"][1], 1500, io.BytesIO())})
        assert len(rows) == 1500 * len(model["items"][1]["timeline"])
        assert all(len(r) == len(csv_form.COLUMNS) for r in rows)


def test_json_items_one_line_each_same_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JSON is the model: indented, each item on one line (hostile text in an
    item, a line break or U+2028, stays inside its JSON string)."""
    ledger = build_golden_case(tmp_path, monkeypatch)
    try:
        model = case_report(ledger, detail="all")
    finally:
        ledger.close()
    model["items"][0]["path"] = '/evil\n    ],\n  "keys": []\u2028}'
    data = json_report.render(model)
    assert json.loads(data) == json.loads(json.dumps(model))
    lines = data.decode("utf-8").split("\n")
    start = lines.index('  "items": [')
    assert lines[start + 1].startswith('    {"id": "ITEM-2", ')
    assert lines[start + 2].startswith('    {"id": "ITEM-1", ')
    assert lines[start + 3] == "  ],"
    empty = json_report.render({**model, "items": []})
    assert empty.count(b'\n  "items": [],\n') == 1 and json.loads(empty)["items"] == []


def _row_changed_after_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], int]:
    """Someone with write access but no key rewrites the note event's row (body and
    stated hash, consistent with each other) after the verification read it and
    before the report does."""
    ledger = build_golden_case(tmp_path, monkeypatch, tamper=False)
    try:
        v = verify_ledger(ledger)
        assert not v.findings
        seq, body = ledger.conn.execute(
            "SELECT seq, body FROM events WHERE type = 'note' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        forged = json.loads(body)
        forged["data"]["reason"] = "nothing happened here"
        text = canonical_json(forged).decode("utf-8")
        stated = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
        bypass(
            ledger.case_dir / DB_NAME,
            "events",
            f"UPDATE events SET body = {q(text)}, hash = {q(stated)} WHERE seq = {seq};",
        )
        return case_report(ledger, verify=v, detail="all"), seq
    finally:
        ledger.close()


def test_a_row_changed_since_the_verification_is_not_shown_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, seq = _row_changed_after_verification(tmp_path, monkeypatch)
    for item in model["items"]:
        (row,) = [e for e in item["timeline"] if e["seq"] == seq]
        assert row["reason"] == "nothing happened here"
        assert row["signature_verified"] is False
        others = [e for e in item["timeline"] if e["seq"] != seq]
        assert others and all(e["signature_verified"] for e in others)


def test_a_failed_write_leaves_the_previous_report_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report is written into a temporary file as it is rendered: a disk that
    fills up midway gives one line and exit 3, the report already at ``--out``
    stays as it was, and no partial file is left."""
    ledger = build_golden_case(tmp_path, monkeypatch)
    ledger.close()
    out = tmp_path / "report.json"
    out.write_bytes(b"the earlier report\n")
    real = json_report._items

    def full_disk(items: Any, sink: Any) -> None:
        real(list(items)[:1], sink)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json_report, "_items", full_disk)
    proc = invoke_here("report", "--format", "json", "--out", out, "--case", "case")
    assert proc.returncode == 3
    assert proc.stderr == (f"custody: error: cannot write report {out}: No space left on device\n")
    assert out.read_bytes() == b"the earlier report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case", "report.json", "src"]


def test_cli_digest_is_the_written_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = build_golden_case(tmp_path, monkeypatch)
    ledger.close()
    for fmt in ("json", "csv"):
        out = tmp_path / f"r.{fmt}"
        proc = invoke_here("report", "--format", fmt, "--out", out, "--case", "case")
        assert proc.returncode == 1, proc.stderr
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        assert f"SHA-256 of the report: sha256:{digest}\n" in proc.stdout
        assert "2 item(s), verification FAILED (3 finding(s))" in proc.stdout
    proc = invoke_here("report", "--format", "json", "--out", "-", "--case", "case")
    digest = hashlib.sha256(proc.stdout.encode("utf-8")).hexdigest()
    assert json.loads(proc.stdout)["summary"]["failing_items"] == ["ITEM-2"]
    assert f"SHA-256 of the report: sha256:{digest}\n" in proc.stderr


@pytest.mark.parametrize("fmt", ["html", "pdf", "csv", "json"])
def test_progress_counts_every_item_once_per_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """The progress of a streamed report is that of its pass over every item: it
    ends at all items, not at the detail pages' count."""
    ledger = build_golden_case(tmp_path, monkeypatch)
    seen: list[tuple[int, int]] = []
    try:
        model = case_report(
            ledger, detail="auto", stream=True, progress=lambda d, t: seen.append((d, t))
        )
    finally:
        ledger.close()
    assert seen == []  # nothing is made before the renderer reads the items
    render(model, fmt)
    assert seen == [(1, 2), (2, 2)]
