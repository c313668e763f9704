"""Custody lifecycle: hand-overs, lifecycle events, key rotation and revocation,
and the state of every item, all derived by replaying the signed events.

The same replay serves the writer (who may act on an item now) and ``verify``
(was every rule kept), so a rule is never computed two ways.

Item states: ``collected`` (in its custodian's hands), ``sealed``, ``in transit``
(released by a transfer, not yet received), ``released`` (returned or handed out
of the case) and ``disposed``.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from custody.canonical import canonical_json
from custody.errors import CustodyRuleError, KeyRevokedError, UsageError
from custody.findings import Finding, Findings, Kind, event_subject
from custody.keys import Signer, fingerprint, verify_signature
from custody.ledger import (
    COLLECT_EVENT,
    IDENTITY_EVENT,
    IMPORT_EVENT,
    KEY_REVOKE_EVENT,
    KEY_ROTATE_EVENT,
    OPEN_EVENT,
    Event,
    EventDraft,
    Ledger,
    recovery_identity,
)
from custody.sources import imported_id, source_label
from custody.trust import (
    TRUST_ADD_EVENT,
    TRUST_REMOVE_EVENT,
    Pin,
    advance,
    basis_problem,
    pin_problem,
)

TRANSFER_EVENT = "transfer"
RECEIVE_EVENT = "receive"
REASSIGN_EVENT = "reassign"
#: what a self-asserted key (one nobody attested) may sign under rules 2
SELF_ASSERTED_MAY = frozenset({"note", "checkpoint", "timestamp"})
LIFECYCLE_EVENTS = ("access", "analysis", "note", "seal", "release", "dispose")
#: a legal hold on one item (custody.vault, docs/vault.md): while it stands, the
#: item's stored bytes may not be purged
HOLD_SET_EVENT = "hold.set"
HOLD_RELEASE_EVENT = "hold.release"
TRANSFER_PREFIX = "TRANSFER-"
#: the id grouping an import's events: ``IMPORT-<seq of its first event>``
IMPORT_PREFIX = "IMPORT-"
_IMPORT_ID = re.compile(r"IMPORT-(0|[1-9][0-9]{0,17})")
#: what an import's per-item event carries of its item (and a whole-bundle import
#: event lists per item): the fields an ``items`` entry has
IMPORT_ENTRY_FIELDS = ("source_item", "path", "sha256", "store")
#: an item's id in the case it was collected in (what an import event may import)
SOURCE_ITEM = re.compile(r"ITEM-[1-9][0-9]*")

COLLECTED, SEALED, IN_TRANSIT, RELEASED, DISPOSED = (
    "collected",
    "sealed",
    "in transit",
    "released",
    "disposed",
)
_STATE_AFTER = {
    "seal": SEALED,
    "access": COLLECTED,
    "analysis": COLLECTED,
    "release": RELEASED,
    "dispose": DISPOSED,
}


def transfer_id(seq: int) -> str:
    return f"{TRANSFER_PREFIX}{seq}"


def parse_transfer_id(text: str) -> int:
    t = text.strip().upper()
    n = t[len(TRANSFER_PREFIX) :]
    if t.startswith(TRANSFER_PREFIX) and n.isascii() and n.isdigit() and len(n) <= 19:
        return int(n)  # ASCII digits only: "²".isdigit() is true, int("²") fails
    raise UsageError(f"not a transfer id: {text!r} (expected {TRANSFER_PREFIX}N)")


def import_id(seq: int) -> str:
    """The id of the import whose first (bundle-level) event is ``seq``."""
    return f"{IMPORT_PREFIX}{seq}"


def import_group_seq(value: Any) -> int | None:
    """The seq an import id names (``IMPORT-<seq>``, canonical decimal), or None."""
    m = _IMPORT_ID.fullmatch(value) if isinstance(value, str) else None
    return int(m.group(1)) if m else None


def rotation_statement(case_id: str, old: str, new: str, public_key: str) -> bytes:
    """What the new key signs in a rotation (canonical JSON, see docs)."""
    return canonical_json(
        {
            "case": case_id,
            "type": KEY_ROTATE_EVENT,
            "old": old,
            "new": new,
            "public_key": public_key,
        }
    )


@dataclass
class ItemStatus:
    item: str
    state: str
    custodian: str  # fingerprint
    stored: bool  # has a store object
    digests: dict[str, str]
    store: str | None
    before_transit: str = COLLECTED
    pending: int | None = None  # seq of the transfer in flight
    purged: bool = False  # disposed with --purge: its stored bytes may be gone
    source: str | None = None  # an imported item: its source's label (custody.sources)
    imported_at: int | None = None  # an imported item: the seq of the (first) import event
    import_entry: int | None = None  # the seq of its own import event (one per item)


@dataclass
class Transfer:
    seq: int
    hash: str
    releaser: str
    receiver: str
    items: list[str]
    reason: str
    location: str
    time: str
    receipt: int | None = None
    receipt_time: str | None = None
    mismatches: list[str] = field(default_factory=list)
    handover: str | None = None  # the hand-over id grouping one event per item

    @property
    def id(self) -> str:
        """The id people use: the hand-over's (its first transfer's) for every transfer
        of a hand-over, else ``TRANSFER-<seq>``."""
        return self.handover or transfer_id(self.seq)


@dataclass
class ImportGroup:
    """An import recorded one event per item (ledger-format §7.6): its first,
    bundle-level event, its signer and source, and the seq of its last event so far."""

    seq: int
    signer: str
    label: str
    last: int
    refused: bool = False


@dataclass
class Replay:
    """Everything derived from the events, plus every broken rule found."""

    items: dict[str, ItemStatus] = field(default_factory=dict)
    transfers: dict[int, Transfer] = field(default_factory=dict)
    keys: dict[str, bytes] = field(default_factory=dict)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # fp -> (name, role)
    revoked: dict[str, int] = field(default_factory=dict)  # fp -> seq of revocation
    rotated_to: dict[str, str] = field(default_factory=dict)
    rotated_at: dict[str, int] = field(default_factory=dict)  # old fp -> seq of rotation
    violations: Findings = field(default_factory=Findings)
    # rules 2 (custody-model.md "Who may act"): authority is bound to keys
    rules: int = 1
    owner: str | None = None
    recovery: str | None = None
    attested_by: dict[str, str] = field(default_factory=dict)  # fp -> attesting fp
    delegates: set[str] = field(default_factory=set)
    name_holder: dict[str, str] = field(default_factory=dict)  # normalised name -> fp
    # imported sources (custody.sources): label -> header hash, header hash -> label
    sources: dict[str, str] = field(default_factory=dict)
    source_labels: dict[str, str] = field(default_factory=dict)
    # the case's trust anchors (custody.trust): fp -> (raw key, name, seq of trust.add)
    anchors: dict[str, tuple[bytes, str, int]] = field(default_factory=dict)
    pins: dict[str, Pin] = field(default_factory=dict)  # source header hash -> its pin
    # legal holds standing: item -> (seq of hold.set, fp that set it)
    holds: dict[str, tuple[int, str]] = field(default_factory=dict)
    # a replay of a bundle's disclosed events, not of a whole ledger: a hand-over's
    # members for other items are withheld, so only those present are compared
    partial: bool = False
    handover_last: dict[str, int] = field(default_factory=dict)  # hand-over -> last member
    imports: dict[int, ImportGroup] = field(default_factory=dict)  # first seq -> import

    def group(self, t: Transfer) -> list[Transfer]:
        """The transfers of ``t``'s hand-over (one per item), in order; ``[t]`` alone
        for a transfer written before hand-overs were split by item."""
        if t.handover is None:
            return [t]
        return sorted(
            (u for u in self.transfers.values() if u.handover == t.handover), key=lambda u: u.seq
        )

    def violate(
        self, kind: Kind, seq: int, detail: str, *, item: str | None = None, subject: str = ""
    ) -> None:
        """Record a broken rule of event ``seq`` (subject ``event <seq>`` unless given)."""
        self.violations.add(kind, subject or event_subject(seq), detail, item=item, seq=seq)

    def who(self, fp: str) -> str:
        """A signer as people read it: name and fingerprint (16 hex digits)."""
        name = self.names.get(fp, ("", ""))[0]
        return f"{name} ({fp[:23]})" if name else fp

    def active(self, fp: str) -> bool:
        """Neither revoked nor replaced by a rotation."""
        return fp not in self.revoked and fp not in self.rotated_to

    def attested(self, fp: str) -> bool:
        """Vouched for by the owner or a delegate (the owner vouches for itself).
        Under rules 1 every known key counts as attested."""
        return fp in self.attested_by if self.rules >= 2 else fp in self.keys

    def standing(self, fp: str) -> str:
        """owner, recovery, delegate, attested, self-asserted or unknown."""
        if fp == self.owner:
            return "owner"
        if fp == self.recovery:
            return "recovery"
        if fp in self.delegates:
            return "delegate"
        if fp in self.attested_by:
            return "attested"
        return "self-asserted" if fp in self.keys else "unknown"

    def holder_of(self, name: str) -> str | None:
        """The active attested key that holds ``name`` (normalised), if any."""
        fp = self.name_holder.get(normalise_name(name))
        return fp if fp is not None and self.active(fp) else None

    def current(self, fp: str) -> str:
        """Follow rotations to the key now speaking for ``fp``."""
        seen = set()
        while fp in self.rotated_to and fp not in seen:
            seen.add(fp)
            fp = self.rotated_to[fp]
        return fp


def normalise_name(name: str) -> str:
    """A name as it is compared: NFKC, case-folded, whitespace folded.  Look-alike
    letters from other scripts survive this: the fingerprint is what counts."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _items_of(data: dict[str, Any]) -> list[str]:
    items = data.get("items")
    return [i for i in items if isinstance(i, str)] if isinstance(items, list) else []


