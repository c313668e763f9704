"""Versioned schema migrations of the ledger, each atomic with its record.

Every migration runs inside one ``BEGIN IMMEDIATE`` transaction together with the
``INSERT`` into ``_custody_migrations`` that records it: either both happen or
neither does (the sqlite-utils migrations pattern).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from custody.canonical import now_rfc3339
from custody.errors import NotACaseError, UsageError
from custody.merkle import TreeCache, leaf_hash

Migration = tuple[str, Callable[[sqlite3.Connection], None]]

_APPEND_ONLY_TABLES = ("case_info", "events", "artifacts", "identities")


def _append_only_triggers(conn: sqlite3.Connection, table: str) -> None:
    for op in ("UPDATE", "DELETE"):
        conn.execute(
            f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'custody ledger is append-only: "
            f"{op} on {table} refused'); END"
        )


def m001_initial(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE case_info (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            case_id TEXT NOT NULL,
            header TEXT NOT NULL,
            hash TEXT NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            prev TEXT NOT NULL,
            type TEXT NOT NULL,
            time TEXT NOT NULL,
            signer TEXT NOT NULL,
            item TEXT,
            body TEXT NOT NULL,
            signature TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX events_item ON events(item)")
    conn.execute(
        """CREATE TABLE identities (
            fingerprint TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            public_key TEXT NOT NULL,
            event_seq INTEGER NOT NULL REFERENCES events(seq)
        )"""
    )
    conn.execute(
        """CREATE TABLE artifacts (
            id TEXT PRIMARY KEY,
            n INTEGER NOT NULL UNIQUE,
            event_seq INTEGER NOT NULL UNIQUE REFERENCES events(seq),
            run TEXT NOT NULL,
            outcome TEXT NOT NULL,
            kind TEXT NOT NULL,
            path_hex TEXT NOT NULL,
            display_path TEXT NOT NULL,
            size INTEGER,
            sha256 TEXT,
            mime TEXT
        )"""
    )
    conn.execute("CREATE INDEX artifacts_sha256 ON artifacts(sha256)")
    for table in _APPEND_ONLY_TABLES:
        _append_only_triggers(conn, table)


def m002_items_and_tree(conn: sqlite3.Connection) -> None:
    """Events may concern many items (hand-overs); the Merkle tree's complete
    subtrees are stored so proofs need O(log n) lookups.  Both are derived from
    the events (verify re-derives them) and back-filled here."""

    conn.execute(
        "CREATE TABLE event_items (item TEXT NOT NULL, seq INTEGER NOT NULL"
        " REFERENCES events(seq), PRIMARY KEY (item, seq)) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE merkle_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL,"
        " hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX events_type ON events(type)")
    conn.execute(
        "INSERT INTO event_items (item, seq) SELECT item, seq FROM events WHERE item IS NOT NULL"
    )
    tree = TreeCache(
        leaf_hash(body.encode("utf-8") if isinstance(body, str) else bytes(body))
        for (body,) in conn.execute("SELECT body FROM events ORDER BY seq")
    )
    conn.executemany(
        "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)", tree.complete_nodes()
    )
    for table in ("event_items", "merkle_nodes"):
        _append_only_triggers(conn, table)


def m003_imports(conn: sqlite3.Connection) -> None:
    """Bundles merged into the case: the collector's events kept byte for byte
    with their own chain and checkpoint, beside the case's own ledger."""
    conn.execute(
        """CREATE TABLE imported_bundles (
            bundle TEXT PRIMARY KEY,
            source_case TEXT NOT NULL,
            checkpoint TEXT NOT NULL,
            keys TEXT NOT NULL,
            items TEXT NOT NULL,
            import_seq INTEGER NOT NULL REFERENCES events(seq)
        )"""
    )
    conn.execute(
        """CREATE TABLE imported_events (
            bundle TEXT NOT NULL REFERENCES imported_bundles(bundle),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL,
            signer TEXT NOT NULL,
            body TEXT NOT NULL,
            signature TEXT NOT NULL,
            proof TEXT NOT NULL,
            PRIMARY KEY (bundle, seq)
        )"""
    )
    for table in ("imported_bundles", "imported_events"):
        _append_only_triggers(conn, table)


MIGRATIONS: list[Migration] = [
    ("001_initial", m001_initial),
    ("002_items_and_tree", m002_items_and_tree),
    ("003_imports", m003_imports),
]


def ensure_migrations_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _custody_migrations ("
        "name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )


def applied(conn: sqlite3.Connection) -> set[str]:
    if not applied_table(conn):
        return set()
    return {row[0] for row in conn.execute("SELECT name FROM _custody_migrations")}


def pending(conn: sqlite3.Connection, db_path: object) -> list[str]:
    """The migrations this custody knows that the ledger has not had, found by
    reading only.  Refuses (exit 2) a database custody did not make (empty, or one
    without custody's migration record) and one made by a newer custody (a
    migration this version does not know), before anything is written to it."""
    if not applied_table(conn):
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        what = "an empty database" if not tables else "a database of something else"
        raise NotACaseError(
            f"{db_path} is not a custody ledger ({what}, without custody's schema);"
            " custody leaves it as it is"
        )
    done = applied(conn)
    known = [name for name, _ in MIGRATIONS]
    unknown = sorted(done - set(known))
    if unknown:
        raise UsageError(
            f"ledger {db_path} was made by a newer custody (schema migration"
            f" {', '.join(unknown)}, unknown to this version); this version will"
            " neither read nor write it"
        )
    return [name for name in known if name not in done]


def applied_table(conn: sqlite3.Connection) -> bool:
    """True when the database has custody's migration record."""
    return bool(
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_custody_migrations'"
        ).fetchone()
    )


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every pending migration, each in its own transaction with its record.
    Returns the names applied.  ``conn`` must be in autocommit mode."""
    done: list[str] = []
    try:
        if applied(conn) >= {name for name, _ in MIGRATIONS}:
            return done  # up to date: no write lock taken
    except sqlite3.OperationalError:
        pass  # read-only or locked; fall through and let BEGIN IMMEDIATE wait
    conn.execute("BEGIN IMMEDIATE")
    try:
        ensure_migrations_table(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    for name, fn in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            already = conn.execute(
                "SELECT 1 FROM _custody_migrations WHERE name = ?", (name,)
            ).fetchone()
            if already:
                conn.execute("ROLLBACK")
                continue
            fn(conn)
            conn.execute(
                "INSERT INTO _custody_migrations (name, applied_at) VALUES (?, ?)",
                (name, now_rfc3339()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(name)
    return done
