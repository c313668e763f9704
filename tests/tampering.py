"""What anyone holding a case's files or a bundle can do to them, for the tests that
check custody catches it (one copy of each, shared by the tamper, lifecycle, rules
and bundle tests):

* SQL through the ``sqlite3`` command-line tool, with the append-only triggers
  dropped and then put back exactly as they were;
* an event appended through the ledger's own writer past every check the CLI makes;
* a bundle's unsigned tag manifest recomputed, its event lines read and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from custody.keys import Signer
from custody.ledger import EventDraft, Ledger

# -- the ledger file ----------------------------------------------------------------------


def sqlite(db: Path, sql: str) -> subprocess.CompletedProcess[str]:
    """``sqlite3 DB SQL`` (the command-line tool, not the library's connection)."""
    return subprocess.run(["sqlite3", str(db), sql], capture_output=True, text=True)


def sqlite_ok(db: Path, sql: str) -> str:
    """:func:`sqlite`, which must succeed; its stdout."""
    proc = sqlite(db, sql)
    assert proc.returncode == 0, f"sqlite3 failed: {proc.stderr}"
    return proc.stdout


def q(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def trigger_sql(db: Path, name: str) -> str:
    sql = sqlite_ok(db, f"SELECT sql FROM sqlite_master WHERE type='trigger' AND name={q(name)};")
    sql = sql.strip()
    assert sql.startswith("CREATE TRIGGER"), f"trigger {name} not found"
    return sql


def bypass(db: Path, tables: str | tuple[str, ...], statements: str) -> None:
    """Run ``statements`` with the append-only triggers of ``tables`` dropped, then
    recreate the triggers exactly as they were."""
    names = [
        f"{t}_no_{op}"
        for t in ((tables,) if isinstance(tables, str) else tables)
        for op in ("update", "delete")
    ]
    saved = [trigger_sql(db, n) for n in names]
    sqlite_ok(
        db,
        "BEGIN;"
        + "".join(f"DROP TRIGGER {n};" for n in names)
        + statements
        + "".join(f"{s};" for s in saved)
        + "COMMIT;",
    )
    assert [trigger_sql(db, n) for n in names] == saved


def append_unchecked(ledger: Ledger, signer: Signer, type_: str, data: dict[str, Any]) -> int:
    """Append an event signed by ``signer`` through the ledger's own writer, skipping
    every check the CLI makes (revocation, identity registration, custody rules):
    a correctly chained, correctly signed, correctly indexed event.  Returns its seq."""
    ledger._begin()
    seq, prev = ledger._tail()
    draft = EventDraft(type_, data)
    ev = ledger._insert(signer, seq + 1, prev, draft, None)
    ledger._index(ev, draft)
    ledger.conn.execute("COMMIT")
    return ev.seq


# -- a bundle (BagIt folder) ---------------------------------------------------------------


def tag_files(bag: Path) -> list[str]:
    """The bag's tag files: every file but the payload and the tag manifests."""
    return sorted(
        p.relative_to(bag).as_posix()
        for p in bag.rglob("*")
        if p.is_file() and not p.relative_to(bag).as_posix().startswith(("data/", "tagmanifest-"))
    )


def retag(bag: Path) -> None:
    """Recompute tagmanifest-sha256.txt (unsigned: anyone holding the bundle can)."""
    lines = [f"{hashlib.sha256((bag / n).read_bytes()).hexdigest()}  {n}\n" for n in tag_files(bag)]
    (bag / "tagmanifest-sha256.txt").write_text("".join(lines))


def read_events(bag: Path) -> list[dict[str, Any]]:
    """The rows of custody/events.jsonl."""
    text = (bag / "custody" / "events.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def write_events(bag: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite custody/events.jsonl with ``rows``."""
    (bag / "custody" / "events.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows),
        encoding="utf-8",
    )
