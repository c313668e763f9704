"""Verifying a bundle offline: the bag's manifests and payload digests (hashed in
worker processes for a large folder), the tag files, the signed events, the
checkpoint and inclusion proofs, the optional RFC 3161 time-stamp, the exporter's
signed list of what is disclosed, the custody chain of every item, and whether
the keys that signed it are trusted (decided by key, never by name).  Every
problem is reported as a finding; what is not a bundle custody will read raises
HostileBundleError."""

from __future__ import annotations

import base64
import binascii
import hashlib
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from custody.bundle.archive import (
    CHUNK,
    MAX_JSON_DEPTH,
    HostileBundleError,
    _DirSource,
    _Source,
    open_source,
    path_is_dangerous,
)
from custody.bundle.reexport import IMPORT_EVENT, SOURCES_DATA, SOURCES_DIR
from custody.bundle.shapes import (
    EXPORT_EVENT,
    TIMESTAMP_FILE,
    _check_depth,
    _event_line_shape,
    _item_shape,
    _json,
    _lines,
    _manifest,
    _payload_name,
    _payload_name_0_1_0,
    export_time,
)
from custody.canonical import content_hash, parse_strict
from custody.checkpoint import open_checkpoint_text, origin_of, verifiers
from custody.errors import CustodyError
from custody.eventcheck import (
    SIG_BATCH,
    SignatureCheck,
    StreamedChecks,
    check_event,
    check_inclusion,
    settle,
    signature_pool,
)
from custody.findings import Finding, Kind, Verdict
from custody.hashing import hash_file
from custody.keys import fingerprint
from custody.ledger import (
    COLLECT_EVENT,
    DESCRIBE_EVENT,
    KNOWN_RULES,
    OPEN_EVENT,
    artifact_index_row,
    identity_index_rows,
)
from custody.lifecycle import Replay, import_records, replay
from custody.sources import imported_id
from custody.timestamp import TimestampError, verify_token
from custody.trust import bundle_verdict, read_trust_keys, vouched_for

BundleFinding = Finding  # the one finding type (custody.findings)


@dataclass
class BundleReport(Verdict):
    case_id: str = ""
    items: list[str] = field(default_factory=list)
    events: int = 0
    payload_files: int = 0
    warnings: list[str] = field(default_factory=list)
    timestamp: dict[str, str] | None = None  # the checkpoint's verified RFC 3161 time
    item_digests: dict[str, dict[str, str]] = field(default_factory=dict)  # as re-hashed
    # item -> its object's type: the latest disclosed describe event of the object
    # that verified without a finding (mime, description, describe_event)
    types: dict[str, dict[str, Any]] = field(default_factory=dict)
    # store object sha256 -> the data of that latest describe event (not output)
    described: dict[str, dict[str, Any]] = field(default_factory=dict)
    # what was read, for callers that go on from a verification (reports); not output
    meta: dict[str, Any] = field(default_factory=dict)  # custody/bundle.json
    keys_doc: Any = None  # custody/keys.json and custody/proofs.json as read
    proofs_doc: Any = None
    bodies: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # seq, hash
    lines: list[dict[str, Any]] = field(default_factory=list)  # events.jsonl's parsed lines
    checkpoint_text: str = ""
    checkpoint: tuple[int, bytes] | None = None  # (size, root) once its signature verified
    handovers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # the signed values behind bundle.json's convenience copies (checked against them):
    header: dict[str, Any] = field(default_factory=dict)  # the case header, if bound
    header_hash: str = ""  # its hash, event 0's prev
    collected: dict[str, dict[str, Any]] = field(default_factory=dict)  # item -> collect data
    export: dict[str, Any] | None = None  # the signed export event's body
    key_names: dict[str, tuple[str, str]] = field(default_factory=dict)  # fp -> signed
    rules: int = 1  # the custody rules the signed export event says the case is under
    # "<name> (<role>) <fingerprint>" of each key of keys.json that signed an event
    # or the checkpoint, trusted or not; and of each that signed nothing (ignored)
    trusted_keys: list[str] = field(default_factory=list)
    self_asserted_keys: list[str] = field(default_factory=list)
    unused_keys: list[str] = field(default_factory=list)
    anchored: bool = False  # trust anchors were given (--trust, or the case's)
    checkpoint_signers: list[str] = field(default_factory=list)  # keys that verified on it

    @property
    def signers_confirmed(self) -> bool:
        """Every key that signed is trusted by an anchor given (docs §10.1)."""
        return self.anchored and not self.self_asserted_keys

    @property
    def verdict(self) -> str:
        """``verified``, ``unconfirmed`` (intact, signers not confirmed) or ``failed``."""
        return bundle_verdict(len(self.findings), self.signers_confirmed)

    # source sections of a re-export (§13) as verified, for an import: n -> what was read
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "signers_confirmed": self.signers_confirmed,
            "case": self.case_id,
            "items": self.items,
            "events": self.events,
            "payload_files": self.payload_files,
            "trusted_keys": self.trusted_keys,
            "self_asserted_keys": self.self_asserted_keys,
            "unused_keys": self.unused_keys,
            "warnings": self.warnings,
            "timestamp": self.timestamp,
            "handovers": self.handovers,
            "types": self.types,
            "findings": [f.as_json() for f in self.findings],
        }


def _check_bag(src: _Source, report: BundleReport) -> Callable[[], None]:
    """Check the bag's manifests and start hashing its payload; the returned
    function waits for the digests and reports every mismatch.  A folder's files
    are hashed by worker processes while the caller checks signatures (threads
    would fight the signature checks for the GIL); tar and zip readers are read one
    file at a time when the caller waits."""
    if "bagit.txt" not in src.sizes:
        raise HostileBundleError("not a BagIt bag: bagit.txt is missing")
    manifests = {}
    for alg in ("sha256", "sha512"):
        name = f"manifest-{alg}.txt"
        if name not in src.sizes:
            raise HostileBundleError(f"not a custody bundle: {name} is missing")
        manifests[alg] = _manifest(src, name)
    payload = {n for n in src.sizes if n.startswith("data/")}
    listed = set(manifests["sha256"]) | set(manifests["sha512"])
    for n in sorted(listed - payload):
        report.add(
            Kind.PAYLOAD_MISSING, n, "listed in the manifest but absent from the bundle", obj=n
        )
    for n in sorted(payload - listed):
        report.add(Kind.PAYLOAD_EXTRA, n, "present in the bundle but in no manifest", obj=n)
    names = sorted(listed & payload)
    at = len(report.findings)  # payload findings go here, before the later steps' ones
    _check_tags(src, report)

    jobs = [(n, [a for a in manifests if n in manifests[a]]) for n in names]
    futures = _hash_in_processes(src, jobs)

    def finish() -> None:
        if futures is None:
            results = [_stream_digest(src, n, algs) for n, algs in jobs]
        else:
            results = [d for f in futures for d in f.result()]
        found = BundleReport()
        for n, got in zip(names, results, strict=True):
            src.digests[n] = got
            for a in manifests:
                if n in manifests[a] and got[a] != manifests[a][n]:
                    found.add(
                        Kind.PAYLOAD_DIGEST,
                        n,
                        f"{a}: manifest says {manifests[a][n]}, found {got[a]}",
                        obj=n,
                    )
            report.payload_files += 1
        report.findings[at:at] = found.findings

    return finish