def replay(
    events: Iterable[tuple[int, str, str, str, dict[str, Any]]],
    case_id: str,
    rules: int = 1,
    *,
    partial: bool = False,
) -> Replay:
    """Replay (seq, hash, type, signer, body) in order under custody rules ``rules``;
    ``partial`` for the disclosed events of a bundle (:attr:`Replay.partial`)."""
    r = Replay(rules=rules, partial=partial)
    for seq, ev_hash, type_, signer, body in events:
        step(r, case_id, seq, ev_hash, type_, signer, body)
    return r


def step(
    r: Replay,
    case_id: str,
    seq: int,
    ev_hash: str,
    type_: str,
    signer: str,
    body: dict[str, Any],
    *,
    trusted: bool = True,
) -> None:
    """Apply one event to the replay state, recording every rule it breaks.
    ``trusted`` is False when its signature did not verify: it then registers no
    key.  The writers apply this same step to their draft and refuse on any
    violation (:func:`check_draft`), so a rule is written once."""
    data = body.get("data")
    if not isinstance(data, dict):
        return
    retired = retired_why(r, signer, seq)
    if retired:
        r.violate(Kind.REVOKED_KEY, seq, retired)
    if r.rules >= 2:
        if seq == 0 and type_ != OPEN_EVENT:
            r.violate(Kind.AUTHORITY, seq, "the case's first event must open it, naming its owner")
        if not trusted or retired:
            return  # an event whose signature fails, or by a retired key, has no effect
        if type_ == OPEN_EVENT:
            _open(r, seq, signer, data)
            return
        why = _may_not_sign(r, signer, type_, data)
        if why:
            r.violate(Kind.AUTHORITY, seq, why)
            return  # an act outside the rules has no effect
    if type_ == IDENTITY_EVENT:
        _identity(r, seq, signer, data, trusted)
    elif type_ == KEY_ROTATE_EVENT:
        if trusted:
            _rotate(r, seq, signer, data, case_id)
    elif type_ == KEY_REVOKE_EVENT:
        fp = str(data.get("fingerprint"))
        if r.rules >= 2 and not (
            signer in (fp, r.owner) or (signer == r.recovery and fp == r.owner)
        ):
            r.violate(
                Kind.AUTHORITY,
                seq,
                f"{r.who(signer)} may not revoke {r.who(fp)}: a key is revoked by itself or"
                " by the case's owner",
            )
            return
        if fp not in r.keys:
            r.violate(Kind.REVOCATION, seq, f"revokes {fp}, a key the ledger does not know")
        elif fp in r.revoked:
            r.violate(
                Kind.REVOCATION, seq, f"{r.who(fp)} was already revoked at event {r.revoked[fp]}"
            )
        r.revoked.setdefault(fp, seq)
    elif type_ == COLLECT_EVENT:
        item = str(data.get("item"))
        digests = data.get("digests") if isinstance(data.get("digests"), dict) else {}
        assert isinstance(digests, dict)
        r.items[item] = ItemStatus(
            item=item,
            state=COLLECTED,
            custodian=signer,
            stored="store" in data,
            digests=dict(digests),
            store=data.get("store"),
        )
    elif type_ == IMPORT_EVENT:
        _import(r, seq, signer, data)
    elif type_ in (TRUST_ADD_EVENT, TRUST_REMOVE_EVENT):
        _trust(r, seq, type_, signer, data)
    elif type_ == TRANSFER_EVENT:
        _transfer(r, seq, ev_hash, signer, body, data)
    elif type_ == REASSIGN_EVENT and r.rules >= 2:
        _reassign(r, seq, signer, data)
    elif type_ == RECEIVE_EVENT:
        _receive(r, seq, signer, body, data)
    elif type_ in LIFECYCLE_EVENTS:
        _lifecycle(r, seq, type_, signer, data)
    elif type_ in (HOLD_SET_EVENT, HOLD_RELEASE_EVENT):
        _hold(r, seq, type_, signer, data)


