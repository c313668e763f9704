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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from custody.canonical import canonical_json
from custody.errors import CustodyRuleError, UsageError
from custody.findings import Findings, Kind, event_subject
from custody.hashing import hash_file
from custody.keys import Identity, Signer, fingerprint, verify_signature
from custody.ledger import (
    COLLECT_EVENT,
    IDENTITY_EVENT,
    KEY_REVOKE_EVENT,
    KEY_ROTATE_EVENT,
    Event,
    EventDraft,
    Ledger,
)
from custody.store import Store

TRANSFER_EVENT = "transfer"
RECEIVE_EVENT = "receive"
LIFECYCLE_EVENTS = ("access", "analysis", "note", "seal", "release", "dispose")
TRANSFER_PREFIX = "TRANSFER-"

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
    if t.startswith(TRANSFER_PREFIX) and t[len(TRANSFER_PREFIX) :].isdigit():
        return int(t[len(TRANSFER_PREFIX) :])
    raise UsageError(f"not a transfer id: {text!r} (expected {TRANSFER_PREFIX}N)")


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

    @property
    def id(self) -> str:
        return transfer_id(self.seq)


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

    def violate(
        self, kind: Kind, seq: int, detail: str, *, item: str | None = None, subject: str = ""
    ) -> None:
        """Record a broken rule of event ``seq`` (subject ``event <seq>`` unless given)."""
        self.violations.add(kind, subject or event_subject(seq), detail, item=item, seq=seq)

    def who(self, fp: str) -> str:
        """A signer as people read it: name and fingerprint."""
        name = self.names.get(fp, ("", ""))[0]
        return f"{name} ({fp[:23]})" if name else fp

    def current(self, fp: str) -> str:
        """Follow rotations to the key now speaking for ``fp``."""
        seen = set()
        while fp in self.rotated_to and fp not in seen:
            seen.add(fp)
            fp = self.rotated_to[fp]
        return fp


def _items_of(data: dict[str, Any]) -> list[str]:
    items = data.get("items")
    return [i for i in items if isinstance(i, str)] if isinstance(items, list) else []


def replay(events: Iterable[tuple[int, str, str, str, dict[str, Any]]], case_id: str) -> Replay:
    """Replay (seq, hash, type, signer, body) in order."""
    r = Replay()
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
    if signer in r.revoked and r.revoked[signer] < seq:
        r.violate(
            Kind.REVOKED_KEY,
            seq,
            f"key {r.who(signer)} was revoked at event {r.revoked[signer]} and may not sign",
        )
    if signer in r.rotated_at and r.rotated_at[signer] < seq:
        r.violate(
            Kind.REVOKED_KEY,
            seq,
            f"key {r.who(signer)} was replaced by a key rotation at event"
            f" {r.rotated_at[signer]} and may not sign",
        )
    if type_ == IDENTITY_EVENT:
        _identity(r, seq, signer, data, trusted)
    elif type_ == KEY_ROTATE_EVENT:
        if trusted:
            _rotate(r, seq, signer, data, case_id)
    elif type_ == KEY_REVOKE_EVENT:
        fp = str(data.get("fingerprint"))
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
    elif type_ == TRANSFER_EVENT:
        _transfer(r, seq, ev_hash, signer, body, data)
    elif type_ == RECEIVE_EVENT:
        _receive(r, seq, signer, body, data)
    elif type_ in LIFECYCLE_EVENTS:
        _lifecycle(r, seq, type_, signer, data)


def self_registered_key(body: dict[str, Any]) -> bytes | None:
    """The key a self-registration carries, if it is one and the key is well formed."""
    data = body.get("data")
    if body.get("type") != IDENTITY_EVENT or not isinstance(data, dict):
        return None
    if data.get("registration") != "self":
        return None
    try:
        pub = base64.b64decode(str(data.get("public_key", "")), validate=True)
    except (binascii.Error, ValueError):
        return None
    return pub if len(pub) == 32 and fingerprint(pub) == body.get("signer") else None


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
    if trusted:
        r.keys.setdefault(fp, pub)
        r.names.setdefault(fp, (str(data.get("name")), str(data.get("role"))))


