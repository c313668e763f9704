"""The auditor's report: one model, built from a case (or a bundle), rendered in
every format by :mod:`custody.render`.

Nothing here is computed differently from ``verify``: the verification summary is
:func:`custody.verify.verify_ledger` (or :func:`custody.bundle.verify_bundle`)
run now, its steps are :func:`custody.findings.steps`, and each item is the
:class:`custody.views.ItemView` that ``custody show`` prints: hand-overs and
states from the custody replay, each event's signature verified unless that
verification has a signature finding for its seq, and the item failing when a
finding concerns it (by the finding's ``item``, ``seq`` or ``obj``).  The model
is plain JSON (``schemas/report.schema.json``); the JSON format is the model itself.

Reproducible output: ``generated`` is the current time unless
``SOURCE_DATE_EPOCH`` is set (the reproducible-builds convention), so the same
ledger state gives byte-identical reports.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from custody import __version__, merkle
from custody.bundle import verify_bundle
from custody.canonical import rfc3339_ns
from custody.checkpoint import CHECKPOINT_EVENT, TIMESTAMP_EVENT
from custody.describe import Typing, item_type, verified_types
from custody.errors import UsageError
from custody.findings import Finding, Kind
from custody.findings import steps as verification_steps
from custody.ledger import COLLECT_EVENT, Ledger
from custody.lifecycle import RECEIVE_EVENT, TRANSFER_EVENT, Replay, find_item, transfer_id
from custody.trust import verdict_banner
from custody.verify import VerifyReport, verify_ledger
from custody.views import (
    ItemView,
    KeyBook,
    KeyCard,
    ViewEvent,
    imported_item_views,
    item_metadata,
    item_views,
    replay_events,
    unverified_events,
    verified_case_events,
    who,
)

REPORT_VERSION = 1

#: ``--detail``: which items get detail pages (metadata, hand-overs, timeline):
#: ``auto``, the failing items and those named; ``all``, every item.
DETAIL_MODES = ("auto", "all")

#: Called as ``progress(done, total)`` while the items are made.
Progress = Callable[[int, int], None]

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


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused (and restored as it was): the model of a
    large case is hundreds of thousands of small dicts, none of them cyclic garbage,
    and the collector's passes over them cost about a third of the assembly."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def generated_time() -> str:
    """Now, or ``SOURCE_DATE_EPOCH`` when set (reproducible reports)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and _DECIMAL.fullmatch(epoch.strip()) and len(epoch.strip()) <= 11:
        return rfc3339_ns(int(epoch) * 1_000_000_000)
    return rfc3339_ns(time.time_ns())


