"""Verification: re-derive everything the ledger claims and report every problem.

Steps (each a function; none stops the others):

1. ``case-header``  the header hash matches its canonical bytes;
2. ``chain``        events are gapless from seq 0, each body canonical JSON whose
                    seq/prev match its position, hash recomputed, row columns equal
                    to the body;
3. ``signatures``   every signature verifies with the signer's key, taken from the
                    identity events (never from the derived ``identities`` table);
4. ``index``        the derived tables (artifacts, identities) agree with events;
5. ``store``        every stored object re-hashed with every recorded digest
                    (skipped by ``quick``).
"""

from __future__ import annotations

import base64
import binascii
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from custody.canonical import canonical_json, content_hash, parse_strict
from custody.errors import CorruptLedgerError
from custody.hashing import hash_file
from custody.keys import fingerprint, verify_signature
from custody.ledger import IDENTITY_EVENT, ITEM_PREFIX, Event, Ledger
from custody.store import Store

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail}


@dataclass
class VerifyReport:
    case_id: str
    quick: bool
    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    artifacts: int = 0
    objects_checked: int = 0
    bytes_checked: int = 0
    head: str | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, subject: str, detail: str) -> None:
        self.findings.append(Finding(kind, subject, detail))

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "case": self.case_id,
            "quick": self.quick,
            "events": self.events,
            "artifacts": self.artifacts,
            "objects_checked": self.objects_checked,
            "bytes_checked": self.bytes_checked,
            "head": self.head,
            "findings": [f.as_json() for f in self.findings],
        }


def _ev(seq: int) -> str:
    return f"event {seq}"


def check_case_header(ledger: Ledger, report: VerifyReport) -> None:
    case = ledger.case
    found = content_hash(case.header.encode("utf-8"))
    if found != case.hash:
        report.add("case-header", "case header", f"expected hash {case.hash}, found {found}")
    try:
        if canonical_json(parse_strict(case.header)).decode("utf-8") != case.header:
            report.add("case-header", "case header", "header is not canonical JSON")
    except ValueError as e:
        report.add("case-header", "case header", f"header is not valid JSON: {e}")


def check_chain(ledger: Ledger, report: VerifyReport) -> dict[int, dict[str, Any]]:
    """Steps 2 and 3.  Returns the parsed bodies by seq (for the index step)."""
    keys: dict[str, bytes] = {}
    bodies: dict[int, dict[str, Any]] = {}
    expected_seq = 0
    prev = ledger.case.hash
    for ev in ledger.events():
        report.events += 1
        subject = _ev(ev.seq)
        if ev.seq != expected_seq:
            report.add(
                "chain-gap",
                subject,
                f"expected event {expected_seq} next, found event {ev.seq}"
                f" ({ev.seq - expected_seq} missing)"
                if ev.seq > expected_seq
                else f"expected event {expected_seq}, found {ev.seq}",
            )
            expected_seq = ev.seq
        expected_seq += 1
        found_hash = content_hash(ev.body.encode("utf-8"))
        if found_hash != ev.hash:
            report.add("event-hash", subject, f"stored hash {ev.hash}, body hashes to {found_hash}")
        if ev.prev != prev:
            report.add("chain-link", subject, f"prev is {ev.prev}, previous event's hash is {prev}")
        prev = ev.hash
        try:
            body = parse_strict(ev.body)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            if canonical_json(body).decode("utf-8") != ev.body:
                report.add("event-noncanonical", subject, "body is not RFC 8785 canonical JSON")
        except ValueError as e:
            report.add("event-body", subject, f"body is not valid JSON: {e}")
            continue
        bodies[ev.seq] = body
        _check_columns(ev, body, report)
        _check_signature(ev, body, keys, report)
    report.head = prev if report.events else None
    return bodies


def _check_columns(ev: Event, body: dict[str, Any], report: VerifyReport) -> None:
    subject = _ev(ev.seq)
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    assert isinstance(data, dict)
    expect = {
        "seq": ev.seq,
        "prev": ev.prev,
        "type": ev.type,
        "time": ev.time,
        "signer": ev.signer,
    }
    for k, v in expect.items():
        if body.get(k) != v:
            report.add(
                "event-mismatch",
                subject,
                f"{k}: ledger row says {v!r}, signed body says {body.get(k)!r}",
            )
    if data.get("item") != ev.item:
        report.add(
            "event-mismatch",
            subject,
            f"item: ledger row says {ev.item!r}, signed body says {data.get('item')!r}",
        )


def _check_signature(
    ev: Event, body: dict[str, Any], keys: dict[str, bytes], report: VerifyReport
) -> None:
    subject = _ev(ev.seq)
    signer = body.get("signer")
    data = body.get("data", {})
    if body.get("type") == IDENTITY_EVENT and isinstance(data, dict):
        try:
            pub = base64.b64decode(str(data.get("public_key", "")), validate=True)
        except (binascii.Error, ValueError):
            report.add("identity", subject, "public_key is not base64")
            pub = b""
        fp = fingerprint(pub)
        if data.get("fingerprint") != fp:
            report.add(
                "identity",
                subject,
                f"fingerprint {data.get('fingerprint')} does not match its public key ({fp})",
            )
        elif data.get("registration") == "self" and signer != fp:
            report.add(
                "identity",
                subject,
                f"self-registration signed by {signer}, not by the key it registers ({fp})",
            )
        elif len(pub) == 32:
            keys.setdefault(fp, pub)
    pub_raw = keys.get(str(signer))
    if pub_raw is None:
        report.add("unknown-signer", subject, f"signed by {signer}, a key the ledger does not know")
        return
    try:
        sig = base64.b64decode(ev.signature, validate=True)
    except (binascii.Error, ValueError):
        report.add("signature", subject, "signature is not base64")
        return
    if not verify_signature(pub_raw, sig, ev.body.encode("utf-8")):
        report.add("signature", subject, f"Ed25519 signature does not verify for signer {signer}")


