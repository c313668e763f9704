"""A ledger custody did not make, or made by a newer custody, is refused before
anything is written to it (issue 15): ``verify`` and every command that only reads
open the ledger read-only (SQLite ``mode=ro``); every command refuses an empty or
foreign ``custody.db``, a schema migration it does not know and a case header whose
``v`` or ``rules`` it does not know with exit 2 and one line, and the file is left
byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import Case, cli, one_error_line
from tampering import bypass, q

from custody.ledger import Ledger, is_event_version, is_known_rules

#: every command that only reads the case, and two that record
READERS = [
    ["verify"],
    ["verify", "--quick", "--json"],
    ["list"],
    ["log"],
    ["show", "ITEM-1"],
    ["key", "list"],
    ["report", "--format", "json", "--out", "-"],
]
WRITERS = [
    ["checkpoint"],
    ["event", "access", "ITEM-1", "--reason", "look"],
]


def _snapshot(case_dir: Path) -> dict[str, str]:
    """The digest of every file in the case folder (custody.db first of all)."""
    return {
        str(p.relative_to(case_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(case_dir.rglob("*"))
        if p.is_file() and not p.name.startswith("custody.db-")
    }


def _merged(db: Path) -> None:
    """Merge the write-ahead log into custody.db, so its bytes are the whole ledger."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()


def _refused_untouched(case: Case, cmd: list[str], expect: str) -> None:
    before = _snapshot(case.dir)
    proc = cli(case, *cmd)
    assert proc.returncode == 2, (cmd, proc.stdout, proc.stderr)
    line = one_error_line(proc)
    assert expect in line, (cmd, line)
    assert _snapshot(case.dir) == before, cmd


@pytest.fixture
def collected(case: Case) -> Case:
    ev = case.dir.parent / "ev.txt"
    ev.write_bytes(b"evidence\n")
    proc = cli(case, "collect", ev, "--reason", "seized", "--no-selftest")
    assert proc.returncode == 0, proc.stderr
    _merged(case.dir / "custody.db")
    return case


@pytest.mark.parametrize("cmd", READERS + WRITERS, ids=lambda c: " ".join(c))
def test_empty_custody_db_is_refused_and_left_empty(case: Case, cmd: list[str]) -> None:
    """An empty custody.db was given the whole custody schema by ``verify``."""
    db = case.dir / "custody.db"
    for side in ("custody.db-wal", "custody.db-shm"):
        (case.dir / side).unlink(missing_ok=True)
    db.write_bytes(b"")
    _refused_untouched(case, cmd, "is not a custody ledger (an empty database")
    assert db.read_bytes() == b""
    assert not (case.dir / "custody.db-wal").exists()


@pytest.mark.parametrize("cmd", READERS + WRITERS, ids=lambda c: " ".join(c))
def test_foreign_database_is_refused_and_left_alone(case: Case, cmd: list[str]) -> None:
    """A database of something else (rollback journal, one table) stays exactly so:
    custody neither adds its tables nor switches it to WAL mode."""
    db = case.dir / "custody.db"
    for p in case.dir.glob("custody.db*"):
        p.unlink()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.execute("INSERT INTO recipes VALUES ('bread')")
    conn.commit()
    conn.close()
    _refused_untouched(case, cmd, "is not a custody ledger (a database of something else")
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("recipes",)]
    finally:
        conn.close()


@pytest.mark.parametrize("cmd", READERS + WRITERS, ids=lambda c: " ".join(c))
def test_unknown_migration_is_refused_before_writing(collected: Case, cmd: list[str]) -> None:
    db = collected.dir / "custody.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT INTO _custody_migrations VALUES ('004_from_the_future', 'x')")
    conn.close()
    _merged(db)
    _refused_untouched(
        collected, cmd, "was made by a newer custody (schema migration 004_from_the_future"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("v", 2), ("v", True), ("v", "1"), ("rules", 3), ("rules", True)],
)
@pytest.mark.parametrize("cmd", [["verify"], ["log"], ["checkpoint"]], ids=" ".join)
def test_unknown_header_version_is_refused_before_writing(
    collected: Case, cmd: list[str], field: str, value: object
) -> None:
    """A case header with ``"v": 2`` (or ``true``, which Python takes for 1) or rules
    this custody does not know."""
    db = collected.dir / "custody.db"
    conn = sqlite3.connect(db)
    (header,) = conn.execute("SELECT header FROM case_info").fetchone()
    conn.close()
    h = json.loads(header)
    h[field] = value
    bypass(db, "case_info", f"UPDATE case_info SET header = {q(json.dumps(h))};")
    _merged(db)
    _refused_untouched(collected, cmd, "this case was made by a newer custody (header v=")


def test_readers_leave_the_ledger_byte_for_byte(collected: Case) -> None:
    """A healthy case: every command that only reads leaves custody.db as it was
    (they open it with SQLite mode=ro)."""
    db = collected.dir / "custody.db"
    before = db.read_bytes()
    for cmd in READERS:
        proc = cli(collected, *cmd)
        assert proc.returncode == 0, (cmd, proc.stderr)
        assert db.read_bytes() == before, cmd


def test_reader_ledger_refuses_to_record(collected: Case) -> None:
    """The library refuses to record through a ledger opened for reading."""
    from custody.errors import UsageError

    with Ledger.open(collected.dir, write=False) as ledger:
        assert ledger.read_only and ledger.for_reading
        with pytest.raises(UsageError, match="only reads the case"):
            ledger.require_writable()


def test_reader_refuses_an_older_schema_writer_upgrades_it(collected: Case) -> None:
    """A ledger missing a migration this custody knows: a reader says how to upgrade
    it (and writes nothing); a command that records applies the migration."""
    db = collected.dir / "custody.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DELETE FROM _custody_migrations WHERE name = '003_imports'")
    for t in ("imported_events", "imported_bundles"):
        for op in ("update", "delete"):
            conn.execute(f"DROP TRIGGER {t}_no_{op}")
        conn.execute(f"DROP TABLE {t}")
    conn.close()
    _merged(db)
    _refused_untouched(collected, ["verify"], "has an older schema (missing 003_imports)")
    proc = cli(collected, "checkpoint")
    assert proc.returncode == 0, proc.stderr
    assert cli(collected, "verify").returncode == 0


@pytest.mark.parametrize(
    ("value", "ok"), [(1, True), (True, False), (1.0, False), ("1", False), (3, False)]
)
def test_version_values(value: object, ok: bool) -> None:
    assert is_event_version(value) is ok
    assert is_known_rules(value) is ok
    assert is_known_rules(2) and not is_known_rules(False)
