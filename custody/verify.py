"""Verification: re-derive everything the ledger claims and report every problem.

Steps (each a function; none stops the others):

1. ``case-header``  the header hash matches its canonical bytes, and the
                    ``case_info.case_id`` column is the header's;
2. ``chain``        events are gapless from seq 0, each body canonical JSON whose
                    seq/prev match its position, hash recomputed, row columns equal
                    to the body;
3. ``signatures``   every signature verifies with the signer's key, taken from the
                    identity events (never from the derived ``identities`` table);
   ``custody``      the custody rules replayed (custody.lifecycle): hand-overs by
                    the holder only, receipts by the named receiver and matching,
                    no signature by a key after its revocation, rotations
                    co-signed by the new key;
4. ``index``        the derived tables (artifacts, identities, event_items, the
                    stored Merkle nodes) agree with the events, and the imported-bundle
                    tables with the signed ``import`` events (``import`` findings);
5. ``checkpoints``  every recorded checkpoint and every one given is signed by a
                    known key and extended by the ledger (no truncation or rewrite);
                    RFC 3161 tokens cover their checkpoint, chain to a trusted TSA
                    root, and are not earlier than the checkpoint's stated time;
6. ``store``        every stored object re-hashed with every recorded digest
                    (skipped by ``quick``).
"""

from __future__ import annotations

import base64
import binascii
import gc
import json
import os
import re
import shlex
import sqlite3
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import zip_longest
from pathlib import Path
from typing import Any

from custody import merkle, statefile
from custody.canonical import canonical_json, content_hash, parse_strict
from custody.checkpoint import (
    CHECKPOINT_EVENT,
    TIMESTAMP_EVENT,
    consistency_findings,
    open_checkpoint_text,
    origin_of,
    verifiers,
)
from custody.describe import check_data as check_describe
from custody.errors import CorruptLedgerError, CustodyError, UsageError
from custody.eventcheck import (
    AheadChecks,
    SignatureCheck,
    StreamedChecks,
    check_event,
    check_inclusion,
    check_now,
    keys_in,
    settle,
    signature_bytes,
    signature_pool,
)
from custody.findings import Findings, Kind, Verdict
from custody.hashing import ALGORITHMS
from custody.keys import Identity, fingerprint
from custody.ledger import (
    COLLECT_EVENT,
    DB_NAME,
    DESCRIBE_EVENT,
    KNOWN_RULES,
    Ledger,
    artifact_index_row,
    event_items,
    identity_index_rows,
    is_event_version,
)
from custody.lifecycle import (
    Replay,
    import_records,
    purgeable,
    replay,
    retired_why,
    self_registered_key,
    step,
)
from custody.safeio import CAP_CHECKPOINT, NotRegularFileError, read_input_text
from custody.sources import imported_id
from custody.store import SHARED_READ_BITS, Store, WritersLock, names_object, object_sha256
from custody.verified import Through, latest_note, signatures_digest

ProgressFn = Callable[[int, int], None]


@dataclass
class VerifyReport(Verdict):
    case_id: str
    quick: bool
    events: int = 0
    artifacts: int = 0  # items: the case's own and imported ones
    imported: int = 0  # of which imported (custody.sources)
    objects_checked: int = 0
    checkpoints: int = 0
    timestamps: int = 0
    notes: list[str] = field(default_factory=list)
    bytes_checked: int = 0
    head: str | None = None
    # what the store check found, per store object: {rel: {alg: hex}} (reports use it)
    found_digests: dict[str, dict[str, str]] = field(default_factory=dict)
    # an incremental verification (custody.verified): the events whose signatures a
    # note covered (through), and what a new note needs (root, signatures)
    incremental: bool = False
    through: int | None = None
    note: int | None = None
    root: bytes | None = None
    signatures: str | None = None
    # the well-formed signed bodies this run parsed and checked, by seq (reports reuse them)
    bodies: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    body_hashes: dict[int, str] = field(default_factory=dict, repr=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "case": self.case_id,
            "quick": self.quick,
            "events": self.events,
            "artifacts": self.artifacts,
            "objects_checked": self.objects_checked,
            "checkpoints_checked": self.checkpoints,
            "timestamps_checked": self.timestamps,
            "notes": self.notes,
            "bytes_checked": self.bytes_checked,
            "head": self.head,
            "findings": [f.as_json() for f in self.findings],
        } | ({"signatures_trusted_through": self.through} if self.incremental else {})


def _ev(seq: int) -> str:
    return f"event {seq}"


def check_case_header(ledger: Ledger, report: VerifyReport) -> None:
    case = ledger.case
    (column,) = ledger.conn.execute("SELECT case_id FROM case_info WHERE id = 1").fetchone()
    if column != case.case_id:
        report.add(
            Kind.CASE_HEADER,
            "case header",
            f"case_info.case_id is {column!r}, the header says {case.case_id!r}",
        )
    found = content_hash(case.header.encode("utf-8"))
    if found != case.hash:
        report.add(Kind.CASE_HEADER, "case header", f"expected hash {case.hash}, found {found}")
    try:
        if canonical_json(parse_strict(case.header)).decode("utf-8") != case.header:
            report.add(Kind.CASE_HEADER, "case header", "header is not canonical JSON")
    except ValueError as e:
        report.add(Kind.CASE_HEADER, "case header", f"header is not valid JSON: {e}")


