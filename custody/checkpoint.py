"""Checkpoints and proofs: the ledger's events are the leaves of an RFC 9162
Merkle tree (leaf = SHA-256(0x00 || canonical event body), leaf index = seq).

A checkpoint is a C2SP tlog-checkpoint body (origin ``custody/<case id>``, size,
base64 root) in a C2SP signed note signed by the caller's key.  It is recorded in
the ledger as a ``checkpoint`` event and may be written to a file for counsel: a
checkpoint pins history even against someone who holds the signing key, since a
rewritten ledger can no longer prove consistency with it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custody import merkle, note
from custody.errors import CorruptLedgerError, IntegrityError, UsageError
from custody.keys import Identity, Signer, fingerprint
from custody.ledger import Event, EventDraft, Ledger
from custody.lifecycle import replay_ledger
from custody.safeio import CAP_CHECKPOINT, read_input_text

CHECKPOINT_EVENT = "checkpoint"
TIMESTAMP_EVENT = "timestamp"


def origin_of(case_id: str) -> str:
    return f"custody/{case_id}"


def checkpoint_origin(case_id: str) -> str:
    """The origin line of a new checkpoint of the case ``case_id``, or a
    :class:`UsageError` (exit 2) when the case id cannot be one: a case made before
    ``custody init`` refused a case id that is not one line of text can be read and
    verified, but never checkpointed or exported."""
    origin = origin_of(case_id)
    try:
        note.Checkpoint(origin=origin, size=0, root=bytes(note.ROOT_SIZE))
    except note.MalformedCheckpointError as e:
        raise UsageError(
            f"this case's id '{case_id}' cannot name a checkpoint ({e}): the case can be"
            " read and verified, but not checkpointed or exported"
        ) from None
    return origin


def registered_name(ledger: Ledger, signer: Signer) -> str:
    """The name the ledger registers ``signer``'s key under (§5.1 of
    docs/ledger-format.md), which is the name every signed text custody writes uses
    for it (the checkpoint note's key name, bag-info.txt's ``Contact-Name``); the
    name in the key file only for a key the ledger does not know yet."""
    known = ledger.identities().get(signer.fingerprint, {})
    return str(known.get("name", signer.identity.name))


def note_key_name(name: str) -> str:
    """A signed-note key name for a person: their name, lower-case, runs of
    anything but letters and digits turned into ``-``."""
    slug = re.sub(r"[^\w]+|_", "-", name.strip().lower()).strip("-")
    return slug or "custody"


def vkey_of(identity: Identity) -> str:
    """The C2SP verifier-key string (``name+hex8+base64``) of an identity."""
    return note.verifier_key(note_key_name(identity.name), identity.public_raw)


def verifiers(keys: dict[str, bytes], names: dict[str, tuple[str, str]]) -> list[note.Verifier]:
    return [
        note.Verifier.from_public(note_key_name(names.get(fp, ("custody", ""))[0]), pub)
        for fp, pub in keys.items()
    ]


@dataclass(frozen=True)
class LoadedCheckpoint:
    checkpoint: note.Checkpoint
    signed_by: list[str]  # note key names whose signatures verified: for display only
    text: str
    #: fingerprints of the public keys whose signatures verified: who signed it.  A
    #: key name is chosen by whoever signs, so it never says who signed.
    signed_by_keys: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    def describe(self) -> dict[str, Any]:
        return {
            "origin": self.checkpoint.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode("ascii"),
            "signed_by": self.signed_by,
        }


def open_checkpoint_text(
    text: str, origin: str, vs: Iterable[note.Verifier], source: str = "checkpoint"
) -> LoadedCheckpoint:
    """Parse and verify a signed checkpoint.  Malformed: UsageError (exit 2); not
    signed by a key the ledger knows, or from another case: IntegrityError (exit 1)."""
    try:
        cp, opened = note.open_checkpoint(text, origin, list(vs))
    except note.OriginMismatchError as e:
        raise IntegrityError(f"{source} is for another log or case: {e}") from e
    except note.UnverifiedNoteError as e:
        raise IntegrityError(f"{source} is not signed by any key this case knows: {e}") from e
    except note.NoteError as e:
        raise UsageError(f"{source} is not a signed checkpoint: {e}") from e
    return LoadedCheckpoint(
        cp,
        [v.name for v in opened.verified_by],
        text,
        list(dict.fromkeys(fingerprint(v.public_raw) for v in opened.verified_by)),
    )


def load_checkpoint_file(path: Path, origin: str, vs: Iterable[note.Verifier]) -> LoadedCheckpoint:
    text = read_input_text(path, "checkpoint file", CAP_CHECKPOINT)
    return open_checkpoint_text(text, origin, vs, source=str(path))


def load_for_ledger(ledger: Ledger, path: Path) -> LoadedCheckpoint:
    """Load a checkpoint file of this case, verified with the keys the ledger knows."""
    r = replay_ledger(ledger)
    return load_checkpoint_file(path, origin_of(ledger.case.case_id), verifiers(r.keys, r.names))


def make_checkpoint(ledger: Ledger, signer: Signer) -> tuple[str, Event]:
    """Sign a checkpoint of the ledger as it is now and record it.  Size and root
    are taken inside the write lock, so they describe exactly the events before
    the checkpoint event."""
    origin = checkpoint_origin(ledger.case.case_id)
    ledger.ensure_registered(signer)  # so the checkpoint covers every event before it
    # the note's key name comes from the name the ledger knows this key by, so
    # verifiers built from the ledger (custody.checkpoint.verifiers) find it
    ident = Identity(
        registered_name(ledger, signer),
        signer.identity.role,
        signer.identity.public_raw,
    )
    key_name = note_key_name(ident.name)
    holder: list[str] = []

    def drafts() -> list[EventDraft]:
        tree = ledger.tree()
        size = len(tree)
        cp = note.Checkpoint(origin=origin, size=size, root=tree.root(size), extensions=[])
        text = note.sign_note(
            note.format_checkpoint(cp), key_name, signer.sign, signer.identity.public_raw
        )
        holder.append(text)
        return [
            EventDraft(
                CHECKPOINT_EVENT,
                {
                    "origin": origin,
                    "size": size,
                    "root": base64.b64encode(cp.root).decode("ascii"),
                    "note": text,
                    "vkey": vkey_of(ident),
                },
            )
        ]

    events = ledger.append(signer, drafts)
    ev = next(e for e in events if e.type == CHECKPOINT_EVENT)
    return holder[-1], ev


def timestamp_checkpoint(
    ledger: Ledger,
    signer: Signer,
    checkpoint: Event,
    note_text: str,
    url: str,
    timeout: float = 30,
) -> Event:
    """Obtain an RFC 3161 token over the checkpoint's signed note (its UTF-8 bytes)
    and record it in a ``timestamp`` event.  The request happens outside the write
    lock; the checkpoint is already recorded whatever the TSA answers."""
    from custody.timestamp import request_token  # here: x509 loading costs start-up

    token = request_token(url, note_text.encode("utf-8"), timeout=timeout)
    draft = EventDraft(
        TIMESTAMP_EVENT,
        {
            "checkpoint": checkpoint.seq,
            "checkpoint_hash": checkpoint.hash,
            "tsa": url,
            "token": base64.b64encode(token).decode("ascii"),
        },
    )
    return next(e for e in ledger.append(signer, [draft]) if e.type == TIMESTAMP_EVENT)


def consistency_findings(tree: merkle.TreeCache, cp: LoadedCheckpoint) -> list[str]:
    """Why the ledger's tree does not extend checkpoint ``cp`` (empty if it does)."""
    n = len(tree)
    if cp.size > n:
        return [
            f"ledger has {n} events, fewer than the {cp.size} the checkpoint commits to:"
            " events were removed (truncated history)"
        ]
    got = tree.root(cp.size)
    if got != cp.root:
        return [
            "ledger is not consistent with the checkpoint: its first "
            f"{cp.size} events hash to root {base64.b64encode(got).decode()}, the checkpoint"
            f" says {base64.b64encode(cp.root).decode()} (history was rewritten)"
        ]
    return []


