"""The signed "verified through N" note that lets ``verify --incremental`` skip
the signature checks a verification already made (docs/ledger-format.md §9.8).

A ``verified`` event, signed by the verifier's key, records after a successful
verification that every signature of events 0..N verified, naming N, the Merkle
tree root of those N+1 events and a digest of their N+1 signature columns.  An
incremental verification trusts only the latest note signed by the key the
verifier presents (trust binds to keys, never to names): it checks the note's own
signature with that key first, then everything as a full verification does except
the signatures of events 0..N; after the pass, the tree root and the signature
digest of events 0..N must be the note's, else the note is a ``verified-note``
finding and the whole ledger is checked again in full.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from custody.canonical import parse_canonical
from custody.keys import Signer, verify_signature
from custody.ledger import Event, EventDraft, Ledger

VERIFIED_EVENT = "verified"


@dataclass(frozen=True)
class Through:
    """A usable note: event ``seq`` says events 0..``through`` were verified."""

    seq: int
    through: int
    root: bytes
    signatures: str


def signatures_digest(ledger: Ledger, through: int) -> str:
    """sha256 (hex) of ``"SEQ SIGNATURE\\n"`` for each event 0..``through`` in order:
    the signature column is no part of the hashed body, so the note names it too."""
    h = hashlib.sha256()
    for seq, sig in ledger.conn.execute(
        "SELECT seq, signature FROM events WHERE seq <= ? ORDER BY seq", (through,)
    ):
        text = sig.decode("utf-8", "replace") if isinstance(sig, bytes) else str(sig)
        h.update(f"{seq} {text}\n".encode())
    return h.hexdigest()


def note_draft(through: int, root: bytes, signatures: str) -> EventDraft:
    """The ``verified`` event recorded after a verification found no problem."""
    return EventDraft(
        VERIFIED_EVENT,
        {
            "through": through,
            "root": base64.b64encode(root).decode("ascii"),
            "signatures": signatures,
        },
    )


Problem = tuple[int, str]  # (seq of the note, what is wrong with it)


def latest_note(
    ledger: Ledger, fingerprint: str, public_raw: bytes
) -> tuple[Through | None, Problem | None]:
    """The latest ``verified`` note signed by the key ``fingerprint``
    (``public_raw``), checked with that key.  Returns (note, None) when it is
    usable, (None, None) when there is none, (None, problem) when the latest one
    is not usable."""
    row = ledger.conn.execute(
        "SELECT seq, body, signature FROM events WHERE type = ? AND signer = ?"
        " ORDER BY seq DESC LIMIT 1",
        (VERIFIED_EVENT, fingerprint),
    ).fetchone()
    if row is None:
        return None, None
    seq, body, sig = row
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    try:
        signature = base64.b64decode(str(sig), validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if not verify_signature(public_raw, signature, raw):
        return None, (seq, "the verified-through note's signature does not verify with your key")
    try:
        parsed: Any = parse_canonical(raw)
    except (ValueError, RecursionError):
        return None, (seq, "the verified-through note is not canonical JSON")
    data = parsed.get("data") if isinstance(parsed, dict) else None
    if (
        not isinstance(data, dict)
        or parsed.get("type") != VERIFIED_EVENT
        or parsed.get("signer") != fingerprint
        or parsed.get("seq") != seq
    ):
        return None, (seq, "the verified-through note's body is not one")
    through = data.get("through")
    sigs = data.get("signatures")
    try:
        root = base64.b64decode(str(data.get("root")), validate=True)
    except (binascii.Error, ValueError):
        root = b""
    if (
        type(through) is not int
        or not 0 <= through < seq
        or len(root) != 32
        or not isinstance(sigs, str)
        or len(sigs) != 64
    ):
        return None, (seq, "the verified-through note's fields are malformed")
    return Through(seq, through, root, sigs), None


def record_note(
    ledger: Ledger, signer: Signer, *, events: int, root: bytes, signatures: str, note: int | None
) -> Event | None:
    """Record the note of a verification of ``events`` events that found nothing
    wrong (``root`` and ``signatures`` of those events, from that same run), unless
    the only event since the note it used (``note``) is that note itself."""
    if events == 0 or (note is not None and events - 1 <= note):
        return None
    (ev,) = ledger.append(signer, [note_draft(events - 1, root, signatures)])
    return ev
