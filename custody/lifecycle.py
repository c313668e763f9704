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
    violations: list[tuple[str, str, str]] = field(default_factory=list)  # kind, subject, detail

    def violate(self, kind: str, subject: str, detail: str) -> None:
        self.violations.append((kind, subject, detail))

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
    """Apply one event to the replay state.  ``trusted`` is False when its
    signature did not verify: it then registers no key."""
    data = body.get("data")
    if not isinstance(data, dict):
        return
    subject = f"event {seq}"
    if signer in r.revoked and r.revoked[signer] < seq:
        r.violate(
            "revoked-key", subject, f"signed by {signer}, revoked at event {r.revoked[signer]}"
        )
    if signer in r.rotated_at and r.rotated_at[signer] < seq:
        r.violate(
            "revoked-key",
            subject,
            f"signed by {signer}, replaced by key rotation at event {r.rotated_at[signer]}",
        )
    if type_ == IDENTITY_EVENT:
        _identity(r, seq, signer, data, trusted)
    elif type_ == KEY_ROTATE_EVENT:
        if trusted:
            _rotate(r, seq, signer, data, case_id)
    elif type_ == KEY_REVOKE_EVENT:
        fp = str(data.get("fingerprint"))
        if fp not in r.keys:
            r.violate("revocation", subject, f"revokes {fp}, a key the ledger does not know")
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
    subject = f"event {seq}"
    try:
        pub = base64.b64decode(str(data.get("public_key", "")), validate=True)
    except (binascii.Error, ValueError):
        r.violate("identity", subject, "public_key is not base64")
        return
    fp = fingerprint(pub)
    if len(pub) != 32 or data.get("fingerprint") != fp:
        r.violate(
            "identity",
            subject,
            f"fingerprint {data.get('fingerprint')} does not match its public key ({fp})",
        )
        return
    if data.get("registration") == "self" and signer != fp:
        r.violate(
            "identity",
            subject,
            f"self-registration signed by {signer}, not by the key it registers ({fp})",
        )
        return
    if trusted:
        r.keys.setdefault(fp, pub)
        r.names.setdefault(fp, (str(data.get("name")), str(data.get("role"))))


def _rotate(r: Replay, seq: int, signer: str, data: dict[str, Any], case_id: str) -> None:
    subject = f"event {seq}"
    old, new, pub_b64 = data.get("old"), data.get("new"), str(data.get("public_key", ""))
    try:
        pub = base64.b64decode(pub_b64, validate=True)
        cosig = base64.b64decode(str(data.get("cosignature", "")), validate=True)
    except (binascii.Error, ValueError):
        r.violate("rotation", subject, "public key or cosignature is not base64")
        return
    if old != signer:
        r.violate("rotation", subject, f"rotation of {old} signed by another key ({signer})")
    if new != fingerprint(pub):
        r.violate("rotation", subject, "new fingerprint does not match the new public key")
        return
    if not verify_signature(pub, cosig, rotation_statement(case_id, str(old), str(new), pub_b64)):
        r.violate("rotation", subject, f"the new key {new} did not sign the rotation")
        return
    r.keys.setdefault(str(new), pub)
    r.names.setdefault(str(new), (str(data.get("name")), str(data.get("role"))))
    r.rotated_to[str(old)] = str(new)
    r.rotated_at.setdefault(str(old), seq)
    for st in r.items.values():
        if st.custodian == old:
            st.custodian = str(new)


def _holds(r: Replay, st: ItemStatus, signer: str) -> bool:
    return r.current(st.custodian) == r.current(signer)


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
        r.violate("transfer", subject, f"receiver {t.receiver} is not a known identity")
    elif r.current(t.receiver) == r.current(signer):
        r.violate("transfer", subject, "releaser and receiver are the same person")
    elif t.receiver in r.revoked or t.receiver in r.rotated_to:
        r.violate("transfer", subject, f"receiver {t.receiver} holds a retired key")
    for item in items:
        st = r.items.get(item)
        if st is None:
            r.violate("transfer", subject, f"{item} is not an item of this case")
            continue
        if not _holds(r, st, signer) or st.state in (IN_TRANSIT, DISPOSED, RELEASED):
            r.violate(
                "transfer",
                subject,
                f"{item} released by {signer}, who does not hold it ({st.state})",
            )
            continue
        st.before_transit = st.state
        st.state = IN_TRANSIT
        st.pending = seq


def _receive(r: Replay, seq: int, signer: str, body: dict[str, Any], data: dict[str, Any]) -> None:
    subject = f"event {seq}"
    tseq = data.get("transfer_seq")
    t = r.transfers.get(tseq) if isinstance(tseq, int) else None
    if t is None or data.get("transfer") != t.hash:
        r.violate("receipt", subject, "receipt does not reference a transfer of this ledger")
        return
    if t.receipt is not None:
        r.violate("receipt", subject, f"{t.id} was already received at event {t.receipt}")
        return
    if r.current(signer) != r.current(t.receiver):
        r.violate(
            "receipt", subject, f"{t.id} names {t.receiver} as receiver but was signed by {signer}"
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
                    "receipt",
                    subject,
                    f"{item}: receipt expects {check.get('expected')}, collected as {st.digests}",
                )
            if check.get("match") is True and check.get("found") != check.get("expected"):
                r.violate(
                    "receipt", subject, f"{item}: receipt says match but found {check.get('found')}"
                )
        if not isinstance(check, dict) or check.get("match") is not True:
            t.mismatches.append(item)
            found = check.get("found") if isinstance(check, dict) else None
            r.violate(
                "receipt-mismatch",
                item,
                f"received in {t.id} at event {seq} with digests {found},"
                f" expected {check.get('expected') if isinstance(check, dict) else None}",
            )
        if st is not None and st.pending == t.seq:
            st.state = st.before_transit
            st.custodian = signer
            st.pending = None