def check_chain(
    ledger: Ledger,
    report: VerifyReport,
    r: Replay,
    tree: merkle.TreeCache,
    pool: ProcessPoolExecutor | None = None,
    trusted_through: int = -1,
    compact: bool = False,
) -> dict[int, dict[str, Any]]:
    """Steps 2 and 3, and the replay of custody rules.  Returns the well-formed
    parsed bodies by seq (for the index and store steps); fills ``tree`` with every
    event's leaf hash.  With ``pool``, the signatures are checked on its worker
    processes while this pass runs (:class:`custody.eventcheck.AheadChecks`: the
    same findings as without).  Signatures of events up to ``trusted_through``
    are taken as verified (an incremental verify, custody.verified: a full verify
    found them good and the tree root and signatures there are unchanged).

    This pass runs once per event of the ledger, so it reads plain row tuples
    (:meth:`Ledger.event_rows`) and keeps its per-event work to what it checks.
    ``compact``: the bodies kept share their keys and short strings
    (:class:`Sharing`)."""
    bodies: dict[int, dict[str, Any]] = {}
    share = Sharing().body if compact else None
    for (seq,) in ledger.conn.execute(
        "SELECT seq FROM events WHERE typeof(body) != 'text' OR typeof(hash) != 'text'"
        " OR typeof(prev) != 'text' OR typeof(signature) != 'text' OR typeof(signer) != 'text'"
        " ORDER BY seq"
    ):
        report.add(
            Kind.EVENT_STORAGE,
            _ev(seq),
            "a column holds a BLOB or number where text belongs",
            seq=seq,
        )
    rows: Iterable[tuple[tuple[Any, ...], bytes, int]]
    ahead = AheadChecks(pool) if pool is not None else None
    if ahead is not None:
        rows = _start_checks(ledger, ahead, trusted_through)
    else:
        rows = ((row, row[7].encode("utf-8"), -1) for row in ledger.event_rows())
    expected_seq = 0
    prev = ledger.case.hash
    case_id = ledger.case.case_id
    findings = report.findings
    body_hashes = report.body_hashes
    keys = r.keys
    leaves: list[bytes] = []
    leaf_hash = merkle.leaf_hash

    def key_of(signer: str, b: dict[str, Any]) -> bytes | None:
        return keys.get(signer) or self_registered_key(b)

    for row, body_bytes, at in rows:
        seq, ev_hash, ev_prev, ev_type, ev_time, ev_signer, ev_item, _, signature = row
        subject = _ev(seq)
        leaves.append(leaf_hash(body_bytes))
        if seq != expected_seq:
            report.add(
                Kind.CHAIN_GAP,
                subject,
                f"expected event {expected_seq} next, found event {seq}"
                f" ({seq - expected_seq} missing)"
                if seq > expected_seq
                else f"expected event {expected_seq}, found {seq}",
                seq=seq,
            )
            expected_seq = seq
        expected_seq += 1
        if ev_prev != prev:
            report.add(
                Kind.CHAIN_LINK,
                subject,
                f"prev is {ev_prev}, previous event's hash is {prev}",
                seq=seq,
            )
        before, prev = prev, ev_hash
        body, sig = check_event(
            body_bytes,
            stated_hash=ev_hash,
            signature=signature,
            key_of=key_of,
            out=findings,
            seq=seq,
            subject=subject,
        )
        if body is None:
            continue
        problem = malformed(body)
        if problem:
            report.add(Kind.EVENT_BODY, subject, problem, seq=seq)
        g = body.get
        data = g("data")
        if not (
            (g("seq"), g("prev"), g("type"), g("time"), g("signer"), g("case"))
            == (seq, ev_prev, ev_type, ev_time, ev_signer, case_id)
            and isinstance(data, dict)
            and data.get("item") == ev_item
            and is_event_version(g("v"))
        ):  # not all agree: say which do not
            _check_columns(row, body, report, case_id)
        if seq <= trusted_through and sig is not None:
            trusted = True  # verified by the full check a signed note records
        else:
            trusted = check_now(findings, sig, ahead, at)
        if not problem:
            if share is not None:
                body = share(body, before)
            step(r, case_id, seq, ev_hash, ev_type, ev_signer, body, trusted=trusted)
            bodies[seq] = body
            body_hashes[seq] = ev_hash
    tree.extend(leaves)
    report.events += len(leaves)
    report.head = prev if leaves else None
    return bodies


class Sharing:
    """Parsed bodies that share equal strings.  One ``json.loads`` per body makes
    its own copy of every key and value; a ledger's bodies repeat the same keys
    and many of the same values (signer, case, host, run, owner, outcome, store
    path, item ids...), so the bodies a verification keeps for a report take a
    fraction of the memory once each distinct string is held once.  Shared: every
    key, and every string value of at most :attr:`LONG` characters except those
    of :attr:`UNIQUE` keys (each event's or item's own: times, paths, inode;
    not worth a memo entry);
    ``prev`` becomes the previous event's hash string itself.  Values are equal,
    only their objects are shared (strings are immutable)."""

    LONG = 100
    UNIQUE = frozenset(
        (
            "prev",
            "display",
            "hex",
            "inode",
            "time",
            "atime",
            "ctime",
            "mtime",
            "btime",
            "atime_ns",
            "ctime_ns",
            "mtime_ns",
            "btime_ns",
        )
    )

    def __init__(self) -> None:
        self.memo: dict[str, str] = {}

    def body(self, body: dict[str, Any], prev: str) -> dict[str, Any]:
        """``body`` with its strings shared; ``prev``: the previous event's hash
        (the same string as the body's ``prev`` when the chain holds)."""
        out = self.obj(body)
        if out.get("prev") == prev:
            out["prev"] = prev
        return out

    def obj(self, o: dict[str, Any]) -> dict[str, Any]:
        m = self.memo
        long = self.LONG
        unique = self.UNIQUE
        out: dict[str, Any] = {}
        for k, v in o.items():
            t = type(v)
            if t is str:
                if len(v) <= long and k not in unique:
                    v = m.setdefault(v, v)
            elif t is dict:
                v = self.obj(v)
            elif t is list:
                v = self.seq(v)
            out[m.setdefault(k, k)] = v
        return out

    def seq(self, o: list[Any]) -> list[Any]:
        m = self.memo
        long = self.LONG
        out: list[Any] = []
        for v in o:
            t = type(v)
            if t is str:
                if len(v) <= long:
                    v = m.setdefault(v, v)
            elif t is dict:
                v = self.obj(v)
            elif t is list:
                v = self.seq(v)
            out.append(v)
        return out


def _start_checks(
    ledger: Ledger, ahead: AheadChecks, trusted_through: int
) -> Iterator[tuple[tuple[Any, ...], bytes, int]]:
    """The event rows, each with its body's bytes and its position in ``ahead``,
    read a few batches ahead of the caller: each event's signature check is
    started on the workers with the key the derived identities table names for
    its signer (a guess: a wrong one only costs a check made again in the serial
    pass)."""
    guess: dict[str, bytes] = {}
    for fp, row in ledger.identities().items():
        try:
            guess[str(fp)] = base64.b64decode(str(row.get("public_key")), validate=True)
        except (binascii.Error, ValueError):
            continue
    lead = max(2, os.cpu_count() or 2) * 4  # batches read ahead
    window: deque[list[tuple[tuple[Any, ...], bytes, int]]] = deque()
    chunk: list[tuple[tuple[Any, ...], bytes, int]] = []
    for ev in ledger.event_rows():
        raw = ev[7].encode("utf-8")
        key = guess.get(ev[5])
        at = -1
        if key is not None and ev[0] > trusted_through:
            at = ahead.add((key, signature_bytes(ev[8]), raw))
        chunk.append((ev, raw, at))
        if len(chunk) == ahead.batch:
            window.append(chunk)
            chunk = []
            if len(window) > lead:
                yield from window.popleft()
    ahead.close()
    for done in window:
        yield from done
    yield from chunk