PARALLEL_MIN_BYTES = 64 << 20  # below this, starting worker processes costs more than it saves
_JOB_FILES = 64


def _hash_in_processes(
    src: _Source, jobs: list[tuple[str, list[str]]]
) -> list[Future[list[dict[str, str]]]] | None:
    """Start hashing a folder bag's payload in forked worker processes, or None when
    it is not a folder or too small to be worth it.  Forking happens before any
    thread of ours exists; the workers only read files."""
    if not isinstance(src, _DirSource) or (os.cpu_count() or 1) < 2:
        return None
    if sum(src.sizes[n] for n, _ in jobs) < PARALLEL_MIN_BYTES:
        return None
    pool = src.pool = ProcessPoolExecutor(
        max_workers=os.cpu_count(), mp_context=multiprocessing.get_context("fork")
    )
    src.on_close.append(lambda: pool.shutdown(cancel_futures=True))
    return [
        pool.submit(_hash_job, src.root, jobs[i : i + _JOB_FILES])
        for i in range(0, len(jobs), _JOB_FILES)
    ]


def _hash_job(root: Path, jobs: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    return [hash_file(root / n, algs).digests if algs else {} for n, algs in jobs]


_SIG_BATCH = SIG_BATCH  # signature checks sent to a worker at a time


def _check_tags(src: _Source, report: BundleReport) -> None:
    if "tagmanifest-sha256.txt" not in src.sizes:
        report.add(Kind.TAG_MISSING, "tagmanifest-sha256.txt", "the tag manifest is missing")
        return
    tags = _manifest(src, "tagmanifest-sha256.txt")
    for n, want in sorted(tags.items()):
        if n not in src.sizes:
            report.add(Kind.TAG_MISSING, n, "listed in tagmanifest-sha256.txt but absent")
            continue
        found = hashlib.sha256(src.read(n)).hexdigest()
        if found != want:
            report.add(Kind.TAG_DIGEST, n, f"sha256: tag manifest says {want}, found {found}")
    for n in sorted(src.sizes):
        if not n.startswith("data/") and n != "tagmanifest-sha256.txt" and n not in tags:
            report.add(Kind.TAG_EXTRA, n, "a tag file no tag manifest covers")


def _stream_digest(src: _Source, name: str, algs: Sequence[str]) -> dict[str, str]:
    if not algs:
        return {}
    known = src.known.get(name)
    if known is not None and all(a in known for a in algs):  # hashed as it was staged
        return {a: known[a] for a in algs}
    if isinstance(src, _DirSource):  # a real file: the threaded hasher of custody.hashing
        return hash_file(src.root / name, algs).digests
    hs = {a: hashlib.new(a) for a in algs}
    with src.open(name) as f:
        while chunk := f.read(CHUNK):
            for h in hs.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hs.items()}


def _trust_set(trust: Sequence[str]) -> set[str]:
    """The fingerprints of the trust anchors given (custody.trust.read_trust_key)."""
    return {k.fingerprint for k in read_trust_keys(trust)}


def verify_bundle(
    path: Path,
    *,
    trust: Sequence[str] = (),
    require_trusted: bool = False,
    tsa_roots: Sequence[bytes] = (),
) -> BundleReport:
    """Verify a bundle offline; every problem is reported.  Raises
    HostileBundleError (exit 2) for what is not a bundle custody will read.
    ``tsa_roots`` (PEM) are the RFC 3161 authorities trusted for the checkpoint's
    time-stamp; without them a time-stamp present is reported as not checked.
    ``trust`` are the trust anchors (public key files or fingerprints): who signed
    what is decided by key, never by name (:func:`_check_trust`)."""
    src = open_source(path)
    try:
        return verify_source(src, trust=trust, require_trusted=require_trusted, tsa_roots=tsa_roots)
    finally:
        src.close()


def verify_source(
    src: _Source,
    *,
    trust: Sequence[str] = (),
    require_trusted: bool = False,
    tsa_roots: Sequence[bytes] = (),
) -> BundleReport:
    """:func:`verify_bundle` of a bundle already open (an import's staged copy,
    which it then imports from); the caller closes ``src``."""
    anchors = _trust_set(trust)
    report = BundleReport(anchored=bool(anchors))
    payload_checked = _check_bag(src, report)
    meta = _json(src, "custody/bundle.json")  # version and schema checked there
    keys_doc = _json(src, "custody/keys.json")
    proofs_doc = _json(src, "custody/proofs.json")
    case = meta.get("case") if isinstance(meta.get("case"), dict) else {}
    assert isinstance(case, dict)
    report.case_id = str(case.get("id", ""))
    items = meta.get("items") if isinstance(meta.get("items"), list) else []
    assert isinstance(items, list)
    report.items = [str(i.get("id")) for i in items if isinstance(i, dict)]
    report.meta, report.keys_doc, report.proofs_doc = meta, keys_doc, proofs_doc
    keys = _keys(keys_doc, report)
    events, settle_signatures = _events_started(src, report, keys)
    report.bodies = [
        (e["seq"], str(e["hash"]), e["body"]) for e in events if isinstance(e["seq"], int)
    ]
    report.lines = [e["line"] for e in events]
    cp_keys = _check_checkpoint_and_proofs(src, proofs_doc, events, keys, report)
    settle_signatures()  # before any step that reads the findings
    report.checkpoint_signers = list(cp_keys)
    payload_checked()
    _check_timestamp(src, meta, report, tsa_roots)
    _check_items(src, items, events, report)
    _check_disclosure(src, meta, items, events, report)
    _check_rules(meta, events, report)
    r = _check_custody(events, report, str(case.get("id", "")))
    _check_signed_fields(meta, items, events, keys, r, report)
    _check_trust(events, keys, cp_keys, r, report, anchors, require_trusted)
    _check_sources(src, meta, events, r, report, anchors, require_trusted)
    _item_types(events, report)
    return report


