"""The auditor's report: one model, built from a case (or a bundle), rendered in
every format by :mod:`custody.render`.

Nothing here is computed differently from ``verify``: the verification summary is
:func:`custody.verify.verify_ledger` (or :func:`custody.bundle.verify_bundle`)
run now, hand-overs and states come from :func:`custody.lifecycle.replay`, and an
item fails when a finding of that verification concerns it.  The model is plain
JSON (``schemas/report.schema.json``); the JSON format is the model itself.

Reproducible output: ``generated`` is the current time unless
``SOURCE_DATE_EPOCH`` is set (the reproducible-builds convention), so the same
ledger state gives byte-identical reports.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from custody import __version__, merkle
from custody.bundle import verify_bundle
from custody.canonical import parse_strict, rfc3339_ns
from custody.checkpoint import CHECKPOINT_EVENT, TIMESTAMP_EVENT
from custody.errors import UsageError
from custody.ledger import (
    COLLECT_EVENT,
    IDENTITY_EVENT,
    KEY_REVOKE_EVENT,
    KEY_ROTATE_EVENT,
    Ledger,
    event_items,
)
from custody.lifecycle import RECEIVE_EVENT, TRANSFER_EVENT, Replay, replay, transfer_id
from custody.verify import VerifyReport, verify_ledger

REPORT_VERSION = 1

# verify's named steps, and the finding kinds each one reports
STEPS: list[tuple[str, frozenset[str]]] = [
    ("case header", frozenset({"case-header"})),
    (
        "hash chain",
        frozenset(
            {
                "chain-gap",
                "event-hash",
                "chain-link",
                "event-noncanonical",
                "event-body",
                "event-mismatch",
                "event-storage",
            }
        ),
    ),
    ("signatures", frozenset({"identity", "unknown-signer", "signature", "key"})),
    (
        "custody rules",
        frozenset(
            {
                "revoked-key",
                "revocation",
                "rotation",
                "transfer",
                "receipt",
                "receipt-mismatch",
                "lifecycle",
                "untrusted-key",
            }
        ),
    ),
    ("derived tables", frozenset({"index"})),
    ("checkpoints and proofs", frozenset({"checkpoint", "proof", "untrusted-checkpoint"})),
    ("time-stamps", frozenset({"timestamp"})),
    ("imported bundles", frozenset({"import"})),
    (
        "stored bytes",
        frozenset(
            {
                "store-path",
                "object-missing",
                "object-unreadable",
                "object-size",
                "object-digest",
                "object-writable",
                "payload-missing",
                "payload-extra",
                "payload-digest",
                "payload-withheld",
                "tag-missing",
                "tag-digest",
                "tag-extra",
                "item",
                "disclosure",
            }
        ),
    ),
]

ACTIONS = {
    COLLECT_EVENT: "collected",
    TRANSFER_EVENT: "released (hand-over)",
    RECEIVE_EVENT: "received (hand-over)",
    "seal": "sealed",
    "access": "accessed",
    "analysis": "analysed",
    "note": "note added",
    "release": "released from the case",
    "dispose": "disposed of",
    "export": "exported in a bundle",
    "import": "imported from a bundle",
}


def generated_time() -> str:
    """Now, or ``SOURCE_DATE_EPOCH`` when set (reproducible reports)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        return rfc3339_ns(int(epoch) * 1_000_000_000)
    return rfc3339_ns(time.time_ns())


