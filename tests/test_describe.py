"""Typing per store object (issue 16 §3): MIME type and libmagic description in
their own signed ``describe`` events, after the copy phase, with ``custody
describe``, and at import; old collect events that carry a MIME type still verify
and show it."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Case, cli, ok_json, one_error_line, sha256sum
from tampering import bypass, q

from custody import describe
from custody.keys import load_signer
from custody.ledger import COLLECT_EVENT, EventDraft, Ledger

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8ffff3f0005fe02fea7d6a4f20000000049454e44ae426082"
)


def bodies(case: Case, type_: str | None = None) -> list[dict[str, Any]]:
    with Ledger.open(case.dir, write=False) as ledger:
        out = [json.loads(ev.body) for ev in ledger.events()]
    return [b for b in out if type_ is None or b["type"] == type_]


def tree(root: Path) -> Path:
    ev = root / "ev"
    (ev / "sub").mkdir(parents=True)
    (ev / "a.txt").write_text("hello, world\n")
    (ev / "sub" / "same.txt").write_text("hello, world\n")  # one object for two items
    (ev / "pic.png").write_bytes(PNG)
    (ev / "empty").write_bytes(b"")
    return ev


def by_path(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {Path(it["path"]).name: it for it in items}


def test_collect_types_each_object_once_in_its_own_event(case: Case, tmp_path: Path) -> None:
    ev = tree(tmp_path)
    summary = ok_json(case, "collect", "--reason", "r", "--json", ev)
    assert summary["described"] == 3 and summary["undescribed"] == []
    collects = bodies(case, COLLECT_EVENT)
    assert all("mime" not in b["data"] and "magic" not in b["data"] for b in collects)
    described = bodies(case, "describe")
    txt = sha256sum(ev / "a.txt")
    png = sha256sum(ev / "pic.png")
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert {b["data"]["sha256"]: b["data"]["mime"] for b in described} == {
        txt: "text/plain",
        png: "image/png",
        empty: "inode/x-empty",
    }
    for b in described:  # one object, nothing about any item
        assert set(b["data"]) == {"sha256", "mime", "description", "libmagic"}
        assert b["data"]["libmagic"] == describe.libmagic_version() != "unknown"
    # after the run's end event: typing never holds up the collection record
    end = max(b["seq"] for b in bodies(case, "collection.end"))
    assert min(b["seq"] for b in described) > end
    with sqlite3.connect(case.dir / "custody.db") as db:
        rows = db.execute("SELECT item FROM events WHERE type = 'describe'").fetchall()
        assert rows == [(None,)] * 3
        assert db.execute(
            "SELECT count(*) FROM event_items e JOIN events v USING (seq) WHERE v.type = 'describe'"
        ).fetchone() == (0,)
    items = by_path(ok_json(case, "list", "--json"))
    assert items["a.txt"]["mime"] == items["same.txt"]["mime"] == "text/plain"
    assert items["pic.png"]["mime"] == "image/png"
    assert items["pic.png"]["magic"].startswith("PNG image data, 1 x 1")
    assert items["sub"]["mime"] is None  # a directory has no object
    shown = ok_json(case, "show", "--json", items["pic.png"]["id"])
    assert (shown["mime"], shown["magic"][:14]) == ("image/png", "PNG image data")
    text = cli(case, "show", items["a.txt"]["id"]).stdout
    assert "Mime:      text/plain" in text and "Magic:     ASCII text" in text
    assert cli(case, "verify").returncode == 0


def test_no_describe_then_describe_command(case: Case, tmp_path: Path) -> None:
    ev = tree(tmp_path)
    summary = ok_json(case, "collect", "--reason", "r", "--json", "--no-describe", ev)
    assert summary["described"] == 0 and bodies(case, "describe") == []
    assert {it["mime"] for it in ok_json(case, "list", "--json")} == {None}
    assert ok_json(case, "describe", "--json") == {"described": 3, "problems": []}
    assert ok_json(case, "describe", "--json") == {"described": 0, "problems": []}
    items = by_path(ok_json(case, "list", "--json"))
    assert items["empty"]["mime"] == "inode/x-empty"
    # ITEMS: those items' objects, again (one event for two items of one object)
    out = ok_json(case, "describe", "--json", items["a.txt"]["id"], items["same.txt"]["id"])
    assert out == {"described": 1, "problems": []}
    assert ok_json(case, "describe", "--json", "--all")["described"] == 3
    assert len(bodies(case, "describe")) == 7
    proc = cli(case, "describe", "--all", items["a.txt"]["id"])
    assert proc.returncode == 2 and "alternatives" in one_error_line(proc)
    proc = cli(case, "describe", items["sub"]["id"])
    assert proc.returncode == 2
    assert one_error_line(proc).endswith(f"{items['sub']['id']} has no stored object to describe")
    proc = cli(case, "describe", "ITEM-99")
    assert proc.returncode == 2 and one_error_line(proc).endswith("no such item: ITEM-99")
    proc = cli(case, "describe", "ITEM-1\x1b[2J")  # a hostile argument: refused as text
    assert proc.returncode == 2 and "\x1b" not in one_error_line(proc)
    assert cli(case, "verify").returncode == 0


def test_describe_without_libmagic_exits_3_naming_it(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ev = tree(tmp_path)
    monkeypatch.setitem(sys.modules, "magic", None)  # import magic raises ImportError
    summary = ok_json(case, "collect", "--reason", "r", "--json", ev)
    assert summary["described"] == 0 and "libmagic1" in summary["untyped"]
    proc = cli(case, "describe")
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert "libmagic" in line and "python-magic" in line and "libmagic1" in line
    assert bodies(case, "describe") == []


def test_many_objects_are_typed_in_worker_processes(case: Case, tmp_path: Path) -> None:
    ev = tmp_path / "many"
    ev.mkdir()
    n = describe.POOL_MIN + 6
    for i in range(n):
        (ev / f"f{i:03}.txt").write_text(f"line {i}\n")
    (ev / "f000.txt").write_bytes(PNG)
    summary = ok_json(case, "collect", "--reason", "r", "--json", ev)
    assert summary["described"] == n
    described = {b["data"]["sha256"]: b["data"]["mime"] for b in bodies(case, "describe")}
    assert described[sha256sum(ev / "f000.txt")] == "image/png"
    assert described[sha256sum(ev / f"f{n - 1:03}.txt")] == "text/plain"


def _old_style_case(case: Case, tmp_path: Path) -> None:
    """A collect event as custody 0.1.0 wrote it: the MIME type and libmagic's
    description in the collect event itself, no describe event."""
    f = tmp_path / "old.txt"
    f.write_text("typed the old way\n")
    ok_json(case, "collect", "--reason", "r", "--json", "--no-describe", f)
    (data,) = [b["data"] for b in bodies(case, COLLECT_EVENT)]
    signer = load_signer(case.key, PASSPHRASE.encode())
    old = {k: v for k, v in data.items() if k != "item"}
    old["mime"], old["magic"] = "text/x-old", "old description"
    with Ledger.open(case.dir) as ledger:
        ledger.append(signer, [EventDraft(COLLECT_EVENT, old, new_item=True)])


def test_old_collect_events_with_mime_verify_and_show_it(case: Case, tmp_path: Path) -> None:
    _old_style_case(case, tmp_path)
    assert cli(case, "verify").returncode == 0
    items = {it["id"]: it for it in ok_json(case, "list", "--json")}
    assert items["ITEM-2"]["mime"] == "text/x-old" and items["ITEM-2"]["magic"] == "old description"
    assert items["ITEM-1"]["mime"] is None
    assert ok_json(case, "show", "--json", "ITEM-2")["mime"] == "text/x-old"
    # a describe event of the same object: the old item keeps what its own event says
    assert ok_json(case, "describe", "--json")["described"] == 1
    items = {it["id"]: it for it in ok_json(case, "list", "--json")}
    assert items["ITEM-2"]["mime"] == "text/x-old" and items["ITEM-1"]["mime"] == "text/plain"
    out = tmp_path / "r.json"
    assert cli(case, "report", "--format", "json", "--out", out).returncode == 0
    rep = {it["id"]: it for it in json.loads(out.read_text())["items"]}
    assert (
        rep["ITEM-2"]["mime"] == "text/x-old" and rep["ITEM-2"]["description"] == "old description"
    )
    assert rep["ITEM-1"]["mime"] == "text/plain" and rep["ITEM-1"]["description"] == "ASCII text"


def test_forged_describe_event_is_found_and_not_shown(case: Case, tmp_path: Path) -> None:
    """Write access to the case, no key: an edited describe event fails its hash
    and signature, and the report (which verifies in the same run) shows no type
    from it."""
    ev = tree(tmp_path)
    ok_json(case, "collect", "--reason", "r", "--json", ev)
    png = next(b for b in bodies(case, "describe") if b["data"]["mime"] == "image/png")
    body = json.dumps(png, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    with sqlite3.connect(case.dir / "custody.db") as db:
        (stored,) = db.execute("SELECT body FROM events WHERE seq = ?", (png["seq"],)).fetchone()
    assert stored == body
    forged = stored.replace('"image/png"', '"text/plain"')
    bypass(
        case.dir / "custody.db",
        "events",
        f"UPDATE events SET body = {q(forged)} WHERE seq = {png['seq']};",
    )
    proc = cli(case, "verify", "--json")
    assert proc.returncode == 1
    kinds = {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]}
    assert ("signature", f"event {png['seq']}") in kinds
    out = tmp_path / "r.json"
    assert cli(case, "report", "--format", "json", "--out", out).returncode == 1
    rep = by_path(json.loads(out.read_text())["items"])
    assert rep["pic.png"]["mime"] is None  # the forged event's claim is not shown


def test_describe_event_naming_more_than_its_object_is_refused_by_verify(
    case: Case, tmp_path: Path
) -> None:
    """A key holder's hand-made describe event that names an item too: verify
    reports its body (a describe event names one object only)."""
    f = tmp_path / "x.txt"
    f.write_text("x\n")
    ok_json(case, "collect", "--reason", "r", "--json", f)
    signer = load_signer(case.key, PASSPHRASE.encode())
    data = {**bodies(case, "describe")[0]["data"], "items": ["ITEM-1"]}
    with Ledger.open(case.dir) as ledger:
        (ev,) = ledger.append(signer, [EventDraft("describe", data)])
    proc = cli(case, "verify", "--json")
    assert proc.returncode == 1
    found = [f for f in json.loads(proc.stdout)["findings"] if f["subject"] == f"event {ev.seq}"]
    assert [(f["kind"], f["detail"]) for f in found] == [
        ("event-body", "describe: names more than one object's type")
    ]
    assert (
        describe.check_data({"sha256": "A" * 64, "mime": "x", "description": "y", "libmagic": "5"})
        is not None
    )


def test_import_types_objects_that_lack_a_description(case: Case, tmp_path: Path) -> None:
    ev = tree(tmp_path)
    ok_json(case, "collect", "--reason", "r", "--json", "--no-describe", ev)
    bundle = tmp_path / "b.zip"
    assert cli(case, "bundle", "export", "--all", "--out", bundle).returncode == 0
    lab = tmp_path / "lab"
    assert case.run("init", lab, "--case-id", "LAB-1", "--title", "lab").returncode == 0
    lab_case = Case(dir=lab, key=case.key, run=case.run)
    proc = cli(lab_case, "bundle", "import", bundle, "--trust", case.key.with_suffix(".pub"))
    assert proc.returncode == 0, proc.stderr
    described = {b["data"]["sha256"]: b["data"]["mime"] for b in bodies(lab_case, "describe")}
    assert described[sha256sum(ev / "pic.png")] == "image/png" and len(described) == 3
    items = by_path(ok_json(lab_case, "list", "--json"))
    assert items["pic.png"]["mime"] == "image/png"
    assert cli(lab_case, "verify").returncode == 0