def _lifecycle(r: Replay, seq: int, type_: str, signer: str, data: dict[str, Any]) -> None:
    for item in _items_of(data):
        st = r.items.get(item)
        if st is None:
            r.violate("lifecycle", f"event {seq}", f"{type_} of {item}, not an item of this case")
            continue
        if type_ == "note":
            continue
        if not _holds(r, st, signer) or st.state in (IN_TRANSIT, DISPOSED, RELEASED):
            r.violate(
                "lifecycle",
                f"event {seq}",
                f"{type_} of {item} by {signer}, who does not hold it ({st.state})",
            )
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


def _append_one(
    ledger: Ledger, signer: Signer, drafts: Callable[[], list[EventDraft]], type_: str
) -> Event:
    return next(e for e in ledger.append(signer, drafts) if e.type == type_)


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
    """A known identity by fingerprint (full or 16-hex prefix) or exact name."""
    w = who.strip()
    if w in r.keys:
        return w
    hexpart = w.removeprefix("sha256:").lower()
    by_fp = [
        fp for fp in r.keys if len(hexpart) >= 8 and fp.removeprefix("sha256:").startswith(hexpart)
    ]
    by_name = [fp for fp, (name, _) in r.names.items() if name == w]
    found = [fp for fp in dict.fromkeys(by_fp + by_name) if fp not in r.rotated_to]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(f"no known identity {who!r}: import their key with 'custody key import'")
    raise UsageError(f"{who!r} names several identities; give a fingerprint")


def transfer(
    ledger: Ledger, signer: Signer, items: list[str], to: str, reason: str, location: str = ""
) -> Event:
    def drafts() -> list[EventDraft]:
        r = replay_ledger(ledger)
        wanted = _need_items(r, items)
        receiver = resolve_identity(r, to)
        for item in wanted:
            st = r.items[item]
            if st.state == IN_TRANSIT:
                raise CustodyRuleError(
                    f"{item} is already in transit ({transfer_id(st.pending or 0)})"
                )
            if st.state in (DISPOSED, RELEASED):
                raise CustodyRuleError(f"{item} is {st.state}; it cannot be transferred")
            if not _holds(r, st, signer.fingerprint):
                holder = r.names.get(r.current(st.custodian), (st.custodian, ""))[0]
                raise CustodyRuleError(
                    f"only the current custodian may transfer {item}; it is held by {holder}"
                )
        if receiver in r.revoked:
            raise CustodyRuleError(f"{to} has a revoked key")
        if r.current(receiver) == r.current(signer.fingerprint):
            raise CustodyRuleError("a transfer must name someone else as receiver")
        return [
            EventDraft(
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
        ]

    return _append_one(ledger, signer, drafts, TRANSFER_EVENT)


def receive(ledger: Ledger, signer: Signer, tid: str, location: str = "", note: str = "") -> Event:
    tseq = parse_transfer_id(tid)
    store = Store(ledger.store_dir)

    def check_items(r: Replay, t: Transfer) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in t.items:
            st = r.items[item]
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
        if t.receipt is not None:
            raise CustodyRuleError(f"{t.id} was already received (event {t.receipt})")
        if r.current(t.receiver) != r.current(signer.fingerprint):
            name = r.names.get(t.receiver, (t.receiver, ""))[0]
            raise CustodyRuleError(f"{t.id} is addressed to {name}; only they may receive it")
        return [
            EventDraft(
                RECEIVE_EVENT,
                {
                    "transfer": t.hash,
                    "transfer_seq": t.seq,
                    "transfer_id": t.id,
                    "items": check_items(r, t),
                    "location": location,
                    "reason": note or "received",
                },
            )
        ]

    return _append_one(ledger, signer, drafts, RECEIVE_EVENT)


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

    def drafts() -> list[EventDraft]:
        r = replay_ledger(ledger)
        wanted = _need_items(r, items)
        for item in wanted:
            st = r.items[item]
            if action == "note":
                continue
            if st.state in (IN_TRANSIT, DISPOSED, RELEASED):
                raise CustodyRuleError(f"{item} is {st.state}; cannot record {action}")
            if not _holds(r, st, signer.fingerprint):
                holder = r.names.get(r.current(st.custodian), (st.custodian, ""))[0]
                raise CustodyRuleError(
                    f"only the current custodian may {action} {item}; it is held by {holder}"
                )
        data: dict[str, Any] = {"items": wanted, "reason": reason, "location": location}
        if action == "dispose":
            data["purge"] = purge
        return [EventDraft(action, data)]

    ev = _append_one(ledger, signer, drafts, action)
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

    def drafts() -> list[EventDraft]:
        r = replay_ledger(ledger)
        if new_id.fingerprint in r.keys:
            raise UsageError("the new key is already known to this case")
        if old.fingerprint in r.rotated_to:
            raise CustodyRuleError("this key was already rotated")
        stmt = rotation_statement(
            ledger.case.case_id, old.fingerprint, new_id.fingerprint, new_id.public_b64
        )
        return [
            EventDraft(
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
        ]

    return _append_one(ledger, old, drafts, KEY_ROTATE_EVENT)


def revoke_key(ledger: Ledger, signer: Signer, who: str, reason: str) -> Event:
    def drafts() -> list[EventDraft]:
        r = replay_ledger(ledger)
        fp = resolve_identity(r, who) if who not in r.keys else who
        if fp in r.revoked:
            raise UsageError(f"{fp} is already revoked")
        return [EventDraft(KEY_REVOKE_EVENT, {"fingerprint": fp, "reason": reason})]

    return _append_one(ledger, signer, drafts, KEY_REVOKE_EVENT)
