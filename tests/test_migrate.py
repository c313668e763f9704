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
        "seq": int,
        "hash": str,
        "prev": str,
        "type": str,
        "time": str,
        "signer": str,
        "item": str,
        "body": str,
        "signature": str,
    },
    "identities": {
        "fingerprint": str,
        "name": str,
        "role": str,
        "public_key": str,
        "event_seq": int,
    },
    "artifacts": {
        "id": str,
        "n": int,
        "event_seq": int,
        "run": str,
        "outcome": str,
        "kind": str,
        "path_hex": str,
        "display_path": str,
        "size": int,
        "sha256": str,
        "mime": str,
    },
    "_custody_migrations": {"name": str, "applied_at": str},
    "event_items": {"item": str, "seq": int},
    "merkle_nodes": {"level": int, "idx": int, "hash": bytes},
    "imported_bundles": {
        "bundle": str,
        "source_case": str,
        "checkpoint": str,
        "keys": str,
        "items": str,
        "import_seq": int,
    },
    "imported_events": {
        "bundle": str,
        "seq": int,
        "hash": str,
        "signer": str,
        "body": str,
        "signature": str,
        "proof": str,
    },
}

EXPECTED_TRIGGERS = {
    f"{t}_no_{op}"
    for t in (
        "case_info",
        "events",
        "identities",
        "artifacts",
        "event_items",
        "merkle_nodes",
        "imported_bundles",
        "imported_events",
    )
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
    assert db["event_items"].pks == ["item", "seq"]
    assert db["merkle_nodes"].pks == ["level", "idx"]
    assert {i.name for i in db["events"].indexes} >= {"events_item", "events_type"}


def test_pragmas(ledger: Ledger) -> None:
    assert ledger.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert ledger.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert ledger.conn.execute("PRAGMA recursive_triggers").fetchone()[0] == 1


def test_every_migration_recorded_once(ledger: Ledger) -> None:
    names = [r[0] for r in ledger.conn.execute("SELECT name FROM _custody_migrations")]
    assert names == [name for name, _ in MIGRATIONS]
    assert migrate(ledger.conn) == []  # idempotent: nothing left to apply


@pytest.mark.parametrize(
    "table", ["events", "artifacts", "identities", "case_info", "event_items", "merkle_nodes"]
)
def test_append_only_triggers(ledger: Ledger, table: str) -> None:
    signer = Signer(Ed25519PrivateKey.generate(), "T", "tester")
    data = {"outcome": "directory", "run": "r", "path": {"hex": "2f", "display": "/"}}
    ledger.append(signer, [EventDraft("collect", data, True)])
    assert ledger.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= 1
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.conn.execute(f"DELETE FROM {table}")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        col = next(iter(EXPECTED_COLUMNS[table]))
        ledger.conn.execute(f"UPDATE {table} SET {col} = {col}")
    # a REPLACE removes the row it collides with: the DELETE trigger fires for it
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.conn.execute(f"INSERT OR REPLACE INTO {table} SELECT * FROM {table}")


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


def test_migration_002_backfills_items_and_tree(tmp_path: Path) -> None:
    """A ledger written before 002 gets event_items and the Merkle nodes back-filled."""
    from custody import merkle
    from custody.migrations import m001_initial

    led = Ledger.create(tmp_path / "case", "T-2", "backfill")
    signer = Signer(Ed25519PrivateKey.generate(), "T", "tester")
    artifact = {"outcome": "directory", "run": "r", "path": {"hex": "2f", "display": "/"}}
    events = led.append(signer, [EventDraft("collect", artifact, True) for _ in range(5)])
    # rebuild as a 001-only ledger holding the same rows
    old = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    m001_initial(old)
    old.execute(
        "CREATE TABLE _custody_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    old.execute("INSERT INTO _custody_migrations VALUES ('001_initial', 'x')")
    cols = "seq, hash, prev, type, time, signer, item, body, signature"
    old.executemany(
        f"INSERT INTO events ({cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (e.seq, e.hash, e.prev, e.type, e.time, e.signer, e.item, e.body, e.signature)
            for e in events
        ],
    )
    assert migrate(old) == ["002_items_and_tree", "003_imports"]
    items = sorted(old.execute("SELECT item, seq FROM event_items"))
    assert items == sorted((e.item, e.seq) for e in events if e.item)
    leaves = [merkle.leaf_hash(e.body.encode()) for e in events]
    from custody.ledger import StoredTree

    assert StoredTree(old).root() == merkle.root(leaves) == led.tree().root()
