"""Importing a verified bundle into a case: its payload into the store
(deduplicated), the collector's events byte for byte with their checkpoint and
proofs, and an ``import`` event signed by the importer.

The bundle is first copied into a private staging folder (0700, inside the case
folder); what is verified, and then imported, are the staged bytes, so a bundle
changed after its check cannot slip other bytes in.  The import event records
the trust basis (the anchors, each signer's standing, whether self-asserted
signers were accepted) and, for a source imported before, the proof that its
checkpoint extends the pinned one (custody.trust); the custody replay applies
the same rules to it when it is written and when ``verify`` replays it."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custody import trust as trust_rules
from custody.bundle.archive import (
    CHUNK,
    HostileBundleError,
    StagedSource,
    _DirSource,
    _Source,
    open_source,
    stage_folder,
)
from custody.bundle.reexport import ImportedSection, read_sections, record_section
from custody.bundle.shapes import _json, _lines
from custody.bundle.verify import BundleReport, verify_source
from custody.canonical import canonical_json, content_hash, parse_strict
from custody.display import shown
from custody.errors import IntegrityError, UsageError
from custody.findings import Kind
from custody.ledger import DESCRIBE_EVENT, Event, EventDraft, Ledger, artifact_index_row
from custody.lifecycle import import_id, replay
from custody.sources import imported_id, source_label
from custody.store import Store, WritersLock

IMPORT_EVENT = "import"
#: findings about trust, decided by the import's own trust rule, not integrity
TRUST_KINDS = frozenset({Kind.UNTRUSTED_KEY, Kind.UNTRUSTED_CHECKPOINT})
STAGING_PREFIX = ".import-"


class ImportRefusedError(IntegrityError):
    """A bundle whose signers are not trusted, or that forks its pinned source (exit 1)."""


@dataclass
class ImportResult:
    bundle: str
    already: bool
    items: list[dict[str, Any]]
    events: int
    event_seq: int | None
    label: str = ""  # the source's label (custody.sources)
    signers: dict[str, str] | None = None  # fingerprint -> trusted / self-asserted


def stale_staging(case_dir: Path) -> list[Path]:
    """The staging folders (``.import-*``) in the case folder: left by an import
    that was killed (or belonging to one running now).  Never removed by custody:
    they may hold the only copy of a bundle someone has yet to look at."""
    try:
        with os.scandir(case_dir) as entries:
            return sorted(Path(e.path) for e in entries if e.name.startswith(STAGING_PREFIX))
    except OSError:
        return []


def _after_staging(original: Path, staged: Path) -> None:
    """Called once the bundle is staged and verified, before anything is read for
    the import (a seam for the tests that change the original in between)."""


def import_bundle(
    ledger: Ledger,
    signer: Any,
    path: Path,
    *,
    trust: Sequence[str] = (),
    accept_self_asserted: bool = False,
) -> ImportResult:
    """Stage, verify, then merge a bundle: payload into the store (deduplicated),
    the collector's events byte for byte with their checkpoint and proofs, and an
    ``import`` event signed by the importer.  Every signer of the bundle must be
    trusted by the trust rule (docs/bundle-format.md §10.1) from ``trust`` (key
    files, verifier keys, fingerprints) and the case's own anchors, unless
    ``accept_self_asserted``.  A bundle that fails verification or trust is
    refused with nothing written; importing the same signed content again
    changes nothing."""
    given = trust_rules.read_trust_keys(trust)
    ledger.require_writable()
    with _staged(ledger.case_dir, path) as (staged, src):
        anchors = {k.fingerprint for k in given} | set(ledger.rules().current().anchors)
        report = verify_source(src, trust=sorted(anchors))
        problems = [f for f in report.findings if f.kind not in TRUST_KINDS]
        if problems:
            first = problems[0]
            raise IntegrityError(
                f"bundle {shown(str(path))} failed verification ({len(problems)} problem(s),"
                f" first: [{first.kind}] {shown(first.subject)}: {shown(first.detail)});"
                " nothing was imported"
            )
        _after_staging(path, staged)
        writers = WritersLock(ledger.store_dir)  # objects land before the event names them
        writers.acquire()
        writers.share()
        try:
            return _import_verified(
                ledger, signer, src, path, report, anchors, accept_self_asserted
            )
        finally:
            writers.release()


@contextmanager
def _staged(case_dir: Path, path: Path) -> Iterator[tuple[Path, _Source]]:
    """A private copy of the bundle in a new 0700 folder inside the case folder,
    open for reading, removed afterwards: an archive copied as one file, a folder
    file by file (custody.bundle.archive.stage_folder: its tag files in memory,
    each payload file copied, read back and hashed once, later moved into the
    store as it is)."""
    if not path.exists():
        raise UsageError(f"no such bundle: {path}")
    tmp = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=case_dir))
    src: _Source | None = None
    try:
        os.chmod(tmp, 0o700)
        if path.is_dir():
            src = stage_folder(path, tmp)
        else:
            dest = tmp / ("bundle" + "".join(path.suffixes[-2:]))
            _copy_file(path, dest)
            src = open_source(dest)
        yield tmp, src
    finally:
        try:
            if src is not None:
                src.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _copy_file(src: Path, dest: Path) -> None:
    fd = os.open(src, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise HostileBundleError(f"{shown(str(src))} is not a regular file")
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with open(fd, "rb", closefd=False) as r, open(out, "wb", closefd=False) as w:
                shutil.copyfileobj(r, w, CHUNK)
        finally:
            os.close(out)
    finally:
        os.close(fd)


def content_id(checkpoint: str, events: Sequence[tuple[int, str]]) -> str:
    """A bundle's identity for idempotence: its signed content, the checkpoint and
    the (seq, hash) of every event, never the tag files' bytes."""
    return content_hash(
        canonical_json({"checkpoint": checkpoint, "events": [list(e) for e in sorted(events)]})
    )


