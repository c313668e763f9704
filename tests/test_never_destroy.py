"""Never destroy evidence (issue 13, item 3).

Nothing custody does deletes a complete stored object that any event or import
named, or whose bytes match its name: orphan cleanup removes only temporary files
and records a complete unnamed object as kept; a purge spares an object an
imported item names; item numbers are never reused; every writing command merges
the write-ahead log and leaves a signed checkpoint note outside the database
(``checkpoint.latest`` in the case folder and in ``$CUSTODY_STATE_DIR``), which
plain ``verify`` checks, so lost events are a ``checkpoint`` finding.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import tampering
from conftest import Case, sha256sum, tool_digest


def _objects(case_dir: Path) -> dict[str, str]:
    """Every store object: relpath -> sha256sum of its bytes (coreutils)."""
    base = case_dir / "store"
    return {
        p.relative_to(base).as_posix(): sha256sum(p)
        for p in sorted((base / "sha256").rglob("*"))
        if p.is_file()
    }


def _verify(case: Case, *extra: str) -> dict[str, Any]:
    proc = case("verify", "--json", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def _kinds(report: dict[str, Any]) -> list[str]:
    return sorted(f["kind"] for f in report["findings"])


def _items(case: Case) -> list[int]:
    rows = json.loads(case("list", "--json", check=True).stdout)
    return sorted(int(r["id"].removeprefix("ITEM-")) for r in rows)


def _events(case: Case) -> list[dict[str, Any]]:
    """``log --json``, each with its signed body's ``data`` beside it."""
    out: list[dict[str, Any]] = json.loads(case("log", "--json", check=True).stdout)
    for e in out:
        e["data"] = json.loads(e["body"])["data"]
    return out


def _files(root: Path, tag: str, n: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = root / f"{tag}-{i}.txt"
        p.write_text(f"{tag} evidence file {i}\n")
        out.append(p)
    return out


def _drop_wal(db: Path) -> None:
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)


def _assert_whole(objects: dict[str, str], case_dir: Path) -> None:
    """Every object listed is still there, holding the bytes its name says."""
    now = _objects(case_dir)
    for rel, digest in objects.items():
        assert rel in now, f"store object {rel} was deleted"
        assert now[rel] == digest == rel.rsplit("/", 1)[1], rel


def test_every_writing_command_merges_the_wal_and_leaves_a_signed_note(
    case: Case, tmp_path: Path
) -> None:
    """A reader holding the database open keeps SQLite from merging the log when
    custody closes; custody merges it itself, so a copy of custody.db without its
    -wal has every event."""
    db = case.dir / "custody.db"
    hold = sqlite3.connect(db)
    try:
        hold.execute("SELECT count(*) FROM events").fetchone()
        case("collect", *_files(tmp_path / "src", "a", 3), "--reason", "r", check=True)
        copy = tmp_path / "copy"
        copy.mkdir()
        shutil.copy2(db, copy / "custody.db")
        shutil.copytree(case.dir / "store", copy / "store")
    finally:
        hold.close()
    n = len(_events(case))
    conn = sqlite3.connect(copy / "custody.db")
    try:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (n,)
    finally:
        conn.close()
    latest = (case.dir / "checkpoint.latest").read_text(encoding="utf-8")
    assert latest.splitlines()[:2] == ["custody/2026-017", str(n)]
    assert latest.splitlines()[4].startswith("— dana-reyes ")
    # no checkpoint event was recorded for it
    assert "checkpoint" not in [e["type"] for e in _events(case)]
    assert _verify(case)["ok"] is True


