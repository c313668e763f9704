"""SQLite errors become exit codes by their result code (``sqlite_errorcode``), in
one place (custody.errors.sqlite_error_class), never by matching message text: a
locked ledger and a read-only one exit 3, a file that is not a database exits 1.

Runs the CLI in-process (conftest.invoke_here)."""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import invoke_here, ok_here, one_error_line

import custody.ledger
import custody_cli.verify_cmds
from custody.errors import (
    EXIT_INTEGRITY,
    EXIT_OPERATIONAL,
    CorruptLedgerError,
    LedgerLockedError,
    OperationalError,
    sqlite_error_class,
)
from custody.ledger import Ledger


@pytest.fixture
def case(custody_cwd: dict[str, str], tmp_path: Path) -> Path:
    ok_here(
        "key", "new", "--name", "Dana Reyes", "--role", "collector", "--out", tmp_path / "dana.pem"
    )
    d = tmp_path / "case"
    ok_here("init", d, "--case-id", "2026-017", "--title", "Payroll server breach")
    (tmp_path / "f.txt").write_text("evidence\n")
    ok_here(
        "collect", "--reason", "test", tmp_path / "f.txt", "--no-selftest", "--quiet", "--case", d
    )
    return d


@pytest.fixture
def write_lock(case: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the ledger's write lock."""
    other = sqlite3.connect(case / "custody.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    yield other
    other.execute("ROLLBACK")
    other.close()


def _real_error(sql_setup: str, sql: str, tmp_path: Path) -> sqlite3.Error:
    db = tmp_path / "probe.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(sql_setup)
    conn.close()
    ro = sqlite3.connect(
        "file:" + urllib.parse.quote(str(db)) + "?mode=ro", uri=True, isolation_level=None
    )
    try:
        with pytest.raises(sqlite3.Error) as caught:
            ro.execute(sql)
    finally:
        ro.close()
    return caught.value


# -- the mapping ---------------------------------------------------------------------


def test_classes_by_result_code(tmp_path: Path) -> None:
    readonly = _real_error("CREATE TABLE t (x)", "INSERT INTO t VALUES (1)", tmp_path)
    assert readonly.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY
    assert sqlite_error_class(readonly) is OperationalError

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, " * 100)
    with pytest.raises(sqlite3.DatabaseError) as notadb:
        sqlite3.connect(garbage).execute("SELECT * FROM sqlite_master")
    assert notadb.value.sqlite_errorcode == sqlite3.SQLITE_NOTADB
    assert sqlite_error_class(notadb.value, OperationalError) is CorruptLedgerError

    db = tmp_path / "busy.db"
    a = sqlite3.connect(db, isolation_level=None, timeout=0)
    b = sqlite3.connect(db, isolation_level=None, timeout=0)
    a.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as busy:
        b.execute("BEGIN IMMEDIATE")
    a.execute("ROLLBACK")
    a.close()
    b.close()
    assert busy.value.sqlite_errorcode == sqlite3.SQLITE_BUSY
    assert sqlite_error_class(busy.value) is LedgerLockedError

    # any other code, or none at all, is the caller's default
    with pytest.raises(sqlite3.OperationalError) as syntax:
        sqlite3.connect(":memory:").execute("SELEKT 1")
    assert syntax.value.sqlite_errorcode == sqlite3.SQLITE_ERROR
    assert sqlite_error_class(syntax.value, OperationalError) is OperationalError
    assert sqlite_error_class(syntax.value) is CorruptLedgerError
    assert sqlite_error_class(sqlite3.ProgrammingError("closed"), OperationalError) is (
        OperationalError
    )


@pytest.mark.parametrize(
    ("text", "code", "exit_code"),
    [
        ("database is locked", sqlite3.SQLITE_CORRUPT, EXIT_INTEGRITY),
        ("file is not a database", sqlite3.SQLITE_BUSY, EXIT_OPERATIONAL),
        ("disk I/O error", sqlite3.SQLITE_NOTADB, EXIT_INTEGRITY),
        ("database disk image is malformed", sqlite3.SQLITE_IOERR_SHORT_READ, EXIT_OPERATIONAL),
        ("unable to open database file", sqlite3.SQLITE_CANTOPEN, EXIT_OPERATIONAL),
    ],
)
def test_the_code_decides_not_the_message(
    case: Path, monkeypatch: pytest.MonkeyPatch, text: str, code: int, exit_code: int
) -> None:
    """An SQLite error that escapes the library is mapped by the CLI's one handler
    with the same function, whatever its message says."""
    error = sqlite3.OperationalError(text)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]

    def fail(*_a: object, **_k: object) -> None:
        raise error

    monkeypatch.setattr(custody_cli.verify_cmds, "verify_ledger", fail)
    r = invoke_here("verify", "--case", case)
    assert r.returncode == exit_code
    line = one_error_line(r)
    assert text in line
    if exit_code == EXIT_INTEGRITY:
        assert "ledger is unreadable or corrupt" in line
    else:
        assert "cannot use the ledger" in line


# -- real ledgers ---------------------------------------------------------------------


def test_locked_ledger_exits_3(
    case: Path, write_lock: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(custody.ledger, "BUSY_TIMEOUT_MS", 50)
    r = invoke_here("event", "note", "ITEM-1", "--reason", "r", "--case", case)
    assert r.returncode == 3
    assert one_error_line(r) == (
        "custody: error: ledger is locked by another writer (waited 0s): database is locked"
    )
    # readers are not blocked (WAL)
    assert ok_here("verify", "--quick", "--case", case).returncode == 0


def test_read_only_ledger_exits_3(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ledger SQLite refuses to write (SQLITE_READONLY) although custody took it
    for writable: an operational failure, not an integrity problem."""
    real_connect = custody.ledger._connect

    def read_only_connect(db_path: Path, *, read_only: bool = False) -> sqlite3.Connection:
        conn = real_connect(db_path, read_only=read_only)
        conn.close()
        uri = "file:" + urllib.parse.quote(str(db_path.resolve())) + "?mode=ro"
        return sqlite3.connect(uri, uri=True, isolation_level=None)

    monkeypatch.setattr(custody.ledger, "_connect", read_only_connect)
    r = invoke_here("event", "note", "ITEM-1", "--reason", "r", "--case", case)
    assert r.returncode == 3
    line = one_error_line(r)
    assert "readonly database" in line
    monkeypatch.undo()
    with Ledger.open(case) as ledger:  # nothing was written
        assert "note" not in [e.type for e in ledger.events()]


def test_garbage_ledger_exits_1(case: Path) -> None:
    db = case / "custody.db"
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    db.write_bytes(b"not a database at all\n" * 512)
    for args in (["verify"], ["list"], ["show", "ITEM-1"], ["log"]):
        r = invoke_here(*args, "--case", case)
        assert r.returncode == 1, (args, r.stderr)
        assert one_error_line(r) == (
            f"custody: error: ledger {db} is unreadable: file is not a database"
        )