def document_digest(data: bytes) -> str:
    """``sha256:<hex>`` of a rendered report, printed so it can be tied to the ledger."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- one event, in the words of a custody form ------------------------------------


def _who(r: Replay, fp: str) -> tuple[str, str]:
    return r.names.get(r.current(fp), r.names.get(fp, (fp, "unknown")))


def _event_row(
    r: Replay, seq: int, ev_hash: str, body: dict[str, Any], signature_ok: bool
) -> dict[str, Any]:
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    assert isinstance(data, dict)
    type_ = str(body.get("type"))
    signer = str(body.get("signer"))
    name, role = _who(r, signer)
    time = str(body.get("time", ""))
    row: dict[str, Any] = {
        "seq": seq,
        "hash": ev_hash,
        "type": type_,
        "action": ACTIONS.get(type_, type_),
        "time": time,
        "date": time[:10],
        "time_utc": time[11:19],
        "actor": name,
        "role": role,
        "signer": signer,
        "reason": str(data.get("reason") or ""),
        "location": str(data.get("location") or ""),
        "signature_verified": signature_ok,
        "released_by": None,
        "received_by": None,
        "transfer": None,
    }
    if type_ == TRANSFER_EVENT:
        t = r.transfers.get(seq)
        row["transfer"] = transfer_id(seq)
        row["released_by"] = f"{name} ({role})"
        if t is not None:
            to, to_role = _who(r, t.receiver)
            row["action"] = f"released to {to} ({to_role}), {transfer_id(seq)}"
    elif type_ == RECEIVE_EVENT:
        t = next((t for t in r.transfers.values() if t.receipt == seq), None)
        row["received_by"] = f"{name} ({role})"
        if t is not None:
            by, by_role = _who(r, t.releaser)
            row["transfer"] = t.id
            row["released_by"] = f"{by} ({by_role})"
            row["action"] = f"received from {by} ({by_role}), {t.id}"
    elif type_ in ("note", "access", "analysis") and data.get("note"):
        row["reason"] = row["reason"] or str(data.get("note"))
    return row


# -- assembling the model ----------------------------------------------------------


def _assemble(
    *,
    source: dict[str, Any],
    case: dict[str, Any],
    events: list[tuple[int, str, dict[str, Any], bool]],
    wanted: Sequence[str] | None,
    verification: dict[str, Any],
    findings: list[dict[str, str]],
    ledger_state: dict[str, Any],
    key_status: dict[str, str],
    found_digests: dict[str, dict[str, str]],
) -> dict[str, Any]:
    """``events``: (seq, hash, body, signature verified) in seq order;
    ``found_digests``: what verification re-hashed, by store object (a case) or by
    item (a bundle: the payload's SHA-256 and SHA-512)."""
    r = replay(
        ((seq, h, str(b.get("type")), str(b.get("signer")), b) for seq, h, b, _ in events),
        str(case["id"]),
    )
    collect: dict[str, tuple[int, dict[str, Any], bool]] = {}
    per_item: dict[str, list[dict[str, Any]]] = {}
    for seq, h, body, ok in events:
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        assert isinstance(data, dict)
        item = data.get("item") if isinstance(data.get("item"), str) else None
        if body.get("type") == COLLECT_EVENT and item:
            collect[item] = (seq, body, ok)
        for i in event_items(item, data):
            per_item.setdefault(i, []).append(_event_row(r, seq, h, body, ok))
    ids = list(wanted) if wanted else list(collect)
    items = [
        _item(i, collect[i], per_item.get(i, []), r, findings, found_digests)
        for i in ids
        if i in collect
    ]
    signers = {str(b.get("signer")) for _, _, b, _ in events}
    keys = [
        {
            "name": r.names[fp][0],
            "role": r.names[fp][1],
            "fingerprint": fp,
            "public_key": base64.b64encode(r.keys[fp]).decode("ascii"),
            "status": key_status.get(fp, "active"),
            "signed_events": sum(1 for _, _, b, _ in events if b.get("signer") == fp),
        }
        for fp in sorted(r.keys, key=lambda f: (r.names.get(f, ("", ""))[0], f))
        if fp in signers or fp in r.names
    ]
    steps = [
        {
            "step": name,
            "ok": not any(f["kind"] in kinds for f in findings),
            "findings": sum(1 for f in findings if f["kind"] in kinds),
        }
        for name, kinds in STEPS
    ]
    known = set().union(*(k for _, k in STEPS))
    if any(f["kind"] not in known for f in findings):
        steps.append(
            {
                "step": "other",
                "ok": False,
                "findings": sum(1 for f in findings if f["kind"] not in known),
            }
        )
    return {
        "report_version": REPORT_VERSION,
        "tool": f"custody {__version__}",
        "generated": generated_time(),
        "source": source,
        "scope": {"items": ids, "all_items": not wanted},
        "case": case,
        "verification": {**verification, "ok": not findings, "steps": steps, "findings": findings},
        "ledger_state": ledger_state,
        "items": items,
        "keys": keys,
    }


def _item(
    item: str,
    collected: tuple[int, dict[str, Any], bool],
    timeline: list[dict[str, Any]],
    r: Replay,
    findings: list[dict[str, str]],
    found: dict[str, dict[str, str]],
) -> dict[str, Any]:
    seq, body, collect_ok = collected
    data = body["data"]
    path = data.get("path") if isinstance(data.get("path"), dict) else {}
    assert isinstance(path, dict)
    st = r.items.get(item)
    name, role = _who(r, str(body.get("signer")))
    concerning = _findings_for(item, data.get("store"), {e["seq"] for e in timeline}, findings)
    handovers = []
    by_seq = {e["seq"]: e for e in timeline}
    for t in sorted(r.transfers.values(), key=lambda t: t.seq):
        if item not in t.items:
            continue
        rel, rel_role = _who(r, t.releaser)
        rec, rec_role = _who(r, t.receiver)
        handovers.append(
            {
                "transfer": t.id,
                "released_by": f"{rel} ({rel_role})",
                "released": t.time,
                "release_signature_verified": by_seq[t.seq]["signature_verified"]
                if t.seq in by_seq
                else None,
                "to": f"{rec} ({rec_role})",
                "received_by": f"{rec} ({rec_role})" if t.receipt is not None else None,
                "received": t.receipt_time,
                "receipt_signature_verified": by_seq[t.receipt]["signature_verified"]
                if t.receipt is not None and t.receipt in by_seq
                else None,
                "reason": t.reason,
                "location": t.location,
                "status": "received" if t.receipt is not None else "in transit",
                "mismatch_on_receipt": item in t.mismatches,
            }
        )
    digests = data.get("digests") if isinstance(data.get("digests"), dict) else {}
    assert isinstance(digests, dict)
    return {
        "id": item,
        "description": str(data.get("magic") or data.get("outcome") or ""),
        "path": str(path.get("display", "")),
        "path_hex": str(path.get("hex", "")),
        "host": str(data.get("host", "")),
        "outcome": str(data.get("outcome", "")),
        "size": data.get("size") if isinstance(data.get("size"), int) else None,
        "mime": data.get("mime") if isinstance(data.get("mime"), str) else None,
        "digests": {str(k): str(v) for k, v in sorted(digests.items())},
        "verified_digests": found.get(item) or found.get(str(data.get("store"))),
        "collected": str(body.get("time", "")),
        "collected_by": f"{name} ({role})",
        "collect_event": seq,
        "collect_signature_verified": collect_ok,
        "state": st.state if st else None,
        "custodian": "{} ({})".format(*_who(r, st.custodian)) if st else None,
        "integrity": {"ok": not concerning, "findings": concerning},
        "handovers": handovers,
        "timeline": timeline,
    }


def _findings_for(
    item: str, store: Any, seqs: set[int], findings: list[dict[str, str]]
) -> list[dict[str, str]]:
    """The findings of the verification that concern this item: those naming it or
    its stored object, and those about one of its events."""
    out = []
    for f in findings:
        subject = f["subject"]
        if (
            subject == item
            or subject.startswith(item + " ")
            or subject.startswith(item + "/")
            or f"/{item}/" in subject
            or (isinstance(store, str) and store in subject)
            or (subject.startswith("event ") and subject[6:].isdigit() and int(subject[6:]) in seqs)
        ):
            out.append(f)
    return out


# -- from a case -------------------------------------------------------------------


def case_report(
    ledger: Ledger,
    items: Sequence[str] = (),
    *,
    tsa_roots: Sequence[bytes] = (),
    verify: VerifyReport | None = None,
) -> dict[str, Any]:
    """The report of a case (all items, or ``items``), with a full verification
    run now (pass ``verify`` to reuse one)."""
    wanted = [i.strip().upper() for i in items]
    for i in wanted:
        ledger.artifact(i)  # UsageError for an unknown item
    report = verify or verify_ledger(ledger, tsa_roots=tsa_roots)
    rows = list(ledger.events())
    bad = _bad_signatures(f.as_json() for f in report.findings)
    events = []
    for ev in rows:
        try:
            body = ev.parsed
        except ValueError:
            continue
        events.append((ev.seq, ev.hash, body, f"event {ev.seq}" not in bad))
    tree = ledger.tree()
    size = len(tree)
    checkpoint = _latest_checkpoint(events)
    stamps = [
        {
            "event": seq,
            "checkpoint": b["data"].get("checkpoint"),
            "tsa": b["data"].get("tsa"),
            "checked": bool(tsa_roots),
        }
        for seq, _, b, _ in events
        if b.get("type") == TIMESTAMP_EVENT
    ]
    return _assemble(
        source={"kind": "case", "path": str(ledger.case_dir)},
        case=_case_info(
            ledger.case.case_id, ledger.case.title, ledger.case.created, ledger.case.hash, events
        ),
        events=events,
        wanted=wanted,
        verification={
            "verified_at": generated_time(),
            "events": report.events,
            "items": report.artifacts,
            "objects_checked": report.objects_checked,
            "bytes_checked": report.bytes_checked,
            "notes": list(report.notes),
            "warnings": [],
            "latest_checkpoint": checkpoint,
            "timestamps": stamps,
        },
        findings=[f.as_json() for f in report.findings],
        ledger_state={
            "size": size,
            "root": (tree.root(size) if size else merkle.EMPTY_ROOT).hex(),
            "head": rows[-1].hash if rows else ledger.case.hash,
            "checkpoint": checkpoint,
        },
        key_status=_key_status(events),
        found_digests=report.found_digests,
    )


def _bad_signatures(findings: Iterable[dict[str, str]]) -> set[str]:
    """Events whose signature verify found wanting (subjects ``event <seq>``)."""
    return {f["subject"] for f in findings if f["kind"] in ("signature", "unknown-signer")}


def _case_info(
    case_id: str,
    title: str,
    created: str,
    header_hash: str,
    events: Iterable[tuple[int, str, dict[str, Any], bool]],
) -> dict[str, Any]:
    examiners: dict[str, dict[str, str]] = {}
    for _, _, b, _ in events:
        if b.get("type") == IDENTITY_EVENT:
            d = b.get("data") or {}
            fp = str(d.get("fingerprint"))
            examiners.setdefault(
                fp, {"name": str(d.get("name")), "role": str(d.get("role")), "fingerprint": fp}
            )
    return {
        "id": case_id,
        "title": title,
        "created": created,
        "header_hash": header_hash,
        "examiners": list(examiners.values()),
    }


def _latest_checkpoint(
    events: list[tuple[int, str, dict[str, Any], bool]],
) -> dict[str, Any] | None:
    for seq, _, b, ok in reversed(events):
        if b.get("type") == CHECKPOINT_EVENT:
            d = b.get("data") or {}
            return {
                "event": seq,
                "size": d.get("size"),
                "root": base64.b64decode(str(d.get("root", ""))).hex(),
                "signer": str(b.get("signer")),
                "time": str(b.get("time")),
                "signature_verified": ok,
                "note": str(d.get("note", "")),
            }
    return None


def _key_status(events: list[tuple[int, str, dict[str, Any], bool]]) -> dict[str, str]:
    status = {}
    for _, _, b, _ in events:
        d = b.get("data") or {}
        if b.get("type") == KEY_REVOKE_EVENT:
            status[str(d.get("fingerprint"))] = "revoked"
        elif b.get("type") == KEY_ROTATE_EVENT:
            status[str(b.get("signer"))] = "rotated"
    return status


# -- from a bundle -----------------------------------------------------------------


def bundle_report(
    path: Path,
    items: Sequence[str] = (),
    *,
    trust: Sequence[str] = (),
    tsa_roots: Sequence[bytes] = (),
) -> dict[str, Any]:
    """The report of an evidence bundle, from ``bundle verify`` run now."""
    vr = verify_bundle(path, trust=trust, tsa_roots=tsa_roots)
    meta = vr.meta
    bad = _bad_signatures(f.__dict__ for f in vr.findings)
    events = sorted((seq, h, body, f"event {seq}" not in bad) for seq, h, body in vr.bodies)
    case = meta.get("case") or {}
    header = parse_strict(str(case.get("header", "{}")))
    wanted = [i.strip().upper() for i in items]
    carried = [str(i.get("id")) for i in meta.get("items", []) if isinstance(i, dict)]
    for i in wanted:
        if i not in carried:
            raise UsageError(f"no such item in this bundle: {i}")
    size: int | None
    if vr.checkpoint is not None:
        size, root = vr.checkpoint[0], vr.checkpoint[1].hex()
    else:  # its signature failed: say what its text claims, marked unverified below
        text = vr.checkpoint_text.split("\n")
        size = int(text[1]) if len(text) > 1 and text[1].isdigit() else None
        root = base64.b64decode(text[2]).hex() if len(text) > 2 else ""
    checkpoint = {
        "event": meta.get("checkpoint_event"),
        "size": size,
        "root": root,
        "signer": str(meta.get("exported_by")),
        "time": str(meta.get("exported")),
        "signature_verified": not any(f.kind == "checkpoint" for f in vr.findings),
        "note": vr.checkpoint_text,
    }
    return _assemble(
        source={"kind": "bundle", "path": str(path)},
        case=_case_info(
            str(case.get("id")),
            str(case.get("title")),
            str(header.get("created", "")),
            str(case.get("header_hash")),
            events,
        ),
        events=events,
        wanted=wanted or [str(i.get("id")) for i in meta.get("items", [])],
        verification={
            "verified_at": generated_time(),
            "events": vr.events,
            "items": len(vr.items),
            "objects_checked": vr.payload_files,
            "bytes_checked": None,
            "notes": [],
            "warnings": list(vr.warnings),
            "latest_checkpoint": checkpoint,
            "timestamps": [
                {
                    "event": None,
                    "checkpoint": meta.get("checkpoint_event"),
                    "tsa": (meta.get("checkpoint_timestamp") or {}).get("tsa"),
                    "checked": vr.timestamp is not None,
                    **(vr.timestamp or {}),
                }
            ]
            if meta.get("checkpoint_timestamp")
            else [],
        },
        findings=[f.__dict__ for f in vr.findings],
        ledger_state={
            "size": checkpoint["size"],
            "root": checkpoint["root"],
            "head": None,
            "checkpoint": checkpoint,
        },
        key_status={},
        found_digests=vr.item_digests,
    )
