"""Pin the ledger schema that the migrations produce (llm's test_migrate style)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.keys import Signer
from custody.ledger import EventDraft, Ledger
from custody.migrations import MIGRATIONS, migrate

EXPECTED_COLUMNS = {
    "case_info": {"id": int, "case_id": str, "header": str, "hash": str},
    "events": {
        "seq": int, "hash": str, "prev": str, "type": str, "time": str, "signer": str,
        "item": str, "body": str, "signature": str,
    },
    "identities": {
        "fingerprint": str, "name": str, "role": str, "public_key": str, "event_seq": int,
    },
    "artifacts": {
        "id": str, "n": int, "event_seq": int, "run": str, "outcome": str, "kind": str,
        "path_hex": str, "display_path": str, "size": int, "sha256": str, "mime": str,
    },
    "_custody_migrations": {"name": str, "applied_at": str},
}

EXPECTED_TRIGGERS = {
    f"{t}_no_{op}"
    for t in ("case_info", "events", "identities", "artifacts")
    for op in ("update", "delete")
}


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.create(tmp_path / "case", "T-1", "schema test")


def test_final_schema(ledger: Ledger) -> None:
    db = sqlite_utils.Database(ledger.conn)
    assert set(db.table_names()) == set(EXPECTED_COLUMNS)
    for table, cols in EXPECTED_COLUMNS.items():
        assert db[table].columns_dict == cols, table
    assert {t.name for t in db.triggers} == EXPECTED_TRIGGERS
    assert db["events"].pks == ["seq"]
    assert db["artifacts"].pks == ["id"]


def test_pragmas(ledger: Ledger) -> None:
    assert ledger.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert ledger.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000


def test_every_migration_recorded_once(ledger: Ledger) -> None:
    names = [r[0] for r in ledger.conn.execute("SELECT name FROM _custody_migrations")]
    assert names == [name for name, _ in MIGRATIONS]
    assert migrate(ledger.conn) == []  # idempotent: nothing left to apply


@pytest.mark.parametrize("table", ["events", "artifacts", "identities", "case_info"])
def test_append_only_triggers(ledger: Ledger, table: str) -> None:
    signer = Signer(Ed25519PrivateKey.generate(), "T", "tester")
    artifact = {"run": "r", "outcome": "directory", "kind": "directory",
                "path_hex": "2f", "display_path": "/"}
    ledger.append(signer, [EventDraft("collect", {"outcome": "directory"}, True, artifact)])
    assert ledger.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= 1
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.conn.execute(f"DELETE FROM {table}")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.conn.execute(f"UPDATE {table} SET rowid = rowid")


def test_failed_migration_leaves_no_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration that fails half-way is rolled back together with its record."""
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half (x)")
        raise RuntimeError("boom")

    monkeypatch.setattr("custody.migrations.MIGRATIONS", [("001_broken", broken)])
    with pytest.raises(RuntimeError):
        migrate(conn)
    db = sqlite_utils.Database(conn)
    assert "half" not in db.table_names()
    assert list(conn.execute("SELECT name FROM _custody_migrations")) == []