def _import_verified(
    ledger: Ledger,
    signer: Any,
    src: _Source,
    path: Path,
    report: BundleReport,
    anchors: set[str],
    accept: bool,
) -> ImportResult:
    """What the import event records is taken from the verified bundle's signed
    events (the case header, each item's collect event), never from bundle.json;
    the bytes are the staged ones that were verified (``src``, still open)."""
    try:
        checkpoint = src.read("custody/checkpoint.txt").decode("utf-8")
        verified = sorted((seq, h) for seq, h, _ in report.bodies)
        if isinstance(src, StagedSource):  # tag files held in memory: the lines verified
            lines = report.lines
        else:  # the staged files are those verified (nobody else can write them)
            lines = [parse_strict(x) for x in _lines(src.read("custody/events.jsonl").decode())]
            read = sorted((ln["seq"], content_hash(ln["body"].encode("utf-8"))) for ln in lines)
            if read != verified:
                raise IntegrityError(f"{shown(str(path))} changed while it was imported")
        if checkpoint != report.checkpoint_text or len(lines) != len(verified):
            raise IntegrityError(f"{shown(str(path))} changed while it was imported")
        bundle_id = content_id(checkpoint, verified)
        if ledger.conn.execute(
            "SELECT 1 FROM imported_bundles WHERE bundle = ?", (bundle_id,)
        ).fetchone():
            return ImportResult(bundle_id, True, [], 0, None)
        r = ledger.rules().current()
        signers = _standings(report, anchors)
        data: dict[str, Any] = {
            "bundle": bundle_id,
            "source_case": report.case_id,
            "source_header": report.header_hash,  # names the source (custody.sources)
            "checkpoint": checkpoint,
            "trust": trust_rules.basis(anchors, signers, accept),
        }
        why = trust_rules.basis_problem(data["trust"], None)
        if why:
            raise ImportRefusedError(
                f"bundle {shown(str(path))} refused: {why}. Give --trust with the public key"
                " of the case's owner or collector (or add it with 'custody trust add'), or"
                " --accept-self-asserted to import it on the signers' own word (recorded);"
                " nothing was imported"
            )
        size = report.checkpoint[0] if report.checkpoint else 0
        doc = _consistency_doc(src)
        earlier = trust_rules.recorded_proofs(doc, size)
        if earlier:  # so an older bundle of the source, imported later, can be placed
            data["consistency_from"] = earlier
        pin = r.pins.get(report.header_hash)
        if pin is not None:
            if size > pin.size:
                proof = trust_rules.proof_from(doc, pin.size)
                if proof is not None:
                    data["consistency"] = {"size": pin.size, "proof": proof}
            elif size < pin.size:  # older: the pinned bundle's proof from its size
                pinned = {"proofs": _event_data(ledger, pin.seq).get("consistency_from")}
                proof = trust_rules.proof_from(pinned, size)
                if proof is not None:
                    data["consistency"] = {"size": pin.size, "proof": proof}
            why = trust_rules.pin_problem(pin, data)
            if why:
                label = r.source_labels.get(report.header_hash, report.case_id)
                raise ImportRefusedError(
                    f"bundle {shown(str(path))} of source {shown(label)} refused: {shown(why)};"
                    " nothing was imported"
                )
        if isinstance(src, StagedSource):  # tag files held in memory: those verified
            meta, keys, proofs_doc = report.meta, report.keys_doc, report.proofs_doc
        else:
            meta = _json(src, "custody/bundle.json")
            keys = _json(src, "custody/keys.json")
            proofs_doc = _json(src, "custody/proofs.json")
        proofs = {p["seq"]: p["proof"] for p in proofs_doc["proofs"]}
        store = Store(ledger.store_dir, deferred_sync=True)
        items = []
        if meta["items"] != report.meta.get("items"):  # report.items adds re-exported ones
            raise IntegrityError(f"{shown(str(path))} changed while it was imported")
        for it in meta["items"]:
            signed = artifact_index_row(0, report.collected[str(it["id"])])
            entry = {
                "source_item": it["id"],
                "path": signed["display_path"],
                "sha256": signed["sha256"],
            }
            if it.get("payload"):
                stored = _ingest(store, src, it["payload"])
                if stored.result.digests["sha256"] != signed["sha256"]:
                    raise IntegrityError(f"{it['payload']} changed while it was imported")
                entry["store"] = stored.relpath
            items.append(entry)
        sections = read_sections(src, report, bundle_id, lambda f: _ingest_stream(store, f))
        store.sync()
    finally:
        src.close()
    data["events"] = len(lines)
    data["keys"] = sorted(k["fingerprint"] for k in keys)
    data["items"] = items
    # a re-export's source sections: every signer of the original source's events
    # is judged by the same trust rule, and the basis recorded in its import event
    # and, like a direct import, a section of a source the case pinned must be on
    # the pinned line: an older one proven by the pinned import's recorded proof
    section_data = []
    for sec in sections:
        basis = trust_rules.basis(anchors, _section_standings(sec, anchors), accept)
        why = trust_rules.basis_problem(basis, None)
        sdata = {k: v for k, v in sec.draft_data({"bundle": bundle_id}).items() if k != "items"} | {
            "trust": basis
        }
        pin = r.pins.get(sec.header_hash)
        found = trust_rules.checkpoint_size_root(sec.checkpoint)
        if why is None and pin is not None and found is not None:
            if found[0] < pin.size:
                pinned = {"proofs": _event_data(ledger, pin.seq).get("consistency_from")}
                proof = trust_rules.proof_from(pinned, found[0])
                if proof is not None:
                    sdata["consistency"] = {"size": pin.size, "proof": proof}
            why = trust_rules.pin_problem(pin, sdata)
        if why:
            label = r.source_labels.get(sec.header_hash, sec.case_id)
            raise ImportRefusedError(
                f"bundle {shown(str(path))} refused: its source section of"
                f" {shown(label)}: {shown(why)}; nothing was imported"
            )
        section_data.append(sdata)

    # the bundle's import, then each section's: a bundle-level first event and one
    # event per item (ledger-format §7.6), so no signed event names two items
    groups: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
        ({k: v for k, v in data.items() if k != "items"}, items),
        *((section_data[n], sec.items) for n, sec in enumerate(sections)),
    ]
    heads: list[int] = []  # the first seq of each group, set when drafted
    ledger.ensure_registered(signer)  # so the drafts are the next events

    def drafts() -> list[EventDraft]:
        heads.clear()
        return import_drafts(ledger.rules().current(), ledger.event_count(), groups, heads)

    def record(last: Event) -> None:
        for i, sec in enumerate(sections):  # their import events follow the bundle's
            record_section(ledger, sec, heads[i + 1])
        seq = heads[0]
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
    from custody.describe import describe_missing, undescribed

    # the objects no describe event of the case types: the type the bundle's own
    # verified describe event gives is recorded as it is (libmagic is not run
    # again), the others are typed here
    nested = [i for sec in sections for i in sec.items]
    todo = undescribed(
        ledger, dict.fromkeys(str(i["sha256"]) for i in items + nested if "store" in i)
    )
    carried = [report.described[s] for s in todo if s in report.described]
    if carried:
        ledger.append(signer, [EventDraft(DESCRIBE_EVENT, dict(d)) for d in carried])
    describe_missing(ledger, signer, [s for s in todo if s not in report.described])
    label = ledger.rules().current().source_labels.get(report.header_hash, "")
    return ImportResult(
        bundle_id,
        False,
        items + nested,
        len(lines) + sum(len(s.lines) for s in sections),
        ev.seq,
        label,
        signers,
    )


