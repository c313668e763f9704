"""What people look at, computed once: an item as a paper custody form shows it
(what it is, its state and custodian, every hand-over, its timeline), and the
verification as a few lines of text.

``custody show`` and every report (:mod:`custody.report`) use the same
:class:`ItemView`.  Its facts come from the signed events (the collect event,
and the custody replay of :mod:`custody.lifecycle` for state, custodian,
hand-overs and signer names), never from the derived tables; its verdicts come
from a verification's findings (:mod:`custody.findings`), matched by their
structured fields:

* an event's signature is *verified* unless the verification reported a
  signature finding (:data:`~custody.findings.SIGNATURE_KINDS`) with that event's
  ``seq`` -- the verifier checks signatures with keys from the signed identity
  events, so an edited ``identities`` table is an ``index`` finding, not a
  signature that stops verifying;
* the findings that concern an item are those whose ``item`` is the item, whose
  ``seq`` is one of its events, or whose ``obj`` is its store object (or, in a
  bundle, its payload file): :meth:`custody.findings.Finding.concerns`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from custody.canonical import canonical_json, parse_strict
from custody.describe import Typing, fill_types, item_type, object_types, verified_types
from custody.display import shown
from custody.errors import UsageError
from custody.findings import SIGNATURE_KINDS, Finding, Kind
from custody.keys import public_key_b64, public_key_pem
from custody.ledger import (
    COLLECT_EVENT,
    IDENTITY_EVENT,
    KEY_ROTATE_EVENT,
    OPEN_EVENT,
    Event,
    Ledger,
    event_items,
    identity_index_rows,
)
from custody.lifecycle import RECEIVE_EVENT, Replay, Transfer, find_item, replay
from custody.render.signers import signer_text
from custody.sources import source_item_of
from custody.verify import VerifyReport, verify_ledger

RECEIVED, IN_TRANSIT = "received", "in transit"


def unverified_events(findings: Iterable[Finding]) -> set[int]:
    """The events (by seq) whose signature the verification did not accept."""
    return {f.seq for f in findings if f.kind in SIGNATURE_KINDS and f.seq is not None}


@dataclass(frozen=True, slots=True)
class ViewEvent:
    """One event as the views use it: its signed body, parsed, and the verifier's
    verdict on its signature.  ``row`` is the ledger row (None for a bundle's
    events, which carry no ledger row).  Slotted: a report holds one per event."""

    seq: int
    hash: str
    body: dict[str, Any]
    signature_verified: bool
    row: Event | None = field(default=None, compare=False, repr=False)

    @property
    def type(self) -> str:
        return str(self.body.get("type"))

    @property
    def signer(self) -> str:
        return str(self.body.get("signer"))

    @property
    def time(self) -> str:
        return str(self.body.get("time", ""))

    @property
    def data(self) -> dict[str, Any]:
        d = self.body.get("data")
        return d if isinstance(d, dict) else {}

    @property
    def item(self) -> str | None:
        i = self.data.get("item")
        return i if isinstance(i, str) else None


def case_events(
    rows: Iterable[Event],
    findings: Iterable[Finding],
    verified: VerifyReport | None = None,
    *,
    keep_rows: bool = True,
) -> list[ViewEvent]:
    """The ledger events ``rows`` (``Ledger.events()``) whose body parses, each with
    the signature verdict of ``findings`` (a verification of that ledger).  The
    bodies ``verified`` parsed and checked are used instead of parsing a row again
    when the row still has the hash that verification saw; any other row is parsed.
    ``keep_rows=False``: the views do not keep the ledger rows (a report needs the
    parsed bodies only), so a large ledger's raw rows are not all held at once."""
    bad = unverified_events(findings)
    out = []
    for ev in rows:
        body = _verified_body(verified, ev.seq, ev.hash)
        try:
            if body is None:
                body = ev.parsed
        except ValueError:
            continue  # verify reports it (event-body)
        out.append(ViewEvent(ev.seq, ev.hash, body, ev.seq not in bad, ev if keep_rows else None))
    return out


def verified_case_events(ledger: Ledger, verified: VerifyReport) -> list[ViewEvent]:
    """:func:`case_events` of every event of ``ledger`` without keeping rows, read
    cheaply: only each event's seq and hash are read, and the body ``verified``
    checked is taken when the hash is still the one it saw; any other event's row
    is read and parsed, and if it changed since that verification saw it, its
    signature is not shown as verified (that verification did not check it)."""
    bad = unverified_events(verified.findings)
    out = []
    for seq, h in ledger.event_hashes():
        body = _verified_body(verified, seq, h)
        if body is None:
            ev = ledger.event_at(seq)
            if ev is None:
                continue
            try:
                body = ev.parsed
            except ValueError:
                continue  # verify reports it (event-body)
            changed = verified.body_hashes.get(seq, ev.hash) != ev.hash
            out.append(ViewEvent(seq, ev.hash, body, seq not in bad and not changed, None))
            continue
        # the verification's string of the same hash: one copy held, not two
        out.append(ViewEvent(seq, verified.body_hashes[seq], body, seq not in bad, None))
    return out


def _verified_body(
    verified: VerifyReport | None, seq: int, stated: object
) -> dict[str, Any] | None:
    """The body a verification parsed and checked for event ``seq``, when the
    event's hash is still ``stated`` (the hash that verification saw), else None."""
    if verified is None or verified.body_hashes.get(seq) != stated:
        return None
    return verified.bodies.get(seq)


