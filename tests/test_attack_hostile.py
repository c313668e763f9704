"""Hostile option values and fields (r17): digits that are not ASCII digits
("²".isdigit() and "٣".isdigit() are true in Python, and int("²") raises) in
places today's code and its neighbours read numbers: a transfer id, an event
seq for ``prove``, ``SOURCE_DATE_EPOCH`` for a report, ``CUSTODY_READERS`` for
collect, an item id in a collect event edited without the key.  Each: one line
on stderr with the documented exit code, or a finding; never an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Case, ok_json, one_error_line
from tampering import bypass, q, sqlite_ok

SUPERSCRIPT = "\u00b2"  # "²"


@pytest.fixture
def one(case: Case, tmp_path: Path) -> Case:
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    case("collect", tmp_path / "a.txt", "--reason", "r", check=True)
    case("checkpoint", check=True)
    return case


@pytest.mark.parametrize("tid", [f"TRANSFER-{SUPERSCRIPT}", f"TRANSFER-1{SUPERSCRIPT}"])
def test_a_transfer_id_in_other_digits(one: Case, tid: str) -> None:
    proc = one("receive", tid)
    assert proc.returncode == 2
    assert (
        one_error_line(proc) == f"custody: error: not a transfer id: {tid!r} (expected TRANSFER-N)"
    )


def test_an_event_seq_in_other_digits(one: Case) -> None:
    cp = next(p for p in one.dir.iterdir() if p.name.startswith("checkpoint"))
    proc = one("prove", "inclusion", SUPERSCRIPT, "--checkpoint", cp)
    assert proc.returncode == 2, proc.stderr
    assert one_error_line(proc) == f"custody: error: no such item: {SUPERSCRIPT}"


def test_source_date_epoch_in_other_digits(one: Case, tmp_path: Path) -> None:
    """Not a number: ignored, as an empty or non-numeric value is (the time is now)."""
    out = tmp_path / "r.json"
    proc = one("report", "--format", "json", "--out", out, env={"SOURCE_DATE_EPOCH": SUPERSCRIPT})
    assert proc.returncode == 0, proc.stderr
    assert not json.loads(out.read_text())["generated"].startswith("1970-01-01T00:00:02")


def test_custody_readers_in_other_digits(one: Case, tmp_path: Path) -> None:
    """Not a number: the default number of readers, as for any other non-number."""
    (tmp_path / "b.txt").write_bytes(b"beta\n")
    proc = one("collect", tmp_path / "b.txt", "--reason", "r", env={"CUSTODY_READERS": SUPERSCRIPT})
    assert proc.returncode == 0, proc.stderr
    assert [i["id"] for i in ok_json(one, "list", "--json")] == ["ITEM-1", "ITEM-2"]


@pytest.mark.parametrize("item", [f"ITEM-{SUPERSCRIPT}", "ITEM-\u0663", "ITEM-" + "9" * 5000])
def test_a_collect_events_item_in_other_digits(one: Case, item: str) -> None:
    """Someone without the key renames ITEM-1 in its collect event (and in the
    items table): the finding a user sees, exit 1, never an internal error."""
    db = one.dir / "custody.db"
    seq = int(sqlite_ok(db, "SELECT event_seq FROM artifacts WHERE id = 'ITEM-1';"))
    body = sqlite_ok(db, f"SELECT body FROM events WHERE seq = {seq};").rstrip("\n")
    bypass(
        db,
        "events",
        f"UPDATE events SET body = {q(body.replace('ITEM-1', item))} WHERE seq = {seq};",
    )
    proc = one("verify", "--json")
    assert proc.returncode == 1, proc.stderr
    kinds = {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]}
    assert ("event-hash", f"event {seq}") in kinds


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO event_items (item, seq) VALUES ('ITEM-1', 'x');",
        "INSERT INTO event_items (item, seq) VALUES ('ITEM-1', 1.5);",
        "INSERT INTO event_items (item, seq) VALUES (x'00ff', 2);",
    ],
    ids=["seq text", "seq real", "item blob"],
)
def test_an_index_row_of_hostile_type(one: Case, sql: str) -> None:
    """A row someone without the key adds to the event_items index: a finding."""
    sqlite_ok(one.dir / "custody.db", sql)
    proc = one("verify", "--json")
    assert proc.returncode == 1, proc.stderr
    kinds = {f["kind"] for f in json.loads(proc.stdout)["findings"]}
    assert "index" in kinds
