"""Issue 14 leftovers: bundles carry the ``describe`` event of each exported store
object (ledger-format §6.6, bundle-format §6.1), verified like any event, and
`bundle verify` and bundle reports show the MIME type from it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, ok_json
from tampering import read_events, retag

TEXT = b"Jan 12 03:14:07 sshd: accepted password for root\n" * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def world(case: Case, tmp_path: Path) -> dict[str, Any]:
    """Two files collected (each typed by a describe event), ITEM-1 typed again
    (its object now has two describe events), then a bundle of ITEM-1 alone."""
    (tmp_path / "auth.log").write_bytes(TEXT)
    (tmp_path / "pic.png").write_bytes(PNG)
    case("collect", tmp_path / "auth.log", tmp_path / "pic.png", "--reason", "r", check=True)
    case("describe", "ITEM-1", check=True)
    log = ok_json(case, "log", "--json")
    described = [(e["seq"], json.loads(e["body"])["data"]) for e in log if e["type"] == "describe"]
    out = tmp_path / "b"
    case("bundle", "export", "ITEM-1", "--out", out, check=True)
    items = {i["id"]: i for i in ok_json(case, "list", "--json")}
    return {"bag": out, "described": described, "items": items}


def test_a_bundle_carries_the_latest_describe_event_of_its_objects(
    case: Case, world: dict[str, Any]
) -> None:
    sha1 = world["items"]["ITEM-1"]["sha256"]
    sha2 = world["items"]["ITEM-2"]["sha256"]
    of_item1 = [seq for seq, d in world["described"] if d["sha256"] == sha1]
    assert len(of_item1) == 2  # the test can fail: an earlier one exists
    rows = [(r["seq"], json.loads(r["body"])) for r in read_events(world["bag"])]
    carried = [(seq, b["data"]) for seq, b in rows if b["type"] == "describe"]
    assert [seq for seq, _ in carried] == [max(of_item1)]
    assert carried[0][1]["sha256"] == sha1 and carried[0][1]["mime"] == "text/plain"
    blob = b"".join(p.read_bytes() for p in world["bag"].rglob("*") if p.is_file())
    assert sha1.encode() in blob and sha2.encode() not in blob
    pub = case.key.with_suffix(".pub")
    proc = case("bundle", "verify", world["bag"], "--trust", pub, "--json")
    doc = json.loads(proc.stdout)
    assert (proc.returncode, doc["findings"]) == (0, [])
    assert doc["types"] == {
        "ITEM-1": {
            "mime": "text/plain",
            "description": carried[0][1]["description"],
            "describe_event": max(of_item1),
        }
    }
    text = case("bundle", "verify", world["bag"], "--trust", pub).stdout
    assert f"  ITEM-1: type text/plain (ASCII text), describe event {max(of_item1)}\n" in text


def test_the_bundle_report_shows_the_type(
    case: Case, world: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    pub = case.key.with_suffix(".pub")
    case(
        "report", "--bundle", world["bag"], "--trust", pub, "--format", "json", "--out", out,
        check=True,
    )  # fmt: skip
    (item,) = json.loads(out.read_text())["items"]
    assert (item["id"], item["mime"]) == ("ITEM-1", "text/plain")


def test_a_forged_type_is_caught_and_not_shown(
    case: Case, world: dict[str, Any], tmp_path: Path
) -> None:
    """Someone forging the bundle rewrites the describe event's MIME type (and its
    hash, the manifests): the signature fails, and no type is shown from it."""
    bag = tmp_path / "forged"
    shutil.copytree(world["bag"], bag)
    path = bag / "custody" / "events.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    for ln in lines:
        if '"type":"describe"' in ln["body"]:
            ln["body"] = ln["body"].replace('"mime":"text/plain"', '"mime":"image/png"')
            ln["hash"] = "sha256:" + hashlib.sha256(ln["body"].encode()).hexdigest()
            seq = ln["seq"]
    path.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines))
    retag(bag)
    proc = case("bundle", "verify", bag, "--trust", case.key.with_suffix(".pub"), "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert ("signature", f"event {seq}") in {(f["kind"], f["subject"]) for f in doc["findings"]}
    assert doc["types"] == {}
    assert "image/png" not in proc.stdout.replace('"mime":"image/png"', "")


def test_import_records_the_bundles_verified_type(
    case: Case, world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lab records the type the bundle's verified describe event gives, as it
    is, without typing the object again (libmagic is not run for it); an object
    the case already types is left alone."""
    from custody import describe

    def no_libmagic(*args: Any, **kw: Any) -> Any:
        raise AssertionError("libmagic run for an object the bundle types")

    monkeypatch.setattr(describe, "describe_objects", no_libmagic)
    lab = tmp_path / "lab"
    case("init", lab, "--case-id", "LAB-1", "--title", "lab", check=True)
    pub = case.key.with_suffix(".pub")
    case("bundle", "import", world["bag"], "--trust", pub, "--case", lab, check=True)
    log = ok_json(case, "log", "--json", "--case", lab)
    typed = [json.loads(e["body"])["data"] for e in log if e["type"] == "describe"]
    (carried,) = [
        json.loads(r["body"])["data"]
        for r in read_events(world["bag"])
        if '"type":"describe"' in r["body"]
    ]
    assert typed == [carried]
    (item,) = ok_json(case, "list", "--json", "--case", lab)
    assert item["mime"] == "text/plain"
    assert case("verify", "--case", lab).returncode == 0
    again = tmp_path / "again"
    case("bundle", "export", "ITEM-1", "--out", again, check=True)
    case("bundle", "import", again, "--trust", pub, "--case", lab, check=True)
    log = ok_json(case, "log", "--json", "--case", lab)
    assert [e["type"] for e in log].count("describe") == 1  # already typed: nothing more


def test_import_types_what_the_bundle_does_not(case: Case, tmp_path: Path) -> None:
    """A bundle without describe events (custody before they travelled, or a
    collection with --no-describe): the lab types its objects itself."""
    (tmp_path / "a.log").write_bytes(TEXT)
    case("collect", tmp_path / "a.log", "--reason", "r", "--no-describe", check=True)
    case("bundle", "export", "ITEM-1", "--out", tmp_path / "b", check=True)
    assert '"type":"describe"' not in (tmp_path / "b" / "custody" / "events.jsonl").read_text()
    lab = tmp_path / "lab"
    case("init", lab, "--case-id", "LAB-1", "--title", "lab", check=True)
    pub = case.key.with_suffix(".pub")
    case("bundle", "import", tmp_path / "b", "--trust", pub, "--case", lab, check=True)
    (item,) = ok_json(case, "list", "--json", "--case", lab)
    assert item["mime"] == "text/plain"