def retired_why(r: Replay, fp: str, seq: int) -> str | None:
    """Why key ``fp`` may not sign event ``seq``: revoked or rotated away earlier."""
    if fp in r.revoked and r.revoked[fp] < seq:
        return f"key {r.who(fp)} was revoked at event {r.revoked[fp]} and may not sign"
    if fp in r.rotated_at and r.rotated_at[fp] < seq:
        return (
            f"key {r.who(fp)} was replaced by a key rotation at event {r.rotated_at[fp]}"
            " and may not sign"
        )
    return None


def self_registered_key(body: dict[str, Any]) -> bytes | None:
    """The key a self-registration carries, if it is one and the key is well formed."""
    data = body.get("data")
    if not isinstance(data, dict):
        return None
    if body.get("type") == OPEN_EVENT:  # the owner's key, in the case's opening event
        owner = _key_of(data.get("owner"))
        return owner[0] if owner is not None and owner[1] == body.get("signer") else None
    if body.get("type") != IDENTITY_EVENT or data.get("registration") != "self":
        return None
    try:
        pub = base64.b64decode(str(data.get("public_key", "")), validate=True)
    except (binascii.Error, ValueError):
        return None
    return pub if len(pub) == 32 and fingerprint(pub) == body.get("signer") else None


def _key_of(entry: object) -> tuple[bytes, str] | None:
    """(raw key, fingerprint) of a {public_key, fingerprint} object, if consistent."""
    if not isinstance(entry, dict):
        return None
    try:
        pub = base64.b64decode(str(entry.get("public_key", "")), validate=True)
    except (binascii.Error, ValueError):
        return None
    fp = fingerprint(pub)
    return (pub, fp) if len(pub) == 32 and entry.get("fingerprint") == fp else None


def _claim_name(r: Replay, seq: int, fp: str, name: str) -> bool:
    """Give ``name`` to ``fp`` unless another active attested key holds it."""
    holder = r.holder_of(name)
    if holder is not None and holder != fp:
        r.violate(
            Kind.NAME,
            seq,
            f"the name {name!r} belongs to {r.who(holder)}: one active key per name",
        )
        return False
    r.name_holder[normalise_name(name)] = fp
    return True


def _open(r: Replay, seq: int, signer: str, data: dict[str, Any]) -> None:
    """``case.open``: event 0 names the owner (and, optionally, a recovery key)."""
    if seq != 0 or r.owner is not None:
        r.violate(Kind.AUTHORITY, seq, "a case is opened once, by its first event")
        return
    owner = _key_of(data.get("owner"))
    if owner is None or owner[1] != signer:
        r.violate(
            Kind.AUTHORITY, seq, "the opening event must carry, and be signed by, the owner's key"
        )
        return
    pub, fp = owner
    info = data["owner"]
    r.keys[fp] = pub
    r.names[fp] = (str(info.get("name")), str(info.get("role")))
    r.owner = fp
    r.attested_by[fp] = fp
    r.name_holder[normalise_name(str(info.get("name")))] = fp
    if data.get("recovery") is not None:
        rec = _key_of(data.get("recovery"))
        if rec is None or rec[1] == fp:
            r.violate(Kind.IDENTITY, seq, "the recovery key is malformed or is the owner's key")
            return
        r.keys[rec[1]] = rec[0]
        ident = recovery_identity(r.names[fp][0])
        r.names[rec[1]] = (ident["name"], ident["role"])
        r.recovery = rec[1]


def _may_not_sign(r: Replay, signer: str, type_: str, data: dict[str, Any]) -> str | None:
    """Why ``signer`` may not sign an event of ``type_`` under rules 2 (None: it may)."""
    if signer == r.recovery:
        if type_ == KEY_REVOKE_EVENT and data.get("fingerprint") == r.owner:
            return None
        if type_ == KEY_ROTATE_EVENT and data.get("old") == r.owner:
            return None
        return "the recovery key may only revoke or replace the owner's key"
    if signer in r.attested_by:
        return None
    if type_ in SELF_ASSERTED_MAY:
        return None
    if type_ == IDENTITY_EVENT and data.get("registration") == "self":
        return None
    if type_ == KEY_REVOKE_EVENT and data.get("fingerprint") == signer:
        return None
    if type_ == KEY_ROTATE_EVENT and data.get("old") == signer:
        return None
    return (
        f"{r.who(signer)} is self-asserted (neither the owner nor a delegate attested it):"
        f" it may not sign {type_}; it may add notes"
    )