def check_index(ledger: Ledger, bodies: dict[int, dict[str, Any]], report: VerifyReport) -> None:
    artifacts = {a["id"]: a for a in ledger.artifacts()}
    report.artifacts = len(artifacts)
    seen: set[str] = set()
    for seq, body in bodies.items():
        data = body.get("data")
        if not isinstance(data, dict):
            continue
        if body.get("type") == "collect":
            item = str(data.get("item"))
            seen.add(item)
            row = artifacts.get(item)
            if row is None:
                report.add(
                    "index", item, f"recorded by {_ev(seq)} but missing from the artifacts table"
                )
                continue
            path = data.get("path", {})
            expect = {
                "event_seq": seq,
                "outcome": data.get("outcome"),
                "path_hex": path.get("hex") if isinstance(path, dict) else None,
                "sha256": (data.get("digests") or {}).get("sha256"),
                "size": data.get("size"),
                "n": int(item[len(ITEM_PREFIX) :]) if item.startswith(ITEM_PREFIX) else None,
            }
            for k, v in expect.items():
                if row.get(k) != v:
                    report.add(
                        "index", item, f"artifacts.{k} is {row.get(k)!r}, signed event says {v!r}"
                    )
        elif body.get("type") == IDENTITY_EVENT:
            fp = str(data.get("fingerprint"))
            ident = ledger.identities().get(fp)
            if ident is None:
                report.add("index", fp, f"identity of {_ev(seq)} missing from identities table")
            elif ident["public_key"] != data.get("public_key") or ident["name"] != data.get("name"):
                report.add(
                    "index",
                    fp,
                    f"identities table differs from {_ev(seq)}: "
                    f"{ident['name']!r}/{ident['public_key']} vs "
                    f"{data.get('name')!r}/{data.get('public_key')}",
                )
    for item in artifacts:
        if item not in seen:
            report.add(
                "index", item, "in the artifacts table but no signed collect event records it"
            )


def check_store(
    ledger: Ledger,
    bodies: dict[int, dict[str, Any]],
    report: VerifyReport,
    progress: ProgressFn | None = None,
) -> None:
    store = Store(ledger.store_dir)
    wanted: dict[str, tuple[str, dict[str, str], int]] = {}
    for body in bodies.values():
        data = body.get("data")
        if body.get("type") != "collect" or not isinstance(data, dict) or "store" not in data:
            continue
        rel = str(data["store"])
        digests = data.get("digests") or {}
        entry = wanted.get(rel)
        merged = dict(entry[1]) if entry else {}
        merged.update({str(k): str(v) for k, v in digests.items()})
        wanted[rel] = (str(data.get("item")), merged, int(data.get("size") or 0))
    for rel, (item, digests, size) in sorted(wanted.items()):
        path = store.path_of(rel)
        subject = f"{item} ({rel})"
        if ".." in rel.split("/") or rel.startswith("/"):
            report.add("store-path", subject, "store path escapes the store")
            continue
        try:
            got = hash_file(path, sorted(digests), progress=_bytes_only(progress))
        except FileNotFoundError:
            report.add(
                "object-missing",
                subject,
                f"store object is missing: expected sha256 {digests.get('sha256')}",
            )
            continue
        except OSError as e:
            report.add("object-unreadable", subject, f"cannot read store object: {e.strerror}")
            continue
        report.objects_checked += 1
        report.bytes_checked += got.size
        if progress is not None:
            progress(0, 1)
        if got.size != size:
            report.add("object-size", subject, f"expected {size} bytes, found {got.size}")
        for alg, want in sorted(digests.items()):
            if got.digests[alg] != want:
                report.add(
                    "object-digest", subject, f"{alg}: expected {want}, found {got.digests[alg]}"
                )
        mode = os.stat(path).st_mode & 0o222
        if mode:
            report.add("object-writable", subject, "store object is writable (should be read-only)")


def _bytes_only(progress: ProgressFn | None) -> Callable[[int], None] | None:
    if progress is None:
        return None
    p = progress

    def cb(n: int) -> None:
        p(n, 0)

    return cb


def verify_ledger(
    ledger: Ledger, *, quick: bool = False, progress: ProgressFn | None = None
) -> VerifyReport:
    report = VerifyReport(case_id=ledger.case.case_id, quick=quick)
    try:
        # One read transaction: a consistent snapshot even while others append.
        ledger.conn.execute("BEGIN")
        try:
            check_case_header(ledger, report)
            bodies = check_chain(ledger, report)
            check_index(ledger, bodies, report)
            if not quick:
                check_store(ledger, bodies, report, progress)
        finally:
            ledger.conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as e:
        raise CorruptLedgerError(f"ledger is unreadable: {e}") from e
    return report


def store_bytes(ledger: Ledger) -> int:
    """Total bytes verify will re-hash (for progress bars)."""
    seen: dict[str, int] = {}
    for a in ledger.artifacts():
        if a.get("sha256"):
            seen[a["sha256"]] = int(a.get("size") or 0)
    return sum(seen.values())
