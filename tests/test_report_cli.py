"""`custody report`: scope, exit codes, the printed digest, the ledger state it names,
reports of a bundle, and bad input."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

from report_fixtures import ReportCase


def _digest_line(stdout: str) -> str:
    m = re.search(r"SHA-256 of the report: (sha256:[0-9a-f]{64})", stdout)
    assert m, stdout
    return m.group(1)


def test_printed_digest_is_the_files_and_the_ledger_state_is_named(report_case: ReportCase) -> None:
    proc, out = report_case.report("json")
    assert proc.returncode == 1  # ITEM-2 was tampered with: findings recorded, report written
    assert _digest_line(proc.stdout) == "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest()
    model = json.loads(out.read_text())
    state = model["ledger_state"]
    log = json.loads(report_case.run("log", "--json", check=True).stdout)
    assert state["size"] == len(log)
    assert state["head"] == log[-1]["hash"]
    assert f"made from the ledger at {len(log)} events, root {state['root']}" in proc.stdout
    # the root is the RFC 9162 tree head of the whole ledger: checkpoint agrees
    cp = json.loads(report_case.run("checkpoint", "--json", check=True).stdout)
    assert cp["size"] == state["size"]
    assert base64.b64decode(cp["root"]).hex() == state["root"]


def test_tampered_item_fails_and_the_other_is_intact(report_case: ReportCase) -> None:
    _, out = report_case.report("json")
    model = json.loads(out.read_text())
    assert model["verification"]["ok"] is False
    status = {i["id"]: i["integrity"]["ok"] for i in model["items"]}
    assert status == {"ITEM-1": True, "ITEM-2": False}
    item2 = next(i for i in model["items"] if i["id"] == "ITEM-2")
    assert {f["kind"] for f in item2["integrity"]["findings"]} == {"object-digest"}
    assert item2["digests"]["sha256"] == report_case.sha256["ITEM-2"]
    assert item2["verified_digests"]["sha256"] != report_case.sha256["ITEM-2"]
    steps = {s["step"]: s["ok"] for s in model["verification"]["steps"]}
    assert steps["stored bytes"] is False and steps["signatures"] is True


def test_one_item_report_has_only_that_item(report_case: ReportCase) -> None:
    _, out = report_case.report("json", "item-1")
    model = json.loads(out.read_text())
    assert [i["id"] for i in model["items"]] == ["ITEM-1"]
    assert model["scope"] == {"items": ["ITEM-1"], "all_items": False, "detail": "auto"}
    assert model["items"][0]["detail"] is True  # a named item has its detail
    item = model["items"][0]
    assert [e["type"] for e in item["timeline"]] == ["collect", "transfer", "receive", "seal"]
    (h,) = item["handovers"]
    assert (h["released_by"], h["received_by"]) == (
        "Dana Reyes (collector)",
        "Lee Okafor (counsel)",
    )
    assert h["release_signature_verified"] is True and h["receipt_signature_verified"] is True
    assert (h["reason"], h["location"]) == ("for counsel, review", "Room 4, HQ")


def test_report_to_stdout(report_case: ReportCase) -> None:
    proc = report_case.run("report", "--format", "json", "--out", "-")
    model = json.loads(proc.stdout)
    assert model["case"]["id"] == "2026-017"
    assert _digest_line(proc.stderr) == "sha256:" + hashlib.sha256(proc.stdout.encode()).hexdigest()


def test_reproducible_with_source_date_epoch(report_case: ReportCase) -> None:
    report_case.env["SOURCE_DATE_EPOCH"] = "1796000000"
    a = report_case.report("json")[1].read_bytes()
    b = report_case.report("json")[1].read_bytes()
    assert a == b
    assert json.loads(a)["generated"] == "2026-11-30T00:53:20.000000000Z"


def test_bad_input_one_line_exit_2(report_case: ReportCase, tmp_path: Path) -> None:
    for args in (["ITEM-99"], ["--bundle", tmp_path / "nope.tar"], ["--trust", "x"]):
        proc = report_case.run("report", *args, "--format", "json", "--out", tmp_path / "r.json")
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("custody: error:"), (
            proc.stderr
        )
        assert not (tmp_path / "r.json").exists()
    proc = report_case.run("report", "--format", "json", "--out", tmp_path / "no-dir" / "r.json")
    assert proc.returncode == 2 and "cannot write" in proc.stderr


def test_report_of_a_bundle(report_case: ReportCase, tmp_path: Path) -> None:
    bag = tmp_path / "to-counsel"
    report_case.run("bundle", "export", "ITEM-1", "--out", bag, check=True)
    proc = report_case.run(
        "report",
        "--bundle",
        bag,
        "--format",
        "json",
        "--out",
        tmp_path / "b.json",
        "--trust",
        report_case.root / "dana.pub",
        "--trust",
        report_case.root / "lee.pub",
        "--detail",
        "all",
    )
    assert proc.returncode == 0, proc.stderr
    model = json.loads((tmp_path / "b.json").read_text())
    assert model["source"]["kind"] == "bundle"
    other = report_case.run(
        "report", "ITEM-2", "--bundle", bag, "--format", "json", "--out", tmp_path / "x.json"
    )
    assert other.returncode == 2
    assert other.stderr == "custody: error: no such item in this bundle: ITEM-2\n"
    assert [i["id"] for i in model["items"]] == ["ITEM-1"]
    item = model["items"][0]
    assert item["digests"]["sha256"] == report_case.sha256["ITEM-1"]
    assert [e["type"] for e in item["timeline"]][:4] == ["collect", "transfer", "receive", "seal"]
    assert item["handovers"][0]["received_by"] == "Lee Okafor (counsel)"
    # a flipped payload byte in the bundle: the item fails in the report too
    payload = next((bag / "data" / "ITEM-1").iterdir())
    payload.chmod(0o644)
    data = bytearray(payload.read_bytes())
    data[-1] ^= 1
    payload.write_bytes(bytes(data))
    proc = report_case.run(
        "report", "--bundle", bag, "--format", "json", "--out", tmp_path / "c.json"
    )
    assert proc.returncode == 1
    model = json.loads((tmp_path / "c.json").read_text())
    assert model["items"][0]["integrity"]["ok"] is False