def _identity(r: Replay, seq: int, signer: str, data: dict[str, Any], trusted: bool) -> None:
    try:
        pub = base64.b64decode(str(data.get("public_key", "")), validate=True)
    except (binascii.Error, ValueError):
        r.violate(Kind.IDENTITY, seq, "public_key is not base64")
        return
    fp = fingerprint(pub)
    if len(pub) != 32 or data.get("fingerprint") != fp:
        r.violate(
            Kind.IDENTITY,
            seq,
            f"fingerprint {data.get('fingerprint')} does not match its public key ({fp})",
        )
        return
    if data.get("registration") == "self" and signer != fp:
        r.violate(
            Kind.IDENTITY,
            seq,
            f"self-registration signed by {signer}, not by the key it registers ({fp})",
        )
        return
    if not trusted:
        return
    name, role = str(data.get("name")), str(data.get("role"))
    if r.rules >= 2 and data.get("registration") != "self":
        if signer != r.owner and signer not in r.delegates:
            r.violate(
                Kind.AUTHORITY,
                seq,
                f"{r.who(signer)} may not attest keys: only the owner and its delegates may",
            )
            return
        if data.get("delegate") is True and signer != r.owner:
            r.violate(Kind.AUTHORITY, seq, "only the owner may delegate attestation")
            return
        if fp in r.attested_by:
            r.violate(Kind.IDENTITY, seq, f"{r.who(fp)} was already attested")
            return
        if not _claim_name(r, seq, fp, name):
            return
        r.keys[fp] = pub
        r.names[fp] = (name, role)
        r.attested_by[fp] = signer
        if data.get("delegate") is True:
            r.delegates.add(fp)
        return
    r.keys.setdefault(fp, pub)
    r.names.setdefault(fp, (name, role))


def _rotate(r: Replay, seq: int, signer: str, data: dict[str, Any], case_id: str) -> None:
    old, new, pub_b64 = data.get("old"), data.get("new"), str(data.get("public_key", ""))
    try:
        pub = base64.b64decode(pub_b64, validate=True)
        cosig = base64.b64decode(str(data.get("cosignature", "")), validate=True)
    except (binascii.Error, ValueError):
        r.violate(Kind.ROTATION, seq, "public key or cosignature is not base64")
        return
    by_recovery = r.rules >= 2 and signer == r.recovery and old == r.owner
    if old != signer and not by_recovery:
        r.violate(Kind.ROTATION, seq, f"rotation of {old} signed by another key ({signer})")
        if r.rules >= 2:
            return
    if old in r.rotated_to:
        r.violate(Kind.ROTATION, seq, f"key {r.who(str(old))} was already rotated")
    if new != fingerprint(pub):
        r.violate(Kind.ROTATION, seq, "new fingerprint does not match the new public key")
        return
    if new in r.keys:
        r.violate(Kind.ROTATION, seq, f"the new key {new} is already known to this case")
    if not verify_signature(pub, cosig, rotation_statement(case_id, str(old), str(new), pub_b64)):
        r.violate(Kind.ROTATION, seq, f"the new key {new} did not sign the rotation")
        return
    r.keys.setdefault(str(new), pub)
    if r.rules >= 2 and str(old) in r.names:  # the new key takes the old one's place
        r.names[str(new)] = r.names[str(old)]
        if str(old) in r.attested_by:
            r.attested_by[str(new)] = r.attested_by[str(old)]
        if str(old) in r.delegates:
            r.delegates.add(str(new))
        if old == r.owner:
            r.owner = r.attested_by[str(new)] = str(new)
        for n, holder in list(r.name_holder.items()):
            if holder == old:
                r.name_holder[n] = str(new)
    r.names.setdefault(str(new), (str(data.get("name")), str(data.get("role"))))
    r.rotated_to.setdefault(str(old), str(new))
    r.rotated_at.setdefault(str(old), seq)
    for st in r.items.values():
        if st.custodian == old:
            st.custodian = str(new)


def _holds(r: Replay, st: ItemStatus, signer: str) -> bool:
    return r.current(st.custodian) == r.current(signer)


def _not_actionable(r: Replay, st: ItemStatus, signer: str, what: str) -> str | None:
    """Why ``signer`` may not ``what`` item ``st`` now (None if they may)."""
    if st.state == IN_TRANSIT:
        return f"{st.item} is already in transit ({transfer_id(st.pending or 0)}); cannot {what} it"
    if st.state in (DISPOSED, RELEASED):
        return f"{st.item} is {st.state}; cannot {what} it"
    if not _holds(r, st, signer):
        return (
            f"only the current custodian may {what} {st.item}; it is held by"
            f" {r.who(r.current(st.custodian))}, not {r.who(signer)}"
        )
    return None


