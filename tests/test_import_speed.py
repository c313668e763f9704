"""The shortcuts that make bundle import faster (issue 14's benchmark) keep its
guarantees.  An import takes the event lines verify parsed from the staged copy
(not events.jsonl read again), and its signature checks run on worker processes
batch by batch while the lines are read, their verdicts settled later.  Three
attackers: one swapping the bundle's signed files after they were staged, one
forging a signature that only the workers check, and one with write access to
the staged copy (a tag file there is never read again)."""

# ruff: noqa: F811 - the fixtures template and w come from test_import_trust
from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import one_error_line
from tampering import read_events, retag, write_events
from test_import_trust import World, template, w  # noqa: F401 - the shared fixtures

from custody import eventcheck
from custody.bundle import verify as bundle_verify


def trust(w: World) -> tuple[str, Path]:
    return ("--trust", w.pub("dana"))


def imported_lines(w: World) -> list[tuple[int, str, str, str]]:
    with sqlite3.connect(w.root / "lab" / "custody.db") as conn:
        return sorted(conn.execute("SELECT seq, hash, body, signature FROM imported_events"))


def on_workers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Signature checks in batches of 2 on worker processes; returns the batch sizes sent."""
    sent: list[int] = []

    class Pool(bundle_verify.ProcessPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            assert fn is eventcheck.verify_batch
            sent.append(len(args[0]))
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(bundle_verify, "_SIG_BATCH", 2)
    fork = multiprocessing.get_context("fork")
    monkeypatch.setattr(bundle_verify, "signature_pool", lambda _n: Pool(2, mp_context=fork))
    return sent


def test_the_event_lines_imported_are_the_staged_ones(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundle's events.jsonl and checkpoint are swapped for another case's genuine
    ones after staging: the lab records the lines verified, byte for byte."""
    from custody.bundle import importer

    b1 = w.root / "b1"
    genuine = read_events(b1)

    def swap(original: Path, _staged: Path) -> None:
        for name in ("events.jsonl", "checkpoint.txt", "bundle.json"):
            (original / "custody" / name).chmod(0o600)
            shutil.copyfile(w.root / "forged" / "custody" / name, original / "custody" / name)

    monkeypatch.setattr(importer, "_after_staging", swap)
    w.lab_json("bundle", "import", b1, *trust(w))
    assert imported_lines(w) == sorted(
        (r["seq"], r["hash"], r["body"], r["signature"]) for r in genuine
    )
    assert all(json.loads(r[2])["signer"] == w.fp("dana") for r in imported_lines(w))
    assert w.lab("verify").returncode == 0


@pytest.mark.parametrize("line", [0, -1])
def test_a_signature_only_the_workers_check_is_refused(
    w: World, monkeypatch: pytest.MonkeyPatch, line: int
) -> None:
    """A forged signature (first or last line, so in the first batch sent or in the
    short batch sent last) is refused with the signature finding, nothing written."""
    b1 = w.root / "b1"
    rows = read_events(b1)
    assert len(rows) >= 4  # two batches at least: the worker path
    rows[line]["signature"] = base64.b64encode(hashlib.sha512(b"forged").digest()).decode()
    write_events(b1, rows)
    retag(b1)
    sent = on_workers(monkeypatch)
    before = (w.rows(), w.store())
    proc = w.lab("bundle", "import", b1, *trust(w))
    assert proc.returncode == 1
    assert sum(sent) == len(rows) and max(sent) == 2
    line_out = one_error_line(proc)
    assert f"first: [signature] event {rows[line]['seq']}: " in line_out, line_out
    assert line_out.endswith("nothing was imported")
    assert (w.rows(), w.store()) == before


def test_a_clean_bundle_checked_on_workers_imports_as_serially(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = on_workers(monkeypatch)
    w.lab_json("bundle", "import", w.root / "b1", *trust(w))
    assert sum(sent) == len(read_events(w.root / "b1"))
    assert imported_lines(w) == sorted(
        (r["seq"], r["hash"], r["body"], r["signature"]) for r in read_events(w.root / "b1")
    )
    assert w.lab("verify").returncode == 0


def test_a_staged_events_file_rewritten_after_its_check_is_never_read(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tag files are held in memory once staged: nothing named events.jsonl or
    checkpoint.txt that appears in the staging folder is read by the import."""
    from custody.bundle import importer

    def plant(_original: Path, staged: Path) -> None:
        for name in ("events.jsonl", "checkpoint.txt"):
            (staged / name).write_bytes((w.root / "forged" / "custody" / name).read_bytes())

    monkeypatch.setattr(importer, "_after_staging", plant)
    w.lab_json("bundle", "import", w.root / "b1", *trust(w))
    assert imported_lines(w) == sorted(
        (r["seq"], r["hash"], r["body"], r["signature"]) for r in read_events(w.root / "b1")
    )
    assert w.lab("verify").returncode == 0


@pytest.mark.parametrize("target", ["outside", "sibling"])
def test_a_link_to_a_folder_in_the_bundle_is_refused(w: World, target: str) -> None:
    """Folders are walked from their listed type without a stat call: a symbolic
    link to a folder (outside the bag, or another item's) is still refused as a
    link, exit 2, nothing written."""
    b1 = w.root / "b1"
    items = sorted(p for p in (b1 / "data").iterdir() if p.is_dir())
    if target == "outside":
        (w.root / "elsewhere").mkdir()
        (w.root / "elsewhere" / "f.txt").write_bytes(b"outside the bag\n")
        dest = w.root / "elsewhere"
    else:
        dest = items[0]
    (b1 / "data" / "ITEM-99").symlink_to(dest, target_is_directory=True)
    before = (w.rows(), w.store())
    proc = w.lab("bundle", "import", b1, *trust(w))
    assert proc.returncode == 2
    assert one_error_line(proc) == "custody: error: unsafe entry 'data/ITEM-99': symbolic link"
    assert (w.rows(), w.store()) == before
    assert not list((w.root / "lab").glob(".import-*"))


def test_undescribed_reads_only_the_describe_events_of_the_objects_asked(w: World) -> None:
    """An import asks which of its objects no describe event types (SQLite names
    each event's object; only those events are parsed): objects typed are left
    out, others kept in order, and a describe event someone without the key
    rewrote into text that is not JSON (or whose data is not a type) types nothing."""
    from tampering import bypass

    from custody.describe import undescribed
    from custody.ledger import Ledger

    w.lab_json("bundle", "import", w.root / "b1", *trust(w))
    genuine = hashlib.sha256(b"the genuine evidence\n").hexdigest()
    second = hashlib.sha256(b"second file\n").hexdigest()
    other = "f" * 64
    with Ledger.open(w.root / "lab") as ledger:
        assert undescribed(ledger, [other, genuine, second]) == [other]
        seqs = dict(
            (json.loads(b)["data"]["sha256"], s)
            for s, b in ledger.conn.execute("SELECT seq, body FROM events WHERE type='describe'")
        )
    assert set(seqs) == {genuine, second}
    db = w.root / "lab" / "custody.db"
    bypass(db, "events", f"UPDATE events SET body = 'not json' WHERE seq = {seqs[genuine]};")
    bad = json.dumps({"type": "describe", "data": {"sha256": second, "mime": 1}})
    bypass(db, "events", f"UPDATE events SET body = '{bad}' WHERE seq = {seqs[second]};")
    with Ledger.open(w.root / "lab") as ledger:
        assert undescribed(ledger, [other, genuine, second]) == [other, genuine, second]
        assert undescribed(ledger, []) == []