UNVERIFIED = "no proof is given from a ledger that fails verification; run 'custody verify'"


def body_tree(ledger: Ledger) -> merkle.TreeCache:
    """The ledger's Merkle tree recomputed from the event bodies, the record itself,
    never from the stored nodes (``merkle_nodes``), which anyone holding the file can
    rewrite.  On the way the events must be gapless from seq 0, each body must hash
    to the event's recorded hash and each ``prev`` name the previous event's hash;
    and the stored tree must agree with the bodies (same size, same root).
    Otherwise :class:`IntegrityError` (exit 1), one line naming the first problem.
    Signatures are ``custody verify``'s to check: this is one SHA-256 pass (two
    hashes an event) over the bodies, in one read snapshot."""
    tree = merkle.TreeCache()
    leaves: list[bytes] = []
    sha256 = hashlib.sha256
    prev = ledger.case.hash
    conn = ledger.conn
    try:
        conn.execute("BEGIN")  # one snapshot: the bodies and the stored tree agree in time
        try:
            rows = conn.execute("SELECT seq, hash, prev, body FROM events ORDER BY seq")
            for n, (seq, stated, link, body) in enumerate(rows):
                if seq != n:
                    raise IntegrityError(
                        f"event {n} is missing from the ledger (found event {seq} in its"
                        f" place): {UNVERIFIED}"
                    )
                if not isinstance(body, str) or not isinstance(stated, str):
                    raise IntegrityError(f"event {seq} is not stored as text: {UNVERIFIED}")
                raw = body.encode("utf-8")
                if "sha256:" + sha256(raw).hexdigest() != stated:
                    raise IntegrityError(
                        f"event {seq}'s body does not hash to its recorded hash (the event"
                        f" was changed after it was recorded): {UNVERIFIED}"
                    )
                if link != prev:
                    raise IntegrityError(
                        f"event {seq}'s prev is not the hash of event {seq - 1} (the chain"
                        f" is broken): {UNVERIFIED}"
                    )
                prev = stated
                leaves.append(sha256(b"\x00" + raw).digest())
            tree.extend(leaves)
            _compare_stored_tree(conn, tree)
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as e:
        raise CorruptLedgerError(f"ledger is unreadable: {e}") from e
    return tree


