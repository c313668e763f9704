"""The case ledger: an append-only, hash-chained, signed event log in SQLite.

Layout of a case directory::

    custody.db      the ledger (SQLite, WAL, synchronous=FULL)
    store/          content-addressed evidence store (see custody.store)

Every entry is an *event*.  Its body is RFC 8785 canonical JSON::

    {"case": ID, "data": {...}, "prev": "sha256:...", "seq": N,
     "signer": "sha256:<fingerprint>", "time": RFC3339-ns, "type": TYPE, "v": 1}

``hash = "sha256:" + hex(SHA-256(body))`` and ``signature = Ed25519(body)``; the
first event's ``prev`` is the hash of the case header.  See docs/ledger-format.md.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import queue
import sqlite3
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custody import __version__
from custody.canonical import canonical_json, content_hash, now_rfc3339, parse_strict
from custody.errors import (
    CorruptLedgerError,
    CustodyError,
    LedgerLockedError,
    NotACaseError,
    OperationalError,
    UsageError,
    sqlite_error_class,
)
from custody.keys import Identity, Signer
from custody.merkle import TreeCache, leaf_hash, node_hash
from custody.migrations import migrate, pending
from custody.store import make_private_dirs, open_private

DB_NAME = "custody.db"
STORE_NAME = "store"
EVENT_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_WAIT_MS = 2_000  # how long closing waits for readers to merge the WAL
ITEM_PREFIX = "ITEM-"

OPEN_EVENT = "case.open"
IDENTITY_EVENT = "identity"
#: the custody rules a new case is made under (docs/custody-model.md, "Who may act");
#: 1 = before owners and attestation.  A ledger or bundle of another version is refused.
RULES_VERSION = 2
KNOWN_RULES = (1, 2)
KEY_ROTATE_EVENT = "key.rotate"
KEY_REVOKE_EVENT = "key.revoke"
COLLECT_EVENT = "collect"
IMPORT_EVENT = "import"  # a bundle merged into the case (custody.bundle.importer)
DESCRIBE_EVENT = "describe"  # a store object's type (custody.describe)


@dataclass(frozen=True)
class EventDraft:
    """What a caller wants recorded; the ledger fills in seq, prev, time, signer."""

    type: str
    data: dict[str, Any]
    new_item: bool = False  # allocate an ITEM-N id (data["item"]) and index the artifact


@dataclass(frozen=True)
class Event:
    seq: int
    hash: str
    prev: str
    type: str
    time: str
    signer: str
    item: str | None
    body: str
    signature: str
    _data: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def parsed(self) -> dict[str, Any]:
        value = parse_strict(self.body)
        assert isinstance(value, dict)
        return value

    @property
    def data(self) -> dict[str, Any]:
        if self._data is not None:  # set by the writer: the data it just signed
            return self._data
        d = self.parsed.get("data", {})
        assert isinstance(d, dict)
        return d


@dataclass
class CaseInfo:
    case_id: str
    title: str
    created: str
    uuid: str
    header: str
    hash: str
    extra: dict[str, Any] = field(default_factory=dict)
    rules: int = 1


def find_case_dir(explicit: str | os.PathLike[str] | None, start: Path | None = None) -> Path:
    """``--case`` if given, else ``$CUSTODY_CASE``, else the nearest parent of the
    working directory holding custody.db."""
    if explicit:
        p = Path(explicit)
        if not (p / DB_NAME).is_file():
            raise NotACaseError(f"not a custody case (no {DB_NAME}): {p}")
        return p
    env = os.environ.get("CUSTODY_CASE")
    if env:
        p = Path(env)
        if not (p / DB_NAME).is_file():
            raise NotACaseError(f"CUSTODY_CASE={env} is not a custody case (no {DB_NAME})")
        return p
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / DB_NAME).is_file():
            return d
    raise NotACaseError(
        f"not inside a custody case (no {DB_NAME} here or in any parent);"
        " use --case DIR, set CUSTODY_CASE, or run 'custody init'"
    )


def _connect(db_path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection that writes nothing yet: for writers (``read_only`` false) the
    pragmas that may write (WAL mode) are applied by :func:`_writer_pragmas`, after
    :func:`_refuse_unknown_schema` has read what the file holds."""
    if read_only:
        return _connect_read_only(db_path)
    conn = sqlite3.connect(
        db_path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _connect_read_only(db_path: Path) -> sqlite3.Connection:
    """A connection that cannot write the ledger (SQLite ``mode=ro``).  On read-only
    media (a write-blocked drive), WAL mode would need to create custody.db-shm, so
    the file is opened as immutable: only safe when no unmerged write-ahead log is
    left beside it."""
    path = urllib.parse.quote(str(db_path.resolve()))
    medium_read_only = not os.access(db_path.parent, os.W_OK) or not os.access(db_path, os.W_OK)
    if medium_read_only:
        wal = db_path.with_name(db_path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise OperationalError(
                f"{db_path} has an unmerged write-ahead log and the medium is read-only;"
                " copy the case directory to writable storage first"
            )
        uri = f"file:{path}?mode=ro&immutable=1"
    else:
        uri = f"file:{path}?mode=ro"
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _writer_pragmas(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # SQLite fires DELETE triggers for the rows a REPLACE removes only with
    # recursive triggers on: without it, INSERT OR REPLACE would overwrite a
    # recorded row past the append-only triggers
    conn.execute("PRAGMA recursive_triggers = ON")


_INSERT_EVENT = (
    "INSERT INTO events (seq, hash, prev, type, time, signer, item, body, signature)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: an append of at least this many collect events signs them on a thread of its own
PARALLEL_SIGN_MIN = 64


def _sign_b64(signer: Signer, body: bytes) -> str:
    return base64.b64encode(signer.sign(body)).decode("ascii")


def _event_row(ev: Event) -> tuple[Any, ...]:
    if not ev.signature:  # never an unsigned row
        raise AssertionError(f"event {ev.seq} has no signature")
    return (ev.seq, ev.hash, ev.prev, ev.type, ev.time, ev.signer, ev.item, ev.body, ev.signature)


class _BatchSigner:
    """Signs a batch's event bodies on a thread of its own, in order, while the
    appending thread builds and indexes the next events (the Ed25519 library lets
    go of the GIL while it signs: the work runs on the other core).  Each body is
    signed exactly as :meth:`Ledger._insert` signs it inline; :meth:`finish` waits
    and gives each event its signature, before any of the batch's rows is written."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._events: list[Event] = []
        self._todo: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._signatures: list[str] = []
        self._failed: list[BaseException] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="custody-sign", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        signer, out = self._signer, self._signatures
        try:
            while (body := self._todo.get()) is not None:
                if not self._stop:
                    out.append(_sign_b64(signer, body))
        except BaseException as e:  # handed to finish()
            self._failed.append(e)

    def add(self, ev: Event, body: bytes) -> None:
        self._events.append(ev)
        self._todo.put(body)

    def finish(self) -> list[Event]:
        """The batch's events, each with its signature."""
        self._todo.put(None)
        self._thread.join()
        if self._failed:
            raise self._failed[0]
        if len(self._signatures) != len(self._events):
            raise AssertionError("a signature is missing")
        for ev, sig in zip(self._events, self._signatures, strict=True):
            # the event is not handed out before this: its one field still unset
            object.__setattr__(ev, "signature", sig)
        return self._events

    def cancel(self) -> None:
        self._stop = True
        self._todo.put(None)
        self._thread.join()


class Ledger:
    """An open case: its ledger connection and store directory."""

    def __init__(self, case_dir: Path, conn: sqlite3.Connection) -> None:
        self.case_dir = case_dir
        self.conn = conn
        self._case: CaseInfo | None = None
        self.read_only = False
        self.for_reading = False  # opened by a command that only reads
        self._tx_nodes: dict[tuple[int, int], bytes] = {}
        self._tx_rows: dict[str, list[tuple[Any, ...]]] = {}
        self._batching = False  # inside append: inserts wait for _write_rows
        self._rules: Any = None
        self._wrote_by: Signer | None = None  # last signer of a committed append

    @functools.cached_property
    def db(self) -> Any:
        """The ledger through sqlite-utils, for the listings; made on first use,
        since importing it and loading its plugins costs every command ~0.1 s."""
        from custody._sqlite import sqlite_utils

        return sqlite_utils.Database(self.conn)

    # -- opening ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        case_dir: Path,
        case_id: str,
        title: str,
        *,
        owner: Signer | None = None,
        recovery: Identity | None = None,
    ) -> Ledger:
        """Make a case.  With ``owner``, its first event (``case.open``, signed by the
        owner) is written now; otherwise the first signer of the case becomes its
        owner."""
        if not case_id.strip():
            raise UsageError("--case-id must not be empty")
        db_path = case_dir / DB_NAME
        if db_path.exists():
            raise UsageError(f"a case already exists in {case_dir}")
        try:
            # a directory custody makes is 0700, and the ledger 0600 (SQLite gives
            # custody.db-wal and -shm its mode): the ledger names paths, people and
            # reasons.  A directory that already existed keeps its mode (verify
            # notes one others may read).
            make_private_dirs(os.fspath(case_dir), os.fspath(case_dir))
            store = os.fspath(case_dir / STORE_NAME)
            make_private_dirs(store, store)  # 0700: the evidence is the owner's alone
            os.close(open_private(db_path, os.O_WRONLY))
            conn = _connect(db_path)
            _writer_pragmas(conn)
        except OSError as e:
            raise OperationalError(f"cannot create case in {case_dir}: {e.strerror}") from e
        except sqlite3.Error as e:
            error = sqlite_error_class(e, OperationalError)
            raise error(f"cannot create ledger in {case_dir}: {e}") from e
        migrate(conn)
        header_obj = {
            "v": EVENT_VERSION,
            "case_id": case_id,
            "title": title,
            "created": now_rfc3339(),
            "uuid": str(uuid.uuid4()),
            "tool": f"custody {__version__}",
            "rules": RULES_VERSION,
        }
        header = canonical_json(header_obj).decode("utf-8")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO case_info (id, case_id, header, hash) VALUES (1, ?, ?, ?)",
            (case_id, header, content_hash(header.encode("utf-8"))),
        )
        conn.execute("COMMIT")
        ledger = cls(case_dir, conn)
        if owner is not None:
            ledger.append(owner, [owner_draft(owner.identity, recovery)])
        return ledger

    @classmethod
    def open(cls, case_dir: Path, *, write: bool = True) -> Ledger:
        """Open the case in ``case_dir``.  Before anything is written, what the file
        holds is read: a database custody did not make, a schema or a case header
        from a newer custody is refused (exit 2) and left byte for byte as it was.
        With ``write`` false (every command that only reads) the ledger is opened
        read-only (SQLite ``mode=ro``) and never written; otherwise pending schema
        migrations are applied.  On read-only media it is opened read-only either
        way, and recording is refused (:meth:`require_writable`)."""
        db_path = case_dir / DB_NAME
        if not db_path.is_file():
            raise NotACaseError(f"not a custody case (no {DB_NAME}): {case_dir}")
        medium_read_only = not os.access(case_dir, os.W_OK) or not os.access(db_path, os.W_OK)
        read_only = medium_read_only or not write
        try:
            conn = _connect(db_path, read_only=read_only)
            try:
                todo = _refuse_unknown_schema(conn, db_path)
                if read_only and todo:
                    raise UsageError(
                        f"ledger {db_path} has an older schema (missing"
                        f" {', '.join(todo)}); run a command that records (e.g. 'custody"
                        " checkpoint') with this custody on writable storage to upgrade it"
                    )
                if not read_only:
                    _writer_pragmas(conn)
                    if todo:
                        migrate(conn)
            except BaseException:
                conn.close()
                raise
            ledger = cls(case_dir, conn)
            ledger.read_only = read_only
            ledger.for_reading = not write
            ledger.case  # noqa: B018 - validates the header exists
        except sqlite3.DatabaseError as e:
            error = sqlite_error_class(e, CorruptLedgerError)
            what = "is locked" if issubclass(error, LedgerLockedError) else "is unreadable"
            raise error(f"ledger {db_path} {what}: {e}") from e
        return ledger

    def close(self) -> None:
        """Close the ledger.  After writes, merge the write-ahead log into the
        database (so losing ``custody.db-wal`` loses nothing) and write the signed
        checkpoint note of the tree head outside the database
        (:mod:`custody.statefile`), signed by the last signer that wrote."""
        signer, self._wrote_by = self._wrote_by, None
        try:
            if signer is not None and not self.read_only:
                # a reader in an older snapshot (a long verify) makes TRUNCATE wait:
                # wait a little, not the writers' 30 s; the note below still pins
                # the head if the merge could not finish
                self.conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                from custody import statefile

                statefile.write_latest(self, signer)
        except (OSError, sqlite3.Error, ValueError, CustodyError):
            pass  # the events are committed; verify reports what the notes lack
        finally:
            self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store_dir(self) -> Path:
        return self.case_dir / STORE_NAME

    @property
    def case(self) -> CaseInfo:
        if self._case is None:
            row = self.conn.execute("SELECT header, hash FROM case_info WHERE id = 1").fetchone()
            if row is None:
                raise CorruptLedgerError("ledger has no case header")
            try:
                h = parse_strict(row[0])
            except ValueError as e:
                raise CorruptLedgerError(f"case header is not valid JSON: {e}") from e
            if not isinstance(h, dict):
                raise CorruptLedgerError("case header is not a JSON object")
            self._case = CaseInfo(
                case_id=str(h.get("case_id", "")),
                title=str(h.get("title", "")),
                created=str(h.get("created", "")),
                uuid=str(h.get("uuid", "")),
                header=row[0],
                hash=row[1],
                extra=h,
                rules=header_rules(h),
            )
        return self._case

    # -- reading ------------------------------------------------------------

    def events(
        self, item: str | None = None, *, after: int = -1, types: Sequence[str] = ()
    ) -> Iterator[Event]:
        """Events in order: all, or those after ``after``, of ``item``, of ``types``."""
        for row in self.event_rows(item, after=after, types=types):
            yield Event(*row)

    def event_rows(
        self, item: str | None = None, *, after: int = -1, types: Sequence[str] = ()
    ) -> Iterator[tuple[Any, ...]]:
        """:meth:`events` as plain tuples of :class:`Event`'s fields (seq, hash,
        prev, type, time, signer, item, body, signature): verify reads 10^5 rows."""
        sql = "SELECT seq, hash, prev, type, time, signer, item, body, signature FROM events"
        sql += " WHERE seq > ?"
        params: tuple[Any, ...] = (after,)
        if item is not None:
            sql += " AND seq IN (SELECT seq FROM event_items WHERE item = ?)"
            params += (item,)
        if types:
            sql += f" AND type IN ({', '.join('?' for _ in types)})"
            params += tuple(types)
        for row in self.conn.execute(sql + " ORDER BY seq", params):
            if bytes not in map(type, row):  # the rule; checked fast (verify reads 10^5 rows)
                yield row
                continue
            # a BLOB where TEXT belongs is tampering; verify reports it (typeof check)
            yield tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in row)

    def event_hashes(self) -> Iterator[tuple[int, Any]]:
        """Each event's seq and stated hash, in order, without its body: for a reader
        that already holds the bodies a verification checked (custody.views)."""
        yield from self.conn.execute("SELECT seq, hash FROM events ORDER BY seq")

    def event_at(self, seq: int) -> Event | None:
        """The event with this seq (as :meth:`events` reads it), or None."""
        return next(self.events(after=seq - 1), None) if seq >= 0 else None

    def event_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def identities(self) -> dict[str, dict[str, Any]]:
        return {r["fingerprint"]: r for r in self.db["identities"].rows}

    def artifacts(self) -> list[dict[str, Any]]:
        return list(self.db["artifacts"].rows_where(order_by="n"))

    def imported_objects(self) -> set[str]:
        """Store objects (relpaths) the items of imported bundles are kept in: as
        the signed ``import`` events name them, and as the imported_bundles table
        does (an edited table can add names, never take away a signed one)."""
        lists: list[object] = []
        for (items,) in self.conn.execute("SELECT items FROM imported_bundles"):
            try:
                lists.append(json.loads(items))
            except (TypeError, ValueError):
                continue
        for (body,) in self.conn.execute("SELECT body FROM events WHERE type = 'import'"):
            try:
                data = json.loads(body).get("data", {})
                lists.append(data.get("items"))  # an import event listing every item
                lists.append([data])  # an item's own import event (ledger-format §7.6)
            except (TypeError, ValueError, AttributeError):
                continue
        return {
            str(it["store"])
            for items in lists
            if isinstance(items, list)
            for it in items
            if isinstance(it, dict) and isinstance(it.get("store"), str)
        }

    def artifact(self, item_id: str) -> dict[str, Any]:
        rows = list(self.db["artifacts"].rows_where("id = ?", [item_id.upper()]))
        if not rows:
            raise UsageError(f"no such item: {item_id}")
        return dict(rows[0])

    # -- writing ------------------------------------------------------------

    def require_writable(self) -> None:
        """Refuse, before any work starts, to record into a case on read-only media
        (or through a ledger opened for reading only)."""
        if self.for_reading:
            raise UsageError("this command only reads the case: it cannot record")
        if self.read_only:
            raise UsageError(
                f"case {self.case_dir} is on read-only media: nothing can be recorded there"
            )
        if self.store_dir.exists() and not os.access(self.store_dir, os.W_OK):
            raise UsageError(
                f"the case's store {self.store_dir} is read-only: nothing can be recorded there"
            )

    def _begin(self) -> None:
        self.require_writable()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            error = sqlite_error_class(e, OperationalError)
            if issubclass(error, LedgerLockedError):
                raise error(
                    f"ledger is locked by another writer (waited {BUSY_TIMEOUT_MS // 1000}s): {e}"
                ) from e
            raise error(f"cannot write to the ledger: {e}") from e

    def _tail(self) -> tuple[int, str]:
        row = self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return -1, self.case.hash
        return int(row[0]), str(row[1])

    def _insert(
        self,
        signer: Signer,
        seq: int,
        prev: str,
        draft: EventDraft,
        item: str | None,
        signing: _BatchSigner | None = None,
    ) -> Event:
        data = dict(draft.data)
        if item is not None:
            data["item"] = item
        body_obj = {
            "v": EVENT_VERSION,
            "case": self.case.case_id,
            "seq": seq,
            "prev": prev,
            "time": now_rfc3339(),
            "type": draft.type,
            "signer": signer.fingerprint,
            "data": data,
        }
        body_bytes = canonical_json(body_obj)
        ev = Event(
            seq=seq,
            hash=content_hash(body_bytes),
            prev=prev,
            type=draft.type,
            time=str(body_obj["time"]),
            signer=signer.fingerprint,
            item=item,
            body=body_bytes.decode("utf-8"),
            # with ``signing``: signed on its thread, filled in before any row is written
            signature="" if signing else _sign_b64(signer, body_bytes),
            _data=data,
        )
        if signing is not None:
            signing.add(ev, body_bytes)
            return ev
        self._later(_INSERT_EVENT, _event_row(ev))
        return ev

    def _later(self, sql: str, row: tuple[Any, ...]) -> None:
        """An insert of this append's transaction, run with its kind in one
        ``executemany`` before the commit (:meth:`_write_rows`): nothing the append
        reads meanwhile is in these rows."""
        if self._batching:
            self._tx_rows.setdefault(sql, []).append(row)
        else:  # an insert outside append (a tool forcing an event in): now
            self.conn.execute(sql, row)

    def _write_rows(self) -> None:
        for sql, rows in self._tx_rows.items():
            self.conn.executemany(sql, rows)
        self._tx_rows = {}

    def append(
        self,
        signer: Signer,
        drafts: Sequence[EventDraft] | Callable[[], Sequence[EventDraft]],
        *,
        after: Callable[[Event], None] | None = None,
    ) -> list[Event]:
        """Append events signed by ``signer`` in one ``BEGIN IMMEDIATE`` transaction.

        ``drafts`` may be a function: it is then called inside the write lock, so
        checks it makes (who holds an item, the ledger's size) cannot race another
        writer.  The signer's first event registers its key (an empty case's first
        event opens it, naming the signer as owner).  Every event is admitted by the
        custody replay's own step (custody.lifecycle.Rules) before it is committed:
        what the step would record as a broken rule is refused, so the writers and
        ``verify`` apply one rule.  The tail is read inside the write lock, so
        concurrent writers keep one gapless, linear chain."""
        out: list[Event] = []
        signing: _BatchSigner | None = None
        rules = self.rules()
        self._begin()
        self._tx_nodes = {}
        self._tx_rows = {}
        self._batching = True
        try:
            r = rules.current()
            rules.refuse_retired(signer)
            seq, prev = self._tail()
            todo = list(drafts() if callable(drafts) else drafts)
            registration = self._registration(signer, r.keys, seq)
            if (
                todo
                and registration is not None
                and not any(
                    d.type in (IDENTITY_EVENT, OPEN_EVENT)
                    and signer.fingerprint in (d.data.get("fingerprint"), _owner_fp(d))
                    for d in todo
                )
            ):
                todo.insert(0, registration)
            next_n = None
            # a large batch of collect events (which add no identities row, so none of
            # its rows is written before the last is signed): its signatures are made
            # on a thread of their own while this one indexes the batch
            if len(todo) >= PARALLEL_SIGN_MIN and all(d.type == COLLECT_EVENT for d in todo):
                signing = _BatchSigner(signer)
                self._tx_rows[_INSERT_EVENT] = []  # the events' rows first (foreign keys)
            for draft in todo:
                seq += 1
                item = None
                if draft.new_item:
                    if next_n is None:
                        next_n = self.next_item_number()
                    item = f"{ITEM_PREFIX}{next_n}"
                    next_n += 1
                elif isinstance(draft.data.get("item"), str):
                    item = str(draft.data["item"])
                ev = self._insert(signer, seq, prev, draft, item, signing)
                rules.admit(ev)
                self._index(ev, draft)
                out.append(ev)
                prev = ev.hash
            if signing is not None:
                self._tx_rows[_INSERT_EVENT] = [_event_row(ev) for ev in signing.finish()]
                signing = None
            self._write_rows()
            self._batching = False
            if after is not None and out:
                # more rows, in the same transaction as the events, or a wait for what
                # must be durable before they are (the collector's syncfs of the store)
                after(out[-1])
            self.conn.execute("COMMIT")
            if out:
                self._wrote_by = signer
        except sqlite3.Error as e:
            self._batching, self._tx_rows = False, {}
            self.conn.execute("ROLLBACK")
            rules.invalidate()
            error = sqlite_error_class(e, OperationalError)
            if issubclass(error, LedgerLockedError):
                raise error(f"ledger is locked: {e}") from e
            raise error(f"could not write to the ledger: {e}") from e
        except BaseException:
            self._batching, self._tx_rows = False, {}
            self.conn.execute("ROLLBACK")
            rules.invalidate()
            raise
        finally:
            if signing is not None:  # the batch failed: its signer thread stops
                signing.cancel()
        return out

    def rules(self) -> Any:
        """The custody rules kept current for this open ledger (a
        :class:`custody.lifecycle.Rules`, made on first use)."""
        if self._rules is None:
            from custody.lifecycle import Rules  # the replay builds on the ledger

            self._rules = Rules(self)
        return self._rules

    def _index(self, ev: Event, draft: EventDraft) -> None:
        """Update every derived table for a new event (verify re-derives them)."""
        data = ev.data
        if draft.new_item:
            row = artifact_index_row(ev.seq, data)
            self._later(
                f"INSERT INTO artifacts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",  # noqa: S608 - fixed names
                tuple(row.values()),
            )
        rows = identity_index_rows(ev.seq, ev.type, data)
        if rows:
            self._write_rows()  # the identities table refers to this event's row
        for row in rows:
            # one row per key, from the first event that registered it (a later
            # attestation of a self-registered key changes its standing, not its row)
            if not self.conn.execute(
                "SELECT 1 FROM identities WHERE fingerprint = ?", (row["fingerprint"],)
            ).fetchone():
                self._insert_row("identities", row)
        for item in event_items(ev.item, data):
            self._later("INSERT INTO event_items (seq, item) VALUES (?, ?)", (ev.seq, item))
        self._tree_append(ev.seq, leaf_hash(ev.body.encode("utf-8")))

    def _tree_append(self, index: int, leaf: bytes) -> None:
        """Store the leaf and every complete subtree it finishes (RFC 9162)."""
        nodes = self._tx_nodes  # written in this transaction: no need to read them back
        level, i, h = 0, index, leaf
        while True:
            nodes[(level, i)] = h
            self._later(
                "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)", (level, i, h)
            )
            if not i & 1:
                return
            left = nodes.get((level, i - 1))
            if left is None:
                row = self.conn.execute(
                    "SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?", (level, i - 1)
                ).fetchone()
                left = bytes(row[0])
            h = node_hash(left, h)
            level, i = level + 1, i >> 1

    def tree(self) -> StoredTree:
        """The ledger's Merkle tree (proofs in O(log n) stored-node lookups)."""
        return StoredTree(self.conn)

    def _insert_row(self, table: str, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.conn.execute(
            f"INSERT INTO {table} ({cols}) VALUES ({marks})",  # noqa: S608 - fixed names
            tuple(row.values()),
        )

    def next_item_number(self) -> int:
        """One above every item number this case may ever have given: the highest
        indexed item, every reservation a ``store.cleanup`` event recorded
        (``next_item``), and room for one item per event a checkpoint note
        outside the database commits to but the ledger lacks (lost events)."""
        from custody import statefile

        row = self.conn.execute("SELECT coalesce(max(n), 0) FROM artifacts").fetchone()
        lost = statefile.highest_size(self) - self.event_count()
        n = int(row[0]) + 1 + max(lost, 0)
        for (body,) in self.conn.execute("SELECT body FROM events WHERE type = 'store.cleanup'"):
            try:
                reserved = json.loads(body).get("data", {}).get("next_item")
            except (ValueError, AttributeError):
                continue
            if isinstance(reserved, int) and not isinstance(reserved, bool):
                n = max(n, reserved)
        return n

    def _registration(
        self, signer: Signer, known: Mapping[str, bytes], tail: int
    ) -> EventDraft | None:
        """The event that registers ``signer`` before its first event: in an empty
        case under rules 2 the opening event naming it owner, else its
        self-registration; None if the ledger knows the key."""
        if tail < 0 and self.case.rules >= 2:
            return owner_draft(signer.identity)
        return None if signer.fingerprint in known else identity_draft(signer.identity)

    def ensure_registered(self, signer: Signer) -> None:
        """Record the signer's registration now if the ledger lacks it (in an empty
        case that is the opening event, naming the signer as owner)."""

        def drafts() -> list[EventDraft]:
            reg = self._registration(signer, self.rules().current().keys, self._tail()[0])
            return [] if reg is None else [reg]

        self.append(signer, drafts)

    def register_identity(
        self, signer: Signer, other: Identity, *, delegate: bool = False
    ) -> Event | None:
        """Record ``other`` (an imported public key) as an identity attested by
        ``signer`` (with ``delegate``, allowed to attest others in turn).  Returns
        None if the ledger already holds that key attested.  Whether ``signer`` may
        attest, and whether the name is free, is the replay's rule."""

        def drafts() -> list[EventDraft]:
            r = self.rules().current()
            if other.public_raw == signer.identity.public_raw:  # your own key: register self
                reg = self._registration(signer, r.keys, self._tail()[0])
                return [] if reg is None else [reg]
            if r.attested(other.fingerprint):
                return []
            return [identity_draft(other, attested=True, delegate=delegate)]

        events = self.append(signer, drafts)
        return next((e for e in events if e.data.get("fingerprint") == other.fingerprint), None)


class StoredTree(TreeCache):
    """The ledger's RFC 9162 tree, read from the stored complete subtrees
    (``merkle_nodes``): a root or proof costs O(log n) indexed lookups, however
    many events there are."""

    __slots__ = ("_conn", "_size")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        row = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM merkle_nodes WHERE level = 0")
        self._size = int(row.fetchone()[0])

    def __len__(self) -> int:
        return self._size

    def _node(self, level: int, index: int) -> bytes:
        row = self._conn.execute(
            "SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        if row is None:
            raise CorruptLedgerError(f"merkle node ({level}, {index}) is missing from the ledger")
        return bytes(row[0])

    def append(self, leaf_hash: bytes) -> int:
        raise TypeError("the stored tree grows only through Ledger.append")


def artifact_index_row(seq: int, data: dict[str, Any]) -> dict[str, Any]:
    """The artifacts-table row derived from a collect event's data.  The ledger
    writes it and verify recomputes it: one definition for both."""
    item = str(data.get("item", ""))
    path = data.get("path") if isinstance(data.get("path"), dict) else {}
    source = data.get("source") if isinstance(data.get("source"), dict) else {}
    digests = data.get("digests") if isinstance(data.get("digests"), dict) else {}
    assert isinstance(path, dict) and isinstance(source, dict) and isinstance(digests, dict)
    number = item[len(ITEM_PREFIX) :]
    return {
        "id": item,
        "n": int(number) if number.isascii() and number.isdigit() and len(number) <= 19 else None,
        "event_seq": seq,
        "run": data.get("run"),
        "outcome": data.get("outcome"),
        "kind": source.get("kind", "unknown"),
        "path_hex": path.get("hex"),
        "display_path": path.get("display"),
        "size": data.get("size"),
        "sha256": digests.get("sha256"),
        "mime": data.get("mime"),
    }


def identity_index_rows(seq: int, type_: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The identities-table rows an event adds: identity events register a key, the
    case's opening event its owner (and recovery key), key rotations the new key
    under the same name and role."""
    if type_ == IDENTITY_EVENT:
        found = [(data.get("fingerprint"), data.get("public_key"), data)]
    elif type_ == KEY_ROTATE_EVENT:
        found = [(data.get("new"), data.get("public_key"), data)]
    elif type_ == OPEN_EVENT:
        found = []
        owner = data.get("owner") if isinstance(data.get("owner"), dict) else {}
        assert isinstance(owner, dict)
        for k in ("owner", "recovery"):
            e = data.get(k)
            if isinstance(e, dict):
                info = e if k == "owner" else {**e, **recovery_identity(owner.get("name"))}
                found.append((e.get("fingerprint"), e.get("public_key"), info))
    else:
        return []
    return [
        {
            "fingerprint": fp,
            "name": d.get("name"),
            "role": d.get("role"),
            "public_key": pub,
            "event_seq": seq,
        }
        for fp, pub, d in found
    ]


def event_items(item: str | None, data: dict[str, Any]) -> list[str]:
    """Every item an event concerns: its own ``item`` and any ``items`` (a list, or
    a map keyed by item as in a receipt)."""
    out = [item] if isinstance(item, str) and item else []  # a hostile body's 5 or [..]: none
    items = data.get("items")
    if isinstance(items, list | dict):
        out += [i for i in items if isinstance(i, str) and i not in out]
    return out


def identity_draft(
    identity: Identity, *, attested: bool = False, delegate: bool = False
) -> EventDraft:
    """The event that makes an identity known: self-signed on first use, or
    attested by another signer when a public key is imported."""
    return EventDraft(
        type=IDENTITY_EVENT,
        data={
            "name": identity.name,
            "role": identity.role,
            "public_key": identity.public_b64,
            "fingerprint": identity.fingerprint,
            "algorithm": "ed25519",
            "registration": "imported" if attested else "self",
            **({"delegate": True} if delegate else {}),
        },
    )


def owner_draft(owner: Identity, recovery: Identity | None = None) -> EventDraft:
    """``case.open``: the case's first event, signed by its owner, naming the owner
    and, optionally, a recovery key that may only revoke or replace the owner."""
    return EventDraft(
        type=OPEN_EVENT,
        data={
            "owner": {
                "name": owner.name,
                "role": owner.role,
                "public_key": owner.public_b64,
                "fingerprint": owner.fingerprint,
                "algorithm": "ed25519",
            },
            "recovery": None
            if recovery is None
            else {
                "public_key": recovery.public_b64,
                "fingerprint": recovery.fingerprint,
                "algorithm": "ed25519",
            },
            "rules": RULES_VERSION,
        },
    )


def recovery_identity(owner_name: object) -> dict[str, str]:
    """The name and role a case's recovery key is known by."""
    return {"name": f"recovery key of {owner_name}", "role": "recovery"}


def _owner_fp(draft: EventDraft) -> object:
    owner = draft.data.get("owner")
    return owner.get("fingerprint") if isinstance(owner, dict) else None


def is_event_version(value: object) -> bool:
    """True when ``value`` (an event body's or case header's ``v``) is the format
    version this custody writes and reads: the integer, not ``true`` (a bool is an
    int in Python, and ``True == 1``) nor ``1.0``."""
    return type(value) is int and value == EVENT_VERSION


def is_known_rules(value: object) -> bool:
    """True when ``value`` (a ``rules`` field) names custody rules this version knows:
    an integer, not ``true`` nor ``2.0``."""
    return type(value) is int and value in KNOWN_RULES


def header_rules(header: dict[str, Any]) -> int:
    """The custody rules version a case header declares (1 before it was recorded)."""
    rules = header.get("rules", 1)
    if not is_event_version(header.get("v", EVENT_VERSION)) or not is_known_rules(rules):
        raise UsageError(
            f"this case was made by a newer custody (header v={header.get('v')!r},"
            f" rules={rules!r}); this version knows rules {', '.join(map(str, KNOWN_RULES))}"
            " and will neither read nor write it"
        )
    return int(rules)


def _refuse_unknown_schema(conn: sqlite3.Connection, db_path: Path) -> list[str]:
    """Read (never write) what ``db_path`` holds and refuse (exit 2) a database
    custody did not make, a schema migration or a case header from a newer custody.
    Returns the known migrations still to apply."""
    todo = pending(conn, db_path)
    try:
        row = conn.execute("SELECT header FROM case_info WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return todo  # no header table yet: migrate makes it, or open reports what is wrong
    if row is None:
        return todo
    try:
        h = parse_strict(row[0])
    except ValueError:
        return todo  # reported as a corrupt header when read
    if isinstance(h, dict):
        header_rules(h)
    return todo
