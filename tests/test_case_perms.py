"""Issue 13, confidentiality of the case itself: the ledger names paths, people and
reasons, so a new case directory is 0700 and custody.db (with its -wal and -shm),
checkpoint.latest, checkpoint.kept-* and the lock files are 0600, whatever the umask.
An existing case is never chmodded: ``verify`` notes one others may read."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Case, Run, cli, make_case, ok_json

from custody.collect import _RunLock
from custody.ledger import Ledger
from custody.store import Store


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def collect_one(case: Case, tmp_path: Path, name: str = "auth.log") -> None:
    src = tmp_path / name
    src.write_text(f"{name}: Accepted publickey for svc\n")
    ok_json(case, "collect", "--reason", "suspected credential theft", src, "--json")


def test_new_case_is_the_owners_alone_whatever_the_umask(
    run: Run, tmp_path: Path, umask: int
) -> None:
    case = make_case(run, tmp_path)
    collect_one(case, tmp_path)
    d = case.dir
    assert mode(d) == 0o700
    assert mode(d / "store") == mode(d / "store" / "tmp") == 0o700
    for name in ("custody.db", "checkpoint.latest", "store/.writers.lock"):
        assert mode(d / name) == 0o600, (name, oct(mode(d / name)))
    assert not (d / "custody.db-wal").exists()  # merged and gone after the command

    # while the ledger is open, SQLite's write-ahead log and index exist: 0600 too
    ledger = Ledger.open(d)
    try:
        ledger.conn.execute("SELECT count(*) FROM events").fetchall()
        for name in ("custody.db-wal", "custody.db-shm"):
            assert mode(d / name) == 0o600, (name, oct(mode(d / name)))
    finally:
        ledger.close()

    # a collection's run lock
    with _RunLock(Store(d / "store"), "probe") as lock:
        assert mode(lock.path) == 0o600

    # a note the ledger does not extend is kept as checkpoint.kept-*; a new
    # checkpoint.latest is written beside it
    (d / "checkpoint.latest").write_text("not a checkpoint note\n")
    collect_one(case, tmp_path, "second.log")
    kept = sorted(d.glob("checkpoint.kept-*"))
    assert len(kept) == 1, kept
    assert mode(kept[0]) == mode(d / "checkpoint.latest") == 0o600
    assert mode(d) == 0o700 and mode(d / "custody.db") == 0o600


def test_checkpoint_copy_in_the_state_dir_is_private(run: Run, tmp_path: Path, umask: int) -> None:
    state = tmp_path / "state"
    run.env["CUSTODY_STATE_DIR"] = str(state)
    case = make_case(run, tmp_path)
    collect_one(case, tmp_path)
    (copy,) = state.glob("*/checkpoint.latest")
    assert mode(copy) == 0o600
    assert mode(copy.parent) == 0o700


def test_verify_notes_a_case_others_may_read_and_leaves_it_alone(
    case: Case, tmp_path: Path
) -> None:
    collect_one(case, tmp_path)
    d = case.dir
    assert ok_json(case, "verify", "--json")["notes"] == []
    d.chmod(0o755)
    (d / "custody.db").chmod(0o644)

    proc = cli(case, "verify", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["findings"] == []
    (note,) = [n for n in report["notes"] if "other local users may read" in n]
    assert "the case directory (mode 0755)" in note
    assert "custody.db (mode 0644)" in note
    assert f"chmod 700 {d}; chmod 600 {d}/custody.db*" in note

    text = cli(case, "verify")
    assert text.returncode == 0
    assert any(
        line.startswith("Note: ") and "chmod 700" in line for line in text.stdout.splitlines()
    ), text.stdout

    # custody never chmods a case it opens: a writing command leaves the modes
    collect_one(case, tmp_path, "second.log")
    assert mode(d) == 0o755 and mode(d / "custody.db") == 0o644

    # fixed as the note says: no note
    d.chmod(0o700)
    for p in d.glob("custody.db*"):
        p.chmod(0o600)
    assert ok_json(case, "verify", "--json")["notes"] == []


def test_default_key_file_is_the_users_alone_whatever_the_umask(
    run: Run, tmp_path: Path, umask: int
) -> None:
    """It says where the user's signing key lies: 0600 in a 0700 folder."""
    make_case(run, tmp_path)  # key new makes dana.pem the default
    cfg = Path(run.env["CUSTODY_CONFIG_DIR"])
    assert (cfg / "default-key").read_text() == f"{(tmp_path / 'dana.pem').resolve()}\n"
    assert mode(cfg / "default-key") == 0o600
    assert mode(cfg) == 0o700
    assert [p.name for p in cfg.iterdir()] == ["default-key"]  # no temporary file left


def test_kept_note_of_an_old_case_is_private(run: Run, tmp_path: Path, umask: int) -> None:
    """An older custody wrote checkpoint.latest 0644; a note kept aside is a hard
    link to it, so the link must not keep that mode."""
    case = make_case(run, tmp_path)
    collect_one(case, tmp_path)
    d = case.dir
    latest = d / "checkpoint.latest"
    latest.write_text("not a checkpoint note\n")
    latest.chmod(0o644)
    collect_one(case, tmp_path, "second.log")
    (kept,) = d.glob("checkpoint.kept-*")
    assert kept.read_text() == "not a checkpoint note\n"
    assert mode(kept) == 0o600
    assert mode(d / "checkpoint.latest") == 0o600
