"""The custody writers: transfer, receive, lifecycle events, key rotation and
revocation, reassignment, and the drafts they sign.

A writer never re-checks a rule by hand: it builds its draft from the replay kept
current inside the write lock (custody.lifecycle.Rules), and Ledger.append admits
the event by the replay's own step, so the writers and ``verify`` apply one rule.
The draft builders are public: tests force exactly these drafts past the gate to
show that ``verify`` reports what a writer refuses.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Any

from custody.errors import UsageError
from custody.keys import Identity, Signer
from custody.ledger import KEY_REVOKE_EVENT, KEY_ROTATE_EVENT, Event, EventDraft, Ledger
from custody.lifecycle import (
    HOLD_RELEASE_EVENT,
    HOLD_SET_EVENT,
    LIFECYCLE_EVENTS,
    REASSIGN_EVENT,
    RECEIVE_EVENT,
    TRANSFER_EVENT,
    Replay,
    Transfer,
    _items_of,
    append_checked,
    check_draft,
    need_items,
    parse_transfer_id,
    purgeable,
    replay_ledger,
    resolve_identity,
    rotation_statement,
    transfer_id,
)
from custody.store import Store

# -- the drafts the writers sign (also what tests force past the gate) ---------------


def transfer_draft(
    r: Replay, items: list[str], to: str, reason: str, location: str = ""
) -> EventDraft:
    """One transfer event moving all ``items``: how hand-overs were recorded before
    they were split by item (:func:`handover_drafts`); kept for tests."""
    wanted = need_items(r, items)
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


def handover_drafts(
    r: Replay, first_seq: int, items: list[str], to: str, reason: str, location: str = ""
) -> list[EventDraft]:
    """A hand-over of ``items``: one transfer event per item, so that no signed event
    names another item or its digests (an export of one item discloses only its
    own), grouped by the hand-over id ``TRANSFER-<first_seq>``, the seq the first of
    them gets (ledger-format §7.2).  A hand-over of one item is one plain transfer."""
    wanted = need_items(r, items)
    if len(wanted) == 1:  # a hand-over of one item needs no group
        return [transfer_draft(r, wanted, to, reason, location)]
    receiver = resolve_identity(r, to)
    hid = transfer_id(first_seq)
    return [
        EventDraft(
            TRANSFER_EVENT,
            {
                "handover": hid,
                "items": [i],
                "to": receiver,
                "to_name": r.names.get(receiver, ("", ""))[0],
                "reason": reason,
                "location": location,
                "digests": {i: r.items[i].digests},
            },
        )
        for i in wanted
    ]


def receive_draft(r: Replay, tid: str, location: str = "", note: str = "") -> EventDraft:
    """A receipt of transfer ``tid`` as if every item matched (the receive writer
    then fills in what it found on re-hashing)."""
    t = r.transfers.get(parse_transfer_id(tid))
    if t is None:
        raise UsageError(f"no such transfer: {tid}")
    return receipt_draft(r, t, location, note)


def receipt_draft(r: Replay, t: Transfer, location: str = "", note: str = "") -> EventDraft:
    """The receipt of transfer event ``t`` (one item of a hand-over, or a whole
    transfer written before hand-overs were split), as if every item matched."""
    handover = {"handover": t.handover} if t.handover is not None else {}
    return EventDraft(
        RECEIVE_EVENT,
        {
            **handover,
            "transfer": t.hash,
            "transfer_seq": t.seq,
            "transfer_id": t.id,
            "items": {
                i: {"expected": r.items[i].digests, "found": r.items[i].digests, "match": True}
                for i in t.items
                if i in r.items
            },
            "location": location,
            "reason": note or "received",
        },
    )


def lifecycle_draft(
    r: Replay,
    action: str,
    items: list[str],
    reason: str,
    location: str = "",
    purge: bool = False,
) -> EventDraft:
    data: dict[str, Any] = {"items": need_items(r, items), "reason": reason, "location": location}
    if action == "dispose":
        data["purge"] = purge
    return EventDraft(action, data)


def revoke_draft(r: Replay, who: str, reason: str) -> EventDraft:
    fp = who if who in r.keys else resolve_identity(r, who)
    return EventDraft(KEY_REVOKE_EVENT, {"fingerprint": fp, "reason": reason})


def reassign_draft(r: Replay, items: list[str], to: str, reason: str) -> EventDraft:
    return EventDraft(
        REASSIGN_EVENT,
        {"items": need_items(r, items), "to": resolve_identity(r, to), "reason": reason},
    )


def transfer(
    ledger: Ledger, signer: Signer, items: list[str], to: str, reason: str, location: str = ""
) -> Event:
    """Hand ``items`` over; the first event of the hand-over (its id is the
    hand-over's, ``TRANSFER-<seq>``)."""
    return transfer_events(ledger, signer, items, to, reason, location)[0]


def transfer_events(
    ledger: Ledger, signer: Signer, items: list[str], to: str, reason: str, location: str = ""
) -> list[Event]:
    """Hand ``items`` over to ``to``: one signed transfer event per item, consecutive,
    grouped by the hand-over id (:func:`handover_drafts`)."""

    def drafts() -> list[EventDraft]:
        r = ledger.rules().current()
        # the signer holds the items, so is registered: the first draft is next
        return handover_drafts(r, ledger.event_count(), items, to, reason, location)

    return [e for e in ledger.append(signer, drafts) if e.type == TRANSFER_EVENT]


def receive(ledger: Ledger, signer: Signer, tid: str, location: str = "", note: str = "") -> Event:
    """Receive transfer ``tid``'s hand-over; the first receipt (see
    :func:`receive_events`)."""
    return receive_events(ledger, signer, tid, location, note)[0]


def receive_events(
    ledger: Ledger, signer: Signer, tid: str, location: str = "", note: str = ""
) -> list[Event]:
    """Receive the hand-over transfer ``tid`` belongs to: one signed receipt per
    transfer of the hand-over not yet received (each item re-hashed), so that no
    receipt names another item."""
    parse_transfer_id(tid)
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
                    found = store.hash_object(st.store, sorted(expected)).digests
                except OSError as e:  # a link, FIFO or device there is not read either
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
        r = ledger.rules().current()
        t = r.transfers.get(parse_transfer_id(tid))
        if t is None:
            raise UsageError(f"no such transfer: {tid}")
        group = [u for u in r.group(t) if u.receipt is None] or [t]
        out = []
        probe_r = replay_ledger(ledger)
        for u in group:
            probe = receipt_draft(r, u, location, note)
            # who may receive, checked on a fresh replay before any item is re-hashed
            check_draft(ledger, probe_r, signer, probe)
        for u in group:
            data = dict(receipt_draft(r, u, location, note).data)
            data["items"] = check_items(r, u)
            out.append(EventDraft(RECEIVE_EVENT, data))
        return out  # the gate admits each; mismatches are facts

    return [e for e in ledger.append(signer, drafts) if e.type == RECEIVE_EVENT]


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

    ev = append_checked(
        ledger, signer, lambda r: lifecycle_draft(r, action, items, reason, location, purge)
    )
    if action == "dispose" and purge:
        purge_objects(ledger, ev)
    return ev


def purge_objects(ledger: Ledger, ev: Event) -> list[str]:
    """Delete the stored bytes of items disposed with --purge, unless another item
    not purged shares the same content, or an imported item (any imported bundle's
    item, :meth:`Ledger.imported_objects`) names the object.  The records stay
    forever."""
    r = replay_ledger(ledger)
    store = Store(ledger.store_dir)
    gone = purgeable(r) - ledger.imported_objects()
    removed = []
    for item in _items_of(ev.data):
        st = r.items.get(item)
        if st is None or not st.store or st.store not in gone:
            continue
        if store.remove_object(st.store):  # through no link; an object path only
            removed.append(st.store)
    return removed


def rotate_key(ledger: Ledger, old: Signer, new: Signer) -> Event:
    """Replace ``old`` by ``new``: signed by the old key, co-signed by the new."""
    return _rotation(ledger, old, new, lambda r: old.fingerprint)


def replace_owner(ledger: Ledger, recovery: Signer, new: Signer) -> Event:
    """Replace the owner's key by ``new``, signed by the case's recovery key (the
    owner's key lost or compromised), co-signed by the new key."""

    def owner(r: Replay) -> str:
        if r.owner is None:
            raise UsageError("this case has no owner to replace")
        return r.owner

    return _rotation(ledger, recovery, new, owner)


def _rotation(
    ledger: Ledger, signer: Signer, new: Signer, old_of: Callable[[Replay], str]
) -> Event:
    def build(r: Replay) -> EventDraft:
        old = old_of(r)
        name, role = r.names.get(old, (signer.identity.name, signer.identity.role))
        return rotation_draft(ledger.case.case_id, old, name, role, new)

    return append_checked(ledger, signer, build)


def rotation_draft(case_id: str, old: str, name: str, role: str, new: Signer) -> EventDraft:
    """``key.rotate`` of key ``old`` to ``new`` (which co-signs it), under ``name``."""
    new_id = Identity(name=name, role=role, public_raw=new.identity.public_raw)
    stmt = rotation_statement(case_id, old, new_id.fingerprint, new_id.public_b64)
    return EventDraft(
        KEY_ROTATE_EVENT,
        {
            "old": old,
            "new": new_id.fingerprint,
            "public_key": new_id.public_b64,
            "name": new_id.name,
            "role": new_id.role,
            "algorithm": "ed25519",
            "cosignature": base64.b64encode(new.sign(stmt)).decode("ascii"),
        },
    )


def revoke_key(ledger: Ledger, signer: Signer, who: str, reason: str) -> Event:
    return append_checked(ledger, signer, lambda r: revoke_draft(r, who, reason))


def reassign(ledger: Ledger, owner: Signer, items: list[str], to: str, reason: str) -> Event:
    """The owner gives items held by (or in transit to) a revoked key to an
    attested key, with a signed reason."""
    if not reason.strip():
        raise UsageError("--reason is required")

    return append_checked(ledger, owner, lambda r: reassign_draft(r, items, to, reason))


def hold_drafts(
    r: Replay, items: list[str], reason: str, release: bool, group: str
) -> list[EventDraft]:
    """One hold event per item (so that disclosing one item's custody reveals no
    other item), grouped by the ``hold`` id they share.  With no items: releasing
    releases every hold standing; setting holds every item not yet held."""
    if items:
        wanted = need_items(r, items)
    elif release:
        wanted = list(r.holds)
    else:
        wanted = [i for i in r.items if i not in r.holds]
    if not wanted:
        raise UsageError("no legal hold stands" if release else "no items given")
    type_ = HOLD_RELEASE_EVENT if release else HOLD_SET_EVENT
    return [EventDraft(type_, {"items": [i], "hold": group, "reason": reason}) for i in wanted]


def set_hold(
    ledger: Ledger, signer: Signer, items: list[str], reason: str, *, release: bool = False
) -> list[Event]:
    """Record a legal hold on ``items`` (or release it).  The rules
    (custody.lifecycle) refuse a purge of a held item, and ``vault push`` sets the
    object store's legal hold on held items' objects."""
    if not reason.strip():
        raise UsageError("--reason is required")
    group = "HOLD-" + secrets.token_hex(6)
    return ledger.append(
        signer, lambda: hold_drafts(ledger.rules().current(), items, reason, release, group)
    )


def holds_standing(ledger: Ledger) -> list[tuple[str, int, str]]:
    """The legal holds standing, from the replay: (item, seq of hold.set, who set it)."""
    r = replay_ledger(ledger)
    return [(item, seq, r.who(fp)) for item, (seq, fp) in sorted(r.holds.items())]