def _rotate(r: Replay, seq: int, signer: str, data: dict[str, Any], case_id: str) -> None:
    old, new, pub_b64 = data.get("old"), data.get("new"), str(data.get("public_key", ""))
    try:
        pub = base64.b64decode(pub_b64, validate=True)
        cosig = base64.b64decode(str(data.get("cosignature", "")), validate=True)
    except (binascii.Error, ValueError):
        r.violate(Kind.ROTATION, seq, "public key or cosignature is not base64")
        return
    if old != signer:
        r.violate(Kind.ROTATION, seq, f"rotation of {old} signed by another key ({signer})")
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
    )
    r.transfers[seq] = t
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
        st.state = _STATE_AFTER[type_]
        if type_ == "dispose" and data.get("purge") is True:
            st.purged = True


def replay_ledger(ledger: Ledger) -> Replay:
    def rows() -> Iterable[tuple[int, str, str, str, dict[str, Any]]]:
        for ev in ledger.events():
            try:
                body = ev.parsed
            except ValueError:
                continue
            yield ev.seq, ev.hash, ev.type, ev.signer, body

    return replay(rows(), ledger.case.case_id)


# -- writers --------------------------------------------------------------------
#
# A writer never re-checks a rule by hand: it builds its draft, applies the
# replay's own step to it (check_draft) and refuses on any violation that step
# records, which is exactly what verify would report of it afterwards.


def check_draft(ledger: Ledger, r: Replay, signer: Signer, draft: EventDraft) -> None:
    """Apply ``draft`` as ``signer`` to the replay ``r`` (consumed) and raise
    :class:`CustodyRuleError` carrying the findings if the step records any."""
    seq = ledger.event_count()
    if signer.fingerprint not in r.keys:  # Ledger.append registers the signer first
        r.keys[signer.fingerprint] = signer.identity.public_raw
        r.names[signer.fingerprint] = (signer.identity.name, signer.identity.role)
        seq += 1
    before = len(r.violations)
    body = {"type": draft.type, "seq": seq, "signer": signer.fingerprint, "data": draft.data}
    step(r, ledger.case.case_id, seq, "", draft.type, signer.fingerprint, body)
    broken = r.violations[before:]
    if broken:
        raise CustodyRuleError.of(broken)


def _append_checked(ledger: Ledger, signer: Signer, build: Callable[[Replay], EventDraft]) -> Event:
    """Append the event ``build`` drafts from a replay made inside the write lock,
    once the replay's own step has accepted it."""

    def drafts() -> list[EventDraft]:
        r = replay_ledger(ledger)
        draft = build(r)
        check_draft(ledger, r, signer, draft)
        return [draft]

    return ledger.append(signer, drafts)[-1]


def _need_items(r: Replay, items: list[str]) -> list[str]:
    out = []
    for raw in items:
        item = raw.strip().upper()
        if item not in r.items:
            raise UsageError(f"no such item: {raw}")
        if item not in out:
            out.append(item)
    if not out:
        raise UsageError("name at least one item")
    return out


def resolve_identity(r: Replay, who: str) -> str:
    """A known identity by fingerprint (full or 16-hex prefix) or exact name.
    Only what the name says is resolved here; whether that key may be named
    (retired, the signer itself) is the replay's rule."""
    w = who.strip()
    hexpart = w.removeprefix("sha256:").lower()
    by_fp = [
        fp for fp in r.keys if len(hexpart) >= 8 and fp.removeprefix("sha256:").startswith(hexpart)
    ]
    by_name = [fp for fp, (name, _) in r.names.items() if name == w]
    found = list(dict.fromkeys(by_fp + by_name))
    if len(found) > 1:  # a name shared by a key and its rotation: the live one
        found = [fp for fp in found if fp not in r.rotated_to] or found
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(f"no known identity {who!r}: import their key with 'custody key import'")
    raise UsageError(f"{who!r} names several identities; give a fingerprint")


def transfer(
    ledger: Ledger, signer: Signer, items: list[str], to: str, reason: str, location: str = ""
) -> Event:
    def build(r: Replay) -> EventDraft:
        wanted = _need_items(r, items)
        receiver = resolve_identity(r, to)
        return EventDraft(
            TRANSFER_EVENT,
            {
                "items": wanted,
                "to": receiver,
                "to_name": r.names.get(receiver, ("", ""))[0],
                "reason": reason,
                "location": location,
                "digests": {i: r.items[i].digests for i in wanted},
            },
        )

    return _append_checked(ledger, signer, build)


