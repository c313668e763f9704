"""bundle import: verify first, then merge; idempotent; refused bundles write
nothing; the case's verify re-checks what was imported."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from conftest import Case


def _trust(case: Case) -> list[str]:
    """--trust with the collector's (the source case owner's) public key."""
    return ["--trust", str(case.key.with_suffix(".pub"))]


def _rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(db)
    try:
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}"))
            for t in ("events", "imported_bundles", "imported_events")
        }
    finally:
        conn.close()


def _store_files(case_dir: Path) -> set[str]:
    return {str(p.relative_to(case_dir)) for p in (case_dir / "store").rglob("*") if p.is_file()}


def test_round_trip_into_a_fresh_case(case: Case, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "b.bin").write_bytes(os.urandom(3000))
    case("collect", tmp_path / "a.txt", tmp_path / "b.bin", "--reason", "r", check=True)
    bundle = tmp_path / "host1.tar"
    case("bundle", "export", "--all", "--out", bundle, check=True)
    assert case("bundle", "verify", bundle, *_trust(case)).returncode == 0

    lab = tmp_path / "lab"
    case.run("init", lab, "--case-id", "LAB-1", "--title", "lab", check=True)
    out = json.loads(
        case.run(
            "bundle", "import", bundle, "--json", "--case", lab, *_trust(case), check=True
        ).stdout
    )
    assert out[0]["already_imported"] is False
    assert out[0]["events"] > 0
    imported = {i["source_item"]: i for i in out[0]["items"]}
    src_items = json.loads(case("list", "--json", check=True).stdout)
    for it in src_items:
        assert imported[it["id"]]["sha256"] == it["sha256"]
        if it["sha256"]:
            obj = lab / "store" / imported[it["id"]]["store"]
            assert obj.read_bytes() == Path(it["path"]).read_bytes()
    report = json.loads(case.run("verify", "--json", "--case", lab).stdout)
    assert report["ok"] is True, report["findings"]
    log = json.loads(case.run("log", "--json", "--case", lab, check=True).stdout)
    # then the imported objects' types (the lab types them itself: its own describe events)
    stored = {it["sha256"] for it in src_items if it["sha256"]}
    # one import event for the bundle, then one per item (none names another)
    assert [e["type"] for e in log] == ["case.open", "import"] + ["import"] * len(src_items) + [
        "describe"
    ] * len(stored)
    head = json.loads(log[1]["body"])["data"]
    assert head["import"] == "IMPORT-1" and "items" not in head
    members = [json.loads(e["body"])["data"] for e in log[2 : 2 + len(src_items)]]
    assert [m["source_item"] for m in members] == [it["id"] for it in src_items]
    assert {m["import"] for m in members} == {"IMPORT-1"}

    # the same bundle again: nothing changes
    before = (_rows(lab / "custody.db"), _store_files(lab))
    again = json.loads(
        case.run(
            "bundle", "import", bundle, "--json", "--case", lab, *_trust(case), check=True
        ).stdout
    )
    assert again[0]["already_imported"] is True
    assert (_rows(lab / "custody.db"), _store_files(lab)) == before

    # an imported object altered later: the case's verify says so
    obj = next(lab / "store" / i["store"] for i in out[0]["items"] if i.get("store"))
    obj.chmod(0o644)
    obj.write_bytes(b"swapped")
    report = json.loads(case.run("verify", "--json", "--case", lab).stdout)
    assert report["ok"] is False
    assert [f["kind"] for f in report["findings"]] == ["object-digest"]


def test_a_bundle_that_fails_verification_is_refused(case: Case, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha\n")
    case("collect", "--reason", "test", tmp_path / "a.txt", check=True)
    bundle = tmp_path / "b"
    case("bundle", "export", "ITEM-1", "--out", bundle, check=True)
    payload = next((bundle / "data" / "ITEM-1").iterdir())
    payload.chmod(0o644)
    payload.write_text("tampered\n")
    lab = tmp_path / "lab"
    case.run("init", lab, "--case-id", "LAB-2", "--title", "lab", check=True)
    before = (_rows(lab / "custody.db"), _store_files(lab))
    proc = case.run("bundle", "import", bundle, "--case", lab, *_trust(case))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "failed verification" in proc.stderr and "nothing was imported" in proc.stderr
    assert (_rows(lab / "custody.db"), _store_files(lab)) == before
    shutil.rmtree(bundle)