def test_lost_events_are_a_checkpoint_finding_and_collect_destroys_nothing(
    case: Case, tmp_path: Path
) -> None:
    # collects without describe events: this test counts the events lost with the ledger
    state = tmp_path / "state"
    case.run.env["CUSTODY_STATE_DIR"] = str(state)
    db = case.dir / "custody.db"
    case(
        "collect",
        *_files(tmp_path / "src", "a", 2),
        "--reason",
        "first",
        "--no-describe",
        check=True,
    )
    old = tmp_path / "custody.db.before"
    shutil.copy2(db, old)
    case(
        "collect",
        *_files(tmp_path / "src", "b", 3),
        "--reason",
        "second",
        "--no-describe",
        check=True,
    )
    assert _items(case) == [1, 2, 3, 4, 5]
    events_before = len(_events(case))
    objects = _objects(case.dir)
    assert len(objects) == 5
    notes = sorted(state.rglob("checkpoint.latest"))
    assert len(notes) == 1
    assert notes[0].read_text(encoding="utf-8").splitlines()[1] == str(events_before)

    # the ledger is replaced by the older copy: the last collect's events are gone
    _drop_wal(db)
    shutil.copy2(old, db)
    report = _verify(case)
    assert report["ok"] is False
    truncated = [f for f in report["findings"] if f["kind"] == "checkpoint"]
    assert {f["subject"] for f in truncated} == {
        str(case.dir / "checkpoint.latest"),
        str(notes[0]),
    }
    assert all("events were removed (truncated history)" in f["detail"] for f in truncated)
    unrecorded = sorted(f["subject"] for f in report["findings"] if f["kind"] != "checkpoint")
    assert _kinds(report) == ["checkpoint"] * 2 + ["object-unrecorded"] * 3
    assert len(unrecorded) == 3 and set(unrecorded) < set(objects)

    # the case folder's note alone gone: the state directory's copy still tells
    (case.dir / "checkpoint.latest").rename(tmp_path / "moved-away")
    assert [f["subject"] for f in _verify(case)["findings"] if f["kind"] == "checkpoint"] == [
        str(notes[0])
    ]
    (tmp_path / "moved-away").rename(case.dir / "checkpoint.latest")

    # the next collect deletes no object and reuses no item number
    case(
        "collect",
        *_files(tmp_path / "src", "c", 1),
        "--reason",
        "third",
        "--no-describe",
        check=True,
    )
    _assert_whole(objects, case.dir)
    assert len(_objects(case.dir)) == 6
    items = _items(case)
    assert items[:2] == [1, 2] and len(items) == 3 and items[2] > 5
    cleanup = [e for e in _events(case) if e["type"] == "store.cleanup"]
    assert len(cleanup) == 1
    data = cleanup[0]["data"]
    assert data["removed"] == []
    assert sorted(k["store"] for k in data["kept"]) == unrecorded
    assert all(k["store"].endswith(k["sha256"]) for k in data["kept"])
    assert data["next_item"] == items[2]

    # the lost history stays a finding: the older note was kept, not overwritten
    kept = sorted(case.dir.glob("checkpoint.kept-*"))
    assert len(kept) == 1 and kept[0].read_text(encoding="utf-8").splitlines()[1] == str(
        events_before
    )
    report = _verify(case)
    assert report["ok"] is False
    assert "checkpoint" in _kinds(report)
    assert "object-unrecorded" in _kinds(report)
    # and a later collect still gives a new number
    case(
        "collect",
        *_files(tmp_path / "src", "d", 1),
        "--reason",
        "fourth",
        "--no-describe",
        check=True,
    )
    assert _items(case)[-1] == items[2] + 1
    _assert_whole(objects, case.dir)


def test_edited_import_tables_then_collect_delete_nothing(case: Case, tmp_path: Path) -> None:
    src = tmp_path / "host1"
    src.mkdir()
    (src / "a.txt").write_text("alpha from host1\n")
    (src / "b.txt").write_text("beta from host1\n")
    host = tmp_path / "hostcase"
    case.run("init", host, "--case-id", "HOST-1", "--title", "host", check=True)
    case.run(
        "collect", "--reason", "test", src / "a.txt", src / "b.txt", "--case", host, check=True
    )
    bundle = tmp_path / "host1.tar"
    case.run("bundle", "export", "--all", "--out", bundle, "--case", host, check=True)
    case("bundle", "import", bundle, "--trust", case.key.with_suffix(".pub"), check=True)
    objects = _objects(case.dir)
    assert len(objects) == 2
    assert _verify(case)["ok"] is True

    db = case.dir / "custody.db"
    tampering.bypass(
        db,
        ("imported_bundles", "imported_events"),
        "DELETE FROM imported_events; DELETE FROM imported_bundles;",
    )
    case("collect", *_files(tmp_path / "src", "x", 1), "--reason", "r", check=True)
    _assert_whole(objects, case.dir)
    assert not [e for e in _events(case) if e["type"] == "store.cleanup"]


