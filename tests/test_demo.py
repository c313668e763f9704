"""`custody demo` (the README's first command) runs the whole story and leaves a
case that verifies, with both checkpoints, from the outside."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Run


def test_demo_runs_the_whole_story(run: Run, tmp_path: Path) -> None:
    root = tmp_path / "demo"
    proc = run("demo", root)
    assert proc.returncode == 0, proc.stderr
    assert "OK: ledger and store verified, no problems found." in proc.stdout
    assert "released by Demo Collector, received by Demo Counsel, digests match" in proc.stdout
    case = root / "case-DEMO-001"
    report = json.loads(
        run("verify", "--json", "--case", case, "--checkpoint", root / "checkpoint-1.txt").stdout
    )
    assert report["ok"] is True
    # three recorded in the ledger (the export's too) + the file + checkpoint.latest
    assert report["checkpoints_checked"] == 5
    assert (case / "checkpoint.latest").is_file()
    items = json.loads(run("list", "--json", "--case", case).stdout)
    raw = {bytes.fromhex(i["path_hex"]) for i in items}
    assert any(p.endswith(b"/notes-\xff\xfe.txt") for p in raw)
    show = json.loads(run("show", "ITEM-1", "--json", "--case", case).stdout)
    assert show["state"] == "sealed"
    assert show["custodian"] == "Demo Counsel (counsel)"
    assert show["handovers"][0]["release_signature_verified"] is True
    assert show["handovers"][0]["receipt_signature_verified"] is True
    # counsel's part: the bundle verifies offline with the collector's public key,
    # and the copy with one flipped byte does not (exit 1, the finding shown)
    assert "VERIFIED: 9 items, 21 signed events, every signer vouched for" in proc.stdout
    assert "   NOT VERIFIED (exit 1): 3 problem(s) found\n" in proc.stdout
    assert "     [payload-digest] ITEM-1: sha256: collected as " in proc.stdout
    pub = root / "demo-collector.pub"
    verified = run("bundle", "verify", root / "bundle-DEMO-001", "--trust", pub)
    assert verified.returncode == 0 and verified.stdout.startswith("VERIFIED: ")
    tampered = run("bundle", "verify", root / "bundle-DEMO-001-tampered", "--json", "--trust", pub)
    assert tampered.returncode == 1
    assert {f["kind"] for f in json.loads(tampered.stdout)["findings"]} == {"payload-digest"}
    # the lab's part: imported with trust, first-class, verified and reported
    lab = root / "case-LAB-001"
    lab_items = json.loads(run("list", "--json", "--case", lab).stdout)
    assert len(lab_items) == 9 and all(i["source"] for i in lab_items)
    assert {i["sha256"] for i in lab_items} == {i["sha256"] for i in items}
    assert json.loads(run("verify", "--json", "--case", lab).stdout)["ok"] is True
    (imp,) = [  # the import's bundle-level event (then one import event per item)
        json.loads(e["body"])["data"]
        for e in json.loads(run("log", "--json", "--case", lab).stdout)
        if e["type"] == "import" and "trust" in json.loads(e["body"])["data"]
    ]
    assert set(imp["trust"]["signers"].values()) == {"trusted"}
    assert (root / "report-lab.html").read_text().count("DEMO-001@") >= 9
    # a second demo into the same place is refused, nothing overwritten
    again = run("demo", root)
    assert again.returncode == 2
    assert "already holds a demo" in again.stderr