def _transfer(
    r: Replay, seq: int, ev_hash: str, signer: str, body: dict[str, Any], data: dict[str, Any]
) -> None:
    subject = transfer_id(seq)
    items = _items_of(data)
    t = Transfer(
        seq=seq,
        hash=ev_hash,
        releaser=signer,
        receiver=str(data.get("to")),
        items=items,
        reason=str(data.get("reason", "")),
        location=str(data.get("location", "")),
        time=str(body.get("time")),
        handover=data.get("handover") if isinstance(data.get("handover"), str) else None,
    )
    r.transfers[seq] = t
    if "handover" in data:
        _handover_member(r, seq, t, data)
    if t.receiver not in r.keys:
        r.violate(
            Kind.TRANSFER, seq, f"receiver {t.receiver} is not a known identity", subject=subject
        )
    elif r.current(t.receiver) == r.current(signer):
        r.violate(
            Kind.TRANSFER,
            seq,
            "releaser and receiver are the same person: a transfer must name someone else",
            subject=subject,
        )
    elif not r.attested(t.receiver):
        r.violate(
            Kind.TRANSFER,
            seq,
            f"receiver {r.who(t.receiver)} is self-asserted: only attested keys may receive",
            subject=subject,
        )
    elif t.receiver in r.revoked or t.receiver in r.rotated_to:
        r.violate(
            Kind.TRANSFER,
            seq,
            f"receiver {r.who(t.receiver)} holds a retired (revoked or rotated) key",
            subject=subject,
        )
    for item in items:
        st = r.items.get(item)
        if st is None:
            r.violate(
                Kind.TRANSFER,
                seq,
                f"{item} is not an item of this case",
                subject=subject,
                item=item,
            )
            continue
        why = _not_actionable(r, st, signer, "transfer")
        if why:
            r.violate(Kind.TRANSFER, seq, why, subject=subject, item=item)
            continue
        st.before_transit = st.state
        st.state = IN_TRANSIT
        st.pending = seq


def _handover_member(r: Replay, seq: int, t: Transfer, data: dict[str, Any]) -> None:
    """A hand-over records one ``transfer`` per item, each naming the hand-over id
    ``TRANSFER-<seq of its first member>``: consecutive events, one item each, the
    same releaser, receiver, reason and location (ledger-format §7.2)."""
    subject = transfer_id(seq)
    h = data.get("handover")
    try:
        head_seq = parse_transfer_id(h) if isinstance(h, str) else None
    except UsageError:
        head_seq = None
    if head_seq is None or h != transfer_id(head_seq) or head_seq > seq:
        r.violate(
            Kind.TRANSFER, seq, f"handover {h!r} is not an earlier transfer id", subject=subject
        )
        return
    if len(t.items) != 1:
        r.violate(
            Kind.TRANSFER,
            seq,
            "a hand-over's transfer event moves exactly one item",
            subject=subject,
        )
    if head_seq == seq:
        r.handover_last[str(h)] = seq
        return
    head = r.transfers.get(head_seq)
    if head is None:
        if not r.partial:
            r.violate(Kind.TRANSFER, seq, f"hand-over {h} has no first transfer", subject=subject)
        return
    same = (head.handover, head.releaser, head.receiver, head.reason, head.location) == (
        h,
        t.releaser,
        t.receiver,
        t.reason,
        t.location,
    )
    if not same:
        r.violate(
            Kind.TRANSFER,
            seq,
            f"not the same hand-over as {h}: releaser, receiver, reason and location differ",
            subject=subject,
        )
    elif not r.partial and r.handover_last.get(str(h)) != seq - 1:
        r.violate(
            Kind.TRANSFER,
            seq,
            f"hand-over {h}'s transfers must be consecutive events",
            subject=subject,
        )
    r.handover_last[str(h)] = seq


def _receive(r: Replay, seq: int, signer: str, body: dict[str, Any], data: dict[str, Any]) -> None:
    tseq = data.get("transfer_seq")
    t = r.transfers.get(tseq) if isinstance(tseq, int) else None
    if t is None or data.get("transfer") != t.hash:
        r.violate(Kind.RECEIPT, seq, "receipt does not reference a transfer of this ledger")
        return
    if t.receipt is not None:
        r.violate(Kind.RECEIPT, seq, f"{t.id} was already received (event {t.receipt})")
        return
    if r.current(signer) != r.current(t.receiver):
        r.violate(
            Kind.RECEIPT,
            seq,
            f"{t.id} is addressed to {r.who(r.current(t.receiver))}; only they may receive it,"
            f" not {r.who(signer)}",
        )
        return
    if data.get("handover") != t.handover:
        r.violate(
            Kind.RECEIPT,
            seq,
            f"the receipt's hand-over {data.get('handover')!r} is not that of the transfer"
            f" at event {t.seq} ({t.handover!r})",
        )
        return
    t.receipt, t.receipt_time = seq, str(body.get("time"))
    checks = data.get("items") if isinstance(data.get("items"), dict) else {}
    assert isinstance(checks, dict)
    for item in t.items:
        st = r.items.get(item)
        check = checks.get(item)
        if isinstance(check, dict) and st is not None and st.stored:
            # the receipt must say what it found, truthfully: re-derive "match"
            if check.get("expected") != st.digests:
                r.violate(
                    Kind.RECEIPT,
                    seq,
                    f"{item}: receipt expects {check.get('expected')}, collected as {st.digests}",
                    item=item,
                )
            if check.get("match") is True and check.get("found") != check.get("expected"):
                r.violate(
                    Kind.RECEIPT,
                    seq,
                    f"{item}: receipt says match but found {check.get('found')}",
                    item=item,
                )
        if not isinstance(check, dict) or check.get("match") is not True:
            t.mismatches.append(item)
            found = check.get("found") if isinstance(check, dict) else None
            r.violate(
                Kind.RECEIPT_MISMATCH,
                seq,
                f"received in {t.id} at event {seq} with digests {found},"
                f" expected {check.get('expected') if isinstance(check, dict) else None}",
                item=item,
                subject=item,
            )
        if st is not None and st.pending == t.seq:
            st.state = st.before_transit
            st.custodian = signer
            st.pending = None