def test_purge_spares_an_object_an_imported_item_names(case: Case, tmp_path: Path) -> None:
    src = tmp_path / "host1"
    src.mkdir()
    shared = src / "shared.txt"
    shared.write_text("the same bytes on two machines\n")
    host = tmp_path / "hostcase"
    case.run("init", host, "--case-id", "HOST-1", "--title", "host", check=True)
    case.run("collect", "--reason", "test", shared, "--case", host, check=True)
    bundle = tmp_path / "host1.tar"
    case.run("bundle", "export", "--all", "--out", bundle, "--case", host, check=True)
    case("bundle", "import", bundle, "--trust", case.key.with_suffix(".pub"), check=True)
    case("collect", shared, "--reason", "local copy", check=True)
    objects = _objects(case.dir)
    assert len(objects) == 1
    case("event", "dispose", "ITEM-1", "--reason", "court order", "--purge", "--yes", check=True)
    _assert_whole(objects, case.dir)
    assert _verify(case)["ok"] is True


def test_only_incomplete_temp_files_are_cleaned(case: Case, tmp_path: Path) -> None:
    """A dead copy in store/tmp/ goes; a complete object nobody named stays, and is
    recorded as kept; a file in the store whose bytes are not its name stays too."""
    case("collect", *_files(tmp_path / "src", "a", 1), "--reason", "r", check=True)
    store = case.dir / "store"
    data = b"copied, never recorded\n"
    probe = tmp_path / "probe"
    probe.write_bytes(data)
    digest = sha256sum(probe)
    complete = store / "sha256" / digest[:2] / digest
    complete.parent.mkdir(parents=True, exist_ok=True)
    complete.write_bytes(data)
    complete.chmod(0o444)
    temp = store / "tmp" / "ingest-4242-0123456789ab"
    temp.parent.mkdir(parents=True, exist_ok=True)
    temp.write_bytes(b"half a cop")
    objects = _objects(case.dir)

    report = _verify(case)
    assert _kinds(report) == ["object-unrecorded"]
    assert report["findings"][0]["subject"] == complete.relative_to(store).as_posix()

    case("collect", *_files(tmp_path / "src", "b", 1), "--reason", "r", check=True)
    assert not temp.exists()
    _assert_whole(objects, case.dir)
    assert tool_digest("sha256sum", complete) == digest
    (cleanup,) = [e for e in _events(case) if e["type"] == "store.cleanup"]
    assert cleanup["data"]["kept"] == [
        {"store": complete.relative_to(store).as_posix(), "sha256": digest, "size": len(data)}
    ]
    assert (cleanup["data"]["temp_files"], cleanup["data"]["temp_bytes"]) == (1, 10)
    assert cleanup["data"]["removed"] == []
    # one item number reserved for the object nobody named
    assert cleanup["data"]["next_item"] == 3
    assert _items(case) == [1, 3]
    # recorded once: the next collect does not record it again
    case("collect", *_files(tmp_path / "src", "c", 1), "--reason", "r", check=True)
    assert len([e for e in _events(case) if e["type"] == "store.cleanup"]) == 1
    assert _items(case) == [1, 3, 4]
    _assert_whole(objects, case.dir)


def test_state_dir_from_the_config_file_and_a_damaged_note_is_a_finding(
    case: Case, tmp_path: Path
) -> None:
    """The state directory may be named in ``<config dir>/state-dir``; a note there
    that is not a signed checkpoint is a ``checkpoint`` finding, not bad input."""
    state = tmp_path / "offsite"
    config = Path(case.run.env["CUSTODY_CONFIG_DIR"])
    (config / "state-dir").write_text(f"{state}\n")
    case("collect", *_files(tmp_path / "src", "a", 1), "--reason", "r", check=True)
    (note_file,) = sorted(state.rglob("checkpoint.latest"))
    assert note_file.parent.name.startswith("2026-017-")
    assert note_file.read_bytes() == (case.dir / "checkpoint.latest").read_bytes()
    assert _verify(case)["ok"] is True

    note_file.write_text("not a checkpoint\n", encoding="utf-8")
    report = _verify(case)
    assert [(f["kind"], f["subject"]) for f in report["findings"]] == [
        ("checkpoint", str(note_file))
    ]