def receive(ledger: Ledger, signer: Signer, tid: str, location: str = "", note: str = "") -> Event:
    tseq = parse_transfer_id(tid)
    store = Store(ledger.store_dir)

    def check_items(r: Replay, t: Transfer) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in t.items:
            st = r.items.get(item)
            if st is None:
                continue
            expected = st.digests
            found: dict[str, str] | None = None
            error = None
            if st.stored and st.store:
                try:
                    found = hash_file(store.path_of(st.store), sorted(expected)).digests
                except OSError as e:
                    error = f"store object unreadable: {e.strerror}"
            out[item] = {
                "expected": expected,
                "found": found,
                "match": (found == expected) if st.stored else True,
            }
            if error:
                out[item]["error"] = error
        return out

    def drafts() -> list[EventDraft]:
        r = replay_ledger(ledger)
        t = r.transfers.get(tseq)
        if t is None:
            raise UsageError(f"no such transfer: {tid}")
        data: dict[str, Any] = {
            "transfer": t.hash,
            "transfer_seq": t.seq,
            "transfer_id": t.id,
            "items": {  # as if every item matched: who may receive, checked before hashing
                i: {"expected": r.items[i].digests, "found": r.items[i].digests, "match": True}
                for i in t.items
                if i in r.items
            },
            "location": location,
            "reason": note or "received",
        }
        check_draft(ledger, r, signer, EventDraft(RECEIVE_EVENT, data))
        r = replay_ledger(ledger)
        data["items"] = check_items(r, r.transfers[tseq])
        draft = EventDraft(RECEIVE_EVENT, data)
        try:
            check_draft(ledger, r, signer, draft)
        except CustodyRuleError as e:
            # a receipt records what it found: a mismatch is its finding, not a refusal
            if any(f.kind is not Kind.RECEIPT_MISMATCH for f in e.findings):
                raise
        return [draft]

    return ledger.append(signer, drafts)[-1]


def lifecycle_event(
    ledger: Ledger,
    signer: Signer,
    action: str,
    items: list[str],
    reason: str,
    location: str = "",
    purge: bool = False,
) -> Event:
    if action not in LIFECYCLE_EVENTS:
        raise UsageError(f"unknown event {action!r}; choose from {', '.join(LIFECYCLE_EVENTS)}")
    if not reason.strip():
        raise UsageError("--reason is required")

    def build(r: Replay) -> EventDraft:
        data: dict[str, Any] = {
            "items": _need_items(r, items),
            "reason": reason,
            "location": location,
        }
        if action == "dispose":
            data["purge"] = purge
        return EventDraft(action, data)

    ev = _append_checked(ledger, signer, build)
    if action == "dispose" and purge:
        purge_objects(ledger, ev)
    return ev


def purgeable(r: Replay) -> set[str]:
    """Store objects whose every item was disposed with --purge: their absence is
    recorded, not a loss."""
    keep = {st.store for st in r.items.values() if st.store and not st.purged}
    return {st.store for st in r.items.values() if st.store and st.purged} - keep


def purge_objects(ledger: Ledger, ev: Event) -> list[str]:
    """Delete the stored bytes of items disposed with --purge, unless another item
    not purged shares the same content.  The records stay forever."""
    r = replay_ledger(ledger)
    store = Store(ledger.store_dir)
    gone = purgeable(r)
    removed = []
    for item in _items_of(ev.data):
        st = r.items.get(item)
        if st is None or not st.store or st.store not in gone:
            continue
        try:
            store.path_of(st.store).unlink()
            removed.append(st.store)
        except FileNotFoundError:
            pass
    return removed


def rotate_key(ledger: Ledger, old: Signer, new: Signer) -> Event:
    new_id = Identity(
        name=old.identity.name, role=old.identity.role, public_raw=new.identity.public_raw
    )

    def build(r: Replay) -> EventDraft:
        stmt = rotation_statement(
            ledger.case.case_id, old.fingerprint, new_id.fingerprint, new_id.public_b64
        )
        return EventDraft(
            KEY_ROTATE_EVENT,
            {
                "old": old.fingerprint,
                "new": new_id.fingerprint,
                "public_key": new_id.public_b64,
                "name": new_id.name,
                "role": new_id.role,
                "algorithm": "ed25519",
                "cosignature": base64.b64encode(new.sign(stmt)).decode("ascii"),
            },
        )

    return _append_checked(ledger, old, build)


def revoke_key(ledger: Ledger, signer: Signer, who: str, reason: str) -> Event:
    def build(r: Replay) -> EventDraft:
        fp = who if who in r.keys else resolve_identity(r, who)
        return EventDraft(KEY_REVOKE_EVENT, {"fingerprint": fp, "reason": reason})

    return _append_checked(ledger, signer, build)