def _item_types(events: list[dict[str, Any]], report: BundleReport) -> None:
    """Each item's type from the latest ``describe`` event of its store object
    (ledger-format §6.6) that the bundle discloses and that no finding names
    (signature, proof, body): what is shown comes from signed data checked here."""
    from custody.describe import check_data

    flagged = {f.seq for f in report.findings if f.seq is not None}
    typed: dict[str, dict[str, Any]] = {}
    for e in sorted(events, key=lambda e: e["seq"] if isinstance(e["seq"], int) else -1):
        data = e["body"].get("data")
        if e["body"].get("type") != DESCRIBE_EVENT or e["seq"] in flagged:
            continue
        if isinstance(data, dict) and check_data(data) is None:
            report.described[data["sha256"]] = data
            typed[data["sha256"]] = {
                "mime": data["mime"],
                "description": data["description"],
                "describe_event": e["seq"],
            }
    for item in report.items:
        digests = (report.collected.get(item) or {}).get("digests")
        sha = digests.get("sha256") if isinstance(digests, dict) else None
        sha = sha or report.item_digests.get(item, {}).get("sha256")
        if isinstance(sha, str) and sha in typed:
            report.types[item] = typed[sha]


def _check_timestamp(
    src: _Source, meta: dict[str, Any], report: BundleReport, roots: Sequence[bytes]
) -> None:
    """The RFC 3161 token, if any, must cover custody/checkpoint.txt's exact bytes
    and chain to a trusted authority."""
    stated = meta.get("checkpoint_timestamp")
    present = TIMESTAMP_FILE in src.sizes
    if stated is None and not present:
        return
    if stated is None or not present:
        report.add(
            Kind.TIMESTAMP,
            TIMESTAMP_FILE,
            "bundle.json and the bundle's files disagree on whether there is a time-stamp",
        )
        return
    if not roots:
        report.warnings.append(
            f"the checkpoint carries an RFC 3161 time-stamp from {stated.get('tsa')}, not"
            " checked: give --tsa-cert with the authority's root certificate"
        )
        return
    try:
        info = verify_token(src.read(TIMESTAMP_FILE), src.read("custody/checkpoint.txt"), roots)
    except TimestampError as e:
        report.add(Kind.TIMESTAMP, TIMESTAMP_FILE, e.message)
        return
    report.timestamp = {
        "time": info.gen_time.isoformat().replace("+00:00", "Z"),
        "tsa": info.tsa_name,
        "serial": str(info.serial),
    }


def _keys(doc: Any, report: BundleReport) -> dict[str, tuple[bytes, str, str]]:
    """The well-formed keys of keys.json: fingerprint -> (raw key, name, role).
    Whether they are used, and trusted, is decided later (:func:`_check_trust`)."""
    keys: dict[str, tuple[bytes, str, str]] = {}
    if not isinstance(doc, list):
        raise HostileBundleError("custody/keys.json is not a list of keys")
    for k in doc:
        if not isinstance(k, dict):
            raise HostileBundleError("custody/keys.json holds a non-object entry")
        try:
            pub = base64.b64decode(str(k.get("public_key", "")), validate=True)
        except (binascii.Error, ValueError):
            report.add(Kind.KEY, str(k.get("fingerprint")), "public key is not base64")
            continue
        fp = fingerprint(pub)
        if fp != k.get("fingerprint") or len(pub) != 32:
            report.add(
                Kind.KEY, str(k.get("fingerprint")), f"fingerprint does not match its key ({fp})"
            )
            continue
        keys[fp] = (pub, str(k.get("name")), str(k.get("role")))
    return keys


def _events(
    src: _Source, report: BundleReport, keys: dict[str, tuple[bytes, str, str]]
) -> list[dict[str, Any]]:
    """Each line's event through the one event verifier (custody.eventcheck), its
    signature checked (:func:`_events_started`, then its verdicts settled)."""
    out, settle_signatures = _events_started(src, report, keys)
    settle_signatures()
    return out


def _signature_checks(src: _Source, expected: int) -> StreamedChecks:
    """Signature checks started as they are found: for ``expected`` checks or more
    (two batches), each full batch goes to the bag's worker processes (new ones, see
    :func:`custody.eventcheck.signature_pool`), so the workers check while this
    process parses the following lines and the proofs."""
    parallel = expected >= 2 * _SIG_BATCH
    if parallel and src.pool is None:
        pool = src.pool = signature_pool(expected)
        if pool is not None:
            src.on_close.append(lambda: pool.shutdown(cancel_futures=True))
    return StreamedChecks(src.pool if parallel else None, _SIG_BATCH)


