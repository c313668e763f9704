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
    # two recorded in the ledger + the file + the case folder's checkpoint.latest
    assert report["checkpoints_checked"] == 4
    assert (case / "checkpoint.latest").is_file()
    items = json.loads(run("list", "--json", "--case", case).stdout)
    raw = {bytes.fromhex(i["path_hex"]) for i in items}
    assert any(p.endswith(b"/notes-\xff\xfe.txt") for p in raw)
    show = json.loads(run("show", "ITEM-1", "--json", "--case", case).stdout)
    assert show["state"] == "sealed"
    assert show["custodian"] == "Demo Counsel (counsel)"
    assert show["handovers"][0]["release_signature_verified"] is True
    assert show["handovers"][0]["receipt_signature_verified"] is True
    # a second demo into the same place is refused, nothing overwritten
    again = run("demo", root)
    assert again.returncode == 2
    assert "already holds a demo" in again.stderr