def _reassign(r: Replay, seq: int, signer: str, data: dict[str, Any]) -> None:
    """The owner gives items held by a revoked key (or in transit to one) to an
    attested, active key, with a signed reason."""
    if signer != r.owner:
        r.violate(Kind.AUTHORITY, seq, f"{r.who(signer)} may not reassign: only the owner may")
        return
    to = str(data.get("to"))
    if not r.attested(to) or not r.active(to):
        r.violate(
            Kind.LIFECYCLE,
            seq,
            f"items may be reassigned only to an attested, active key, not {r.who(to)}",
        )
        return
    for item in _items_of(data):
        st = r.items.get(item)
        if st is None:
            r.violate(
                Kind.LIFECYCLE, seq, f"reassign of {item}, not an item of this case", item=item
            )
            continue
        holder = r.current(st.custodian)
        pending = r.transfers.get(st.pending) if st.pending is not None else None
        lost = holder in r.revoked or (
            pending is not None and r.current(pending.receiver) in r.revoked
        )
        if st.state in (DISPOSED, RELEASED) or not lost:
            r.violate(
                Kind.LIFECYCLE,
                seq,
                f"{item} is {st.state}, held by {r.who(holder)}: only items held by (or in"
                " transit to) a revoked key may be reassigned",
                item=item,
            )
            continue
        if st.state == IN_TRANSIT:
            st.state, st.pending = st.before_transit, None
        st.custodian = to


def _import(r: Replay, seq: int, signer: str, data: dict[str, Any]) -> None:
    """An ``import`` event makes its signer the custodian of the items it imports
    (docs/custody-model.md, "Imported items"), each under the id
    ``<source label>/<source item>`` (custody.sources).  The source is its case id
    and case header hash (``source_header``; an import event written before it was
    recorded names its source by the bundle's hash).  An item a source already
    brought into the case (a later bundle of the same source) keeps its state.

    An import is recorded either as one event listing every item (``items``,
    before import events were split by item), or as a group (ledger-format §7.6):
    a bundle-level first event whose ``import`` is its own id ``IMPORT-<seq>`` and
    that names no item, then one event per item, consecutive, signed by the same
    key, each naming the group's id, its item's case id and that item's data."""
    group = data.get("import")
    if group is not None:
        head = import_group_seq(group)
        if head is None or head > seq:
            r.violate(Kind.IMPORT, seq, f"import {group!r} is not an earlier import id")
            return
        if head != seq:
            _import_member(r, seq, signer, head, data)
            return
        if "items" in data:
            r.violate(Kind.IMPORT, seq, "the first event of an import by item lists no items")
            return
    case = data.get("source_case")
    header = data.get("source_header", data.get("bundle"))
    items = data.get("items") if group is None else []
    if not isinstance(case, str) or not isinstance(header, str) or not isinstance(items, list):
        r.violate(Kind.IMPORT, seq, "import event names no source case, header or items")
        return
    if isinstance(data.get("trust"), dict):  # its trust basis, and the source's pin
        why = basis_problem(data["trust"], None)
        pin = r.pins.get(header)
        if why is None and pin is not None:
            why = pin_problem(pin, data)
        if why:
            r.violate(Kind.IMPORT, seq, f"import refused: {why}")
            if group is not None:  # its items' events have no effect either
                r.imports[seq] = ImportGroup(seq, signer, "", seq, refused=True)
            return  # an import outside the rules has no effect
    advance(r.pins, header, seq, data)
    label = r.source_labels.get(header)
    if label is None:
        label = source_label(case, header, r.sources)
        r.sources[label], r.source_labels[header] = header, label
    if group is not None:
        r.imports[seq] = ImportGroup(seq, signer, label, seq)
    for entry in items:
        _import_item(r, seq, signer, label, entry, None)


def _import_member(r: Replay, seq: int, signer: str, head: int, data: dict[str, Any]) -> None:
    """One item's event of an import recorded by item."""
    g = r.imports.get(head)
    if g is None:
        r.violate(Kind.IMPORT, seq, f"import {import_id(head)} has no first event")
        return
    if g.refused:
        return  # the refused import's finding says it
    if signer != g.signer:
        r.violate(
            Kind.IMPORT,
            seq,
            f"not signed by the key that signed import {import_id(head)}'s first event",
        )
        return
    if not r.partial and g.last != seq - 1:
        r.violate(Kind.IMPORT, seq, f"import {import_id(head)}'s events must be consecutive")
    g.last = seq
    if "items" in data:
        r.violate(Kind.IMPORT, seq, "an item's import event lists no other items")
        return
    entry = {k: data[k] for k in IMPORT_ENTRY_FIELDS if k in data}
    source_item = data.get("source_item")
    want = imported_id(g.label, source_item) if isinstance(source_item, str) else None
    if want is not None and SOURCE_ITEM.fullmatch(str(source_item)) and data.get("item") != want:
        r.violate(
            Kind.IMPORT,
            seq,
            f"import event names item {data.get('item')!r}, its source item is {want}",
        )
        return
    _import_item(r, head, signer, g.label, entry, seq)


def _import_item(
    r: Replay, head: int, signer: str, label: str, entry: Any, own: int | None
) -> None:
    """Create the item an import's ``items`` entry (or an item's import event)
    names, unless an earlier import of its source did."""
    seq = head if own is None else own
    source_item = entry.get("source_item") if isinstance(entry, dict) else None
    if not isinstance(entry, dict) or not isinstance(source_item, str):
        r.violate(Kind.IMPORT, seq, "import event lists an item without its source id")
        return
    if not SOURCE_ITEM.fullmatch(source_item):
        r.violate(Kind.IMPORT, seq, f"import event lists {source_item!r}, not an item id (ITEM-n)")
        return
    item = imported_id(label, source_item)
    sha = entry.get("sha256")
    digests = {"sha256": sha} if isinstance(sha, str) else {}
    known = r.items.get(item)
    if known is not None:
        if known.digests != digests:
            r.violate(
                Kind.IMPORT,
                seq,
                f"{item} was imported at event {known.imported_at} with digests"
                f" {known.digests}, this import says {digests}",
                item=item,
            )
        return
    store = entry.get("store")
    r.items[item] = ItemStatus(
        item=item,
        state=COLLECTED,
        custodian=signer,
        stored=isinstance(store, str),
        digests=digests,
        store=store if isinstance(store, str) else None,
        source=label,
        imported_at=head,
        import_entry=own,
    )