def _events_started(
    src: _Source, report: BundleReport, keys: dict[str, tuple[bytes, str, str]]
) -> tuple[list[dict[str, Any]], Callable[[], None]]:
    """Each line's event through the one event verifier (custody.eventcheck), and
    a function to call before anything is decided from the findings: it files the
    signature findings in their events' places once every verdict is in (the
    checks run meanwhile, on worker processes for a large bag)."""
    if "custody/events.jsonl" not in src.sizes:
        raise HostileBundleError("not a custody bundle: custody/events.jsonl is missing")
    out = []
    checks: list[SignatureCheck] = []
    try:
        text = src.read("custody/events.jsonl").decode("utf-8")
    except UnicodeDecodeError as e:
        raise HostileBundleError(f"custody/events.jsonl is not UTF-8: {e}") from e
    lines = _lines(text)
    batches = _signature_checks(src, len(lines))
    for n, line in enumerate(lines, 1):
        try:
            row = parse_strict(line)
            if not _plain(line):
                _check_depth(row, "custody/events.jsonl")
            _event_line_shape(row, n)
            raw = row["body"].encode("utf-8")
        except RecursionError as e:
            raise HostileBundleError(f"custody/events.jsonl line {n} is nested too deep") from e
        except (ValueError, KeyError, TypeError, UnicodeEncodeError) as e:
            report.add(Kind.EVENT_LINE, f"events.jsonl line {n}", f"not a valid event line: {e}")
            continue
        seq = row.get("seq") if isinstance(row.get("seq"), int) else None
        try:
            body, check = check_event(
                raw,
                stated_hash=row.get("hash"),
                signature=row.get("signature", ""),
                key_of=lambda signer, _b: keys[signer][0] if signer in keys else None,
                out=report.findings,
                seq=seq,
                subject=f"event {row.get('seq')}",
                where="the bundle",
            )
        except RecursionError as e:
            raise HostileBundleError(f"custody/events.jsonl line {n} is nested too deep") from e
        if body is None:
            continue
        if body.get("seq") != row.get("seq") or body.get("signer") != row.get("signer"):
            report.add(
                Kind.EVENT_MISMATCH,
                f"event {row.get('seq')}",
                "the line's seq/signer differ from the signed body",
                seq=seq,
            )
        if check is not None:
            checks.append(check)
            batches.add(check.triple())
        out.append(
            {"seq": row.get("seq"), "hash": row.get("hash"), "body": body, "raw": raw, "line": row}
        )
    report.events = len(out)

    def settle_signatures() -> None:
        settle(report.findings, checks, batches.verdicts())

    return out, settle_signatures


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _plain(text: str) -> bool:
    """Can the JSON ``text`` hold neither nesting deeper than MAX_JSON_DEPTH (each
    level opens with a bracket) nor a lone surrogate (only a ``\\uD800``-``\\uDFFF``
    escape makes one)?  Then :func:`_check_depth` of its value has nothing to find
    and its walk over every value is skipped; else it runs."""
    return (
        text.count("{") + text.count("[") <= MAX_JSON_DEPTH
        and _SURROGATE_ESCAPE.search(text) is None
    )


def _check_checkpoint_and_proofs(
    src: _Source,
    doc: Any,
    events: list[dict[str, Any]],
    keys: dict[str, tuple[bytes, str, str]],
    report: BundleReport,
) -> list[str]:
    """Check the checkpoint's signature and every event's inclusion proof; return
    the fingerprints of the keys whose signatures on the checkpoint verified (none
    if it did not verify)."""
    if "custody/checkpoint.txt" not in src.sizes:
        raise HostileBundleError("not a custody bundle: custody/checkpoint.txt is missing")
    names = {fp: (n, r) for fp, (_, n, r) in keys.items()}
    vs = verifiers({fp: k[0] for fp, k in keys.items()}, names)
    try:
        report.checkpoint_text = src.read("custody/checkpoint.txt").decode("utf-8")
        cp = open_checkpoint_text(
            report.checkpoint_text, origin_of(report.case_id), vs, source="checkpoint"
        )
    except (CustodyError, UnicodeDecodeError) as e:
        report.add(Kind.CHECKPOINT, "custody/checkpoint.txt", str(e))
        return []
    if cp.checkpoint.extensions:  # signed, but no part of a bundle's checkpoint (§7)
        report.add(
            Kind.CHECKPOINT,
            "custody/checkpoint.txt",
            "the checkpoint has extension lines: a bundle's has exactly three",
        )
        return []
    report.checkpoint = (cp.size, cp.root)
    if not isinstance(doc, dict) or not isinstance(doc.get("proofs"), list):
        report.add(Kind.PROOF, "custody/proofs.json", "no list of proofs")
        return cp.signed_by_keys
    if doc.get("tree_size") != cp.size:
        report.add(
            Kind.PROOF,
            "custody/proofs.json",
            f"proofs are for size {doc.get('tree_size')}, the checkpoint for {cp.size}",
        )
    by_seq = {p.get("seq"): p for p in doc["proofs"] if isinstance(p, dict)}
    for ev in events:
        subject = f"event {ev['seq']}"
        p = by_seq.get(ev["seq"])
        seq = ev["seq"] if isinstance(ev["seq"], int) else None
        if p is None or seq is None:
            report.add(Kind.PROOF, subject, "no inclusion proof for this event", seq=seq)
            continue
        check_inclusion(
            ev["raw"],
            seq,
            cp.size,
            p.get("proof", []),
            cp.root,
            out=report.findings,
            subject=subject,
            seq=seq,
        )
    return cp.signed_by_keys