def document_digest(data: bytes) -> str:
    """``sha256:<hex>`` of a rendered report, printed so it can be tied to the ledger."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- one event, in the words of a custody form ------------------------------------


def _event_row(
    r: Replay, book: KeyBook, ev: ViewEvent, shared: _Shared | None = None
) -> dict[str, Any]:
    """The timeline row of event ``ev``; with ``shared`` (of the same replay), made
    once per event and shared by the timelines of every item it concerns (a
    hand-over of 100 items is one row object, not 100)."""
    items = ev.data.get("items")
    several = isinstance(items, list | dict) and len(items) > 1
    if not several or shared is None or shared.r is not r or shared.book is not book:
        return _make_event_row(r, book, ev, shared)
    key = (ev.seq, ev.hash, ev.signature_verified)
    row = shared.rows.get(key)
    if row is None:
        row = shared.rows[key] = _make_event_row(r, book, ev, shared)
    return row


def _make_event_row(
    r: Replay, book: KeyBook, ev: ViewEvent, shared: _Shared | None = None
) -> dict[str, Any]:
    data = ev.data
    seq, type_, signer = ev.seq, ev.type, ev.signer
    name, role = who(r, signer)
    time = ev.time
    row: dict[str, Any] = {
        "seq": seq,
        "hash": ev.hash,
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
        "signature_verified": ev.signature_verified,
        "released_by": None,
        "received_by": None,
        "transfer": None,
        "signer_key": shared.card(book, signer) if shared else book.card(signer).as_json(),
    }
    if type_ == TRANSFER_EVENT:
        t = r.transfers.get(seq)
        row["transfer"] = transfer_id(seq)
        row["released_by"] = f"{name} ({role})"
        if t is not None:
            to, to_role = who(r, t.receiver)
            row["action"] = f"released to {to} ({to_role}), {transfer_id(seq)}"
    elif type_ == RECEIVE_EVENT:
        if shared is not None and shared.r is r:
            t = shared.receipts.get(seq)
        else:
            t = next((t for t in r.transfers.values() if t.receipt == seq), None)
        row["received_by"] = f"{name} ({role})"
        if t is not None:
            by, by_role = who(r, t.releaser)
            row["transfer"] = t.id
            row["released_by"] = f"{by} ({by_role})"
            row["action"] = f"received from {by} ({by_role}), {t.id}"
    elif type_ in ("note", "access", "analysis") and data.get("note"):
        row["reason"] = row["reason"] or str(data.get("note"))
    return row


class _Shared:
    """What the rows of one report share: each key card as JSON, made once and
    shared by every row that names the key (rows are not mutated after assembly),
    and each receipt's transfer by the receipt's seq."""

    def __init__(self, r: Replay, book: KeyBook | None = None) -> None:
        self.r = r
        self.book = book
        self.cards: dict[str, dict[str, Any]] = {}
        # timeline rows of events that concern several items (hand-overs), by event
        self.rows: dict[tuple[int, str, bool], dict[str, Any]] = {}
        self.receipts = {t.receipt: t for t in r.transfers.values() if t.receipt is not None}

    def card(self, book: KeyBook, fp: str) -> dict[str, Any]:
        if fp not in self.cards:
            self.cards[fp] = book.card(fp).as_json()
        return self.cards[fp]


# -- assembling the model ----------------------------------------------------------


def _assemble(**kw: Any) -> dict[str, Any]:
    """:func:`_assemble_model` with the garbage collector paused."""
    if kw.get("detail", "all") not in DETAIL_MODES:
        raise UsageError(f"--detail must be one of {', '.join(DETAIL_MODES)}, not {kw['detail']!r}")
    with gc_paused():
        return _assemble_model(**kw)


def _assemble_model(
    *,
    source: dict[str, Any],
    case: dict[str, Any],
    events: list[ViewEvent],
    wanted: Sequence[str] | None,
    verification: dict[str, Any],
    findings: Sequence[Finding],
    ledger_state: dict[str, Any],
    found_digests: dict[str, dict[str, str]],
    objects: Mapping[str, str | None] | None = None,
    rules: int = 1,
    ledger: Ledger | None = None,
    named: Sequence[str] = (),
    detail: str = "all",
    progress: Progress | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """``events``: in seq order, each with the verification's signature verdict;
    ``found_digests``: what verification re-hashed, by store object (a case) or by
    item (a bundle: the payload's SHA-256 and SHA-512); ``objects``: each item's
    store object or payload file, which findings name (default: the collect
    event's ``store``).  Every key is shown as the custody replay of ``events``
    knows it (custody.views.KeyBook): standing, attester, status.  ``named``: the
    items named on the command line; with ``detail`` "auto" they and the failing
    items carry their detail (metadata, hand-overs, timeline), with "all" every
    item.  Failing items come first, then the others in collection order.
    ``stream``: the model's ``items`` is a :class:`ReportItems` (each item made as
    it is read) instead of a list."""
    r = replay_events(events, str(case["id"]), rules)
    book = KeyBook(r, ((e.seq, e.body) for e in events))
    views = item_views(events, r, findings, objects=objects, book=book)
    if ledger is not None:  # a case: its imported items too, with their source chains
        views.update(imported_item_views(ledger, events, r, findings, book=book))
    ids = [i for i in (list(wanted) if wanted else list(views)) if i in views]
    ids = [i for i in ids if not views[i].ok] + [i for i in ids if views[i].ok]
    chosen = set(named)
    shared = _Shared(r, book)
    types = verified_types(events)
    full = {i: detail == "all" or not views[i].ok or i in chosen for i in ids}
    items = ReportItems(
        ids,
        full,
        lambda i: _item(views[i], found_digests, types, full[i], shared),
        progress,
        lambda i: _item(views[i], found_digests, types, full[i], shared, lean=True),
    )
    facts = [
        {
            "id": i,
            "state": views[i].state,
            "outcome": str(views[i].data.get("outcome", "")),
            "integrity": {"ok": views[i].ok},
            "detail": full[i],
        }
        for i in ids
    ]
    signed = Counter(e.signer for e in events)
    keys = []
    for fp in sorted(r.keys, key=lambda f: (r.names.get(f, ("", ""))[0], f)):
        if fp not in signed and fp not in r.names:
            continue
        card = book.card(fp)
        keys.append(
            {
                "name": r.names[fp][0],
                "role": r.names[fp][1],
                "fingerprint": fp,
                "public_key": base64.b64encode(r.keys[fp]).decode("ascii"),
                "status": card.status,
                "signed_events": signed[fp],
                "standing": card.standing,
                "attested_by": card.attested_by,
                "attested_by_name": card.attested_by_name,
                "revoked_at": card.revoked_at,
                "rotated_to": card.rotated_to,
            }
        )
    examiners = []
    for fp in book.people():
        card = book.card(fp)
        examiners.append(
            {
                "name": card.name or "",
                "role": card.role or "",
                "fingerprint": fp,
                "standing": card.standing,
                "attested_by": card.attested_by,
                "attested_by_name": card.attested_by_name,
            }
        )
    for cp in (verification.get("latest_checkpoint"), ledger_state.get("checkpoint")):
        if isinstance(cp, dict):
            signer = cp.get("signer")
            known = isinstance(signer, str) and signer.startswith("sha256:")
            cp["signer_key"] = book.card(str(signer)).as_json() if known else None
    steps = []
    for step, kinds in verification_steps():
        n = sum(1 for f in findings if f.kind in kinds)
        steps.append({"step": step.value, "ok": not n, "findings": n})
    return {
        "report_version": REPORT_VERSION,
        "tool": f"custody {__version__}",
        "generated": generated_time(),
        "source": source,
        "verification": {
            **verification,
            "ok": not findings,
            "steps": steps,
            "findings": [f.as_json() for f in findings],
        },
        "summary": summary(facts),
        "scope": {"items": list(named), "all_items": not named, "detail": detail},
        "case": {**case, "examiners": examiners},
        "ledger_state": ledger_state,
        "items": items if stream else list(items),
        "keys": keys,
    }


class ReportItems:
    """The items of a report model, made one at a time as they are read (a large
    case's items are not all held at once): iterable any number of times, in the
    model's order (failing items first), with ``len()``; ``ids`` and ``detail``
    (which items carry their detail) are known without making the items, so a
    renderer can lay out a table or skip to the detail pages cheaply.  Each pass
    over every item calls ``progress(done, total)`` every 500 items."""

    def __init__(
        self,
        ids: Sequence[str],
        detail: Mapping[str, bool],
        make: Callable[[str], dict[str, Any]],
        progress: Progress | None = None,
        make_lean: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        self.ids = list(ids)
        self.detail = detail
        self._make = make
        self.progress = progress
        self._make_lean = make_lean

    def lean(self) -> ReportItems:
        """The same items, each with only the fields a chain-of-custody form
        reads (:data:`LEAN_FIELDS`: no hand-overs, metadata or key cards, which
        the CSV never shows and which cost a large case's report much of its
        time).  The CSV renderer reads these; every value it reads is the one of
        the full item."""
        make = self._make_lean or self._make
        return ReportItems(self.ids, self.detail, make, self.progress)

    def __len__(self) -> int:
        return len(self.ids)

    def __bool__(self) -> bool:
        return bool(self.ids)

    def __getitem__(self, n: int) -> dict[str, Any]:
        return self._make(self.ids[n])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._each(self.ids, self.progress)

    def detailed(self) -> Iterator[dict[str, Any]]:
        """The items that carry their detail, in the model's order (no progress:
        the pass over every item reports it)."""
        return self._each([i for i in self.ids if self.detail[i]], None)

    def _each(self, ids: Sequence[str], progress: Progress | None) -> Iterator[dict[str, Any]]:
        total = len(ids)
        for n, i in enumerate(ids):
            yield self._make(i)
            if progress is not None and (n % 500 == 0 or n == total - 1):
                progress(n + 1, total)


def summary(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What a report opens with, after the verification result: how many items,
    how many fail (and which), and the counts by state and by outcome."""
    by_state: dict[str, int] = {}
    by_outcome: dict[str, int] = {}
    failing = []
    for i in items:
        state = str(i.get("state") or "unknown")
        outcome = str(i.get("outcome") or "unknown")
        by_state[state] = by_state.get(state, 0) + 1
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
        if not (i.get("integrity") or {}).get("ok"):
            failing.append(str(i.get("id")))
    count = sum(by_state.values())
    return {
        "items": count,
        "failing": len(failing),
        "intact": count - len(failing),
        "failing_items": failing,
        "detail_items": sum(1 for i in items if i.get("detail")),
        "by_state": dict(sorted(by_state.items())),
        "by_outcome": dict(sorted(by_outcome.items())),
    }


#: the fields of a lean item (:meth:`ReportItems.lean`): what the CSV form reads
LEAN_FIELDS = (
    "id",
    "source",
    "description",
    "path",
    "path_hex",
    "host",
    "outcome",
    "size",
    "digests",
    "state",
    "integrity",
    "detail",
    "events",
    "timeline",
)


def _item(
    view: ItemView,
    found: dict[str, dict[str, str]],
    types: dict[str, Typing],
    detail: bool = True,
    shared: _Shared | None = None,
    lean: bool = False,
) -> dict[str, Any]:
    """One item of the report, from its view (custody.views, as ``custody show``):
    its compact facts always, its hand-overs and timeline (and an imported item's
    source chain) only with ``detail``.  ``shared``: what the rows of the report
    share (:class:`_Shared`).  ``lean``: only :data:`LEAN_FIELDS`, the same values."""
    if lean:
        return _lean_item(view, types, detail, shared)
    r = view.replay
    mime, magic = item_type(view.data, types)
    body = view.collect.body
    data = view.data
    path = data.get("path") if isinstance(data.get("path"), dict) else {}
    assert isinstance(path, dict)
    name, role = who(r, view.collect.signer)
    book = view.book
    collector = book.card(view.collect.signer)
    src = view.source
    if src is not None:  # collected in the source case: its signers, as its events say
        src_book = KeyBook(src.replay, ((e.seq, e.body) for e in src.events_all))
        name, role = who(src.replay, view.collect.signer)
        collector = src_book.card(view.collect.signer)
    timeline = [_event_row(r, book, e, shared) for e in view.events] if detail else []
    handovers = [
        {
            "transfer": h.transfer,
            "released_by": h.released_by,
            "released": h.released,
            "release_signature_verified": h.release_signature_verified,
            "to": h.to,
            "received_by": h.received_by,
            "received": h.received,
            "receipt_signature_verified": h.receipt_signature_verified,
            "reason": h.reason,
            "location": h.location,
            "status": h.status,
            "mismatch_on_receipt": h.mismatch,
            "released_by_key": _card(h.released_by_key),
            "to_key": _card(h.to_key),
            "received_by_key": _card(h.received_by_key),
            "receipt_location": h.receipt_location,
        }
        for h in (view.handovers if detail else [])
    ]
    digests = data.get("digests") if isinstance(data.get("digests"), dict) else {}
    assert isinstance(digests, dict)
    extra: dict[str, Any] = {}
    if src is not None and detail:
        extra["source"] = {
            "label": src.label,
            "case_id": src.case_id,
            "header_hash": src.header,
            "bundle": src.bundle,
            "import_event": src.import_seq,
            "source_item": src.source_item,
            "events": [
                {
                    "seq": e.seq,
                    "hash": e.hash,
                    "type": e.type,
                    "action": ACTIONS.get(e.type, e.type),
                    "time": e.time,
                    "signer": e.signer,
                    "signer_key": src_book.card(e.signer).as_json(),
                    "reason": str(e.data.get("reason") or ""),
                    "signature_verified": e.signature_verified,
                }
                for e in src.events
            ],
        }
    return {
        "id": view.id,
        **extra,
        "description": str(magic or data.get("outcome") or ""),
        "path": str(path.get("display", "")),
        "path_hex": str(path.get("hex", "")),
        "host": str(data.get("host", "")),
        "metadata": item_metadata(data),
        "outcome": str(data.get("outcome", "")),
        "size": data.get("size") if isinstance(data.get("size"), int) else None,
        "mime": mime,
        "digests": {str(k): str(v) for k, v in sorted(digests.items())},
        "verified_digests": found.get(view.id) or found.get(str(data.get("store"))),
        "collected": str(body.get("time", "")),
        "collected_by": f"{name} ({role})",
        "collected_by_key": collector.as_json(),
        "collect_event": view.collect.seq,
        "collect_signature_verified": view.collect.signature_verified,
        "state": view.state,
        "custodian": view.custodian,
        "custodian_key": _card(view.custodian_key),
        "integrity": {"ok": view.ok, "findings": [f.as_json() for f in view.findings]},
        "detail": detail,
        "events": len(view.events),
        **({"handovers": handovers, "timeline": timeline} if detail else {}),
    }


def _lean_item(
    view: ItemView, types: dict[str, Typing], detail: bool, shared: _Shared | None
) -> dict[str, Any]:
    """:func:`_item` with only :data:`LEAN_FIELDS` (tests check they agree)."""
    data = view.data
    _mime, magic = item_type(data, types)
    path = data.get("path") if isinstance(data.get("path"), dict) else {}
    assert isinstance(path, dict)
    digests = data.get("digests") if isinstance(data.get("digests"), dict) else {}
    assert isinstance(digests, dict)
    out: dict[str, Any] = {"id": view.id}
    src = view.source
    if src is not None and detail:
        src_book = KeyBook(src.replay, ((e.seq, e.body) for e in src.events_all))
        out["source"] = {
            "label": src.label,
            "events": [
                {
                    "seq": e.seq,
                    "action": ACTIONS.get(e.type, e.type),
                    "time": e.time,
                    "signer": e.signer,
                    "signer_key": src_book.card(e.signer).as_json(),
                    "reason": str(e.data.get("reason") or ""),
                    "signature_verified": e.signature_verified,
                }
                for e in src.events
            ],
        }
    r, book = view.replay, view.book
    out.update(
        {
            "description": str(magic or data.get("outcome") or ""),
            "path": str(path.get("display", "")),
            "path_hex": str(path.get("hex", "")),
            "host": str(data.get("host", "")),
            "outcome": str(data.get("outcome", "")),
            "size": data.get("size") if isinstance(data.get("size"), int) else None,
            "digests": {str(k): str(v) for k, v in sorted(digests.items())},
            "state": view.state,
            "integrity": {"ok": view.ok, "findings": [f.as_json() for f in view.findings]},
            "detail": detail,
            "events": len(view.events),
        }
    )
    if detail:
        out["timeline"] = [_event_row(r, book, e, shared) for e in view.events]
    return out


def _card(card: KeyCard | None) -> dict[str, Any] | None:
    return card.as_json() if card is not None else None


# -- from a case -------------------------------------------------------------------


def case_report(
    ledger: Ledger,
    items: Sequence[str] = (),
    *,
    tsa_roots: Sequence[bytes] = (),
    verify: VerifyReport | None = None,
    detail: str = "all",
    progress: Progress | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """The report of a case (all items, or ``items``), with a full verification
    run now (pass ``verify`` to reuse one).  ``detail``: :data:`DETAIL_MODES`;
    ``progress(done, total)`` is called while the items are made; ``stream``: the
    items are a :class:`ReportItems`, made as a renderer reads them."""
    known = ledger.rules().current() if items else None  # a replay: only to look names up
    wanted = []
    for i in items:
        assert known is not None
        found = find_item(known, i)
        if found is None:
            raise UsageError(f"no such item: {i}")
        wanted.append(found)
    report = verify or verify_ledger(ledger, tsa_roots=tsa_roots, compact=True)
    # the bodies the verification checked, where each event's hash is still the one it saw
    events = verified_case_events(ledger, report)
    head = ledger.conn.execute("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    tree = ledger.tree()
    size = len(tree)
    checkpoint = _latest_checkpoint(events)
    stamps = [
        {
            "event": e.seq,
            "checkpoint": e.data.get("checkpoint"),
            "tsa": e.data.get("tsa"),
            "checked": bool(tsa_roots),
        }
        for e in events
        if e.type == TIMESTAMP_EVENT
    ]
    return _assemble(
        rules=ledger.case.rules,
        source={"kind": "case", "path": str(ledger.case_dir)},
        case=_case_info(
            ledger.case.case_id, ledger.case.title, ledger.case.created, ledger.case.hash
        ),
        events=events,
        wanted=wanted,
        named=wanted,
        detail=detail,
        progress=progress,
        stream=stream,
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
        findings=report.findings,
        ledger_state={
            "size": size,
            "root": (tree.root(size) if size else merkle.EMPTY_ROOT).hex(),
            "head": str(head[0]) if head else ledger.case.hash,
            "checkpoint": checkpoint,
        },
        found_digests=report.found_digests,
        ledger=ledger,
    )


def _case_info(case_id: str, title: str, created: str, header_hash: str) -> dict[str, Any]:
    """The case's header facts; ``examiners`` is filled in from the keys the
    custody replay knows (:func:`_assemble`)."""
    return {
        "id": case_id,
        "title": title,
        "created": created,
        "header_hash": header_hash,
        "examiners": [],
    }


_DECIMAL = re.compile(r"[0-9]{1,20}")  # ASCII digits only: "²".isdigit() is true


def _b64_hex(text: str) -> str:
    """Hex of the base64 ``text``, or "" when it is not base64 (a hostile bundle's
    unverified checkpoint: its finding says so)."""
    try:
        return base64.b64decode(text, validate=True).hex()
    except ValueError:
        return ""


def _latest_checkpoint(
    events: list[ViewEvent],
) -> dict[str, Any] | None:
    for e in reversed(events):
        if e.type == CHECKPOINT_EVENT:
            d = e.data
            return {
                "event": e.seq,
                "size": d.get("size"),
                "root": _b64_hex(str(d.get("root", ""))),
                "signer": e.signer,
                "time": str(e.body.get("time")),
                "signature_verified": e.signature_verified,
                "note": str(d.get("note", "")),
            }
    return None


# -- from a bundle -----------------------------------------------------------------


def bundle_report(
    path: Path,
    items: Sequence[str] = (),
    *,
    trust: Sequence[str] = (),
    tsa_roots: Sequence[bytes] = (),
    detail: str = "all",
    progress: Progress | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """The report of an evidence bundle, from ``bundle verify`` run now (``detail``,
    ``progress``, ``stream``: as :func:`case_report`)."""
    vr = verify_bundle(path, trust=trust, tsa_roots=tsa_roots)
    meta = vr.meta
    bad = unverified_events(vr.findings)
    events = [
        ViewEvent(seq, h, body, seq not in bad)
        for seq, h, body in sorted(vr.bodies, key=lambda b: (b[0], b[1]))
    ]
    header = vr.header  # the signed case header (bound to event 0), not bundle.json's copies
    export = vr.export or {}  # the signed export event
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
        size = int(text[1]) if len(text) > 1 and _DECIMAL.fullmatch(text[1]) else None
        root = _b64_hex(text[2]) if len(text) > 2 else ""
    checkpoint = {
        "event": size,  # the checkpoint event follows the events it covers
        "size": size,
        "root": root,
        "signer": str(export.get("signer")),
        "time": str(export.get("time")),
        "signature_verified": not any(f.kind == Kind.CHECKPOINT for f in vr.findings),
        "note": vr.checkpoint_text,
    }
    return _assemble(
        rules=vr.rules,
        source={"kind": "bundle", "path": str(path)},
        case=_case_info(
            str(header.get("case_id", "")),
            str(header.get("title", "")),
            str(header.get("created", "")),
            vr.header_hash,
        ),
        events=events,
        wanted=wanted or [str(i.get("id")) for i in meta.get("items", [])],
        named=wanted,
        detail=detail,
        progress=progress,
        stream=stream,
        verification={
            "verified_at": generated_time(),
            # the one wording of a bundle's verdict (custody.trust), for every format
            "verdict": vr.verdict,
            "banner": verdict_banner(vr.verdict, len(vr.findings)),
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
                    "checkpoint": size,
                    "tsa": (meta.get("checkpoint_timestamp") or {}).get("tsa"),
                    "checked": vr.timestamp is not None,
                    **(vr.timestamp or {}),
                }
            ]
            if meta.get("checkpoint_timestamp")
            else [],
        },
        findings=vr.findings,
        ledger_state={
            "size": checkpoint["size"],
            "root": checkpoint["root"],
            "head": None,
            "checkpoint": checkpoint,
        },
        found_digests=vr.item_digests,
        objects={
            str(i.get("id")): p if isinstance(p := i.get("payload"), str) else None
            for i in meta.get("items", [])
            if isinstance(i, dict)
        },
    )