def import_records(
    bodies: Iterable[tuple[int, dict[str, Any]]],
) -> dict[str, tuple[int, dict[str, Any]]]:
    """Bundle id -> (seq of its import event, its ``data``) of every signed
    ``import`` event among ``bodies`` ((seq, parsed body), in seq order); an
    import recorded by item is given as one event would list it: its first
    event's data with ``items`` gathered from its items' events (their
    :data:`IMPORT_ENTRY_FIELDS`).  Whether the group keeps the rules is the
    replay's to say (:func:`_import`)."""
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    groups: dict[int, list[Any]] = {}
    signers: dict[int, Any] = {}  # the key that signed each group's first event
    for seq, body in bodies:
        if not isinstance(body, dict) or body.get("type") != IMPORT_EVENT:
            continue
        data = body.get("data")
        if not isinstance(data, dict):
            continue
        head = import_group_seq(data.get("import")) if "import" in data else None
        if "import" not in data:
            out[str(data.get("bundle"))] = (seq, data)
        elif head is None or (head == seq and not isinstance(data.get("bundle"), str)):
            continue  # no import id, or a first event naming no bundle: the replay's finding
        elif head == seq:
            merged = {k: v for k, v in data.items() if k != "import"}
            merged["items"] = groups[seq] = []
            signers[seq] = body.get("signer")
            out[str(data.get("bundle"))] = (seq, merged)
        elif head in groups and body.get("signer") == signers[head]:  # else not its member
            groups[head].append({k: data[k] for k in IMPORT_ENTRY_FIELDS if k in data})
    return out


def _trust(r: Replay, seq: int, type_: str, signer: str, data: dict[str, Any]) -> None:
    """``trust.add`` / ``trust.remove``: the case's trust anchors, kept by its owner
    alone (docs/custody-model.md, "Trust anchors")."""
    if r.rules < 2 or r.owner is None:
        r.violate(
            Kind.AUTHORITY,
            seq,
            "trust anchors are kept by the case's owner; this case (custody rules 1) has none",
        )
        return
    if signer != r.owner:
        r.violate(
            Kind.AUTHORITY,
            seq,
            f"{r.who(signer)} may not change the case's trust anchors: only the case's owner,"
            f" {r.who(r.owner)}, may",
        )
        return
    if type_ == TRUST_ADD_EVENT:
        key = _key_of(data)
        if key is None:
            r.violate(Kind.IDENTITY, seq, "trust.add: fingerprint does not match its public key")
            return
        if key[1] in r.anchors:
            r.violate(
                Kind.IDENTITY,
                seq,
                f"{key[1]} is already a trust anchor (event {r.anchors[key[1]][2]})",
            )
            return
        r.anchors[key[1]] = (key[0], str(data.get("name", "")), seq)
        return
    fp = str(data.get("fingerprint"))
    if fp not in r.anchors:
        r.violate(Kind.IDENTITY, seq, f"trust.remove: {fp} is not a trust anchor of the case")
        return
    del r.anchors[fp]


def find_item(r: Replay, raw: str) -> str | None:
    """The item ``raw`` names: its id as written or upper-cased (``item-3``), or an
    imported id whatever the case of its letters (``nc-001@3FA9C2/item-810``)."""
    text = raw.strip()
    for cand in (text, text.upper()):
        if cand in r.items:
            return cand
    folded = text.casefold()
    hits = [i for i, st in r.items.items() if st.source and i.casefold() == folded]
    return hits[0] if len(hits) == 1 else None


def _lifecycle(r: Replay, seq: int, type_: str, signer: str, data: dict[str, Any]) -> None:
    for item in _items_of(data):
        st = r.items.get(item)
        if st is None:
            r.violate(
                Kind.LIFECYCLE, seq, f"{type_} of {item}, not an item of this case", item=item
            )
            continue
        if type_ == "note":
            continue
        why = _not_actionable(r, st, signer, f"record {type_} of")
        if why:
            r.violate(Kind.LIFECYCLE, seq, why, item=item)
            continue
        if type_ == "dispose" and data.get("purge") is True and item in r.holds:
            r.violate(
                Kind.LIFECYCLE,
                seq,
                f"{item} is under a legal hold since event {r.holds[item][0]}: its stored"
                " bytes may not be purged until the hold is released",
                item=item,
            )
            continue
        st.state = _STATE_AFTER[type_]
        if type_ == "dispose" and data.get("purge") is True:
            st.purged = True


def _hold(r: Replay, seq: int, type_: str, signer: str, data: dict[str, Any]) -> None:
    """A legal hold is set on one item by any key that may act (under rules 2: an
    attested one) and released only by the key that set it or the case's owner."""
    items = _items_of(data)
    if len(items) != 1:
        r.violate(Kind.LIFECYCLE, seq, f"{type_} must name exactly one item")
        return
    item = items[0]
    if item not in r.items:
        r.violate(Kind.LIFECYCLE, seq, f"{type_} of {item}, not an item of this case", item=item)
        return
    held = r.holds.get(item)
    if type_ == HOLD_SET_EVENT:
        if held is not None:
            r.violate(
                Kind.LIFECYCLE,
                seq,
                f"{item} is already under a hold since event {held[0]}",
                item=item,
            )
            return
        r.holds[item] = (seq, signer)
        return
    if held is None:
        r.violate(Kind.LIFECYCLE, seq, f"{item} is not under a legal hold", item=item)
        return
    if signer not in (held[1], r.owner) and r.current(held[1]) != signer:
        r.violate(
            Kind.AUTHORITY,
            seq,
            f"{r.who(signer)} may not release the hold of event {held[0]}: only the key"
            " that set it or the case's owner may",
            item=item,
        )
        return
    del r.holds[item]


def replay_ledger(ledger: Ledger) -> Replay:
    """A fresh replay of the whole ledger under its rules."""

    def rows() -> Iterable[tuple[int, str, str, str, dict[str, Any]]]:
        for ev in ledger.events():
            try:
                body = ev.parsed
            except ValueError:
                continue
            yield ev.seq, ev.hash, ev.type, ev.signer, body

    return replay(rows(), ledger.case.case_id, ledger.case.rules)