def _export_event(meta: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The signed export event (docs/bundle-format.md §12): the first event whose seq
    is bundle.json's ``export_event`` and whose body is of type ``export`` with an
    object for ``data``; None when there is none (a ``disclosure`` finding)."""
    return next(
        (
            e
            for e in events
            if e["seq"] == meta.get("export_event")
            and e["body"].get("type") == EXPORT_EVENT
            and isinstance(e["body"].get("data"), dict)
        ),
        None,
    )


def _check_disclosure(
    src: _Source,
    meta: dict[str, Any],
    items: list[Any],
    events: list[dict[str, Any]],
    report: BundleReport,
) -> None:
    """The exporter's signed export event says what the bundle discloses: every
    event it lists must be here (and nothing else), every item's bytes too."""
    counts = Counter(e["seq"] for e in events)
    for seq in sorted((s for s, n in counts.items() if n > 1), key=str):
        report.add(
            Kind.EVENT_DUPLICATE,
            f"event {seq}",
            "the bundle carries this event twice",
            seq=seq if isinstance(seq, int) else None,
        )
    export = _export_event(meta, events)
    if export is None:
        report.add(
            Kind.DISCLOSURE,
            "custody/bundle.json",
            f"the signed export event {meta.get('export_event')} is not in the bundle",
        )
        return
    data = export["body"]["data"]
    entries = data.get("events") if isinstance(data.get("events"), list) else []
    listed = {
        (d["seq"], d["hash"])
        for d in entries
        if isinstance(d, dict) and type(d.get("seq")) is int and isinstance(d.get("hash"), str)
    }
    present = {(e["seq"], e["hash"]) for e in events if e is not export}
    for seq, h in sorted(listed - present, key=str):
        report.add(
            Kind.EVENT_WITHHELD,
            f"event {seq}",
            f"listed by the export event ({h}) but missing from the bundle",
            seq=seq if isinstance(seq, int) else None,
        )
    for seq, h in sorted(present - listed, key=str):
        report.add(
            Kind.EVENT_EXTRA,
            f"event {seq}",
            f"in the bundle but not listed by the export event ({h})",
            seq=seq if isinstance(seq, int) else None,
        )
    ids = [str(i.get("id")) for i in items if isinstance(i, dict)]
    if ids != data.get("items"):  # the same ids, in the same order
        report.add(
            Kind.DISCLOSURE,
            "custody/bundle.json",
            f"items {ids} differ from the export event's {data.get('items')}",
        )
    payload_of = {str(i.get("id")): i.get("payload") for i in items if isinstance(i, dict)}
    listed_payload = data.get("payload") if isinstance(data.get("payload"), dict) else {}
    for item, sha in sorted(listed_payload.items()):
        rel = payload_of.get(item)
        if not rel or rel not in src.sizes:
            report.add(
                Kind.PAYLOAD_WITHHELD,
                item,
                f"the export event lists its bytes (sha256 {sha})"
                " but the bundle does not carry them",
                item=item,
            )
    expected = {p for p in payload_of.values() if p}
    own = (n for n in src.sizes if n.startswith("data/") and not n.startswith(SOURCES_DATA))
    for n in sorted(n for n in own if n not in expected):
        report.add(Kind.PAYLOAD_EXTRA, n, "a payload file that belongs to no exported item", obj=n)


def _check_rules(meta: dict[str, Any], events: list[dict[str, Any]], report: BundleReport) -> None:
    """The custody rules the bundle is judged by are those its signed export event
    states (1 when it states none); bundle.json must say the same."""
    export = _export_event(meta, events)
    if export is None:  # no signed export event: reported (disclosure)
        report.rules = 1  # never bundle.json's unsigned word: only the anchors are trusted
        return
    data = export["body"]["data"]
    signed = data.get("rules", 1)
    report.rules = signed if signed in KNOWN_RULES else 1
    if meta.get("rules", 1) != signed:
        report.add(
            Kind.DISCLOSURE,
            "custody/bundle.json",
            f"rules {meta.get('rules', 1)!r} differ from the signed export event's {signed!r}",
        )


def _check_items(
    src: _Source, items: list[Any], events: list[dict[str, Any]], report: BundleReport
) -> None:
    collected = {
        str(ev["body"].get("data", {}).get("item")): ev["body"]["data"]
        for ev in events
        if ev["body"].get("type") == COLLECT_EVENT and isinstance(ev["body"].get("data"), dict)
    }
    for it in items:
        if not isinstance(it, dict):
            continue
        item = str(it.get("id"))
        data = collected.get(item)
        if data is None:
            report.add(
                Kind.ITEM, item, "no signed collect event for this item in the bundle", item=item
            )
            continue
        rel = it.get("payload")
        if rel is None:
            continue
        if not isinstance(rel, str) or path_is_dangerous(rel) or not rel.startswith("data/"):
            raise HostileBundleError(f"bundle.json names an unsafe payload path {rel!r}")
        if rel not in src.sizes:
            report.add(
                Kind.PAYLOAD_MISSING, rel, f"payload of {item} is absent", item=item, obj=rel
            )
            continue
        signed = data.get("digests") if isinstance(data.get("digests"), dict) else {}
        assert isinstance(signed, dict)
        # SHA-256 (and SHA-512 where recorded) bind the bytes to the signed event;
        # they were computed once for the manifests and are compared here
        want = {a: v for a, v in signed.items() if a in ("sha256", "sha512")}
        got = dict(src.digests.get(rel, {}))
        missing = sorted(set(want) - set(got))
        if missing:
            got.update(_stream_digest(src, rel, missing))
        report.item_digests[item] = {a: got[a] for a in sorted(want)}
        for a in sorted(want):
            if got[a] != want[a]:
                report.add(
                    Kind.PAYLOAD_DIGEST,
                    item,
                    f"{a}: collected as {want[a]}, bundle holds {got[a]}",
                    item=item,
                    obj=rel,
                )


def _check_custody(events: list[dict[str, Any]], report: BundleReport, case_id: str) -> Replay:
    rows = [
        (
            int(e["seq"]),
            str(e["hash"]),
            str(e["body"].get("type")),
            str(e["body"].get("signer")),
            e["body"],
        )
        for e in events
        if isinstance(e["seq"], int)
    ]
    r = replay(sorted(rows), case_id, report.rules, partial=True)
    for f in r.violations:
        if f.item is not None and f.item not in r.items:
            continue  # a hand-over that also moved items not disclosed here
        report.findings.append(f)
    for item in report.items:
        report.handovers[item] = _handovers(r, item)
    return r


def _handovers(r: Replay, item: str) -> list[dict[str, Any]]:
    """An item's hand-overs as the replay ``r`` found them (chain-of-custody form)."""
    chain = []
    for t in sorted(r.transfers.values(), key=lambda t: t.seq):
        if item in t.items:
            chain.append(
                {
                    "transfer": t.id,
                    "released_by": r.names.get(t.releaser, (t.releaser, ""))[0],
                    "received_by": r.names.get(t.receiver, (t.receiver, ""))[0]
                    if t.receipt is not None
                    else None,
                    "released": t.time,
                    "received": t.receipt_time,
                    "reason": t.reason,
                }
            )
    return chain


def _differ(
    report: BundleReport,
    kind: Kind,
    subject: str,
    what: str,
    got: Any,
    want: Any,
    where: str,
    **kw: Any,
) -> None:
    if got != want:
        report.add(kind, subject, f"{what} is {got!r} in bundle.json, {where} says {want!r}", **kw)


def _check_signed_fields(
    meta: dict[str, Any],
    items: list[Any],
    events: list[dict[str, Any]],
    keys: dict[str, tuple[bytes, str, str]],
    r: Replay,
    report: BundleReport,
) -> None:
    """bundle.json and keys.json are unsigned conveniences: every field a reader
    uses must agree with signed data (docs/bundle-format.md §10 step 12).  The
    case header must hash to ``header_hash``, which must be event 0's ``prev``
    (event 0 is always disclosed: it is a key event); the case's id, title and
    created time are the header's; each item's fields are its collect event's;
    each key's name and role those the signed key events give it; the exporter
    and the export time are the signed export event's signer and time."""
    by_seq = {e["seq"]: e for e in events if isinstance(e["seq"], int)}
    case = meta.get("case") if isinstance(meta.get("case"), dict) else {}
    assert isinstance(case, dict)
    where = "custody/bundle.json"
    header_text = str(case.get("header", ""))
    try:
        header = parse_strict(header_text)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        report.add(Kind.DISCLOSURE, where, "case.header is not a JSON object")
        header = {}
    found = content_hash(header_text.encode("utf-8"))
    if found != case.get("header_hash"):
        report.add(
            Kind.DISCLOSURE,
            where,
            f"case.header hashes to {found}, not to case.header_hash {case.get('header_hash')}",
        )
    first = by_seq.get(0)
    if first is None:
        report.add(
            Kind.DISCLOSURE,
            where,
            "event 0 is not in the bundle: the case header cannot be checked against it",
        )
    elif first["body"].get("prev") != found:
        report.add(
            Kind.DISCLOSURE,
            where,
            f"case.header hashes to {found}, but signed event 0 follows"
            f" {first['body'].get('prev')}",
            seq=0,
        )
    if first is not None and first["body"].get("prev") == found:
        # bound to signed event 0: what a report shows of the case
        report.header, report.header_hash = header, found
    else:
        report.header = {"case_id": str(first["body"].get("case")) if first else ""}
    for field_, key in (("id", "case_id"), ("title", "title")):
        _differ(
            report,
            Kind.DISCLOSURE,
            where,
            f"case.{field_}",
            case.get(field_),
            header.get(key),
            "the case header",
        )
    for e in events:
        if e["body"].get("case") != header.get("case_id"):
            report.add(
                Kind.DISCLOSURE,
                f"event {e['seq']}",
                f"signed for case {e['body'].get('case')!r}, the header's is"
                f" {header.get('case_id')!r}",
                seq=e["seq"] if isinstance(e["seq"], int) else None,
            )
    report.collected = _check_item_fields(items, events, report)
    found_export = _export_event(meta, events)
    export = found_export["body"] if found_export is not None else None
    report.export = export
    if report.checkpoint is not None:  # the checkpoint event follows the events it covers
        _differ(
            report,
            Kind.DISCLOSURE,
            where,
            "checkpoint_event",
            meta.get("checkpoint_event"),
            report.checkpoint[0],
            "the signed checkpoint's size",
        )
    if export is not None:
        _differ(
            report,
            Kind.DISCLOSURE,
            where,
            "exported_by",
            meta.get("exported_by"),
            export.get("signer"),
            "the signed export event",
        )
        _differ(
            report,
            Kind.DISCLOSURE,
            where,
            "exported",
            meta.get("exported"),
            export_time(str(export.get("time"))),
            "the signed export event",
        )
    _check_key_names(events, keys, r, report)


def _check_item_fields(
    items: list[Any], events: list[dict[str, Any]], report: BundleReport
) -> dict[str, dict[str, Any]]:
    """Each item's fields in bundle.json (or a source section's source.json) must
    be those its signed collect event gives (docs/bundle-format.md §10 step 12);
    returns item -> the signed collect event's data."""
    collected = {
        str(ev["body"]["data"].get("item")): ev["body"]["data"]
        for ev in events
        if ev["body"].get("type") == COLLECT_EVENT and isinstance(ev["body"].get("data"), dict)
    }
    for it in items:
        if not isinstance(it, dict) or str(it.get("id")) not in collected:
            continue  # no collect event: an ``item`` finding already
        item = str(it.get("id"))
        row = artifact_index_row(0, collected[item])
        digests = collected[item].get("digests")
        stored = isinstance(digests, dict) and bool(collected[item].get("store"))
        want: dict[str, Any] = {
            "path": row["display_path"],
            "path_hex": row["path_hex"],
            "outcome": row["outcome"],
            "sha256": row["sha256"],
            "size": row["size"],
        }
        if stored and isinstance(row["path_hex"], str):
            try:
                raw = bytes.fromhex(row["path_hex"])
                name, mapped = _payload_name(raw, item)
                old = _payload_name_0_1_0(raw, item)
            except ValueError:
                name, mapped = old = f"{item}.bin", True
            if (it.get("payload"), it.get("name_mapped")) == (f"data/{item}/{old[0]}", old[1]):
                name, mapped = old  # as custody 0.1.0 named it: as valid (§2)
            want["payload"] = f"data/{item}/{name}"
            want["name_mapped"] = mapped
        else:
            want["payload"] = want["name_mapped"] = None
        for k, v in want.items():
            _differ(report, Kind.ITEM, item, k, it.get(k), v, "its signed collect event", item=item)
    return collected


def _check_key_names(
    events: list[dict[str, Any]],
    keys: dict[str, tuple[bytes, str, str]],
    r: Replay,
    report: BundleReport,
) -> None:
    """Each key's name and role in keys.json are those the first signed event
    registering it gives; a signer no signed event registers is a ``key`` finding."""
    named: dict[str, tuple[str, str]] = {}  # as the first signed event registering it
    for e in sorted((e for e in events if isinstance(e["seq"], int)), key=lambda e: e["seq"]):
        data = e["body"].get("data")
        if isinstance(data, dict):
            for row in identity_index_rows(e["seq"], str(e["body"].get("type")), data):
                named.setdefault(str(row["fingerprint"]), (str(row["name"]), str(row["role"])))
    report.key_names = {**named, **r.names}
    signers = {str(e["body"].get("signer")) for e in events}
    for fp, (_, name, role) in keys.items():
        signed = named.get(fp)
        if signed is None:
            if fp in signers:
                report.add(Kind.KEY, fp, "no signed key event in the bundle names this key")
            continue
        if (name, role) != signed:
            report.add(
                Kind.KEY,
                fp,
                f"keys.json names it {name} ({role}), the signed key events"
                f" {signed[0]} ({signed[1]})",
            )


def _check_trust(
    events: list[dict[str, Any]],
    keys: dict[str, tuple[bytes, str, str]],
    cp_keys: list[str],
    r: Replay,
    report: BundleReport,
    anchors: set[str],
    require: bool,
) -> None:
    """Trust is by key.  A key of keys.json is used when an event's signer or the
    checkpoint's signature names it by its key; the others are ignored (a warning
    names each).  With anchors, every event signer not trusted (:func:`vouched_for`)
    is an ``untrusted-key`` finding, and the checkpoint must be signed by a trusted
    key (``untrusted-checkpoint``).  Without, every used key is self-asserted: a
    warning, or with ``require`` a finding."""
    first: dict[str, int] = {}  # signer -> seq of its first event in the bundle
    for e in sorted((e for e in events if isinstance(e["seq"], int)), key=lambda e: e["seq"]):
        first.setdefault(str(e["body"].get("signer")), e["seq"])
    used = [fp for fp in keys if fp in first or fp in cp_keys]
    trusted = vouched_for(r, anchors, [*keys, *first])

    def who(fp: str) -> str:  # the name the signed key events give, else keys.json's
        name, role = report.key_names.get(fp) or keys[fp][1:]
        return f"{name} ({role}) {fp}"

    for fp in keys:
        if fp not in used:
            report.unused_keys.append(who(fp))
            report.warnings.append(
                f"keys.json lists {who(fp)}, a key that signed nothing in this bundle: ignored"
            )
    for fp in used:
        (report.trusted_keys if fp in trusted else report.self_asserted_keys).append(who(fp))
    if not anchors:
        for fp in used:
            if require:
                report.add(
                    Kind.UNTRUSTED_KEY,
                    fp,
                    f"{who(fp)} is only asserted by the bundle itself",
                    seq=first.get(fp),
                )
            else:
                report.warnings.append(
                    f"key of {who(fp)} is self-asserted: it came only with the bundle"
                )
        return
    for fp, seq in sorted(first.items(), key=lambda kv: kv[1]):
        if fp in trusted or fp not in keys:  # an unknown signer is already a finding
            continue
        report.add(
            Kind.UNTRUSTED_KEY,
            fp,
            f"{who(fp)} signed event {seq} but no key you trust vouches for it: "
            + _why_untrusted(r, fp, trusted),
            seq=seq,
        )
    if cp_keys and not set(cp_keys) & trusted:
        report.add(
            Kind.UNTRUSTED_CHECKPOINT,
            "custody/checkpoint.txt",
            "the checkpoint is not signed by any key you trust: everything in the bundle"
            " hangs on it",
        )


def _why_untrusted(r: Replay, fp: str, trusted: set[str]) -> str:
    if r.rules < 2:
        return "under custody rules 1 there is no owner to attest keys: only your anchors count"
    if r.owner is None:
        return "the bundle names no owner of the case to attest keys: only your anchors count"
    if r.current(fp) == r.owner:
        return "it is the key of the case's owner, and you trust no key of the owner's"
    if r.owner not in trusted:
        return (
            f"the case's owner, {r.who(r.owner)}, is not a key you trust, so no attestation"
            " in the bundle counts"
        )
    if fp not in r.keys:
        return "no signed key event of the case registers it"
    return f"it is {r.standing(fp)}: neither the owner nor a delegate attested it"


class _Section(_Source):
    """A source section of a re-export (docs/bundle-format.md §13) read as a bundle
    of its own: ``custody/X`` is ``custody/sources/<n>/X`` and ``data/Y`` is
    ``data/sources/<n>/Y`` of the bag, with the digests already computed."""

    def __init__(self, src: _Source, n: str) -> None:
        self.src = src
        self.names: dict[str, str] = {}
        for name in src.sizes:
            if name.startswith(f"{SOURCES_DIR}{n}/"):
                self.names["custody/" + name[len(f"{SOURCES_DIR}{n}/") :]] = name
            elif name.startswith(f"{SOURCES_DATA}{n}/"):
                self.names["data/" + name[len(f"{SOURCES_DATA}{n}/") :]] = name
        super().__init__({k: src.sizes[v] for k, v in self.names.items()})
        self.digests = {k: src.digests[v] for k, v in self.names.items() if v in src.digests}

    def open(self, name: str) -> IO[bytes]:
        return self.src.open(self.names[name])


def _source_meta(view: _Section, where: str) -> dict[str, Any]:
    """A section's source.json: not signed, so only its shape is checked here."""
    meta = _json(view, "custody/source.json")
    ok = (
        isinstance(meta, dict)
        and set(meta) == {"case_id", "header_hash", "import_event", "items"}
        and isinstance(meta["case_id"], str)
        and isinstance(meta["header_hash"], str)
        and type(meta["import_event"]) is int
        and isinstance(meta["items"], list)
        and all(_item_shape(i) for i in meta["items"])
    )
    if not ok:
        raise HostileBundleError(f"{where}source.json is not a source section's metadata")
    assert isinstance(meta, dict)
    return meta


def _check_sources(
    src: _Source,
    meta: dict[str, Any],
    events: list[dict[str, Any]],
    r: Replay,
    report: BundleReport,
    anchors: set[str],
    require: bool,
) -> None:
    """The source sections of a re-export of imported items (docs/bundle-format.md
    §13): each must be one the lab's signed export event lists, and each verifies
    on its own back to the source's keys (:func:`_check_source`)."""
    export = _export_event(meta, events)
    entries = export["body"]["data"].get("sources") if export is not None else None
    listed = {
        str(s.get("import_event")): s
        for s in (entries if isinstance(entries, list) else [])
        if isinstance(s, dict)
    }
    present = sorted(
        {n[len(SOURCES_DIR) :].split("/", 1)[0] for n in src.sizes if n.startswith(SOURCES_DIR)}
        | {n[len(SOURCES_DATA) :].split("/", 1)[0] for n in src.sizes if n.startswith(SOURCES_DATA)}
    )
    for n in sorted(set(listed) - set(present)):
        report.add(
            Kind.EVENT_WITHHELD,
            f"{SOURCES_DIR}{n}",
            "the signed export event lists this source section; the bundle does not carry it",
        )
    expected: set[str] = set()
    for n in present:
        if n not in listed:
            report.add(
                Kind.EVENT_EXTRA,
                f"{SOURCES_DIR}{n}",
                "a source section the signed export event does not list",
            )
            continue
        if f"{SOURCES_DIR}{n}/source.json" not in src.sizes:
            raise HostileBundleError(f"{SOURCES_DIR}{n}/ has no source.json")
        try:
            expected |= _check_source(src, n, listed[n], events, r, report, anchors, require)
        except HostileBundleError as e:
            raise HostileBundleError(f"{SOURCES_DIR}{n}/: {e}") from e
    for name in sorted(src.sizes):
        if name.startswith(SOURCES_DATA) and name not in expected:
            report.add(
                Kind.PAYLOAD_EXTRA,
                name,
                "a payload file that belongs to no exported item",
                obj=name,
            )


def _check_source(
    src: _Source,
    n: str,
    entry: dict[str, Any],
    events: list[dict[str, Any]],
    r: Replay,
    report: BundleReport,
    anchors: set[str],
    require: bool,
) -> set[str]:
    """One source section, verified like a bundle (its events, signatures, checkpoint,
    proofs, items and payload, custody replay and trust, by key) with the lab's
    signed export event's entry as its list of what is disclosed, and bound to the
    lab's signed import event (the source header and checkpoint it pins, each
    item's digest).  Its findings are the bundle's, their subjects prefixed with
    the source's label.  Returns the bag paths of its payload files."""
    where = f"{SOURCES_DIR}{n}/"
    view = _Section(src, n)
    smeta = _source_meta(view, where)
    sub = BundleReport()
    sub.case_id = smeta["case_id"]
    items = smeta["items"]
    ids = [str(i["id"]) for i in items]
    keys = _keys(_json(view, "custody/keys.json"), sub)
    sevents = _events(view, sub, keys)
    proofs = _json(view, "custody/proofs.json")
    cp_keys = _check_checkpoint_and_proofs(view, proofs, sevents, keys, sub)
    _check_items(view, items, sevents, sub)
    header = smeta["header_hash"]
    if ids != entry.get("items"):
        sub.add(Kind.DISCLOSURE, "source.json", f"items {ids} differ from the export event's")
    if header != entry.get("source_header"):
        sub.add(Kind.DISCLOSURE, "source.json", f"source {header} is not the export event's")
    signed = entry.get("events")
    want = {
        (d["seq"], d["hash"])
        for d in (signed if isinstance(signed, list) else [])
        if isinstance(d, dict) and type(d.get("seq")) is int and isinstance(d.get("hash"), str)
    }
    got = {(e["seq"], e["hash"]) for e in sevents}
    for seq, h in sorted(want - got, key=str):
        sub.add(Kind.EVENT_WITHHELD, f"event {seq}", f"listed by the export event ({h})", seq=seq)
    for seq, h in sorted(got - want, key=str):
        sub.add(Kind.EVENT_EXTRA, f"event {seq}", f"not listed by the export event ({h})")
    payload_of = {str(i["id"]): i.get("payload") for i in items}
    pay = entry.get("payload")
    for item, sha in sorted((pay if isinstance(pay, dict) else {}).items()):
        rel = payload_of.get(item)
        if not rel or rel not in view.sizes:
            sub.add(Kind.PAYLOAD_WITHHELD, item, f"the export event lists its bytes (sha256 {sha})")
    by_seq = {e["seq"]: e for e in sevents}
    first = by_seq.get(0)
    if first is None or first["body"].get("prev") != header:
        sub.add(Kind.DISCLOSURE, "source.json", f"signed event 0 does not follow header {header}")
    for e in sevents:
        if e["body"].get("case") != sub.case_id:
            sub.add(Kind.DISCLOSURE, f"event {e['seq']}", f"not signed for case {sub.case_id!r}")
    sub.rules = 2 if first is not None and first["body"].get("type") == OPEN_EVENT else 1
    sr = _check_custody(sevents, sub, sub.case_id)
    collected = _check_item_fields(items, sevents, sub)
    _check_key_names(sevents, keys, sr, sub)
    _check_trust(sevents, keys, cp_keys, sr, sub, anchors, require)
    _check_import(smeta, entry, events, view, collected, sub)
    report.sections[n] = {
        "checkpoint": sub.checkpoint_text,
        "bodies": sorted((e["seq"], str(e["hash"])) for e in sevents if isinstance(e["seq"], int)),
        "collected": collected,
        "case_id": sub.case_id,
        "header": header,
    }
    label = r.source_labels.get(header) or f"{sub.case_id}@?"
    for f in sub.findings:
        report.findings.append(replace(f, subject=f"{label} {f.subject}"))
    report.warnings += [f"{label}: {w}" for w in sub.warnings]
    report.events += sub.events
    report.trusted_keys += sub.trusted_keys
    report.self_asserted_keys += sub.self_asserted_keys
    report.unused_keys += sub.unused_keys
    for i in ids:
        item = imported_id(label, i)
        report.items.append(item)
        report.handovers[item] = _handovers(r, item)
        if i in sub.item_digests:
            report.item_digests[item] = sub.item_digests[i]
    return {view.names[str(p)] for p in payload_of.values() if p and p in view.names}


def _check_import(
    smeta: dict[str, Any],
    entry: dict[str, Any],
    events: list[dict[str, Any]],
    view: _Section,
    collected: dict[str, dict[str, Any]],
    sub: BundleReport,
) -> None:
    """The lab's signed import event (in the bundle's main section) must pin this
    source: its header hash and its checkpoint, and each item with the digest the
    source's collect event signed."""
    seq = smeta["import_event"]
    imp = next(
        (
            e
            for e in events
            if e["seq"] == seq
            and e["body"].get("type") == IMPORT_EVENT
            and isinstance(e["body"].get("data"), dict)
        ),
        None,
    )
    if imp is None or entry.get("import_event") != seq:
        sub.add(Kind.IMPORT, "source.json", f"the signed import event {seq} is not in the bundle")
        return
    data = next(  # an import recorded by item: its items' events list them
        (
            d
            for n, d in import_records(sorted((e["seq"], e["body"]) for e in events)).values()
            if n == seq
        ),
        imp["body"]["data"],
    )
    if data.get("source_header") != smeta["header_hash"]:
        sub.add(
            Kind.IMPORT,
            "source.json",
            f"import event {seq} imported source {data.get('source_header')},"
            f" this section is {smeta['header_hash']}",
            seq=seq,
        )
    text = view.read("custody/checkpoint.txt").decode("utf-8", "replace")
    if data.get("checkpoint") != text:
        sub.add(
            Kind.IMPORT,
            "checkpoint.txt",
            f"not the source checkpoint import event {seq} pinned",
            seq=seq,
        )
    pinned = {
        str(i.get("source_item")): i.get("sha256")
        for i in data.get("items") or []
        if isinstance(i, dict)
    }
    for it in smeta["items"]:
        item = str(it["id"])
        digests = (collected.get(item) or {}).get("digests")
        sha = digests.get("sha256") if isinstance(digests, dict) else None
        if item not in pinned or pinned[item] != sha:
            sub.add(
                Kind.IMPORT,
                item,
                f"import event {seq} imported it with sha256 {pinned.get(item)},"
                f" its signed collect event says {sha}",
                seq=seq,
            )