_HEX = re.compile(r"[0-9a-f]{32,128}")


def malformed(body: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a body, for the fields verify relies on."""
    data = body.get("data")
    if not isinstance(data, dict):
        return "data is not a JSON object"
    if body.get("type") == DESCRIBE_EVENT:
        return check_describe(data)
    if body.get("type") == COLLECT_EVENT:
        digests = data.get("digests", {})
        if not isinstance(digests, dict) or not all(
            a in ALGORITHMS and isinstance(v, str) and _HEX.fullmatch(v) for a, v in digests.items()
        ):
            return "digests is not a map of known algorithms to hex strings"
        if "store" in data and ("sha256" not in digests or not isinstance(data["store"], str)):
            return "a stored artifact without a sha256 digest or store path"
        size = data.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            return "size is not a non-negative integer"
        for k in ("item", "outcome", "run"):
            if not isinstance(data.get(k), str):
                return f"{k} is not a string"
        if not isinstance(data.get("path"), dict):
            return "path is not an object"
    return None


def _check_columns(
    row: tuple[Any, ...], body: dict[str, Any], report: VerifyReport, case_id: str
) -> None:
    """The row's columns (an :meth:`Ledger.event_rows` tuple) must be what the
    signed body says; each that is not is a finding."""
    seq, _, ev_prev, ev_type, ev_time, ev_signer, ev_item, *_ = row

    def mismatch(detail: str) -> None:
        report.add(Kind.EVENT_MISMATCH, _ev(seq), detail, seq=seq)

    if not is_event_version(body.get("v")):
        report.add(
            Kind.EVENT_BODY,
            _ev(seq),
            f"unknown event format version {body.get('v')!r}",
            seq=seq,
        )
    if body.get("case") != case_id:
        mismatch(f"case: ledger is case {case_id!r}, signed body says {body.get('case')!r}")
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    assert isinstance(data, dict)
    expect = {
        "seq": seq,
        "prev": ev_prev,
        "type": ev_type,
        "time": ev_time,
        "signer": ev_signer,
    }
    for k, v in expect.items():
        if body.get(k) != v:
            mismatch(f"{k}: ledger row says {v!r}, signed body says {body.get(k)!r}")
    if data.get("item") != ev_item:
        mismatch(f"item: ledger row says {ev_item!r}, signed body says {data.get('item')!r}")


def check_index(ledger: Ledger, bodies: dict[int, dict[str, Any]], report: VerifyReport) -> None:
    """The derived tables must equal what the signed events say, row by row."""
    artifacts = _artifact_rows(ledger)
    identities = ledger.identities()
    report.artifacts = len(artifacts)
    seen: set[str] = set()
    want_items: set[tuple[str, int]] = set()
    for seq, body in bodies.items():
        data = body["data"]
        type_ = str(body.get("type"))
        want_items.update((item, seq) for item in event_items(data.get("item"), data))
        candidates: list[tuple[str, str, dict[str, Any], Mapping[str, Any]]] = []
        if type_ == COLLECT_EVENT:
            row = artifact_index_row(seq, data)
            candidates.append(("artifacts", str(row["id"]), row, artifacts))
        for ident in identity_index_rows(seq, type_, data):
            candidates.append(("identities", str(ident["fingerprint"]), ident, identities))
        for table, key, expect, rows in candidates:
            if table == "identities" and key in seen:
                continue  # the row is that of the first event registering the key
            seen.add(key)
            got = rows.get(key)
            item = key if table == "artifacts" else None
            if got is None:
                report.add(
                    Kind.INDEX,
                    key,
                    f"recorded by {_ev(seq)} but missing from the {table} table",
                    item=item,
                    seq=seq,
                )
                continue
            for k, v in expect.items():
                if got.get(k) != v:
                    report.add(
                        Kind.INDEX,
                        key,
                        f"{table}.{k} is {got.get(k)!r}, signed {_ev(seq)} says {v!r}",
                        item=item,
                        seq=seq,
                    )
    for table, rows in (("artifacts", artifacts), ("identities", identities)):
        for key in rows:
            if key not in seen:
                report.add(
                    Kind.INDEX,
                    key,
                    f"in the {table} table but no signed event records it",
                    item=key if table == "artifacts" else None,
                )
    artifacts.clear()  # 10^5 rows of a large case: freed before the next 10^5
    stored = {  # a seq that is no integer (text, a real) concerns no event: -1
        (str(i), s if type(s) is int else -1)
        for i, s in ledger.conn.execute("SELECT item, seq FROM event_items")
    }
    for item, seq in sorted(want_items - stored):
        report.add(
            Kind.INDEX, item, f"event_items lacks {_ev(seq)}, which concerns {item}", item=item
        )
    for item, seq in sorted(stored - want_items):
        report.add(
            Kind.INDEX,
            item,
            f"event_items links {_ev(seq)}, which does not concern {item}",
            item=item,
        )


class _Row:
    """One artifacts-table row, kept as a tuple (a large case has 10^5 of them)
    and read by column name like the row dict it stands for."""

    __slots__ = ("columns", "values")

    def __init__(self, values: tuple[Any, ...], columns: dict[str, int]) -> None:
        self.values = values
        self.columns = columns

    def get(self, k: str) -> Any:
        i = self.columns.get(k)
        return None if i is None else self.values[i]


def _artifact_rows(ledger: Ledger) -> dict[str, _Row]:
    """The artifacts table by item id (as :meth:`Ledger.artifacts`, read as tuples)."""
    cur = ledger.conn.execute("SELECT * FROM artifacts ORDER BY n")
    columns = {d[0]: i for i, d in enumerate(cur.description)}
    at = columns["id"]
    return {row[at]: _Row(row, columns) for row in cur}


def check_timestamps(
    bodies: dict[int, dict[str, Any]],
    report: VerifyReport,
    roots: Sequence[bytes],
) -> None:
    """Each RFC 3161 token must cover its checkpoint's note, chain to a trusted TSA
    root, and not be earlier than the time the checkpoint states (beyond the
    tolerance): a collector's clock set forward is caught here."""
    for seq, body in sorted((s, b) for s, b in bodies.items() if b.get("type") == TIMESTAMP_EVENT):
        data = body["data"]
        subject = _ev(seq)
        cp_seq = data.get("checkpoint")
        cp = bodies.get(cp_seq) if isinstance(cp_seq, int) else None
        if cp is None or cp.get("type") != CHECKPOINT_EVENT:
            report.add(
                Kind.TIMESTAMP,
                subject,
                f"refers to event {cp_seq}, which is no checkpoint",
                seq=seq,
            )
            continue
        cp_hash = content_hash(canonical_json(cp))
        if data.get("checkpoint_hash") != cp_hash:
            report.add(
                Kind.TIMESTAMP,
                subject,
                f"checkpoint_hash {data.get('checkpoint_hash')} is not event {cp_seq}'s"
                f" hash {cp_hash}",
                seq=seq,
            )
        if not roots:
            report.notes.append(
                f"{subject}: RFC 3161 token of checkpoint event {cp_seq} not checked"
                " (give --tsa-cert to check it)"
            )
            continue
        from custody.timestamp import TimestampError, later_than_token, verify_token

        try:
            token = base64.b64decode(str(data.get("token", "")), validate=True)
            info = verify_token(token, str(cp["data"].get("note", "")).encode("utf-8"), roots)
        except (binascii.Error, ValueError):
            report.add(Kind.TIMESTAMP, subject, "token is not base64", seq=seq)
            continue
        except TimestampError as e:
            report.add(Kind.TIMESTAMP, subject, e.message, seq=seq)
            continue
        stated = datetime.fromisoformat(str(cp.get("time"))[:26] + "+00:00")
        if later_than_token(stated, info):
            report.add(
                Kind.TIMESTAMP,
                _ev(cp_seq),
                f"checkpoint states {cp.get('time')}, later than its RFC 3161 token's time"
                f" {info.gen_time.isoformat()} from {info.tsa_name}: the clock was wrong",
                seq=cp_seq,
            )
        report.timestamps += 1


IMPORT_EVENT = "import"  # custody.bundle.importer's, not imported here (that loads all of it)


def _signed_imports(bodies: dict[int, dict[str, Any]]) -> dict[str, tuple[int, dict[str, Any]]]:
    """bundle id -> (seq, data) of each signed ``import`` event (an import recorded
    by item: its first event, with the items of its items' events)."""
    return import_records(
        sorted((seq, b) for seq, b in bodies.items() if b.get("type") == IMPORT_EVENT)
    )


def check_import_records(
    ledger: Ledger, bodies: dict[int, dict[str, Any]], report: VerifyReport
) -> None:
    """The imported-bundle tables must agree with the signed import events: each
    event's bundle id, source case, checkpoint, keys, items and event count, and
    the seq of the event itself; a row no import event names, or an import event
    without its rows, is a finding."""
    signed = _signed_imports(bodies)
    rows = {
        str(r[0]): r
        for r in ledger.conn.execute(
            "SELECT bundle, source_case, keys, items, checkpoint, import_seq FROM imported_bundles"
        )
    }
    counts = {
        str(b): int(n)
        for b, n in ledger.conn.execute(
            "SELECT bundle, count(*) FROM imported_events GROUP BY bundle"
        )
    }
    for bundle in sorted(set(rows) - set(signed)):
        report.add(
            Kind.IMPORT,
            bundle[:23],
            "in the imported_bundles table but no signed import event records it",
        )
    for bundle in sorted(set(counts) - set(signed)):
        report.add(
            Kind.IMPORT,
            bundle[:23],
            f"{counts[bundle]} imported_events row(s) of a bundle no signed import event records",
        )
    for bundle, (seq, data) in sorted(signed.items(), key=lambda kv: kv[1][0]):
        short = bundle[:23]
        row = rows.get(bundle)
        if row is None:
            report.add(
                Kind.IMPORT,
                short,
                f"recorded by {_ev(seq)} but missing from the imported_bundles table",
                seq=seq,
            )
        else:
            _, source_case, keys_json, items_json, checkpoint, import_seq = row
            try:
                keys: Any = sorted(str(k["fingerprint"]) for k in json.loads(keys_json))
            except (ValueError, KeyError, TypeError):
                keys = keys_json
            try:
                items: Any = json.loads(items_json)
            except (ValueError, TypeError):
                items = items_json
            for what, got, want in (
                ("source_case", source_case, data.get("source_case")),
                ("checkpoint", checkpoint, data.get("checkpoint")),
                ("keys", keys, data.get("keys")),
                ("items", items, data.get("items")),
                ("import_seq", import_seq, seq),
            ):
                if got != want:
                    report.add(
                        Kind.IMPORT,
                        short,
                        f"imported_bundles.{what} is {got!r}, signed {_ev(seq)} says {want!r}",
                        seq=seq,
                    )
        if counts.get(bundle, 0) != data.get("events"):
            report.add(
                Kind.IMPORT,
                short,
                f"{counts.get(bundle, 0)} imported_events row(s), signed {_ev(seq)} says"
                f" {data.get('events')!r}",
                seq=seq,
            )


def check_imports(
    ledger: Ledger,
    report: VerifyReport,
    quick: bool,
    bodies: dict[int, dict[str, Any]] | None = None,
    r: Replay | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> None:
    """Imported collectors' events still hash, verify with their bundle's keys and
    prove into their signed checkpoint; the source the import event names
    (``source_header``) is the one whose signed event 0 follows that header, and
    each item it lists is one the source's signed collect events collected, with
    that sha256; their payload is still in the store (the items as the signed
    import event lists them), re-hashed once per object and counted.  A bundle's
    signature checks run on ``pool``'s workers while its events are read
    (:class:`custody.eventcheck.StreamedChecks`); each failure is filed in its
    event's place, as a check made at once would file it."""
    signed = _signed_imports(bodies or {})
    rehashed: dict[str, str] = {}  # store object -> sha256 found
    rows = ledger.conn.execute(
        "SELECT bundle, source_case, keys, items, checkpoint FROM imported_bundles"
    ).fetchall()
    for bundle, source_case, keys_json, items_json, checkpoint in rows:
        short = str(bundle)[:23]
        try:
            key_list = json.loads(keys_json)
            keys = {k["fingerprint"]: base64.b64decode(k["public_key"]) for k in key_list}
            for fp, pub in keys.items():  # the signed import event pins fingerprints only
                if fingerprint(pub) != fp:
                    raise ValueError(f"the public key recorded for {fp} is another key")
            names = {k["fingerprint"]: (str(k["name"]), str(k["role"])) for k in key_list}
            items = json.loads(items_json)
            if str(bundle) in signed:
                items = signed[str(bundle)][1].get("items")
                if not isinstance(items, list):
                    items = []
            cp = open_checkpoint_text(
                checkpoint,
                origin_of(source_case),
                verifiers(keys, names),
                source=f"checkpoint of {short}",
            )
        except (ValueError, KeyError, TypeError, CustodyError) as e:
            report.add(Kind.IMPORT, short, f"imported bundle record does not verify: {e}")
            continue
        sign = signed.get(str(bundle))
        label = _source_label(r, sign[1]) if sign is not None else None
        collected: dict[str, Any] = {}  # source item -> sha256 its signed collect event says
        first_prev: Any = None
        src_rows: list[tuple[int, str, str, str, dict[str, Any]]] = []  # for the trust rule
        streamed = StreamedChecks(pool)
        # each event's subject, findings and signature check, filed once the verdicts are in
        pending: list[tuple[str, Findings, SignatureCheck | None]] = []
        for seq, ev_hash, signer, body, sig, proof in ledger.conn.execute(
            "SELECT seq, hash, signer, body, signature, proof FROM imported_events"
            " WHERE bundle = ? ORDER BY seq",
            (bundle,),
        ):
            try:
                ev_body = parse_strict(str(body))
            except ValueError:
                ev_body = None
            if isinstance(ev_body, dict) and isinstance(ev_body.get("data"), dict):
                ev_data = ev_body["data"]
                src_rows.append(
                    (int(seq), str(ev_hash), str(ev_body.get("type")), str(signer), ev_body)
                )
                if ev_body.get("seq") == 0:
                    first_prev = ev_body.get("prev")
                if ev_body.get("type") == COLLECT_EVENT:
                    dig = ev_data.get("digests")
                    collected[str(ev_data.get("item"))] = (
                        dig.get("sha256") if isinstance(dig, dict) else None
                    )
            subject = f"imported event {seq} of {short}"
            raw = str(body).encode("utf-8")
            found = Findings()  # the one event verifier's findings, filed as import findings
            parsed, check = check_event(
                raw,
                stated_hash=ev_hash,
                signature=sig,
                key_of=keys_in(keys),
                out=found,
                seq=None,
                subject=subject,
                where="the bundle",
            )
            if check is not None:
                streamed.add(check.triple())
            if parsed is not None and parsed.get("signer") != signer:
                found.add(Kind.IMPORT, subject, "signer column differs from the signed body")
            try:
                proof_hex = json.loads(proof)
            except ValueError:
                proof_hex = None
            check_inclusion(
                raw, int(seq), cp.size, proof_hex, cp.root, out=found, subject=subject, seq=None
            )
            pending.append((subject, found, check))
        verdicts = iter(streamed.verdicts())
        for subject, found, check in pending:
            if check is not None:
                settle(found, [check], [next(verdicts)])
            for f in found:
                report.add(Kind.IMPORT, subject, f"{f.kind}: {f.detail}")
        if sign is not None:
            _check_source(sign, first_prev, collected, label, short, report)
            if isinstance(sign[1].get("trust"), dict):
                _check_trust_basis(
                    sign, src_rows, cp.signed_by_keys, str(source_case), short, report
                )
        if quick:
            continue
        store = Store(ledger.store_dir)
        for it in items:
            rel = it.get("store")
            if not rel:
                continue
            item_id = imported_id(label, str(it.get("source_item"))) if label else None
            subject = f"imported {item_id or it.get('source_item')} ({rel})"
            if not names_object(rel, it.get("sha256")):
                report.add(
                    Kind.STORE_PATH,
                    subject,
                    f"store path does not name the recorded sha256 {it.get('sha256')}",
                    item=item_id,
                    obj=str(rel),
                )
                if object_sha256(str(rel)) is None:
                    continue  # never open a path that is no object path
            if str(rel) not in rehashed:
                try:
                    got = store.hash_object(str(rel), ["sha256"])
                except NotRegularFileError as e:
                    report.add(
                        Kind.OBJECT_NOT_REGULAR,
                        subject,
                        f"store object of an imported item is {e.what}, not a regular file",
                        item=item_id,
                        obj=str(rel),
                    )
                    continue
                except OSError:
                    report.add(
                        Kind.OBJECT_MISSING,
                        subject,
                        "store object of an imported item is missing",
                        item=item_id,
                        obj=str(rel),
                    )
                    continue
                rehashed[str(rel)] = got.digests["sha256"]
                report.objects_checked += 1
                report.bytes_checked += got.size
                report.found_digests.setdefault(str(rel), dict(got.digests))
            if rehashed[str(rel)] != it.get("sha256"):
                report.add(
                    Kind.OBJECT_DIGEST,
                    subject,
                    f"sha256: expected {it.get('sha256')}, found {rehashed[str(rel)]}",
                    item=item_id,
                    obj=str(rel),
                )


def _check_trust_basis(
    sign: tuple[int, dict[str, Any]],
    rows: list[tuple[int, str, str, str, dict[str, Any]]],
    cp_signers: Sequence[str],
    case_id: str,
    short: str,
    report: VerifyReport,
) -> None:
    """The trust basis a signed import event records holds: by the anchors it
    records, the trust rule (custody.trust) applied to the source's signed events
    as kept (each verified above) gives every signer the standing recorded, and a
    self-asserted one was accepted (docs/custody-model.md, "Trust anchors")."""
    from custody.trust import basis_problem, standings

    seq, data = sign
    recorded = data["trust"]
    rules = next(
        (
            b["data"].get("rules", 1)
            for *_, b in rows
            if b.get("type") == "export" and b["data"].get("rules", 1) in KNOWN_RULES
        ),
        1,
    )
    anchors = recorded.get("anchors") if isinstance(recorded.get("anchors"), list) else []
    assert isinstance(anchors, list)
    r = replay(sorted(rows), case_id, rules)
    found = standings(r, {str(a) for a in anchors}, {row[3] for row in rows} | set(cp_signers))
    why = basis_problem(recorded, found)
    if why:
        report.add(Kind.IMPORT, short, f"signed {_ev(seq)}: {why}", seq=seq)


def _source_label(r: Replay | None, data: dict[str, Any]) -> str | None:
    """The label the replay gave the source of import event ``data``."""
    header = data.get("source_header", data.get("bundle"))
    return r.source_labels.get(header) if r is not None and isinstance(header, str) else None


def _check_source(
    sign: tuple[int, dict[str, Any]],
    first_prev: Any,
    collected: dict[str, Any],
    label: str | None,
    short: str,
    report: VerifyReport,
) -> None:
    """The signed import event names its source truly: the header hash it records
    is the one the source's signed event 0 follows, and each item it imports was
    collected by the source's signed collect events with the sha256 it records."""
    seq, data = sign
    header = data.get("source_header")
    if header is not None and header != first_prev:
        report.add(
            Kind.IMPORT,
            short,
            f"signed {_ev(seq)} names source header {header!r}, but the source's signed"
            f" event 0 follows {first_prev!r}",
            seq=seq,
        )
    items = data.get("items")
    for it in items if isinstance(items, list) else []:
        if not isinstance(it, dict):
            continue
        src = str(it.get("source_item"))
        item_id = imported_id(label, src) if label else None
        if src not in collected:
            report.add(
                Kind.IMPORT,
                short,
                f"signed {_ev(seq)} imports {src}, which no signed collect event of the"
                " source collected",
                seq=seq,
                item=item_id,
            )
        elif collected[src] != it.get("sha256"):
            report.add(
                Kind.IMPORT,
                short,
                f"signed {_ev(seq)} imports {src} with sha256 {it.get('sha256')}, the"
                f" source collected it with {collected[src]}",
                seq=seq,
                item=item_id,
            )


def check_tree(ledger: Ledger, tree: merkle.TreeCache, report: VerifyReport) -> None:
    """Every stored Merkle node (they serve the proofs) must equal the node
    re-derived from the events."""
    sql = "SELECT level, idx, hash FROM merkle_nodes ORDER BY level, idx"
    if all(a == b for a, b in zip_longest(ledger.conn.execute(sql), tree.complete_nodes())):
        return  # the same nodes in the same order (both sorted by level, index), streamed
    rows = ledger.conn.execute(sql).fetchall()
    stored = {(int(lv), int(i)): h if isinstance(h, bytes) else str(h) for lv, i, h in rows}
    derived = {(lv, i): h for lv, i, h in tree.complete_nodes()}
    if derived == stored:
        return
    wrong = sorted(k for k in derived.keys() & stored.keys() if derived[k] != stored[k])
    missing = sorted(derived.keys() - stored.keys())
    extra = sorted(stored.keys() - derived.keys())
    for what, keys in (
        ("differ from the events", wrong),
        ("are missing", missing),
        ("match no event", extra),
    ):
        if keys:
            level, idx = keys[0]
            report.add(
                Kind.INDEX,
                "merkle tree",
                f"{len(keys)} stored tree node(s) {what}, first at level {level}"
                f" index {idx}"
                + (
                    ": event bodies changed after they were recorded"
                    if what == "differ from the events"
                    else ""
                ),
            )


def check_checkpoints(
    ledger: Ledger,
    bodies: dict[int, dict[str, Any]],
    tree: merkle.TreeCache,
    r: Replay,
    report: VerifyReport,
    files: Sequence[Path] = (),
    found: Sequence[Path] = (),
) -> None:
    """Every checkpoint recorded in the ledger, every one given, and every note
    custody keeps outside the database (``found``: :mod:`custody.statefile`) must
    be signed by a known key and be extended by the ledger (no truncation, no
    rewrite)."""
    origin = origin_of(ledger.case.case_id)
    vs = verifiers(r.keys, r.names)
    sources: list[tuple[str, str, int | None]] = [
        (_ev(seq), str(body["data"].get("note", "")), seq)
        for seq, body in sorted(
            (s, b) for s, b in bodies.items() if b.get("type") == CHECKPOINT_EVENT
        )
    ]
    for f in files:  # given on the command line: unreadable or malformed is bad input
        sources.append((str(f), read_input_text(f, "checkpoint file", CAP_CHECKPOINT), None))
    kept_notes: set[str] = set()
    for f in found:  # custody's own copies: unreadable or malformed is a finding
        try:
            sources.append((str(f), read_input_text(f, "checkpoint note", CAP_CHECKPOINT), None))
            kept_notes.add(str(f))
        except UsageError as e:
            report.add(Kind.CHECKPOINT, str(f), f"cannot read the checkpoint note: {e}")
    for subject, text, seq in sources:
        try:
            cp = open_checkpoint_text(text, origin, vs, source=subject)
        except UsageError as e:
            if seq is None and subject not in kept_notes:
                raise  # a malformed file given by the user
            report.add(Kind.CHECKPOINT, subject, e.message, seq=seq)
            continue
        except CustodyError as e:
            report.add(Kind.CHECKPOINT, subject, e.message, seq=seq)
            continue
        if seq is not None:
            data = bodies[seq]["data"]
            if cp.size > seq:  # n <= seq: docs/ledger-format.md §9.1
                report.add(
                    Kind.CHECKPOINT,
                    subject,
                    f"commits to {cp.size} events but was recorded as event {seq}",
                    seq=seq,
                )
            said = (data.get("size"), data.get("root"), data.get("origin"))
            if said != (cp.size, base64.b64encode(cp.root).decode("ascii"), origin):
                report.add(
                    Kind.CHECKPOINT,
                    subject,
                    "the event's size/root/origin fields differ from its signed note",
                    seq=seq,
                )
        for problem in consistency_findings(tree, cp):
            report.add(Kind.CHECKPOINT, subject, problem, seq=seq)
        report.checkpoints += 1


def check_store(
    ledger: Ledger,
    bodies: dict[int, dict[str, Any]],
    report: VerifyReport,
    progress: ProgressFn | None = None,
    purged: set[str] | None = None,
    interrupted: bool = False,
) -> None:
    """Every object an event names holds the recorded bytes; an object no event
    names is a note when an interrupted collection explains it (``interrupted``),
    else a finding."""
    store = Store(ledger.store_dir)
    purged = purged or set()
    wanted: dict[str, tuple[str, dict[str, str], int]] = {}
    for body in bodies.values():
        data = body["data"]
        if body.get("type") != COLLECT_EVENT or "store" not in data:
            continue
        rel = str(data["store"])
        digests = data["digests"]
        subject = f"{data['item']} ({rel})"
        if not names_object(rel, digests["sha256"]):
            report.add(
                Kind.STORE_PATH,
                subject,
                f"store path does not name the recorded sha256 {digests['sha256']}",
                item=str(data["item"]),
                obj=rel,
            )
            if object_sha256(rel) is None:
                continue  # never open a path that is no object path
        entry = wanted.get(rel)
        merged = dict(entry[1]) if entry else {}
        merged.update({str(k): str(v) for k, v in digests.items()})
        wanted[rel] = (str(data.get("item")), merged, int(data.get("size") or 0))
    for rel, (item, digests, size) in sorted(wanted.items()):
        path = store.path_of(rel)
        subject = f"{item} ({rel})"
        try:
            got = store.hash_object(rel, sorted(digests), progress=_bytes_only(progress))
        except NotRegularFileError as e:
            report.add(
                Kind.OBJECT_NOT_REGULAR,
                subject,
                f"store object is {e.what}, not a regular file: its bytes were not read"
                f" (expected sha256 {digests.get('sha256')})",
                item=item,
                obj=rel,
            )
            continue
        except FileNotFoundError:
            if rel in purged:
                report.notes.append(f"{subject}: stored bytes purged by a recorded disposal")
                continue
            report.add(
                Kind.OBJECT_MISSING,
                subject,
                f"store object is missing: expected sha256 {digests.get('sha256')}",
                item=item,
                obj=rel,
            )
            continue
        except OSError as e:
            report.add(
                Kind.OBJECT_UNREADABLE,
                subject,
                f"cannot read store object: {e.strerror}",
                item=item,
                obj=rel,
            )
            continue
        report.objects_checked += 1
        report.bytes_checked += got.size
        report.found_digests[rel] = dict(got.digests)
        if progress is not None:
            progress(0, 1)
        if got.size != size:
            report.add(
                Kind.OBJECT_SIZE,
                subject,
                f"expected {size} bytes, found {got.size}",
                item=item,
                obj=rel,
            )
        for alg, want in sorted(digests.items()):
            if got.digests[alg] != want:
                report.add(
                    Kind.OBJECT_DIGEST,
                    subject,
                    f"{alg}: expected {want}, found {got.digests[alg]}",
                    item=item,
                    obj=rel,
                )
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # gone since it was read: the next verify reports it
            mode = 0o400
        if mode & 0o222:
            report.add(
                Kind.OBJECT_WRITABLE,
                subject,
                "store object is writable (should be read-only)",
                item=item,
                obj=rel,
            )
        if mode & SHARED_READ_BITS:
            report.notes.append(
                f"{subject}: store object is readable by {_who(mode)} (mode"
                f" {stat.S_IMODE(mode):04o}): custody makes them 0400, for the case's"
                f" owner alone; 'chmod 0400' it"
            )
    imported = ledger.imported_objects()
    listed = [rel for rel, _ in store.objects()]
    if len({rel.count("/") for rel in listed if object_sha256(rel)}) > 1:
        report.notes.append(
            "the store holds objects in both layouts (sha256/ab/<hex> and"
            " sha256/ab/cd/<hex>): custody never mixes them in one store, so some were"
            " put there by other means; each object was checked at the path its event"
            " names"
        )
    unexplained = [rel for rel in listed if rel not in wanted and rel not in imported]
    if unexplained and WritersLock.writers_active(store.root):
        report.notes.append(
            "a collection or import is writing to the store right now: objects it has"
            " copied but not yet recorded were not counted"
        )
    elif unexplained and interrupted:
        report.notes.append(
            f"the store holds {len(unexplained)} object(s) no event names, copied by a"
            " collection interrupted before it recorded them; they are kept, and the next"
            " collect records them as kept"
        )
    else:
        for rel in unexplained:
            report.add(
                Kind.OBJECT_UNRECORDED,
                rel,
                "complete store object that no event names, and no collection was"
                " interrupted: the events that recorded it were lost (a lost write-ahead"
                " log or an older copy of the ledger); it is kept as evidence",
                obj=rel,
            )


def _interrupted_run(bodies: dict[int, dict[str, Any]]) -> bool:
    """Did some collection stop before recording all it copied: a
    ``collection.start`` with no ``collection.end``, or one ended as interrupted?"""
    started: set[object] = set()
    ended: set[object] = set()
    for body in bodies.values():
        data = body.get("data") or {}
        if body.get("type") == "collection.start":
            started.add(data.get("run"))
        elif body.get("type") == "collection.end":
            ended.add(data.get("run"))
            if data.get("status") == "interrupted":
                return True
    return bool(started - ended)


def check_case_perms(ledger: Ledger, report: VerifyReport) -> None:
    """A note (not a finding: the record is intact) when others may read the case
    directory or its ledger, which names paths, people and reasons.  custody makes
    new cases 0700 with custody.db* 0600 but never changes an existing case's
    permissions; it says how to."""
    d = ledger.case_dir
    shared: list[str] = []
    for path, what in (
        (d, "the case directory"),
        *((d / f"{DB_NAME}{sfx}", f"{DB_NAME}{sfx}") for sfx in ("", "-wal", "-shm")),
    ):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if mode & SHARED_READ_BITS:
            shared.append(f"{what} (mode {stat.S_IMODE(mode):04o})")
    if shared:
        q = shlex.quote(os.fspath(d))
        report.notes.append(
            f"{d}: other local users may read {', '.join(shared)}, and the ledger names"
            " paths, people and reasons; custody makes a new case 0700 with custody.db*"
            f" 0600: run 'chmod 700 {q}; chmod 600 {q}/{DB_NAME}*'"
        )


def _who(mode: int) -> str:
    """Who besides the owner may read a file of ``mode``, in words."""
    who = ((0o040, "its group"), (0o004, "every local user"))
    return " and ".join(w for bit, w in who if mode & bit)


def _bytes_only(progress: ProgressFn | None) -> Callable[[int], None] | None:
    if progress is None:
        return None
    p = progress

    def cb(n: int) -> None:
        p(n, 0)

    return cb


def verify_ledger(
    ledger: Ledger,
    *,
    quick: bool = False,
    progress: ProgressFn | None = None,
    checkpoints: Sequence[Path] = (),
    tsa_roots: Sequence[bytes] = (),
    parallel: bool | None = None,
    verifier: Identity | None = None,
    compact: bool = False,
) -> VerifyReport:
    """Every step above; every problem is a finding of the report.  ``parallel``:
    check the signatures on worker processes (None: when the ledger is large
    enough and there are two CPUs; the findings are the same either way).

    ``verifier``: an incremental verification (custody.verified): the signatures
    of the events the latest verified-through note of this key covers are not
    checked again, once the note's own signature verifies with this key; the tree
    root and signatures below it must still be the note's, else a
    ``verified-note`` finding and the whole ledger is checked in full.  The report
    then carries what a new note needs (``root``, ``signatures``).

    ``compact``: the parsed bodies the report keeps (``bodies``, which a report
    reuses) share equal keys and short strings (:class:`Sharing`): about 60% less
    memory for a few microseconds more per event; the findings are the same."""
    report = VerifyReport(case_id=ledger.case.case_id, quick=quick)
    pool = None
    gc_was_on = gc.isenabled()
    # Verify keeps every parsed body (10^5 small dicts and lists) while it makes
    # more: the cyclic collector would walk all of them again and again, about
    # half the cost of parsing.  Parsed JSON holds no cycles (reference counting
    # frees it), so the collector is paused for the run and restored after it.
    gc.disable()
    try:
        # One read transaction: a consistent snapshot even while others append.
        ledger.conn.execute("BEGIN")
        try:
            note = None
            if verifier is not None:
                report.incremental = True
                note, problem = latest_note(ledger, verifier.fingerprint, verifier.public_raw)
                if problem is not None:
                    report.add(Kind.VERIFIED_NOTE, _ev(problem[0]), problem[1], seq=problem[0])
            if parallel is not False:
                pool = signature_pool(ledger.event_count(), force=parallel is True)
            steps = (ledger, quick, progress, checkpoints, tsa_roots, pool)
            if not _verify_steps(report, *steps, note=note, verifier=verifier, compact=compact):
                held = report.findings[-1:]  # the verified-note finding: check again, in full
                report = VerifyReport(case_id=ledger.case.case_id, quick=quick, incremental=True)
                report.findings.extend(held)
                _verify_steps(report, *steps, note=None, verifier=verifier, compact=compact)
        finally:
            ledger.conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as e:
        raise CorruptLedgerError(f"ledger is unreadable: {e}") from e
    finally:
        if gc_was_on:
            gc.enable()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return report


def _verify_steps(
    report: VerifyReport,
    ledger: Ledger,
    quick: bool,
    progress: ProgressFn | None,
    checkpoints: Sequence[Path],
    tsa_roots: Sequence[bytes],
    pool: ProcessPoolExecutor | None,
    *,
    note: Through | None,
    verifier: Identity | None,
    compact: bool = False,
) -> bool:
    """The steps, into ``report``; False (and a finding) when ``note`` turns out
    not to hold: the caller then runs them again without it."""
    check_case_header(ledger, report)
    check_case_perms(ledger, report)
    r = Replay(rules=ledger.case.rules)
    if r.rules < 2:
        report.notes.append(
            f"this case was made under custody rules version {r.rules} and is judged"
            " by them: no owner, any known key may attest, revoke and be named"
        )
    tree = merkle.TreeCache()
    bodies = check_chain(ledger, report, r, tree, pool, note.through if note else -1, compact)
    report.bodies = bodies
    if note is not None:
        why = _note_broken(ledger, note, tree)
        retired = retired_why(r, verifier.fingerprint, note.seq) if verifier else None
        if retired and not why:  # a stolen key, revoked since, must not vouch for anything
            why = f"signed by a retired key: {retired}"
        if why:
            report.add(Kind.VERIFIED_NOTE, _ev(note.seq), why, seq=note.seq)
            return False
        report.through, report.note = note.through, note.seq
        report.notes.append(
            f"signatures of events 0-{note.through} not checked again: the verified-through"
            f" note of your key (event {note.seq}) covers them, and their tree root and"
            " signatures are unchanged"
        )
    if verifier is not None and report.events:
        report.root = tree.root()
        report.signatures = signatures_digest(ledger, report.events - 1)
    report.findings.extend(r.violations)
    check_index(ledger, bodies, report)
    check_tree(ledger, tree, report)
    check_checkpoints(ledger, bodies, tree, r, report, checkpoints, statefile.found(ledger))
    check_timestamps(bodies, report, tsa_roots)
    check_import_records(ledger, bodies, report)
    report.imported = sum(1 for st in r.items.values() if st.source is not None)
    report.artifacts += report.imported
    check_imports(ledger, report, quick, bodies, r, pool)
    if not quick:
        check_store(ledger, bodies, report, progress, purgeable(r), _interrupted_run(bodies))
    return True


def _note_broken(ledger: Ledger, note: Through, tree: merkle.TreeCache) -> str | None:
    """What makes ``note`` not hold for this ledger (None: it holds)."""
    if len(tree) <= note.through:
        return (
            f"names event {note.through}, but the ledger has {len(tree)} events: it was"
            " truncated or rewritten"
        )
    if tree.root(note.through + 1) != note.root:
        return (
            f"the tree root of events 0-{note.through} is not the one the note signed: the"
            " ledger was rewritten below it"
        )
    if signatures_digest(ledger, note.through) != note.signatures:
        return f"the signatures of events 0-{note.through} are not those the note signed"
    return None


def store_bytes(ledger: Ledger) -> int:
    """Total bytes verify will re-hash (for progress bars)."""
    seen: dict[str, int] = {}
    for a in ledger.artifacts():
        if a.get("sha256"):
            seen[a["sha256"]] = int(a.get("size") or 0)
    return sum(seen.values())