# -- the writers' gate -------------------------------------------------------------
#
# A writer never re-checks a rule by hand.  Ledger.append admits every event it is
# about to commit through Rules.admit, which applies the replay's own step to it and
# refuses on any violation the step records: exactly what verify would report of it.

#: findings that record a fact about the evidence rather than a broken rule: a
#: receipt that found other bytes than were collected is recorded, not refused
RECORDED_FACTS = frozenset({Kind.RECEIPT_MISMATCH})


class Rules:
    """The custody replay of one open ledger, kept current: the writers' gate."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.r: Replay | None = None
        self.seq = -1
        self.head = ""

    def current(self) -> Replay:
        """The replay up to the ledger's tail (events another writer appended since
        are applied; a ledger that changed under it is replayed anew)."""
        led = self.ledger
        if self.r is not None and self.seq >= 0:
            row = led.conn.execute("SELECT hash FROM events WHERE seq = ?", (self.seq,)).fetchone()
            if row is None or row[0] != self.head:
                self.r = None
        if self.r is None:
            self.r, self.seq, self.head = Replay(rules=led.case.rules), -1, ""
        for ev in led.events(after=self.seq):
            try:
                body = ev.parsed
            except ValueError:
                body = {}
            step(self.r, led.case.case_id, ev.seq, ev.hash, ev.type, ev.signer, body)
            self.seq, self.head = ev.seq, ev.hash
        return self.r

    def admit(self, ev: Event) -> None:
        """Apply the event about to be committed; refuse it (CustodyRuleError, exit
        2, carrying the findings) if the step records a broken rule."""
        r = self.current() if self.r is None else self.r
        body = {
            "type": ev.type,
            "seq": ev.seq,
            "signer": ev.signer,
            "time": ev.time,
            "data": ev.data,
        }
        self.seq, self.head = ev.seq, ev.hash
        _step_or_refuse(r, self.ledger.case.case_id, ev.seq, ev.hash, body)

    def refuse_retired(self, signer: Signer) -> None:
        """A revoked or rotated-out key may not sign: the replay's revoked-key rule
        (:func:`retired_why`), said before any work is done for it."""
        r = self.current()
        seq = self.seq + 1
        why = retired_why(r, signer.fingerprint, seq)
        if why:
            raise KeyRevokedError.of([Finding.event(Kind.REVOKED_KEY, seq, why)])

    def invalidate(self) -> None:
        self.r = None


def check_draft(ledger: Ledger, r: Replay, signer: Signer, draft: EventDraft) -> None:
    """Apply ``draft`` as ``signer`` to the replay ``r`` (consumed) and raise
    :class:`CustodyRuleError` if the step records a broken rule: a probe before
    costly work (a receipt re-hashes every item), the same step the gate applies."""
    seq = ledger.event_count()
    if signer.fingerprint not in r.keys:  # Ledger.append registers the signer first
        r.keys[signer.fingerprint] = signer.identity.public_raw
        r.names[signer.fingerprint] = (signer.identity.name, signer.identity.role)
        seq += 1
    body = {"type": draft.type, "seq": seq, "signer": signer.fingerprint, "data": draft.data}
    _step_or_refuse(r, ledger.case.case_id, seq, "", body)


def _step_or_refuse(r: Replay, case_id: str, seq: int, ev_hash: str, body: dict[str, Any]) -> None:
    """Apply one event to ``r``; raise CustodyRuleError with the broken rules it
    records (facts such as a receipt mismatch are recorded, not refused)."""
    before = len(r.violations)
    step(r, case_id, seq, ev_hash, str(body["type"]), str(body["signer"]), body)
    broken = [f for f in r.violations[before:] if f.kind not in RECORDED_FACTS]
    if broken:
        raise CustodyRuleError.of(broken)


def append_checked(ledger: Ledger, signer: Signer, build: Callable[[Replay], EventDraft]) -> Event:
    """Append the event ``build`` drafts from the replay kept current inside the
    write lock; the ledger's gate admits it by the replay's own step."""
    return ledger.append(signer, lambda: [build(ledger.rules().current())])[-1]


def need_items(r: Replay, items: list[str]) -> list[str]:
    out = []
    for raw in items:
        item = find_item(r, raw)
        if item is None:
            raise UsageError(f"no such item: {raw}")
        if item not in out:
            out.append(item)
    if not out:
        raise UsageError("name at least one item")
    return out


def resolve_identity(r: Replay, who: str) -> str:
    """A known key by fingerprint (full, or a prefix of at least 8 hex digits) or by
    name.  Under rules 2 a name is that of the one active attested key holding it
    (self-asserted keys never match a name).  Whether that key may be named (retired,
    self-asserted, the signer itself) is the replay's rule."""
    w = who.strip()
    hexpart = w.removeprefix("sha256:").lower()
    by_fp = [
        fp for fp in r.keys if len(hexpart) >= 8 and fp.removeprefix("sha256:").startswith(hexpart)
    ]
    if r.rules >= 2:
        holder = r.holder_of(w)
        found = list(dict.fromkeys(by_fp + ([holder] if holder else [])))
    else:
        by_name = [fp for fp, (name, _) in r.names.items() if name == w]
        found = list(dict.fromkeys(by_fp + by_name))
        if len(found) > 1:  # a name shared by a key and its rotation: the live one
            found = [fp for fp in found if fp not in r.rotated_to] or found
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(
            f"no attested identity {who!r}: the owner imports their key with 'custody key import'"
        )
    raise UsageError(f"{who!r} names several identities; give a fingerprint")


def purgeable(r: Replay) -> set[str]:
    """Store objects whose every item was disposed with --purge: their absence is
    recorded, not a loss."""
    keep = {st.store for st in r.items.values() if st.store and not st.purged}
    return {st.store for st in r.items.values() if st.store and st.purged} - keep