def import_drafts(
    r: Any,
    first: int,
    groups: Sequence[tuple[dict[str, Any], Sequence[dict[str, Any]]]],
    heads: list[int],
) -> list[EventDraft]:
    """The events of imports recorded by item (ledger-format §7.6), the first of
    them at seq ``first``: per group (bundle-level data, item entries) a first
    event with the bundle-level data and its own id ``IMPORT-<seq>``, then one
    event per item with the id, the item's id in this case (``<label>/ITEM-n``,
    the label the replay ``r`` gives or will give its source) and the item's
    entry.  The first seq of each group is appended to ``heads``."""
    taken = dict(r.sources)
    labels = dict(r.source_labels)
    out: list[EventDraft] = []
    for head, entries in groups:
        header = str(head.get("source_header"))
        label = labels.get(header)
        if label is None:
            label = source_label(str(head.get("source_case")), header, taken)
            taken[label], labels[header] = header, label
        seq = first + len(out)
        heads.append(seq)
        gid = import_id(seq)
        out.append(EventDraft(IMPORT_EVENT, {**head, "import": gid}))
        out += [
            EventDraft(
                IMPORT_EVENT,
                {"import": gid, "item": imported_id(label, str(e["source_item"])), **e},
            )
            for e in entries
        ]
    return out