def replay_events(events: Iterable[ViewEvent], case_id: str, rules: int) -> Replay:
    """The custody replay of ``events`` (in seq order) under custody rules ``rules``."""
    return replay(((e.seq, e.hash, e.type, e.signer, e.body) for e in events), case_id, rules)


# -- who signed: every key as custody shows it ------------------------------------


@dataclass(frozen=True)
class KeyCard:
    """A key as every display shows it (docs/custody-model.md, "Who may act"): its
    holder's name and role, its fingerprint, its standing (owner, recovery,
    delegate, attested, self-asserted, unknown), the key that attested it, and
    whether it is active, revoked (at which event) or rotated (to which key); all
    of it from the custody replay of the signed events."""

    fingerprint: str
    name: str | None
    role: str | None
    standing: str
    attested_by: str | None
    attested_by_name: str | None
    status: str  # active, revoked or rotated
    revoked_at: int | None
    rotated_to: str | None

    def as_json(self) -> dict[str, Any]:
        """The key card (``$defs/key_card`` of schemas/report.schema.json)."""
        return {
            "fingerprint": self.fingerprint,
            "name": self.name,
            "role": self.role,
            "standing": self.standing,
            "attested_by": self.attested_by,
            "attested_by_name": self.attested_by_name,
            "status": self.status,
            "revoked_at": self.revoked_at,
            "rotated_to": self.rotated_to,
        }

    def text(self) -> str:
        """``Name (role) sha256:<16 hex> [standing]`` (custody.render.signers)."""
        return signer_text(self.as_json())

    def signer_fields(self) -> dict[str, Any]:
        """What ``log --json`` and ``show --json`` add to an event about its signer."""
        return {
            "signer_standing": self.standing,
            "signer_attested_by": self.attested_by,
            "signer_attested_by_name": self.attested_by_name,
        }