def _compare_stored_tree(conn: sqlite3.Connection, tree: merkle.TreeCache) -> None:
    """Every stored node (``merkle_nodes``) must be the node of ``tree``, and every
    node of ``tree`` stored: both walked in (level, index) order, side by side."""
    rows = conn.execute("SELECT level, idx, hash FROM merkle_nodes ORDER BY level, idx")
    for stored, derived in itertools.zip_longest(rows, tree.complete_nodes()):
        if stored is not None and derived is not None:
            level, idx, h = stored
            if (level, idx) == derived[:2] and isinstance(h, bytes) and h == derived[2]:
                continue
        where = stored if derived is None else derived
        raise IntegrityError(
            f"the stored Merkle tree disagrees with the {len(tree)} event bodies at level"
            f" {where[0]} index {where[1]}: {UNVERIFIED}"
        )


def _hex(hs: list[bytes]) -> list[str]:
    return [h.hex() for h in hs]


def prove_inclusion(
    ledger: Ledger, cp: LoadedCheckpoint, events: list[Event]
) -> list[dict[str, Any]]:
    """Inclusion proofs of ``events`` in checkpoint ``cp``, each verified, from the
    tree recomputed from the event bodies (:func:`body_tree`)."""
    tree = body_tree(ledger)
    problems = consistency_findings(tree, cp)
    if problems:
        raise IntegrityError(problems[0])
    out = []
    for ev in events:
        if ev.seq >= cp.size:
            out.append(
                {
                    "seq": ev.seq,
                    "hash": ev.hash,
                    "included": False,
                    "detail": f"event {ev.seq} is newer than the checkpoint (size {cp.size})",
                }
            )
            continue
        leaf = merkle.leaf_hash(ev.body.encode("utf-8"))
        proof = tree.inclusion_proof(ev.seq, cp.size)
        try:
            merkle.verify_inclusion(leaf, ev.seq, cp.size, proof, cp.root)
        except merkle.ProofError as e:
            raise IntegrityError(f"event {ev.seq} is not in the checkpoint: {e}") from e
        out.append(
            {
                "seq": ev.seq,
                "hash": ev.hash,
                "type": ev.type,
                "included": True,
                "leaf_index": ev.seq,
                "tree_size": cp.size,
                "leaf_hash": leaf.hex(),
                "proof": _hex(proof),
            }
        )
    return out


def prove_consistency(
    ledger: Ledger, old: LoadedCheckpoint, new: LoadedCheckpoint
) -> dict[str, Any]:
    if old.size > new.size:
        raise UsageError(
            f"the first checkpoint (size {old.size}) is newer than the second (size {new.size})"
        )
    tree = body_tree(ledger)
    problems = consistency_findings(tree, new)
    if problems:
        raise IntegrityError(problems[0])
    if old.size == 0:
        proof: list[bytes] = []
        ok = old.root == merkle.EMPTY_ROOT
    else:
        proof = tree.consistency_proof(old.size, new.size)
        try:
            merkle.verify_consistency(old.size, new.size, proof, old.root, new.root)
            ok = True
        except merkle.ProofError:
            ok = False
    if not ok:
        raise IntegrityError(
            f"checkpoints are not consistent: the tree of size {new.size} does not extend"
            f" the tree of size {old.size} (history was rewritten)"
        )
    return {"old": old.describe(), "new": new.describe(), "proof": _hex(proof), "consistent": True}