def _consistency_doc(src: _Source) -> Any:
    """The bundle's custody/consistency.json (unsigned: its proofs only ever fail
    when wrong), or None when absent or not JSON custody reads."""
    if trust_rules.CONSISTENCY_FILE not in src.sizes:
        return None
    try:
        return _json(src, trust_rules.CONSISTENCY_FILE)
    except HostileBundleError:
        return None


def _event_data(ledger: Ledger, seq: int) -> dict[str, Any]:
    """The signed data of event ``seq`` ({} if it has none)."""
    ev = next(ledger.events(after=seq - 1), None)
    try:
        data = ev.parsed.get("data") if ev is not None and ev.seq == seq else None
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


def _section_standings(sec: ImportedSection, anchors: set[str]) -> dict[str, str]:
    """Each signer of a re-export's source section, trusted or self-asserted by
    the trust rule, from the section's own signed key events."""
    rows = []
    for ln in sec.lines:
        body = parse_strict(str(ln["body"]))
        rows.append(
            (int(ln["seq"]), str(ln["hash"]), str(body.get("type")), str(ln["signer"]), body)
        )
    rows.sort(key=lambda row: row[0])
    rules = 2 if rows and rows[0][0] == 0 and rows[0][2] == "case.open" else 1
    r = replay(rows, sec.case_id, rules)
    return trust_rules.standings(r, anchors, {row[3] for row in rows})


def _standings(report: BundleReport, anchors: set[str]) -> dict[str, str]:
    """Each signer of the bundle (its events' and its checkpoint's) trusted or
    self-asserted by the trust rule, from the bundle's own signed key events."""
    rows = sorted(
        (seq, h, str(body.get("type")), str(body.get("signer")), body)
        for seq, h, body in report.bodies
    )
    r = replay(rows, report.case_id, report.rules)
    signers = {str(body.get("signer")) for _, _, body in report.bodies}
    return trust_rules.standings(r, anchors, signers | set(report.checkpoint_signers))


def _ingest_stream(store: Store, f: Any) -> Any:
    """Store a stream's bytes (a re-export section's payload) through a temporary file."""
    with tempfile.TemporaryFile() as tmp:
        while chunk := f.read(CHUNK):
            tmp.write(chunk)
        tmp.flush()
        tmp.seek(0)
        return store.ingest(tmp.fileno(), ["sha256"])


def _ingest(store: Store, src: _Source, name: str) -> Any:
    """Store the staged payload file ``name``: a staged folder's copy moved into
    the store as it is (it was hashed as it was written), an archive member
    through a temporary file."""
    size = src.sizes.get(name)
    if isinstance(src, StagedSource) and size is not None:
        staged = src.staged_path(name)
        if staged is not None:
            if not src.untouched(name):
                raise IntegrityError(f"{shown(name)} changed while it was imported")
            return store.adopt(staged, src.known[name], size, src.stamps[name])
    if isinstance(src, _DirSource):
        fd = os.open(src.root / name, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
        try:
            return store.ingest(fd, ["sha256"], size_hint=size)
        finally:
            os.close(fd)
    with src.open(name) as f, tempfile.TemporaryFile() as tmp:
        while chunk := f.read(CHUNK):
            tmp.write(chunk)
        tmp.flush()
        tmp.seek(0)
        return store.ingest(tmp.fileno(), ["sha256"], size_hint=size)