class KeyBook:
    """Every key the replay ``r`` knows, as :class:`KeyCard` s.  ``bodies`` are the
    signed events (seq, parsed body) in order, at least those that register keys
    (``case.open``, ``identity``, ``key.rotate``): they give each key's registering
    event and, under custody rules 1 (no owner, no attestation), which key imported
    which.  Nothing is taken from the derived ``identities`` table."""

    def __init__(self, r: Replay, bodies: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
        self.r = r
        self.since: dict[str, int] = {}  # fp -> seq of the first event registering it
        self._cards: dict[str, KeyCard] = {}
        self.via: dict[str, str] = {}  # fp -> type of that event
        self._v1_attester: dict[str, str] = {}
        for seq, body in bodies:
            type_ = body.get("type")
            data = body.get("data")
            if type_ not in (OPEN_EVENT, IDENTITY_EVENT, KEY_ROTATE_EVENT):
                continue
            if not isinstance(data, dict):
                continue
            for row in identity_index_rows(seq, str(type_), data):
                fp = row["fingerprint"]
                if not isinstance(fp, str) or fp in self.since:
                    continue
                self.since[fp] = seq
                self.via[fp] = str(type_)
                signer = body.get("signer")
                imported = type_ == IDENTITY_EVENT and data.get("registration") == "imported"
                if isinstance(signer, str) and (imported or type_ == KEY_ROTATE_EVENT):
                    self._v1_attester[fp] = signer  # rules 1: whoever vouched for it

    def fingerprints(self) -> list[str]:
        """Every key the replay knows, in the order the events registered them."""
        known = [fp for fp in self.since if fp in self.r.keys]
        return known + sorted(fp for fp in self.r.keys if fp not in self.since)

    def people(self) -> list[str]:
        """The keys registered for a person (the owner by the case's opening event,
        every other by an identity event): not the recovery key, nor the new key of a
        rotation, which speaks for the same person as the old one."""
        return [
            fp
            for fp in self.fingerprints()
            if self.via.get(fp) in (OPEN_EVENT, IDENTITY_EVENT) and fp != self.r.recovery
        ]

    def _standing(self, fp: str) -> tuple[str, str | None]:
        r = self.r
        if r.rules < 2:
            by = self._v1_attester.get(fp)
            if fp not in r.keys:
                return "unknown", None
            return ("attested", by) if by else ("self-asserted", None)
        # a retired key keeps the standing it had: the one its successor took over
        base = r.current(fp) if fp in r.rotated_to else fp
        return r.standing(base), r.attested_by.get(fp, r.attested_by.get(base))

    def card(self, fp: str) -> KeyCard:
        """The card of key ``fp`` as the replay knows it now."""
        if fp not in self._cards:
            self._cards[fp] = self._card(fp)
        return self._cards[fp]

    def _card(self, fp: str) -> KeyCard:
        r = self.r
        name, role = r.names.get(fp, (None, None))
        standing, by = self._standing(fp)
        if fp in r.revoked:
            status = "revoked"
        elif fp in r.rotated_to:
            status = "rotated"
        else:
            status = "active"
        return KeyCard(
            fingerprint=fp,
            name=name,
            role=role,
            standing=standing,
            attested_by=by,
            attested_by_name=r.names.get(by, (None, None))[0] if by else None,
            status=status,
            revoked_at=r.revoked.get(fp),
            rotated_to=r.rotated_to.get(fp),
        )

    def holder(self, fp: str) -> KeyCard:
        """The card of the key that speaks for ``fp`` now (rotations followed)."""
        return self.card(self.r.current(fp))


def case_keybook(ledger: Ledger) -> KeyBook:
    """The key book of an open case: the writers' replay kept current
    (:meth:`Ledger.rules`) and the events that register keys."""
    r = ledger.rules().current()
    rows = ledger.conn.execute(
        "SELECT seq, body FROM events WHERE type IN (?, ?, ?) ORDER BY seq",
        (OPEN_EVENT, IDENTITY_EVENT, KEY_ROTATE_EVENT),
    )
    bodies = []
    for seq, body in rows:
        try:
            parsed = parse_strict(body.decode("utf-8") if isinstance(body, bytes) else body)
        except (TypeError, ValueError):
            continue  # verify reports it (event-body)
        if isinstance(parsed, dict):
            bodies.append((int(seq), parsed))
    return KeyBook(r, bodies)


def who(r: Replay, fp: str) -> tuple[str, str]:
    """(name, role) of the person a key speaks for now (rotations followed)."""
    return r.names.get(r.current(fp), r.names.get(fp, (fp, "unknown")))


def person(r: Replay, fp: str) -> str:
    """``Name (role)`` of the person a key speaks for now."""
    return "{} ({})".format(*who(r, fp))


@dataclass(frozen=True)
class Handover:
    """One hand-over of an item, as a paper chain-of-custody record shows it."""

    transfer: str
    released_by: str
    released: str
    to: str
    received_by: str | None
    received: str | None
    reason: str
    location: str
    status: str  # RECEIVED or IN_TRANSIT
    mismatch: bool  # the item did not match its digests on receipt
    release_event: int
    receipt_event: int | None
    release_signature_verified: bool | None  # None: the event is not in view
    receipt_signature_verified: bool | None  # None: not yet received
    released_by_key: KeyCard | None = None  # the key that signed the transfer
    to_key: KeyCard | None = None  # the key the transfer names
    received_by_key: KeyCard | None = None  # the key that signed the receipt
    receipt_location: str | None = None  # where the receipt was signed (its signed location)

    def as_json(self) -> dict[str, Any]:
        """As ``custody show --json`` prints it."""
        return {
            "transfer": self.transfer,
            "released_by": self.released_by,
            "received_by": self.received_by,
            "to": self.to,
            "released": self.released,
            "received": self.received,
            "reason": self.reason,
            "location": self.location,
            "receipt_location": self.receipt_location,
            "status": self.status,
            "mismatch": self.mismatch,
            "release_event": self.release_event,
            "receipt_event": self.receipt_event,
            "release_signature_verified": self.release_signature_verified,
            "receipt_signature_verified": self.receipt_signature_verified,
            "released_by_key": _card_json(self.released_by_key),
            "to_key": _card_json(self.to_key),
            "received_by_key": _card_json(self.received_by_key),
        }


def _card_json(card: KeyCard | None) -> dict[str, Any] | None:
    return card.as_json() if card is not None else None


def transfers_by_item(r: Replay) -> dict[str, list[Transfer]]:
    """Every item's transfers in seq order: one pass over the replay's transfers,
    so the hand-overs of many items cost no pass over every transfer per item."""
    out: dict[str, list[Transfer]] = {}
    for t in sorted(r.transfers.values(), key=lambda t: t.seq):
        for i in dict.fromkeys(t.items):
            out.setdefault(i, []).append(t)
    return out


def receipt_location(ev: ViewEvent | None) -> str | None:
    """Where a receipt was signed: the ``location`` of the signed receive event
    (None when the event is not in view or records none)."""
    if ev is None:
        return None
    loc = ev.data.get("location")
    return loc if isinstance(loc, str) and loc else None


def handovers(
    r: Replay,
    item: str,
    verified: Mapping[int, bool],
    book: KeyBook | None = None,
    signers: Mapping[int, str] | None = None,
    *,
    transfers: Sequence[Transfer] | None = None,
    events: Mapping[int, ViewEvent] | None = None,
) -> list[Handover]:
    """The hand-overs of ``item`` in order; ``verified`` is the signature verdict
    by seq of the events in view, ``signers`` their signing keys (a receipt's
    signer; default: the key the transfer names, as it speaks now); ``transfers``
    the item's transfers (:func:`transfers_by_item`; default: found in ``r``);
    ``events`` the events in view by seq (a receipt's signed location)."""
    book = book or KeyBook(r, ())
    signers = signers or {}
    events = events or {}
    if transfers is None:
        transfers = [
            t for t in sorted(r.transfers.values(), key=lambda t: t.seq) if item in t.items
        ]
    out = []
    for t in transfers:
        received = t.receipt is not None
        receipt_signer = (
            signers.get(t.receipt, r.current(t.receiver)) if t.receipt is not None else None
        )
        out.append(
            Handover(
                transfer=t.id,
                released_by=person(r, t.releaser),
                released=t.time,
                to=person(r, t.receiver),
                received_by=person(r, t.receiver) if received else None,
                received=t.receipt_time,
                reason=t.reason,
                location=t.location,
                status=RECEIVED if received else IN_TRANSIT,
                mismatch=item in t.mismatches,
                release_event=t.seq,
                receipt_event=t.receipt,
                release_signature_verified=verified.get(t.seq),
                receipt_signature_verified=verified.get(t.receipt)
                if t.receipt is not None
                else None,
                released_by_key=book.card(t.releaser),
                to_key=book.card(t.receiver),
                received_by_key=book.card(receipt_signer) if receipt_signer else None,
                receipt_location=receipt_location(events.get(t.receipt))
                if t.receipt is not None
                else None,
            )
        )
    return out


#: The recorded metadata of an item's source, in the order the views show it: the
#: key in :func:`item_metadata`'s result and its label.
METADATA_FIELDS: tuple[tuple[str, str], ...] = (
    ("host", "Host"),
    ("kind", "Kind"),
    ("owner", "Owner"),
    ("uid", "Owner id (uid)"),
    ("group", "Group"),
    ("gid", "Group id (gid)"),
    ("mode", "Mode"),
    ("size", "Size (bytes)"),
    ("mtime", "Modified (mtime)"),
    ("atime", "Accessed (atime)"),
    ("ctime", "Changed (ctime)"),
    ("birthtime", "Born (birth time)"),
    ("inode", "Inode"),
    ("device", "Device"),
    ("nlink", "Links"),
    ("symlink_target", "Symlink target"),
    ("symlink_target_hex", "Symlink target (hex)"),
)


def item_metadata(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the signed collect event ``data`` recorded about the source, beside its
    bytes: host, owner and group (names and ids), mode string, size, the MAC and
    birth times, inode, device, links, and a symlink's target (as displayed and
    its exact bytes in hex).  A field the event did not record is None.  One
    extraction for ``show`` and every report."""
    src = data.get("source") if isinstance(data.get("source"), dict) else {}
    target = data.get("target") if isinstance(data.get("target"), dict) else {}
    assert isinstance(src, dict) and isinstance(target, dict)

    def text(v: Any) -> str | None:
        return v if isinstance(v, str) else None

    def num(v: Any) -> int | None:
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    return {
        "host": text(data.get("host")),
        "kind": text(src.get("kind")),
        "owner": text(src.get("owner")),
        "uid": num(src.get("uid")),
        "group": text(src.get("group")),
        "gid": num(src.get("gid")),
        "mode": text(src.get("mode_str")),
        "size": num(src.get("size")),
        "mtime": text(src.get("mtime")),
        "atime": text(src.get("atime")),
        "ctime": text(src.get("ctime")),
        "birthtime": text(src.get("birthtime")),
        "inode": text(src.get("inode")),
        "device": text(src.get("device")),
        "nlink": num(src.get("nlink")),
        "symlink_target": text(target.get("display")),
        "symlink_target_hex": text(target.get("hex")),
    }


def metadata_lines(meta: Mapping[str, Any]) -> list[str]:
    """The recorded metadata (:func:`item_metadata`) as ``show`` prints it: a
    ``Metadata:`` line, then one indented ``Label: value`` line per recorded field
    (host and kind are printed with the facts); every value by the display rule."""
    out = []
    for key, label in METADATA_FIELDS:
        value = meta.get(key)
        if key in ("host", "kind") or value is None:
            continue
        out.append(f"  {label + ':':<22}{shown(value)}")
    return ["Metadata:", *out] if out else []


def item_facts(seq: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """What an item is, from its signed collect event ``seq``: the fields
    ``custody list --json`` and ``custody show --json`` print."""
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    assert isinstance(data, dict)
    path = data.get("path") if isinstance(data.get("path"), dict) else {}
    source = data.get("source") if isinstance(data.get("source"), dict) else {}
    digests = data.get("digests") if isinstance(data.get("digests"), dict) else {}
    assert isinstance(path, dict) and isinstance(source, dict) and isinstance(digests, dict)
    extra = {k: data[k] for k in ("stream", "capture") if k in data}  # outcome captured
    return {
        "id": data.get("item"),
        "outcome": data.get("outcome"),
        "kind": source.get("kind", "unknown"),
        "path": path.get("display"),
        "path_hex": path.get("hex"),
        "size": data.get("size"),
        "sha256": digests.get("sha256"),
        "digests": digests,
        "mime": data.get("mime"),
        "magic": data.get("magic"),
        "store": data.get("store"),
        "event_seq": seq,
        "collected": body.get("time"),
        "host": data.get("host"),
        "reason": data.get("reason"),
        **extra,
        "metadata": item_metadata(data),
    }


@dataclass(frozen=True)
class ItemView:
    """One item: its collect event, state, custodian, hand-overs, every event that
    concerns it (seq order) and the verification findings that concern it."""

    id: str
    collect: ViewEvent
    obj: str | None  # its store object (a case) or payload file (a bundle)
    state: str | None
    custodian: str | None  # "Name (role)"
    handovers: list[Handover]
    events: list[ViewEvent]
    findings: list[Finding]
    replay: Replay = field(compare=False, repr=False)
    keys: KeyBook | None = field(default=None, compare=False, repr=False)
    source: SourceChain | None = field(default=None, compare=False, repr=False)
    types: dict[str, Typing] = field(default_factory=dict, compare=False, repr=False)

    @property
    def book(self) -> KeyBook:
        """Every key of the replay, as the displays show them."""
        return self.keys if self.keys is not None else KeyBook(self.replay, ())

    @property
    def custodian_key(self) -> KeyCard | None:
        """The key that holds the item now (rotations followed)."""
        st = self.replay.items.get(self.id)
        return self.book.holder(st.custodian) if st is not None else None

    @property
    def ok(self) -> bool:
        """No finding of the verification concerns this item."""
        return not self.findings

    @property
    def data(self) -> dict[str, Any]:
        """The signed collect event's data."""
        return self.collect.data

    def signer(self, ev: ViewEvent) -> tuple[str | None, str | None, bytes | None]:
        """(name, role, public key) of the key that signed ``ev``, as the signed
        identity events registered it (None if they did not)."""
        name, role = self.replay.names.get(ev.signer, (None, None))
        return name, role, self.replay.keys.get(ev.signer)

    def event_json(self, ev: ViewEvent) -> dict[str, Any]:
        """One event as ``custody show --json`` prints it: the ledger row, the
        signer as the signed events know it, and the verifier's verdict."""
        name, role, pub = self.signer(ev)
        row = ev.row
        return {
            "seq": ev.seq,
            "type": ev.type,
            "time": ev.time,
            "item": row.item if row is not None else ev.item,
            "hash": ev.hash,
            "prev": row.prev if row is not None else ev.body.get("prev"),
            "body": row.body if row is not None else None,
            "signature": row.signature if row is not None else None,
            "signer": ev.signer,
            "signer_name": name,
            "signer_role": role,
            "signer_public_key": public_key_b64(pub) if pub is not None else None,
            "signer_public_key_pem": _pem_or_none(pub),
            **self.book.card(ev.signer).signer_fields(),
            "signature_verified": ev.signature_verified,
        }

    def facts(self) -> dict[str, Any]:
        """What the item is (:func:`item_facts`); an imported item under its id in
        this case, with its source (``source``, ``source_item``), the lab's store
        object and the import event as ``event_seq``."""
        facts = item_facts(self.collect.seq, self.collect.body)
        facts["mime"], facts["magic"] = item_type(self.data, self.types)  # custody.describe
        if self.source is not None:
            facts.update(self.source.facts(self.id))
        return facts

    def as_json(self) -> dict[str, Any]:
        """The item as ``custody show --json`` prints it."""
        return {
            **self.facts(),
            **({"source_chain": self.source.as_json()} if self.source is not None else {}),
            "state": self.state,
            "custodian": self.custodian,
            "custodian_key": _card_json(self.custodian_key),
            "handovers": [h.as_json() for h in self.handovers],
            "events": [self.event_json(e) for e in self.events],
        }


@dataclass(frozen=True)
class SourceChain:
    """Where an imported item came from: its source (label, case id, case header
    hash), the bundle and the lab's import event that brought it in, and the
    source's own signed events that concern it (the collector's collect event and
    the source's hand-overs), each with its signature verdict from this
    verification (an ``import`` finding about that event), and the source's
    replay (who its signers are, as the source's signed events say)."""

    label: str
    case_id: str
    header: str
    bundle: str
    import_seq: int
    source_item: str
    store: str | None
    events: list[ViewEvent]
    replay: Replay = field(compare=False, repr=False)
    events_all: list[ViewEvent] = field(default_factory=list, compare=False, repr=False)

    def facts(self, item: str) -> dict[str, Any]:
        return {
            "id": item,
            "source": self.label,
            "source_item": self.source_item,
            "store": self.store,
            "event_seq": self.import_seq,
        }

    def signer_text(self, fp: str) -> str:
        """``Name (role) sha256:<16 hex>`` of a source signer, as the source's
        signed events name it."""
        name, role = self.replay.names.get(fp, (None, None))
        return signer_text(
            {
                "fingerprint": fp,
                "name": name,
                "role": role,
                "standing": self.replay.standing(fp),
                "attested_by": None,
                "attested_by_name": None,
            }
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.label,
            "source_case": self.case_id,
            "source_header": self.header,
            "bundle": self.bundle,
            "import_event": self.import_seq,
            "source_item": self.source_item,
            "events": [
                {
                    "seq": e.seq,
                    "type": e.type,
                    "time": e.time,
                    "hash": e.hash,
                    "signer": e.signer,
                    "signer_name": self.replay.names.get(e.signer, (None, None))[0],
                    "signer_role": self.replay.names.get(e.signer, (None, None))[1],
                    "body": canonical_text(e.body),
                    "signature_verified": e.signature_verified,
                }
                for e in self.events
            ],
        }


def canonical_text(body: Mapping[str, Any]) -> str:
    return canonical_json(dict(body)).decode("utf-8")


def _source_events(
    ledger: Ledger, bundle: str, findings: Sequence[Finding]
) -> tuple[list[ViewEvent], Replay]:
    """The signed events an imported bundle carried (seq order), each with the
    verdict of ``findings`` (an ``import`` finding naming the event), and the
    custody replay of them under the source's rules."""
    short = bundle[:23]
    bad = {f.subject for f in findings if f.kind == Kind.IMPORT}
    out = []
    for seq, ev_hash, body in ledger.conn.execute(
        "SELECT seq, hash, body FROM imported_events WHERE bundle = ? ORDER BY seq", (bundle,)
    ):
        try:
            parsed = parse_strict(str(body))
        except ValueError:
            continue
        if isinstance(parsed, dict):
            ok = f"imported event {seq} of {short}" not in bad
            out.append(ViewEvent(int(seq), str(ev_hash), parsed, ok))
    first = out[0].body if out else {}
    rules = 2 if first.get("type") == OPEN_EVENT else 1
    r = replay_events(out, str(first.get("case", "")), rules)
    return out, r


def imported_item_views(
    ledger: Ledger,
    events: Sequence[ViewEvent],
    r: Replay,
    findings: Sequence[Finding],
    *,
    only: Iterable[str] | None = None,
    book: KeyBook | None = None,
) -> dict[str, ItemView]:
    """The view of every imported item of a case (or of ``only`` those), in the
    order they were imported: its source's signed events (:class:`SourceChain`),
    the lab's import event, then the lab's own events that concern it.  ``r`` is
    the replay of ``events`` (the case's), which says which import event brought
    each item in and under which source label (custody.sources)."""
    if book is None:
        book = KeyBook(r, ((e.seq, e.body) for e in events))
    wanted = None if only is None else set(only)
    mine = {
        i: st
        for i, st in r.items.items()
        if st.source is not None and (wanted is None or i in wanted)
    }
    if not mine:
        return {}
    by_seq = {e.seq: e for e in events}
    per_item: dict[str, list[ViewEvent]] = {i: [] for i in mine}
    for ev in events:
        for i in event_items(ev.item, ev.data):
            if i in per_item:
                per_item[i].append(ev)
    chains: dict[str, tuple[list[ViewEvent], Replay]] = {}
    by_source_item: dict[str, dict[str, list[ViewEvent]]] = {}  # bundle -> item -> events
    index = _FindingIndex(findings)
    import_findings = [f for f in findings if f.kind == Kind.IMPORT]
    tby = transfers_by_item(r)
    receipts = {e.seq: e for e in events if e.type == RECEIVE_EVENT}
    views = {}
    for item, st in sorted(mine.items(), key=lambda kv: (kv[1].imported_at or 0, kv[0])):
        imp = by_seq.get(st.imported_at if st.imported_at is not None else -1)
        if imp is None:
            continue
        data = imp.data
        bundle = str(data.get("bundle"))
        if bundle not in chains:
            chains[bundle] = _source_events(ledger, bundle, findings)
            index_b: dict[str, list[ViewEvent]] = {}
            for e in chains[bundle][0]:
                for i in event_items(e.item, e.data):
                    index_b.setdefault(i, []).append(e)
            by_source_item[bundle] = index_b
        src_events, src_r = chains[bundle]
        source_item = source_item_of(item)
        concerning = by_source_item[bundle].get(source_item, [])
        collect = next((e for e in concerning if e.type == COLLECT_EVENT), None)
        if collect is None:  # verify reports it (import): the entry stands in
            entry = next(
                (
                    x
                    for x in data.get("items", [])
                    if isinstance(x, dict) and x.get("source_item") == source_item
                ),
                {},
            )
            collect = ViewEvent(
                -1,
                "",
                {
                    "type": COLLECT_EVENT,
                    "data": {
                        "item": source_item,
                        "path": {"display": entry.get("path")},
                        "digests": {"sha256": entry.get("sha256")},
                    },
                },
                False,
            )
        evs = sorted([imp, *per_item[item]], key=lambda e: e.seq)
        chain = SourceChain(
            label=str(st.source),
            case_id=str(data.get("source_case")),
            header=str(data.get("source_header", bundle)),
            bundle=bundle,
            import_seq=imp.seq,
            source_item=source_item,
            store=st.store,
            events=concerning,
            replay=src_r,
            events_all=src_events,
        )
        short = bundle[:23]
        src_subjects = {f"imported event {e.seq} of {short}" for e in concerning}
        extra = [f for f in import_findings if f.subject in src_subjects]
        mine_f = index.concerning(item, [e.seq for e in evs], st.store)
        views[item] = ItemView(
            id=item,
            collect=collect,
            obj=st.store,
            state=st.state,
            custodian=person(r, st.custodian),
            handovers=handovers(
                r,
                item,
                {e.seq: e.signature_verified for e in evs},
                book,
                {e.seq: e.signer for e in evs},
                transfers=tby.get(item, []),
                events=receipts,
            ),
            events=evs,
            findings=[*mine_f, *(f for f in extra if f not in mine_f)],
            replay=r,
            keys=book,
            source=chain,
        )
    return views


def _pem_or_none(pub: bytes | None) -> str | None:
    if pub is None:
        return None
    try:
        return public_key_pem(pub)
    except ValueError:
        return None


def item_views(
    events: Sequence[ViewEvent],
    r: Replay,
    findings: Sequence[Finding],
    *,
    objects: Mapping[str, str | None] | None = None,
    only: Iterable[str] | None = None,
    book: KeyBook | None = None,
) -> dict[str, ItemView]:
    """The view of every item collected in ``events`` (or of ``only`` those), in
    the order they were collected.  ``r`` is the replay of ``events``;
    ``findings`` the verification's; ``objects`` the stored object or payload
    file of each item (default: the collect event's ``store``); ``book`` the keys
    of ``r`` (default: made from ``events``)."""
    if book is None:
        book = KeyBook(r, ((e.seq, e.body) for e in events))
    wanted = None if only is None else set(only)
    collect: dict[str, ViewEvent] = {}
    per_item: dict[str, list[ViewEvent]] = {}
    for ev in events:
        item = ev.item
        if ev.type == COLLECT_EVENT and item and (wanted is None or item in wanted):
            collect[item] = ev
        for i in event_items(item, ev.data):
            if wanted is None or i in wanted:
                per_item.setdefault(i, []).append(ev)
    index = _FindingIndex(findings)
    tby = transfers_by_item(r)
    receipts = {e.seq: e for e in events if e.type == RECEIVE_EVENT}
    views = {}
    for item, ev in collect.items():
        store = ev.data.get("store")
        if objects is not None:
            obj = objects.get(item)
        else:
            obj = store if isinstance(store, str) else None
        evs = per_item.get(item, [])
        st = r.items.get(item)
        views[item] = ItemView(
            id=item,
            collect=ev,
            obj=obj,
            state=st.state if st else None,
            custodian=person(r, st.custodian) if st else None,
            handovers=handovers(
                r,
                item,
                {e.seq: e.signature_verified for e in evs},
                book,
                {e.seq: e.signer for e in evs},
                transfers=tby.get(item, []),
                events=receipts,
            ),
            events=evs,
            findings=index.concerning(item, [e.seq for e in evs], obj),
            replay=r,
            keys=book,
        )
    return views


class _FindingIndex:
    """The findings by item, seq and object: :meth:`Finding.concerns` for many
    items at once, without a pass over every finding per item."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        self.by_item: dict[str, list[int]] = {}
        self.by_seq: dict[int, list[int]] = {}
        self.by_obj: dict[str, list[int]] = {}
        for n, f in enumerate(self.findings):
            if f.item is not None:
                self.by_item.setdefault(f.item, []).append(n)
            if f.seq is not None:
                self.by_seq.setdefault(f.seq, []).append(n)
            if f.obj is not None:
                self.by_obj.setdefault(f.obj, []).append(n)

    def concerning(self, item: str, seqs: Iterable[int], obj: str | None) -> list[Finding]:
        hits = set(self.by_item.get(item, ()))
        for s in seqs:
            hits.update(self.by_seq.get(s, ()))
        if obj is not None:
            hits.update(self.by_obj.get(obj, ()))
        return [self.findings[n] for n in sorted(hits)]


def case_item_view(
    ledger: Ledger, item: str, *, verification: VerifyReport | None = None
) -> ItemView:
    """The view of one item of a case.  Its signature verdicts and findings are
    those of ``verification``, by default ``verify_ledger(ledger, quick=True)``:
    every step but the store re-hash, so the signature step (the verdicts) runs
    in full; pass a full verification for findings about the stored bytes."""
    report = verification or verify_ledger(ledger, quick=True)
    events = case_events(ledger.events(), report.findings)
    r = replay_events(events, ledger.case.case_id, ledger.case.rules)
    want = find_item(r, item) or item.strip().upper()
    if want in r.items and r.items[want].source is not None:
        view = imported_item_views(ledger, events, r, report.findings, only=[want]).get(want)
    else:
        view = item_views(events, r, report.findings, only=[want]).get(want)
    if view is None:
        raise UsageError(f"no such item: {item}")
    return dataclasses.replace(view, types=verified_types(events))


#: findings that put the whole recorded history in doubt, whatever item they name: a
#: changed case header, missing events, a checkpoint the ledger no longer extends
#: (history rewritten or truncated).  ``show`` fails for every item on them.
HISTORY_KINDS = frozenset({Kind.CASE_HEADER, Kind.CHAIN_GAP, Kind.CHECKPOINT})


@dataclass(frozen=True)
class ShowVerdict:
    """What ``custody show`` concludes about one item from a verification: the
    findings that concern the item, those that put the whole history in doubt
    (:data:`HISTORY_KINDS`), and how many others there are (other items' events,
    the derived tables, time-stamps: ``custody verify`` lists them)."""

    item: str
    findings: list[Finding]
    history: list[Finding]
    others: int

    @property
    def ok(self) -> bool:
        return not self.findings and not self.history

    def kinds(self) -> list[str]:
        return list(dict.fromkeys(f.kind.kind for f in (*self.findings, *self.history)))

    def headline(self) -> str | None:
        """The line ``show`` prints first, or None when there is nothing to say."""
        kinds = ", ".join(self.kinds())
        if self.findings:
            return (
                f"FAILED: the record of {self.item} fails verification ({kinds}); the"
                " problems, then what the ledger holds now, which is not to be trusted:"
            )
        if self.history:
            return (
                f"FAILED: the ledger's history fails verification ({kinds}), so the record"
                f" of {self.item} is not to be trusted either; the problems:"
            )
        if self.others:
            return (
                f"Note: the ledger has {self.others} problem(s) that do not concern"
                f" {self.item}; 'custody verify' lists them"
            )
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [f.as_json() for f in (*self.findings, *self.history)],
            "other_problems": self.others,
        }


def show_verdict(view: ItemView, report: VerifyReport) -> ShowVerdict:
    """The verdict of ``report`` (a verification of the ledger) on ``view``'s item."""
    mine = list(view.findings)
    history = [f for f in report.findings if f.kind in HISTORY_KINDS and f not in mine]
    others = len([f for f in report.findings if f not in mine and f not in history])
    return ShowVerdict(view.id, mine, history, others)


# -- the verification, in words ----------------------------------------------------


def verification_lines(report: VerifyReport) -> list[str]:
    """What ``custody verify`` prints of a verification."""
    what = "ledger (store not re-hashed)" if report.quick else "ledger and store"
    lines = [
        f"Case {shown(report.case_id)}: {report.events} events, {report.artifacts} items"
        + (f" ({report.imported} imported)," if report.imported else ",")
        + f" {report.objects_checked} store objects re-hashed ({report.bytes_checked} bytes),"
        f" {report.checkpoints} checkpoints checked."
    ]
    lines += [f"Note: {shown(n)}" for n in report.notes]
    if report.ok:
        lines.append(f"OK: {what} verified, no problems found. Head {report.head}")
        return lines
    lines.append(f"FAILED: {len(report.findings)} problem(s) found:")
    lines += [f"  [{shown(f.kind)}] {shown(f.subject)}: {shown(f.detail)}" for f in report.findings]
    return lines


def table_lines(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A plain-text table: columns padded to their widest cell, the last one not.
    Every cell is shown by the display rule (:func:`custody.display.shown`), so a
    newline in a name cannot forge a row: pass cells as recorded, not pre-escaped
    (a path as :func:`custody.display.path_text` gives it)."""
    rows = [[shown(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(c))

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r))

    return [fmt(headers), *(fmt(r) for r in rows)]


# -- the case's items, its own and imported ones ----------------------------------


def _own_facts(ledger: Ledger) -> list[dict[str, Any]]:
    """The case's own items as ``list --json`` prints them: the facts of each
    signed collect event (:func:`item_facts`)."""
    out = []
    for row in ledger.artifacts():
        (body,) = ledger.conn.execute(
            "SELECT body FROM events WHERE seq = ?", (row["event_seq"],)
        ).fetchone()
        facts = item_facts(row["event_seq"], parse_strict(str(body)))
        out.append({**facts, "source": None, "source_item": None})
    return out


def imported_facts(ledger: Ledger, r: Replay | None = None) -> list[dict[str, Any]]:
    """The case's imported items as ``list --json`` prints them, in the order they
    were imported: the facts of the source's signed collect event, under the id
    the replay ``r`` (default: the writers' replay) gives the item in this case."""
    r = r or ledger.rules().current()
    imported = {i: st for i, st in r.items.items() if st.source is not None}
    if not imported:
        return []
    imports: dict[int, dict[str, Any]] = {}
    for seq, body in ledger.conn.execute(
        "SELECT seq, body FROM events WHERE type = 'import' ORDER BY seq"
    ):
        try:
            parsed = parse_strict(str(body))
        except ValueError:
            continue
        if isinstance(parsed, dict) and isinstance(parsed.get("data"), dict):
            imports[int(seq)] = parsed["data"]
    collects: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {}
    out = []
    for item, st in sorted(imported.items(), key=lambda kv: (kv[1].imported_at or 0, kv[0])):
        data = imports.get(st.imported_at if st.imported_at is not None else -1, {})
        bundle = str(data.get("bundle"))
        if bundle not in collects:
            events, _ = _source_events(ledger, bundle, ())
            collects[bundle] = {
                str(e.item): (e.seq, e.body) for e in events if e.type == COLLECT_EVENT
            }
        source_item = source_item_of(item)
        seq, body = collects[bundle].get(source_item, (-1, {}))
        facts = item_facts(seq, body)
        facts.update(
            {
                "id": item,
                "source": st.source,
                "source_item": source_item,
                "store": st.store,
                "event_seq": st.imported_at,
            }
        )
        out.append(facts)
    return out


def _source_matches(facts: Mapping[str, Any], want: str, own_case: str) -> bool:
    w = want.strip().casefold()
    src = facts.get("source")
    if src is None:
        return w in (own_case.casefold(), "-")
    label = str(src).casefold()
    return w == label or w == label.rpartition("@")[0]


def case_items(ledger: Ledger, source: str | None = None) -> list[dict[str, Any]]:
    """Every item of the case, its own (collected) then imported ones, as ``list
    --json`` prints them, each with its ``source`` (the source's label, or None
    for the case's own items) and ``source_item``.  ``source`` keeps those of one
    source: a label (``NC-001@3fa9c2``), a source case id (every source of that
    case id), or the case's own case id or ``-`` for its own items."""
    items = _own_facts(ledger) + imported_facts(ledger)
    fill_types(items, object_types(ledger))
    if source is None:
        return items
    case_id = ledger.case.case_id
    kept = [f for f in items if _source_matches(f, source, case_id)]
    own = _source_matches({"source": None}, source, case_id)
    if not kept and not own:
        labels = sorted(set(ledger.rules().current().sources))
        raise UsageError(
            f"no such source: {source!r}; the case's sources are"
            f" {', '.join(labels) if labels else 'none'} (and its own items, '-')"
        )
    return kept


def item_log(ledger: Ledger, item: str) -> tuple[str, list[Event]]:
    """The id of ``item`` (the case's own or an imported one) and the case's events
    that concern it: for an imported item, the import event that brought it in,
    then the case's own events about it."""
    r = ledger.rules().current()
    found = find_item(r, item)
    if found is None or (found not in r.items):
        found = ledger.artifact(item)["id"]  # raises "no such item"
    st = r.items.get(found)
    events = list(ledger.events(found))
    if st is not None and st.imported_at is not None:
        imp = next(ledger.events(after=st.imported_at - 1), None)
        if imp is not None and imp.seq not in {e.seq for e in events}:
            events = sorted([imp, *events], key=lambda e: e.seq)
    return found, events
