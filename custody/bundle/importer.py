"""Importing a verified bundle into a case: its payload into the store
(deduplicated), the collector's events byte for byte with their checkpoint and
proofs, and an ``import`` event signed by the importer."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from custody.bundle.archive import CHUNK, open_source
from custody.bundle.reexport import read_sections, record_section
from custody.bundle.shapes import _json, _lines
from custody.bundle.verify import BundleReport, verify_bundle
from custody.canonical import content_hash, parse_strict
from custody.errors import IntegrityError
from custody.ledger import Event, EventDraft, Ledger, artifact_index_row
from custody.store import Store, WritersLock

IMPORT_EVENT = "import"


@dataclass
class ImportResult:
    bundle: str
    already: bool
    items: list[dict[str, Any]]
    events: int
    event_seq: int | None


def import_bundle(ledger: Ledger, signer: Any, path: Path) -> ImportResult:
    """Verify, then merge a bundle: payload into the store (deduplicated), the
    collector's events byte for byte with their checkpoint and proofs, and an
    ``import`` event signed by the importer.  A bundle that fails verification is
    refused with nothing written; importing the same bundle again changes nothing."""
    report = verify_bundle(path)
    if not report.ok:
        first = report.findings[0]
        raise IntegrityError(
            f"bundle {path} failed verification ({len(report.findings)} problem(s), first:"
            f" [{first.kind}] {first.subject}: {first.detail}); nothing was imported"
        )
    ledger.require_writable()
    writers = WritersLock(ledger.store_dir)  # objects land before the event names them
    writers.acquire()
    writers.share()
    try:
        return _import_verified(ledger, signer, path, report)
    finally:
        writers.release()


def _import_verified(ledger: Ledger, signer: Any, path: Path, report: BundleReport) -> ImportResult:
    """What the import event records is taken from the verified bundle's signed
    events (the case header, each item's collect event), never from bundle.json."""
    src = open_source(path)
    try:
        tagmanifest = src.read("tagmanifest-sha256.txt")
        bundle_id = content_hash(tagmanifest)
        if ledger.conn.execute(
            "SELECT 1 FROM imported_bundles WHERE bundle = ?", (bundle_id,)
        ).fetchone():
            return ImportResult(bundle_id, True, [], 0, None)
        meta = _json(src, "custody/bundle.json")
        keys = _json(src, "custody/keys.json")
        proofs = {p["seq"]: p["proof"] for p in _json(src, "custody/proofs.json")["proofs"]}
        checkpoint = src.read("custody/checkpoint.txt").decode("utf-8")
        lines = [parse_strict(x) for x in _lines(src.read("custody/events.jsonl").decode())]
        # read again: the files must still be those verified (a folder can change)
        verified = sorted((seq, h) for seq, h, _ in report.bodies)
        read = sorted((ln["seq"], content_hash(ln["body"].encode("utf-8"))) for ln in lines)
        if checkpoint != report.checkpoint_text or read != verified:
            raise IntegrityError(f"{path} changed while it was imported")
        store = Store(ledger.store_dir, deferred_sync=True)
        items = []
        if meta["items"] != report.meta.get("items"):  # report.items adds re-exported ones
            raise IntegrityError(f"{path} changed while it was imported")
        for it in meta["items"]:
            signed = artifact_index_row(0, report.collected[str(it["id"])])
            entry = {
                "source_item": it["id"],
                "path": signed["display_path"],
                "sha256": signed["sha256"],
            }
            if it.get("payload"):
                with src.open(it["payload"]) as f:
                    stored = _ingest_stream(store, f)
                if stored.result.digests["sha256"] != signed["sha256"]:
                    raise IntegrityError(f"{it['payload']} changed while it was imported")
                entry["store"] = stored.relpath
            items.append(entry)
        sections = read_sections(src, report, bundle_id, lambda f: _ingest_stream(store, f))
        store.sync()
    finally:
        src.close()

    def drafts() -> list[EventDraft]:
        return [
            EventDraft(
                IMPORT_EVENT,
                {
                    "bundle": bundle_id,
                    "source_case": report.case_id,
                    "source_header": report.header_hash,  # names the source (custody.sources)
                    "checkpoint": checkpoint,
                    "events": len(lines),
                    "keys": sorted(k["fingerprint"] for k in keys),
                    "items": items,
                },
            ),
            *(EventDraft(IMPORT_EVENT, sec.draft_data({"bundle": bundle_id})) for sec in sections),
        ]

    def record(last: Event) -> None:
        for i, sec in enumerate(sections):  # their import events follow the bundle's
            record_section(ledger, sec, last.seq - len(sections) + 1 + i)
        seq = last.seq - len(sections)
        ledger.conn.execute(
            "INSERT INTO imported_bundles (bundle, source_case, checkpoint, keys, items,"
            " import_seq) VALUES (?, ?, ?, ?, ?, ?)",
            (
                bundle_id,
                report.case_id,
                checkpoint,
                json.dumps(keys),
                json.dumps(items),
                seq,
            ),
        )
        ledger.conn.executemany(
            "INSERT INTO imported_events (bundle, seq, hash, signer, body, signature, proof)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    bundle_id,
                    ln["seq"],
                    ln["hash"],
                    ln["signer"],
                    ln["body"],
                    ln["signature"],
                    json.dumps(proofs.get(ln["seq"], [])),
                )
                for ln in lines
            ],
        )

    events = ledger.append(signer, drafts, after=record)
    ev = next(e for e in events if e.type == IMPORT_EVENT)
    nested = [i for sec in sections for i in sec.items]
    return ImportResult(
        bundle_id, False, items + nested, len(lines) + sum(len(s.lines) for s in sections), ev.seq
    )


def _ingest_stream(store: Store, f: IO[bytes]) -> Any:
    """Store a stream's bytes (a pipe-less copy through a temp file descriptor)."""
    with tempfile.TemporaryFile() as tmp:
        while chunk := f.read(CHUNK):
            tmp.write(chunk)
        tmp.flush()
        tmp.seek(0)
        return store.ingest(tmp.fileno(), ["md5", "sha1", "sha256"])
